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
