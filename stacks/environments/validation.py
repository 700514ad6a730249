"""Validation of an environment: every value's type first, then its range and how values fit together.

Each check raises one ConfigError naming the environment, the field, the value and what is allowed, before any
stack is built.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NoReturn, Union

from pat_constructs.settings.aurora import AURORA_ENGINE_VERSIONS, PERFORMANCE_INSIGHTS_RETENTION_DAYS
from pat_constructs.settings.backup import VAULT_LOCK_MODES
from pat_constructs.settings.cache import CACHE_ENGINE_VERSIONS, CACHE_EVICTION_POLICIES
from pat_constructs.settings.pooler import NLB_IDLE_TIMEOUT_SECONDS
from pat_constructs.settings.storage import CLOUDFRONT_PRICE_CLASSES
from stacks.environments.model import DATA_CLASSIFICATIONS, ENV_NAMES, POOLERS

if TYPE_CHECKING:
    from stacks.environments.model import EnvironmentConfig

# The only values CloudWatch Logs accepts for RetentionInDays (kept as AWS's one-line table: fmt: skip).
CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_WINDOW_RE = re.compile(
    r"^(?:(?:mon|tue|wed|thu|fri|sat|sun):)?\d{2}:\d{2}-(?:(?:mon|tue|wed|thu|fri|sat|sun):)?\d{2}:\d{2}$"
)
_ORIGIN_RE = re.compile(r"^https://[a-z0-9.-]+(:\d+)?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_CERTIFICATE_RE = re.compile(r"^arn:aws:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$")
_WEB_ACL_RE = re.compile(r"^arn:aws:wafv2:us-east-1:\d{12}:global/webacl/[\w-]+/[\w-]+$")
_DIGEST_RE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")


class ConfigError(ValueError):
    """Invalid environment configuration: raised before any stack is built."""

    def __init__(self, env: str, field_name: str, value: object, allowed: str) -> None:
        self.env = env
        self.field_name = field_name
        self.value = value
        super().__init__(f"environment '{env}': {field_name}={value!r} is invalid; {allowed}")


@dataclasses.dataclass(frozen=True)
class _Failer:
    env: str

    def __call__(self, field_name: str, value: object, allowed: str) -> NoReturn:
        raise ConfigError(self.env, field_name, value, allowed)


def validate(env: EnvironmentConfig) -> None:
    """Raise ConfigError for the first invalid field: types first, so the range checks below can trust them."""
    check_types(env.name, env)
    _validate_all(env)


def check_types(env_name: str, value: object, path: str = "") -> None:
    """Check every field of a (nested) config dataclass against its annotation.

    Python itself checks none of this, so `nat_gateways=1.5`, `True` for a count (a bool is an int to Python), a str
    where a tuple of origins is expected (a str is a sequence too) or a str among `ReaderSpec`s would reach synth.
    Supported annotations: bool, int (bools refused), float (ints accepted), str, None, `X | None`, `tuple[X, ...]`,
    `Literal[...]` and nested dataclasses.
    """
    assert dataclasses.is_dataclass(value)
    hints = typing.get_type_hints(type(value))
    for item in dataclasses.fields(value):
        _check(env_name, f"{path}{item.name}", getattr(value, item.name), hints[item.name])


def _check(env_name: str, path: str, value: object, expected: object) -> None:
    fail = _Failer(env_name)
    if not _matches(value, expected):
        fail(path, value, f"expected {_describe(expected)}, got {type(value).__name__}")
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (Union, types.UnionType):
        # `X | None` holding an X: check it deeply too, so a nested error names the nested field.
        options = [option for option in args if _matches(value, option)]
        if len(options) == 1:
            _check(env_name, path, value, options[0])
    elif origin is tuple:
        assert isinstance(value, tuple)
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            fail(path, value, f"expected {_describe(expected)}, got {len(value)} items")
        for index, (item, item_type) in enumerate(zip(value, items, strict=True)):
            _check(env_name, f"{path}[{index}]", item, item_type)
    elif dataclasses.is_dataclass(expected):
        check_types(env_name, value, f"{path}.")


# Scalars whose Python subtyping is wrong for config: a bool is an int, and an int is a fine float.
_SCALARS: dict[object, Callable[[object], bool]] = {
    int: lambda value: isinstance(value, int) and not isinstance(value, bool),
    float: lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    type(None): lambda value: value is None,
}
_NAMES: dict[object, str] = {type(None): "None", float: "float (or int)"}


def _matches(value: object, expected: object) -> bool:
    """A shallow check of one value against one annotation (a tuple's items are checked by the caller)."""
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is Literal:
        return any(type(value) is type(choice) and value == choice for choice in args)
    if origin in (Union, types.UnionType):
        return any(_matches(value, option) for option in args)
    if origin is tuple:
        return isinstance(value, tuple)
    if expected in _SCALARS:
        return _SCALARS[expected](value)
    if isinstance(expected, type):
        return isinstance(value, expected)
    raise TypeError(f"the config type check does not support the annotation {expected!r}")


def _describe(expected: object) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in args)
    if origin is tuple:
        items = (
            f"{_describe(args[0])}, ..." if len(args) == 2 and args[1] is Ellipsis else ", ".join(map(_describe, args))
        )
        return f"tuple[{items}]"
    return _NAMES.get(expected) or str(getattr(expected, "__name__", expected))


def _validate_all(env: EnvironmentConfig) -> None:
    fail = _Failer(env.name)
    if env.name not in ENV_NAMES:
        fail("name", env.name, f"allowed: {', '.join(ENV_NAMES)}")
    if env.account is not None and not _ACCOUNT_RE.match(env.account):
        fail("account", env.account, "an AWS account id is exactly 12 digits (or leave it unset for env-agnostic)")
    if not _REGION_RE.match(env.region):
        fail("region", env.region, "expected an AWS region code such as 'eu-west-1'")
    _validate_network(env)
    _validate_database(env)
    _validate_cache(env)
    _validate_storage(env)
    _validate_ops(env)
    _validate_backup(env)
    if env.log_retention_days not in CLOUDWATCH_RETENTION_DAYS:
        fail(
            "log_retention_days",
            env.log_retention_days,
            f"CloudWatch Logs accepts only {', '.join(map(str, CLOUDWATCH_RETENTION_DAYS))}",
        )
    if env.is_prod and not env.retain_data:
        fail("retain_data", env.retain_data, "prod must retain data (RETAIN/SNAPSHOT + deletion protection)")
    if env.allow_destroy and (env.retain_data or env.is_prod):
        fail("allow_destroy", env.allow_destroy, "DESTROY is only allowed for a non-prod env with retain_data=False")
    if env.tagging.data_classification not in DATA_CLASSIFICATIONS:
        fail(
            "tagging.data_classification",
            env.tagging.data_classification,
            f"allowed: {', '.join(DATA_CLASSIFICATIONS)}",
        )
    for tag_field in ("owner", "cost_center"):
        if not getattr(env.tagging, tag_field).strip():
            fail(f"tagging.{tag_field}", getattr(env.tagging, tag_field), "a non-empty tag value is required")


def _validate_network(env: EnvironmentConfig) -> None:
    net, fail = env.network, _Failer(env.name)
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
        if not re.fullmatch(re.escape(env.region) + r"[a-z]", az):
            fail(
                "network.availability_zones",
                az,
                f"every zone must belong to region {env.region} (e.g. '{env.region}a')",
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


def _validate_database(env: EnvironmentConfig) -> None:  # noqa: PLR0912 - one flat list of checks reads best
    db, fail = env.database, _Failer(env.name)
    if db.engine_version not in AURORA_ENGINE_VERSIONS:
        fail("database.engine_version", db.engine_version, f"allowed: {', '.join(AURORA_ENGINE_VERSIONS)}")
    for name, acu, low in (("min_capacity", db.min_capacity, 0.0), ("max_capacity", db.max_capacity, 1.0)):
        if not (low <= acu <= 256 and float(acu * 2).is_integer()):
            fail(f"database.{name}", acu, f"Serverless v2 capacity is {low:g}-256 ACU in 0.5 steps")
    if db.min_capacity > db.max_capacity:
        fail("database.min_capacity", db.min_capacity, f"must not exceed max_capacity ({db.max_capacity:g})")
    for index, reader in enumerate(db.readers):
        if reader.availability_zone not in env.network.availability_zones:
            fail(
                f"database.readers[{index}].availability_zone",
                reader.availability_zone,
                f"must be one of the VPC's zones {list(env.network.availability_zones)}",
            )
        if not 0 <= reader.promotion_tier <= 15:
            fail(f"database.readers[{index}].promotion_tier", reader.promotion_tier, "allowed: 0-15")
    if env.is_prod and not any(r.promotion_tier <= 1 for r in db.readers):
        fail("database.readers", len(db.readers), "prod needs a failover reader in promotion tier 0-1")
    if not 1 <= db.backup_retention_days <= 35:
        fail("database.backup_retention_days", db.backup_retention_days, "Aurora keeps 1-35 days of backups")
    if db.performance_insights_retention_days not in PERFORMANCE_INSIGHTS_RETENTION_DAYS:
        fail(
            "database.performance_insights_retention_days",
            db.performance_insights_retention_days,
            f"allowed: {', '.join(map(str, PERFORMANCE_INSIGHTS_RETENTION_DAYS))}",
        )
    if not 1 <= db.secret_rotation_days <= 365:
        fail("database.secret_rotation_days", db.secret_rotation_days, "allowed: 1-365 days")
    if db.pooler not in POOLERS:
        fail("database.pooler", db.pooler, f"allowed: {', '.join(POOLERS)}")
    proxy = db.rds_proxy
    if not 1 <= proxy.max_connections_percent <= 100:
        fail("database.rds_proxy.max_connections_percent", proxy.max_connections_percent, "allowed: 1-100")
    if not 0 <= proxy.max_idle_connections_percent <= proxy.max_connections_percent:
        fail(
            "database.rds_proxy.max_idle_connections_percent",
            proxy.max_idle_connections_percent,
            "allowed: 0 up to max_connections_percent",
        )
    bouncer = db.pgbouncer
    for image_field in ("image", "tls_init_image"):
        if not _DIGEST_RE.match(getattr(bouncer, image_field)):
            fail(
                f"database.pgbouncer.{image_field}",
                getattr(bouncer, image_field),
                "pin the image by digest: '<repository>:<tag>@sha256:<64 hex>'",
            )
    if not 0 < bouncer.tcp_keepidle_seconds < NLB_IDLE_TIMEOUT_SECONDS:
        fail(
            "database.pgbouncer.tcp_keepidle_seconds",
            bouncer.tcp_keepidle_seconds,
            f"must be below the NLB idle timeout ({NLB_IDLE_TIMEOUT_SECONDS} s)",
        )
    if not 1 <= bouncer.min_tasks <= bouncer.max_tasks:
        fail("database.pgbouncer.min_tasks", bouncer.min_tasks, f"allowed: 1 up to max_tasks ({bouncer.max_tasks})")
    if env.is_prod and db.pooler == "pgbouncer" and bouncer.min_tasks < 2:
        fail("database.pgbouncer.min_tasks", bouncer.min_tasks, "prod runs at least 2 tasks across AZs")


def _validate_cache(env: EnvironmentConfig) -> None:
    cache, fail = env.cache, _Failer(env.name)
    if cache.engine not in CACHE_ENGINE_VERSIONS:
        fail("cache.engine", cache.engine, f"allowed: {', '.join(CACHE_ENGINE_VERSIONS)}")
    if cache.engine_version not in CACHE_ENGINE_VERSIONS[cache.engine]:
        allowed = ", ".join(CACHE_ENGINE_VERSIONS[cache.engine])
        fail("cache.engine_version", cache.engine_version, f"allowed for {cache.engine}: {allowed}")
    if not re.fullmatch(r"cache\.[a-z0-9]+\.[a-z0-9]+", cache.node_type):
        fail("cache.node_type", cache.node_type, "an ElastiCache node type such as 'cache.r7g.large'")
    if not 1 <= cache.shards <= 500:
        fail("cache.shards", cache.shards, "cluster mode allows 1-500 shards")
    if not 1 <= cache.replicas_per_shard <= 5:
        fail("cache.replicas_per_shard", cache.replicas_per_shard, "1-5: automatic failover needs a replica")
    if not 1 <= cache.nodes_per_cluster_quota <= 500:
        fail("cache.nodes_per_cluster_quota", cache.nodes_per_cluster_quota, "ElastiCache allows at most 500")
    nodes = cache.shards * (cache.replicas_per_shard + 1)
    if nodes > cache.nodes_per_cluster_quota:
        fail(
            "cache.shards",
            cache.shards,
            f"shards x (replicas_per_shard + 1) = {nodes} nodes exceeds the nodes-per-cluster quota "
            f"({cache.nodes_per_cluster_quota}; cache.nodes_per_cluster_quota after AWS raised it, at most 500)",
        )
    if cache.port == 6379 or not 1024 <= cache.port <= 65535:
        fail("cache.port", cache.port, "a non-default port between 1024 and 65535 (not 6379)")
    if cache.eviction_policy not in CACHE_EVICTION_POLICIES:
        fail("cache.eviction_policy", cache.eviction_policy, f"allowed: {', '.join(CACHE_EVICTION_POLICIES)}")
    minimum = 15 if env.is_prod else 1
    if not minimum <= cache.snapshot_retention_days <= 35:
        fail("cache.snapshot_retention_days", cache.snapshot_retention_days, f"allowed: {minimum}-35 days")
    for window_field in ("snapshot_window", "maintenance_window"):
        if not _WINDOW_RE.match(getattr(cache, window_field)):
            fail(f"cache.{window_field}", getattr(cache, window_field), "e.g. '02:00-03:00' or 'sun:04:00-sun:05:00'")


def _validate_storage(env: EnvironmentConfig) -> None:  # noqa: PLR0912 - one flat list of checks reads best
    storage, fail = env.storage, _Failer(env.name)
    if not storage.cors_origins:
        fail("storage.cors_origins", [], "list the https origins allowed to upload with presigned URLs")
    for origin in storage.cors_origins:
        if not _ORIGIN_RE.match(origin):
            fail("storage.cors_origins", origin, "an https origin without path, e.g. 'https://app.pat.example'")
    if not 0 <= storage.intelligent_tiering_after_days <= 3650:
        fail("storage.intelligent_tiering_after_days", storage.intelligent_tiering_after_days, "allowed: 0-3650")
    if storage.glacier_after_days is not None and (
        storage.glacier_after_days < storage.intelligent_tiering_after_days + 30
    ):
        fail(
            "storage.glacier_after_days",
            storage.glacier_after_days,
            "at least 30 days after intelligent_tiering_after_days (S3 minimum between transitions)",
        )
    for days_field in ("noncurrent_version_expiration_days", "abort_incomplete_multipart_days"):
        if not 1 <= getattr(storage, days_field) <= 3650:
            fail(f"storage.{days_field}", getattr(storage, days_field), "allowed: 1-3650 days")
    if not 1 <= storage.access_log_retention_days <= 3650:
        fail("storage.access_log_retention_days", storage.access_log_retention_days, "allowed: 1-3650 days")
    if storage.replication_region is not None and (
        not _REGION_RE.match(storage.replication_region) or storage.replication_region == env.region
    ):
        fail("storage.replication_region", storage.replication_region, f"another AWS region than {env.region}")
    if env.is_prod and storage.replication_region is None:
        fail("storage.replication_region", None, "prod replicates attachments to a second region")
    if storage.price_class not in CLOUDFRONT_PRICE_CLASSES:
        fail("storage.price_class", storage.price_class, f"allowed: {', '.join(CLOUDFRONT_PRICE_CLASSES)}")
    if storage.web_acl_arn is not None and not _WEB_ACL_RE.match(storage.web_acl_arn):
        fail(
            "storage.web_acl_arn",
            storage.web_acl_arn,
            "a WAFv2 web ACL ARN with CLOUDFRONT scope (arn:aws:wafv2:us-east-1:<account>:global/webacl/...)",
        )

    if bool(storage.cdn_domain_names) != (storage.cdn_certificate_arn is not None):
        fail(
            "storage.cdn_certificate_arn",
            storage.cdn_certificate_arn,
            "set cdn_domain_names and cdn_certificate_arn together (or neither)",
        )
    if storage.cdn_certificate_arn is not None and not _CERTIFICATE_RE.match(storage.cdn_certificate_arn):
        fail(
            "storage.cdn_certificate_arn",
            storage.cdn_certificate_arn,
            "an ACM certificate ARN in us-east-1 (CloudFront only uses certificates from there)",
        )


def _validate_ops(env: EnvironmentConfig) -> None:
    ops, fail = env.ops, _Failer(env.name)
    for email in ops.alarm_emails:
        if not _EMAIL_RE.match(email):
            fail("ops.alarm_emails", email, "an email address such as 'oncall@pat.example'")
    for endpoint in ops.alarm_https_endpoints:
        if not endpoint.startswith("https://"):
            fail("ops.alarm_https_endpoints", endpoint, "an https:// URL (the pager's SNS integration)")
    if env.is_prod and not (ops.alarm_emails or ops.alarm_https_endpoints):
        fail("ops.alarm_emails", list(ops.alarm_emails), "prod pages someone: add an email or an https endpoint")
    for name, value in vars(ops.thresholds).items():
        if value < 0:
            fail(f"ops.thresholds.{name}", value, "thresholds are never negative")


def _validate_backup(env: EnvironmentConfig) -> None:
    backup, fail = env.backup, _Failer(env.name)
    if not 1 <= backup.daily_retention_days <= 35:
        fail("backup.daily_retention_days", backup.daily_retention_days, "allowed: 1-35 days")
    for name, low in (("weekly_retention_days", 7), ("monthly_retention_days", 30)):
        value = getattr(backup, name)
        if value is not None and not low <= value <= 3650:
            fail(f"backup.{name}", value, f"allowed: {low}-3650 days, or None")
    if backup.vault_lock not in VAULT_LOCK_MODES:
        fail("backup.vault_lock", backup.vault_lock, f"allowed: {', '.join(VAULT_LOCK_MODES)}")
    if backup.copy_region is not None and (
        not _REGION_RE.match(backup.copy_region) or backup.copy_region == env.region
    ):
        fail("backup.copy_region", backup.copy_region, f"another AWS region than {env.region}")
    if env.is_prod and (backup.vault_lock == "none" or backup.copy_region is None):
        fail("backup.vault_lock", backup.vault_lock, "prod locks its vault and copies backups to a second region")
    if backup.vault_lock != "none":
        _validate_lock_bounds(env)
    if not 1 <= backup.max_recovery_point_age_hours <= 24 * 35:
        fail("backup.max_recovery_point_age_hours", backup.max_recovery_point_age_hours, "allowed: 1-840 hours")


def _validate_lock_bounds(env: EnvironmentConfig) -> None:
    """Vault Lock: jobs outside [min, max] fail, and a compliance lock's bounds are immutable after 3 days."""
    backup, fail = env.backup, _Failer(env.name)
    low, high = backup.lock_min_retention_days, backup.lock_max_retention_days
    if not 1 <= low <= high:
        fail("backup.lock_min_retention_days", low, f"1 to lock_max_retention_days ({high})")
    if high > 36500:
        fail("backup.lock_max_retention_days", high, "AWS Backup allows at most 36500 days")
    rules = {
        "backup.daily_retention_days": backup.daily_retention_days,
        "backup.weekly_retention_days": backup.weekly_retention_days,
        "backup.monthly_retention_days": backup.monthly_retention_days,
        "backup.copy_retention_days": backup.copy_retention_days if backup.copy_region else None,
    }
    for field_name, days in rules.items():
        if days is not None and not low <= days <= high:
            fail(
                field_name,
                days,
                f"within the vault lock's bounds {low}-{high} days (lock_min/max_retention_days): a job outside "
                "them fails, and a compliance lock cannot be widened once its grace time has passed",
            )
