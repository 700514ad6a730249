"""prod: data retained, NAT per zone, two readers, replicated attachments, a locked vault copied to eu-central-1."""

from __future__ import annotations

from pat_constructs.settings.alarms import AlarmThresholds
from pat_constructs.settings.aurora import ReaderSpec
from pat_constructs.settings.network import NetworkSettings
from pat_constructs.settings.pooler import PgBouncerSettings
from pat_constructs.settings.storage import StorageSettings
from stacks.environments.model import BackupConfig, CacheConfig, DatabaseConfig, EnvironmentConfig, OpsConfig

PROD = EnvironmentConfig(
    name="prod",
    region="eu-west-1",
    network=NetworkSettings(
        vpc_cidr="10.30.0.0/16",
        availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
        nat_gateways=3,
    ),
    log_retention_days=365,
    database=DatabaseConfig(
        min_capacity=2,
        max_capacity=64,
        readers=(
            ReaderSpec(availability_zone="eu-west-1b", promotion_tier=1),
            ReaderSpec(availability_zone="eu-west-1c", promotion_tier=2),
        ),
        backup_retention_days=35,
        performance_insights_retention_days=93,
        pooler="rds_proxy",
        pgbouncer=PgBouncerSettings(min_tasks=2, max_tasks=8, cpu=512, memory_mib=1024),
    ),
    cache=CacheConfig(node_type="cache.r7g.large", shards=3, replicas_per_shard=2, snapshot_retention_days=15),
    storage=StorageSettings(
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
)
