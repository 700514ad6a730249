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

POOLERS = ("rds_proxy", "pgbouncer")
# cfn-lint flags deprecated engine versions (W3690); 17.9 is current for Aurora PostgreSQL Serverless v2.
AURORA_ENGINE_VERSIONS = ("16.9", "17.9")
PERFORMANCE_INSIGHTS_RETENTION_DAYS = (7, 31, 93, 186, 372, 731)
# A maintained PgBouncer >= 1.25 image (edoburu/pgbouncer, configured by environment variables), pinned by digest.
PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.25.2-p0@sha256:7d7a27d9e90985cab5cf42256f5c13a3120baa4b055b69df37beb272b89b2340"
# Init container that fetches the RDS CA bundle and makes PgBouncer's client TLS key pair, pinned by digest.
TLS_INIT_IMAGE = "alpine:3.22@sha256:14358309a308569c32bdc37e2e0e9694be33a9d99e68afb0f5ff33cc1f695dce"
NLB_IDLE_TIMEOUT_SECONDS = 350

# ElastiCache engines and the versions we run (parameter group family follows the major version).
CACHE_ENGINE_VERSIONS = {"redis": ("7.1",), "valkey": ("7.2", "8.0")}
CACHE_EVICTION_POLICIES = ("allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "volatile-ttl")
CLOUDFRONT_PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_WINDOW_RE = re.compile(
    r"^(?:(?:mon|tue|wed|thu|fri|sat|sun):)?\d{2}:\d{2}-(?:(?:mon|tue|wed|thu|fri|sat|sun):)?\d{2}:\d{2}$"
)
_ORIGIN_RE = re.compile(r"^https://[a-z0-9.-]+(:\d+)?$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
VAULT_LOCK_MODES = ("none", "governance", "compliance")
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
class ReaderConfig:
    """An Aurora reader: tier 0-1 scale with the writer (failover targets), tier 2-15 scale on their own."""

    availability_zone: str
    promotion_tier: int = 1


@dataclass(frozen=True, kw_only=True)
class RdsProxyConfig:
    idle_client_timeout_seconds: int = 1800
    borrow_timeout_seconds: int = 30
    max_connections_percent: int = 90
    max_idle_connections_percent: int = 50


@dataclass(frozen=True, kw_only=True)
class PgBouncerConfig:
    image: str = PGBOUNCER_IMAGE
    tls_init_image: str = TLS_INIT_IMAGE
    min_tasks: int = 1
    max_tasks: int = 4
    cpu: int = 256
    memory_mib: int = 512
    default_pool_size: int = 40
    max_client_conn: int = 2000
    max_prepared_statements: int = 200
    # Below the NLB's fixed 350 s idle timeout, so idle pooled flows are kept alive instead of silently dropped.
    tcp_keepidle_seconds: int = 240
    cpu_target_percent: int = 60


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    """Aurora PostgreSQL Serverless v2 and the pooler in front of it."""

    engine_version: str = "17.9"
    min_capacity: float
    max_capacity: float
    readers: tuple[ReaderConfig, ...] = ()
    backup_retention_days: int
    performance_insights_retention_days: int = 7
    log_min_duration_statement_ms: int = 500
    idle_in_transaction_timeout_ms: int = 60_000
    secret_rotation_days: int = 30
    pooler: str
    rds_proxy: RdsProxyConfig = field(default_factory=RdsProxyConfig)
    pgbouncer: PgBouncerConfig = field(default_factory=PgBouncerConfig)


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """ElastiCache in cluster mode: shards x (1 primary + replicas), Multi-AZ with automatic failover."""

    engine: str = "redis"
    engine_version: str = "7.1"
    node_type: str
    shards: int
    replicas_per_shard: int
    # ElastiCache's nodes-per-cluster quota for this account (default 90; raisable to at most 500 on Redis OSS
    # 5.0.6+ / Valkey 7.2+, docs/aws-facts-data-ops.md ELASTICACHE-NODE-LIMIT). Raise it here only after AWS did.
    nodes_per_cluster_quota: int = 90
    # Not 6379: scanners and default client configs try the default port first.
    port: int = 6380
    eviction_policy: str = "allkeys-lru"
    snapshot_retention_days: int
    snapshot_window: str = "02:00-03:00"
    maintenance_window: str = "sun:04:00-sun:05:00"


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """Attachment bucket, its access-log bucket and the CloudFront distribution in front of it."""

    cors_origins: tuple[str, ...]
    # Intelligent-Tiering from day N (objects are immutable, read mostly in their first weeks).
    intelligent_tiering_after_days: int = 30
    # Glacier Flexible Retrieval from day N; None keeps objects in Intelligent-Tiering.
    glacier_after_days: int | None = None
    noncurrent_version_expiration_days: int = 30
    abort_incomplete_multipart_days: int = 7
    access_log_retention_days: int = 90
    # Cross-region replication to a replica bucket with its own key in this region; None = replication-ready only.
    replication_region: str | None = None
    price_class: str = "PriceClass_100"
    web_acl_arn: str | None = None
    # A custom domain with an ACM certificate (us-east-1) lets CloudFront enforce TLSv1.2_2021; the default
    # *.cloudfront.net certificate has a fixed TLSv1 policy.
    cdn_domain_names: tuple[str, ...] = ()
    cdn_certificate_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    """Alarm thresholds; each alarm's description names its runbook section in docs/runbooks.md."""

    aurora_cpu_percent: float = 80
    aurora_acu_utilization_percent: float = 90
    aurora_capacity_at_max_minutes: int = 15
    aurora_connections: int = 1000
    aurora_freeable_memory_mib: int = 512
    aurora_replica_lag_ms: int = 2000
    aurora_deadlocks_per_minute: float = 1
    aurora_write_latency_ms: float = 25
    aurora_read_latency_ms: float = 25
    proxy_connection_errors: int = 10
    proxy_pinned_sessions: int = 50
    pgbouncer_cpu_percent: float = 75
    cache_cpu_percent: float = 70
    cache_memory_percent: float = 80
    cache_evictions_per_5min: int = 10_000
    cache_replication_lag_seconds: float = 5
    cache_connections: int = 10_000
    cdn_5xx_error_rate_percent: float = 5
    migrator_errors: int = 1
    min_future_partitions: int = 3
    default_partition_rows: int = 1


@dataclass(frozen=True, kw_only=True)
class OpsConfig:
    """Who is paged, and when."""

    alarm_emails: tuple[str, ...] = ()
    alarm_https_endpoints: tuple[str, ...] = ()
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)


@dataclass(frozen=True, kw_only=True)
class BackupConfig:
    """AWS Backup of the Aurora cluster and the attachment bucket."""

    daily_retention_days: int
    weekly_retention_days: int | None = None
    monthly_retention_days: int | None = None
    # "none", "governance" (removable by privileged users) or "compliance" (immutable once the grace time passed).
    vault_lock: str = "none"
    # The lock's retention bounds (both vaults). A backup or copy job whose retention falls outside them FAILS, and
    # in compliance mode the bounds can never be changed after the grace time: min is a floor against short-lived
    # recovery points (7 days: the shortest retention anyone should want in a locked vault), max leaves room for
    # longer legal or audit rules later (10 years) instead of the longest rule of today.
    lock_min_retention_days: int = 7
    lock_max_retention_days: int = 3650
    # Copy every recovery point to a vault in this region (disaster recovery); None = no copy.
    copy_region: str | None = None
    copy_retention_days: int = 35
    # Recovery points older than this many hours make `patops backup verify` fail.
    max_recovery_point_age_hours: int = 26


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
    database: DatabaseConfig
    cache: CacheConfig
    storage: StorageConfig
    ops: OpsConfig = field(default_factory=OpsConfig)
    backup: BackupConfig
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
        self._validate_database()
        self._validate_cache()
        self._validate_storage()
        self._validate_ops()
        self._validate_backup()
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

    def _validate_database(self) -> None:  # noqa: PLR0912 - one flat list of checks reads best
        db, fail = self.database, self._fail
        if db.engine_version not in AURORA_ENGINE_VERSIONS:
            fail("database.engine_version", db.engine_version, f"allowed: {', '.join(AURORA_ENGINE_VERSIONS)}")
        for name, acu, low in (("min_capacity", db.min_capacity, 0.0), ("max_capacity", db.max_capacity, 1.0)):
            if not (low <= acu <= 256 and float(acu * 2).is_integer()):
                fail(f"database.{name}", acu, f"Serverless v2 capacity is {low:g}-256 ACU in 0.5 steps")
        if db.min_capacity > db.max_capacity:
            fail("database.min_capacity", db.min_capacity, f"must not exceed max_capacity ({db.max_capacity:g})")
        for index, reader in enumerate(db.readers):
            if reader.availability_zone not in self.network.availability_zones:
                fail(
                    f"database.readers[{index}].availability_zone",
                    reader.availability_zone,
                    f"must be one of the VPC's zones {list(self.network.availability_zones)}",
                )
            if not 0 <= reader.promotion_tier <= 15:
                fail(f"database.readers[{index}].promotion_tier", reader.promotion_tier, "allowed: 0-15")
        if self.is_prod and not any(r.promotion_tier <= 1 for r in db.readers):
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
        if bouncer.max_prepared_statements <= 0:
            fail(
                "database.pgbouncer.max_prepared_statements",
                bouncer.max_prepared_statements,
                "must be > 0 so psycopg's prepared statements work in transaction pooling",
            )
        if not 1 <= bouncer.min_tasks <= bouncer.max_tasks:
            fail("database.pgbouncer.min_tasks", bouncer.min_tasks, f"allowed: 1 up to max_tasks ({bouncer.max_tasks})")
        if self.is_prod and db.pooler == "pgbouncer" and bouncer.min_tasks < 2:
            fail("database.pgbouncer.min_tasks", bouncer.min_tasks, "prod runs at least 2 tasks across AZs")

    def _validate_cache(self) -> None:
        cache, fail = self.cache, self._fail
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
        minimum = 15 if self.is_prod else 1
        if not minimum <= cache.snapshot_retention_days <= 35:
            fail("cache.snapshot_retention_days", cache.snapshot_retention_days, f"allowed: {minimum}-35 days")
        for window_field in ("snapshot_window", "maintenance_window"):
            if not _WINDOW_RE.match(getattr(cache, window_field)):
                fail(
                    f"cache.{window_field}", getattr(cache, window_field), "e.g. '02:00-03:00' or 'sun:04:00-sun:05:00'"
                )

    def _validate_storage(self) -> None:  # noqa: PLR0912 - one flat list of checks reads best
        storage, fail = self.storage, self._fail
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
            not _REGION_RE.match(storage.replication_region) or storage.replication_region == self.region
        ):
            fail("storage.replication_region", storage.replication_region, f"another AWS region than {self.region}")
        if self.is_prod and storage.replication_region is None:
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

    def _validate_ops(self) -> None:
        ops, fail = self.ops, self._fail
        for email in ops.alarm_emails:
            if not _EMAIL_RE.match(email):
                fail("ops.alarm_emails", email, "an email address such as 'oncall@pat.example'")
        for endpoint in ops.alarm_https_endpoints:
            if not endpoint.startswith("https://"):
                fail("ops.alarm_https_endpoints", endpoint, "an https:// URL (the pager's SNS integration)")
        if self.is_prod and not (ops.alarm_emails or ops.alarm_https_endpoints):
            fail("ops.alarm_emails", list(ops.alarm_emails), "prod pages someone: add an email or an https endpoint")
        for name, value in vars(ops.thresholds).items():
            if value < 0:
                fail(f"ops.thresholds.{name}", value, "thresholds are never negative")

    def _validate_backup(self) -> None:
        backup, fail = self.backup, self._fail
        if not 1 <= backup.daily_retention_days <= 35:
            fail("backup.daily_retention_days", backup.daily_retention_days, "allowed: 1-35 days")
        for name, low in (("weekly_retention_days", 7), ("monthly_retention_days", 30)):
            value = getattr(backup, name)
            if value is not None and not low <= value <= 3650:
                fail(f"backup.{name}", value, f"allowed: {low}-3650 days, or None")
        if backup.vault_lock not in VAULT_LOCK_MODES:
            fail("backup.vault_lock", backup.vault_lock, f"allowed: {', '.join(VAULT_LOCK_MODES)}")
        if backup.copy_region is not None and (
            not _REGION_RE.match(backup.copy_region) or backup.copy_region == self.region
        ):
            fail("backup.copy_region", backup.copy_region, f"another AWS region than {self.region}")
        if self.is_prod and (backup.vault_lock == "none" or backup.copy_region is None):
            fail("backup.vault_lock", backup.vault_lock, "prod locks its vault and copies backups to a second region")
        if backup.vault_lock != "none":
            self._validate_lock_bounds()
        if not 1 <= backup.max_recovery_point_age_hours <= 24 * 35:
            fail("backup.max_recovery_point_age_hours", backup.max_recovery_point_age_hours, "allowed: 1-840 hours")

    def _validate_lock_bounds(self) -> None:
        """Vault Lock: jobs outside [min, max] fail, and a compliance lock's bounds are immutable after 3 days."""
        backup, fail = self.backup, self._fail
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
        database=DatabaseConfig(
            min_capacity=0.5,
            max_capacity=4,
            backup_retention_days=7,
            pooler="pgbouncer",
            log_min_duration_statement_ms=250,
        ),
        cache=CacheConfig(node_type="cache.t4g.small", shards=1, replicas_per_shard=1, snapshot_retention_days=15),
        storage=StorageConfig(
            cors_origins=("https://app.dev.pat.example", "https://localhost:3000"),
            access_log_retention_days=30,
        ),
        backup=BackupConfig(daily_retention_days=7),
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
        database=DatabaseConfig(
            min_capacity=0.5,
            max_capacity=16,
            readers=(ReaderConfig(availability_zone="eu-west-1b", promotion_tier=1),),
            backup_retention_days=14,
            pooler="rds_proxy",
        ),
        cache=CacheConfig(node_type="cache.t4g.medium", shards=2, replicas_per_shard=1, snapshot_retention_days=15),
        storage=StorageConfig(cors_origins=("https://app.staging.pat.example",)),
        ops=OpsConfig(alarm_emails=("pat-staging-alerts@pat.example",)),
        backup=BackupConfig(daily_retention_days=14, weekly_retention_days=35),
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
        database=DatabaseConfig(
            min_capacity=2,
            max_capacity=64,
            readers=(
                ReaderConfig(availability_zone="eu-west-1b", promotion_tier=1),
                ReaderConfig(availability_zone="eu-west-1c", promotion_tier=2),
            ),
            backup_retention_days=35,
            performance_insights_retention_days=93,
            pooler="rds_proxy",
            pgbouncer=PgBouncerConfig(min_tasks=2, max_tasks=8, cpu=512, memory_mib=1024),
        ),
        cache=CacheConfig(node_type="cache.r7g.large", shards=3, replicas_per_shard=2, snapshot_retention_days=15),
        storage=StorageConfig(
            cors_origins=("https://app.pat.example",),
            glacier_after_days=180,
            access_log_retention_days=365,
            replication_region="eu-central-1",
            price_class="PriceClass_All",
        ),
        ops=OpsConfig(
            alarm_emails=("pat-oncall@pat.example",),
            alarm_https_endpoints=("https://events.pagerduty.com/integration/pat-prod-data/enqueue",),
            thresholds=AlarmThresholds(aurora_connections=4000, cache_connections=40_000),
        ),
        backup=BackupConfig(
            daily_retention_days=35,
            weekly_retention_days=90,
            monthly_retention_days=365,
            vault_lock="compliance",
            copy_region="eu-central-1",
            copy_retention_days=90,
        ),
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
