"""The environment model: frozen, keyword-only dataclasses composing the constructs' own settings objects.

A section that is one construct's settings (network, storage) is that settings type; a section that also carries
choices only config makes (which pooler, a quota the validation checks) extends the construct's settings type with
them, so each field and its default is written once, next to the construct that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pat_constructs.settings.alarms import AlarmThresholds
from pat_constructs.settings.aurora import AuroraSettings
from pat_constructs.settings.backup import BackupSettings
from pat_constructs.settings.cache import CacheSettings
from pat_constructs.settings.network import NetworkSettings
from pat_constructs.settings.pooler import PgBouncerSettings, RdsProxySettings
from pat_constructs.settings.storage import StorageSettings

ENV_NAMES = ("dev", "staging", "prod")
POOLERS = ("rds_proxy", "pgbouncer")
DATA_CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig(AuroraSettings):
    """The Aurora cluster's settings, its secrets' rotation and the pooler in front of it."""

    # Every database secret (owner and login roles) rotates after this many days (1-365).
    secret_rotation_days: int = 30
    # One of POOLERS: "rds_proxy" or "pgbouncer". Required.
    pooler: str
    rds_proxy: RdsProxySettings = field(default_factory=RdsProxySettings)
    pgbouncer: PgBouncerSettings = field(default_factory=PgBouncerSettings)


@dataclass(frozen=True, kw_only=True)
class CacheConfig(CacheSettings):
    """The cache cluster's settings and the account quota its size is checked against."""

    # ElastiCache's nodes-per-cluster quota for this account (default 90; raisable to at most 500 on Redis OSS
    # 5.0.6+ / Valkey 7.2+, docs/aws-facts-data-ops.md ELASTICACHE-NODE-LIMIT). Raise it here only after AWS did.
    nodes_per_cluster_quota: int = 90


@dataclass(frozen=True, kw_only=True)
class BackupConfig(BackupSettings):
    """The backup plan's settings and how fresh the newest recovery point must be."""

    # Recovery points older than this many hours make `patops backup verify` fail.
    max_recovery_point_age_hours: int = 26


@dataclass(frozen=True, kw_only=True)
class OpsConfig:
    """Who is paged, and when."""

    alarm_emails: tuple[str, ...] = ()
    alarm_https_endpoints: tuple[str, ...] = ()
    thresholds: AlarmThresholds = field(default_factory=AlarmThresholds)


@dataclass(frozen=True, kw_only=True)
class Tagging:
    """Cost and ownership tags applied to every taggable resource."""

    owner: str = "platform-data"
    cost_center: str = "pat-platform"
    # One of DATA_CLASSIFICATIONS.
    data_classification: str = "confidential"


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """One deployable environment (`Pat-<name>-<Part>` stacks)."""

    name: str
    region: str
    account: str | None = None
    network: NetworkSettings
    log_retention_days: int
    database: DatabaseConfig
    cache: CacheConfig
    storage: StorageSettings
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
