"""Bad configuration fails before any stack is built, with one message naming env, field, value and the fix."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pytest

from stacks import config
from stacks.config import ConfigError, EnvironmentConfig, RdsProxySettings
from tests.conftest import ROOT

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def replaced(value: T, **changes: Any) -> T:
    """dataclasses.replace without the static check: these tests hand config the wrong types on purpose."""
    return dataclasses.replace(value, **changes)


def with_network(env: EnvironmentConfig, **changes: Any) -> EnvironmentConfig:
    return dataclasses.replace(env, network=dataclasses.replace(env.network, **changes))


PROD = config.ENVIRONMENTS["prod"]
DEV = config.ENVIRONMENTS["dev"]


@pytest.mark.parametrize("name", config.ENV_NAMES)
def test_shipped_environments_are_valid(name: str) -> None:
    config.validate(config.ENVIRONMENTS[name])


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
        config.validate(env)
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


def with_database(**changes: Any) -> EnvironmentConfig:
    return dataclasses.replace(PROD, database=replaced(PROD.database, **changes))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (with_network(PROD, nat_gateways=1.5), "network.nat_gateways=1.5 is invalid; expected int, got float"),
        (with_network(PROD, nat_gateways=True), "network.nat_gateways=True is invalid; expected int, got bool"),
        (
            with_network(PROD, availability_zones=("eu-west-1a", 2)),
            "network.availability_zones[1]=2 is invalid; expected str, got int",
        ),
        (
            with_network(PROD, availability_zones="eu-west-1a"),
            "network.availability_zones='eu-west-1a' is invalid; expected tuple[str, ...], got str",
        ),
        (
            with_database(readers=("eu-west-1b",)),
            "database.readers[0]='eu-west-1b' is invalid; expected ReaderSpec, got str",
        ),
        (
            with_database(rds_proxy=replaced(RdsProxySettings(), borrow_timeout_seconds="30")),
            "database.rds_proxy.borrow_timeout_seconds='30' is invalid; expected int, got str",
        ),
        (
            with_database(pgbouncer=RdsProxySettings()),
            "database.pgbouncer=RdsProxySettings(idle_client_timeout_seconds=1800, borrow_timeout_seconds=30, "
            "max_connections_percent=90, max_idle_connections_percent=50) is invalid; "
            "expected PgBouncerSettings, got RdsProxySettings",
        ),
        (with_database(max_capacity="64"), "database.max_capacity='64' is invalid; expected float (or int), got str"),
        (
            dataclasses.replace(PROD, storage=replaced(PROD.storage, glacier_after_days=180.0)),
            "storage.glacier_after_days=180.0 is invalid; expected int or None, got float",
        ),
        (replaced(PROD, retain_data=1), "retain_data=1 is invalid; expected bool, got int"),
        (
            dataclasses.replace(
                PROD, ops=replaced(PROD.ops, thresholds=replaced(PROD.ops.thresholds, cache_connections=4e4))
            ),
            "ops.thresholds.cache_connections=40000.0 is invalid; expected int, got float",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_with_one_exact_message(env: EnvironmentConfig, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.validate(env)
    assert str(caught.value) == f"environment 'prod': {message}"


@dataclass(frozen=True, kw_only=True)
class Choice:
    mode: Literal["none", "governance"]
    limit: int | None = None


def test_the_type_check_knows_literal_choices_and_optionals() -> None:
    config.check_types("qa", Choice(mode="none"))
    config.check_types("qa", Choice(mode="governance", limit=3))
    with pytest.raises(ConfigError) as caught:
        config.check_types("qa", replaced(Choice(mode="none"), mode="full"))
    assert (
        str(caught.value) == "environment 'qa': mode='full' is invalid; expected one of 'none', 'governance', got str"
    )
    with pytest.raises(ConfigError) as caught:
        config.check_types("qa", replaced(Choice(mode="none"), limit=False))
    assert str(caught.value) == "environment 'qa': limit=False is invalid; expected int or None, got bool"


def test_a_wrong_type_fails_resolve_before_any_stack_is_built() -> None:
    broken = {"prod": with_network(PROD, nat_gateways=1.5)}
    with pytest.raises(ConfigError, match=r"network.nat_gateways=1.5 is invalid; expected int, got float"):
        config.resolve("prod", environ={}, base=broken)


def test_every_environment_has_its_module() -> None:
    assert tuple(config.ENVIRONMENTS) == config.ENV_NAMES
    assert all(config.ENVIRONMENTS[name].name == name for name in config.ENV_NAMES)


def test_config_imports_no_cdk_directly_or_through_a_package() -> None:
    """The layering rule: config and the settings it composes are CDK-free (a fresh interpreter proves it)."""
    code = (
        "import json, sys, stacks.config\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('aws_cdk', 'constructs', 'jsii'))))\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('pat_constructs.'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    cdk_modules, project_constructs = map(json.loads, result.stdout.splitlines())
    assert cdk_modules == []
    assert project_constructs  # the settings types are imported ...
    assert all(name.startswith("pat_constructs.settings") for name in project_constructs)  # ... and nothing else
