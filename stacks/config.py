"""The environment model: every value that differs between dev, staging and prod, validated before synth.

This is the ONE module that reads CDK context or process environment variables. Stacks and constructs receive
typed, already-validated values; a bad value stops synth here with one message naming the environment, the
field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

ENV_NAMES = ("dev", "staging", "prod")

# The only values CloudWatch Logs accepts for RetentionInDays.
CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


class ConfigError(ValueError):
    """Invalid environment configuration: raised before any stack is built."""

    def __init__(self, env: str, field_name: str, value: object, allowed: str) -> None:
        self.env = env
        self.field_name = field_name
        self.value = value
        super().__init__(f"environment '{env}': {field_name}={value!r} is invalid; {allowed}")


class _HasNode(Protocol):
    """Anything with a construct node (the CDK App); kept structural so this module needs no aws_cdk import."""

    @property
    def node(self) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """VPC layout. Subnet groups are allocated largest first so the CIDR arithmetic below is exact."""

    vpc_cidr: str
    availability_zones: tuple[str, ...]
    nat_gateways: int
    private_subnet_mask: int = 20
    isolated_subnet_mask: int = 22
    public_subnet_mask: int = 24

    def subnet_masks(self) -> dict[str, int]:
        return {
            "private_subnet_mask": self.private_subnet_mask,
            "isolated_subnet_mask": self.isolated_subnet_mask,
            "public_subnet_mask": self.public_subnet_mask,
        }


@dataclass(frozen=True, kw_only=True)
class Tagging:
    """Cost and ownership tags applied to every taggable resource."""

    owner: str = "platform-data"
    cost_center: str = "pat-platform"
    data_classification: str = "confidential"


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One deployable environment (`Pat-<name>-<Part>` stacks)."""

    name: str
    region: str
    account: str | None = None
    network: NetworkConfig
    log_retention_days: int
    # retain_data: RETAIN/SNAPSHOT + deletion protection on every stateful resource (forced on in prod).
    retain_data: bool
    # allow_destroy: stateful resources are DESTROYed with the stack. Only a disposable env may say so.
    allow_destroy: bool = False
    tagging: Tagging = field(default_factory=Tagging)

    @property
    def is_prod(self) -> bool:
        return self.name == "prod"

    def stack_id(self, part: str) -> str:
        return f"Pat-{self.name}-{part}"

    def validate(self) -> None:
        """Raise ConfigError for the first invalid field."""
        fail = self._fail
        if self.name not in ENV_NAMES:
            fail("name", self.name, f"allowed: {', '.join(ENV_NAMES)}")
        if self.account is not None and not _ACCOUNT_RE.match(self.account):
            fail("account", self.account, "an AWS account id is exactly 12 digits (or leave it unset for env-agnostic)")
        if not _REGION_RE.match(self.region):
            fail("region", self.region, "expected an AWS region code such as 'eu-west-1'")
        self._validate_network()
        if self.log_retention_days not in CLOUDWATCH_RETENTION_DAYS:
            fail(
                "log_retention_days",
                self.log_retention_days,
                f"CloudWatch Logs accepts only {', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))}",
            )
        if self.is_prod and not self.retain_data:
            fail("retain_data", self.retain_data, "prod must retain data (RETAIN/SNAPSHOT + deletion protection)")
        if self.allow_destroy and (self.retain_data or self.is_prod):
            fail(
                "allow_destroy", self.allow_destroy, "DESTROY is only allowed for a non-prod env with retain_data=False"
            )
        if self.tagging.data_classification not in DATA_CLASSIFICATIONS:
            fail(
                "tagging.data_classification",
                self.tagging.data_classification,
                f"allowed: {', '.join(DATA_CLASSIFICATIONS)}",
            )
        for tag_field in ("owner", "cost_center"):
            if not getattr(self.tagging, tag_field).strip():
                fail(f"tagging.{tag_field}", getattr(self.tagging, tag_field), "a non-empty tag value is required")

    def _validate_network(self) -> None:
        net, fail = self.network, self._fail
        try:
            cidr = ipaddress.IPv4Network(net.vpc_cidr, strict=True)
        except ValueError as exc:
            fail("network.vpc_cidr", net.vpc_cidr, f"expected an IPv4 network such as '10.0.0.0/16' ({exc})")
        if not 16 <= cidr.prefixlen <= 28:
            fail("network.vpc_cidr", net.vpc_cidr, "a VPC CIDR must be between /16 and /28")
        if not cidr.is_private:
            fail("network.vpc_cidr", net.vpc_cidr, "use an RFC 1918 private range (10/8, 172.16/12, 192.168/16)")
        azs = net.availability_zones
        if len(azs) < 2:
            fail("network.availability_zones", list(azs), "at least 2 availability zones are required")
        if len(set(azs)) != len(azs):
            fail("network.availability_zones", list(azs), "availability zones must be distinct")
        for az in azs:
            if not re.fullmatch(re.escape(self.region) + r"[a-z]", az):
                fail(
                    "network.availability_zones",
                    az,
                    f"every zone must belong to region {self.region} (e.g. '{self.region}a')",
                )
        if not 1 <= net.nat_gateways <= len(azs):
            fail(
                "network.nat_gateways",
                net.nat_gateways,
                f"must be between 1 and the number of availability zones ({len(azs)})",
            )
        for mask_field, mask in net.subnet_masks().items():
            if not cidr.prefixlen < mask <= 28:
                fail(
                    f"network.{mask_field}",
                    mask,
                    f"must be longer than the VPC prefix /{cidr.prefixlen} and at most /28",
                )
        needed = len(azs) * sum(2 ** (32 - mask) for mask in net.subnet_masks().values())
        if needed > cidr.num_addresses:
            fail(
                "network.vpc_cidr",
                net.vpc_cidr,
                f"too small for the subnets: {len(azs)} AZs x (/{net.private_subnet_mask} private + "
                f"/{net.isolated_subnet_mask} isolated + /{net.public_subnet_mask} public) need {needed} addresses, "
                f"the CIDR has {cidr.num_addresses}; use a shorter prefix or smaller subnet masks",
            )

    def _fail(self, field_name: str, value: object, allowed: str) -> NoReturn:
        raise ConfigError(self.name, field_name, value, allowed)


ENVIRONMENTS: Mapping[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev",
        region="eu-west-1",
        network=NetworkConfig(
            vpc_cidr="10.10.0.0/16",
            availability_zones=("eu-west-1a", "eu-west-1b"),
            nat_gateways=1,
        ),
        log_retention_days=30,
        retain_data=False,
        allow_destroy=True,
        tagging=Tagging(data_classification="internal"),
    ),
    "staging": EnvironmentConfig(
        name="staging",
        region="eu-west-1",
        network=NetworkConfig(
            vpc_cidr="10.20.0.0/16",
            availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
            nat_gateways=1,
        ),
        log_retention_days=90,
        retain_data=False,
    ),
    "prod": EnvironmentConfig(
        name="prod",
        region="eu-west-1",
        network=NetworkConfig(
            vpc_cidr="10.30.0.0/16",
            availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
            nat_gateways=3,
        ),
        log_retention_days=365,
        retain_data=True,
    ),
}


def resolve(
    selection: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    base: Mapping[str, EnvironmentConfig] = ENVIRONMENTS,
) -> list[EnvironmentConfig]:
    """Pick and validate the environments to synthesize.

    `selection` is the `env` context value: a name, a comma-separated list, "all" or None (all). An account can be
    configured per environment through `PAT_<ENV>_ACCOUNT` (e.g. `PAT_PROD_ACCOUNT=123456789012`) so the account id
    never has to be committed.
    """
    environ = os.environ if environ is None else environ
    if selection in (None, "", "all"):
        names = list(base)
    else:
        names = [part.strip() for part in str(selection).split(",") if part.strip()]
    for name in names:
        if name not in base:
            raise ConfigError(name, "env", name, f"unknown environment; choose one of {', '.join(base)} or 'all'")
    selected = []
    for name in names:
        env = base[name]
        account = environ.get(f"PAT_{name.upper()}_ACCOUNT")
        if account is not None:
            env = dataclasses.replace(env, account=account.strip())
        env.validate()
        selected.append(env)
    return selected


def load(app: _HasNode) -> list[EnvironmentConfig]:
    """Read `-c env=NAME` from the app and return the validated environments to build."""
    selection = app.node.try_get_context("env")
    return resolve(None if selection is None else str(selection))


def availability_zone_context(env: EnvironmentConfig) -> dict[str, list[str]]:
    """Context that pre-answers CDK's AZ lookup for an env with an explicit account, so synth needs no credentials."""
    if env.account is None:
        return {}
    key = f"availability-zones:account={env.account}:region={env.region}"
    return {key: list(env.network.availability_zones)}
