"""Bad configuration fails before any stack is built, with one message naming env, field, value and the fix."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stacks import config
from stacks.config import ConfigError, EnvironmentConfig


def with_network(env: EnvironmentConfig, **changes: Any) -> EnvironmentConfig:
    return dataclasses.replace(env, network=dataclasses.replace(env.network, **changes))


PROD = config.ENVIRONMENTS["prod"]
DEV = config.ENVIRONMENTS["dev"]


@pytest.mark.parametrize("name", config.ENV_NAMES)
def test_shipped_environments_are_valid(name: str) -> None:
    config.ENVIRONMENTS[name].validate()


@pytest.mark.parametrize(
    ("env", "field", "fragment"),
    [
        (with_network(PROD, vpc_cidr="10.0.0.0/33"), "network.vpc_cidr", "expected an IPv4 network"),
        (with_network(PROD, vpc_cidr="10.0.0.1/16"), "network.vpc_cidr", "expected an IPv4 network"),
        (with_network(PROD, vpc_cidr="not-a-cidr"), "network.vpc_cidr", "expected an IPv4 network"),
        (with_network(PROD, vpc_cidr="10.0.0.0/19"), "network.vpc_cidr", "too small for the subnets"),
        (with_network(PROD, vpc_cidr="10.0.0.0/12"), "network.vpc_cidr", "between /16 and /28"),
        (with_network(PROD, vpc_cidr="8.8.0.0/16"), "network.vpc_cidr", "RFC 1918"),
        (with_network(PROD, nat_gateways=4), "network.nat_gateways", "between 1 and the number of availability zones"),
        (with_network(PROD, nat_gateways=0), "network.nat_gateways", "between 1 and the number of availability zones"),
        (with_network(PROD, availability_zones=("eu-west-1a",)), "network.availability_zones", "at least 2"),
        (
            with_network(PROD, availability_zones=("eu-west-1a", "eu-west-1a")),
            "network.availability_zones",
            "distinct",
        ),
        (
            with_network(PROD, availability_zones=("eu-west-1a", "us-east-1b")),
            "network.availability_zones",
            "belong to region eu-west-1",
        ),
        (with_network(PROD, private_subnet_mask=16), "network.private_subnet_mask", "longer than the VPC prefix"),
        (dataclasses.replace(PROD, account="12345"), "account", "exactly 12 digits"),
        (dataclasses.replace(PROD, account="12345678901a"), "account", "exactly 12 digits"),
        (dataclasses.replace(PROD, region="Europe"), "region", "AWS region code"),
        (dataclasses.replace(PROD, log_retention_days=42), "log_retention_days", "CloudWatch Logs accepts only"),
        (dataclasses.replace(PROD, retain_data=False), "retain_data", "prod must retain data"),
        (dataclasses.replace(PROD, allow_destroy=True), "allow_destroy", "only allowed for a non-prod env"),
        (
            dataclasses.replace(DEV, tagging=dataclasses.replace(DEV.tagging, data_classification="secret")),
            "tagging.data_classification",
            "allowed: public",
        ),
        (dataclasses.replace(DEV, tagging=dataclasses.replace(DEV.tagging, owner=" ")), "tagging.owner", "non-empty"),
    ],
)
def test_invalid_value_names_env_field_value_and_fix(env: EnvironmentConfig, field: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        env.validate()
    message = str(caught.value)
    assert caught.value.field_name == field
    assert message.startswith(f"environment '{env.name}': {field}=")
    assert fragment in message


def test_unknown_environment_name_lists_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"environment 'qa': env='qa' is invalid; unknown environment; choose one of"):
        config.resolve("qa")


def test_selection_defaults_to_all_and_accepts_lists() -> None:
    assert [e.name for e in config.resolve(None, environ={})] == ["dev", "staging", "prod"]
    assert [e.name for e in config.resolve("prod,dev", environ={})] == ["prod", "dev"]


def test_account_comes_from_the_environment_and_is_validated() -> None:
    (prod,) = config.resolve("prod", environ={"PAT_PROD_ACCOUNT": "123456789012"})
    assert prod.account == "123456789012"
    with pytest.raises(ConfigError, match=r"environment 'prod': account='1234' is invalid"):
        config.resolve("prod", environ={"PAT_PROD_ACCOUNT": "1234"})


def test_bad_config_fails_the_cdk_app_before_any_stack_is_built(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "CDK_CONTEXT_JSON": '{"env": "prod"}',
            "CDK_OUTDIR": str(tmp_path),
            "PAT_PROD_ACCOUNT": "not-an-account",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "environment 'prod': account='not-an-account' is invalid" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))
