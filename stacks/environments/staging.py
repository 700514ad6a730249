"""staging: prod's shape at a smaller size (three zones, a failover reader, RDS Proxy), data not retained."""

from __future__ import annotations

from pat_constructs.settings.aurora import ReaderSpec
from pat_constructs.settings.network import NetworkSettings
from pat_constructs.settings.storage import StorageSettings
from stacks.environments.model import BackupConfig, CacheConfig, DatabaseConfig, EnvironmentConfig, OpsConfig

STAGING = EnvironmentConfig(
    name="staging",
    region="eu-west-1",
    network=NetworkSettings(
        vpc_cidr="10.20.0.0/16",
        availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
        nat_gateways=1,
    ),
    log_retention_days=90,
    database=DatabaseConfig(
        min_capacity=0.5,
        max_capacity=16,
        readers=(ReaderSpec(availability_zone="eu-west-1b", promotion_tier=1),),
        backup_retention_days=14,
        pooler="rds_proxy",
    ),
    cache=CacheConfig(node_type="cache.t4g.medium", shards=2, replicas_per_shard=1, snapshot_retention_days=15),
    storage=StorageSettings(cors_origins=("https://app.staging.pat.example",)),
    ops=OpsConfig(alarm_emails=("pat-staging-alerts@pat.example",)),
    backup=BackupConfig(daily_retention_days=14, weekly_retention_days=35),
    retain_data=False,
)
