"""Session-wide fixtures: each environment is synthesized once per test run (without Lambda bundling)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks import config
from stacks.pat_app import PatEnvironment, build_environment

ROOT = Path(__file__).resolve().parent.parent


def cdk_context() -> dict[str, object]:
    """The feature flags from cdk.json (what `cdk synth` uses), with Lambda bundling skipped for template tests."""
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": []}


def build_app(
    envs: list[config.EnvironmentConfig], outdir: Path | None = None
) -> tuple[cdk.App, dict[str, PatEnvironment]]:
    app = cdk.App(context=cdk_context(), outdir=str(outdir) if outdir else None)
    built = {env.name: build_environment(app, env) for env in envs}
    return app, built


@dataclass
class Synthesized:
    app: cdk.App
    envs: dict[str, PatEnvironment]
    assembly: cdk.cx_api.CloudAssembly

    def template_json(self, env: str, part: str) -> dict:
        """The synthesized template of `Pat-<env>-<Part>` (read from the assembly: no second synth)."""
        return self.assembly.get_stack_by_name(f"Pat-{env}-{part}").template

    def template(self, env: str, part: str) -> Template:
        return Template.from_json(self.template_json(env, part))

    def resources(self, env: str, part: str, resource_type: str) -> dict[str, dict]:
        resources = self.template_json(env, part)["Resources"]
        return {lid: r for lid, r in resources.items() if r["Type"] == resource_type}


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    app, envs = build_app(config.resolve("all"), tmp_path_factory.mktemp("cdk.out"))
    return Synthesized(app=app, envs=envs, assembly=app.synth())


def flipped_pooler(env: config.EnvironmentConfig) -> config.EnvironmentConfig:
    """The same environment with the other pooler, so both paths are synthesized and tested for every env."""
    other = "pgbouncer" if env.database.pooler == "rds_proxy" else "rds_proxy"
    bouncer = dataclasses.replace(env.database.pgbouncer, min_tasks=max(2, env.database.pgbouncer.min_tasks))
    return dataclasses.replace(env, database=dataclasses.replace(env.database, pooler=other, pgbouncer=bouncer))


@pytest.fixture(scope="session")
def synthesized_flipped(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    app, envs = build_app([flipped_pooler(e) for e in config.resolve("all")], tmp_path_factory.mktemp("cdk.out"))
    return Synthesized(app=app, envs=envs, assembly=app.synth())


@pytest.fixture(params=config.ENV_NAMES, scope="session")
def env_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Markers by room (pyproject.toml describes them): `make test-fast` runs `-m "not data and not slow"`.
ROOM_MARKERS = {"unit": "unit", "nag": "unit", "ops": "unit", "lambdas": "unit", "data": "data"}
SYNTH_FIXTURES = {"synthesized", "synthesized_flipped"}
# Tests (node ids without parameters) that take 3 s or more of their own, beyond the shared session
# synth: measured with `--durations` on 2 cores.
SLOW = {
    "tests/unit/test_cfn_lint.py::test_cfn_lint_is_clean": "cfn-lint over every template of both assemblies, ~10 s",
    "tests/nag/test_compliance.py::test_every_acknowledgment_matches_a_finding": "a second build of every "
    "environment with acknowledgments recorded but not applied, then every pack over it, ~11 s",
    "tests/unit/test_service_limits.py::test_a_large_cache_splits_its_alarms_so_every_node_is_watched": "synthesizes "
    "an Ops stack of its own for a large cache, ~6 s",
    "tests/unit/test_bundling.py::test_bundle_holds_the_handler_the_library_the_schema_and_linux_wheels": "builds "
    "the migrator's Lambda bundle with pip (a module fixture), ~3 s",
    "tests/unit/test_bundling.py::test_handler_imports_with_only_the_bundle_and_the_runtime_sdk": "the same bundle",
    "tests/unit/test_config.py::test_bad_config_fails_the_cdk_app_before_any_stack_is_built": "runs app.py in a "
    "subprocess (a fresh jsii runtime), ~3 s",
    "tests/lambdas/test_schema_migrator.py::test_create_for_a_schema_this_bundle_does_not_hold_still_migrates": "a "
    "full migration of a fresh database, ~4 s",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        room = item.path.relative_to(ROOT / "tests").parts[0]
        if room not in ROOM_MARKERS:
            raise pytest.UsageError(f"{item.nodeid}: tests/{room}/ has no marker; add it to ROOM_MARKERS in {__file__}")
        item.add_marker(ROOM_MARKERS[room])
        if isinstance(item, pytest.Function) and SYNTH_FIXTURES & set(item.fixturenames):
            item.add_marker("synth")
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker("slow")
