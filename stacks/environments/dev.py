"""dev: disposable (DESTROY with the stack), smallest sizes, PgBouncer as the pooler."""

from __future__ import annotations

from pat_constructs.settings.network import NetworkSettings
from pat_constructs.settings.storage import StorageSettings
from stacks.environments.model import BackupConfig, CacheConfig, DatabaseConfig, EnvironmentConfig, Tagging

DEV = EnvironmentConfig(
    name="dev",
    region="eu-west-1",
    network=NetworkSettings(
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
    storage=StorageSettings(
        cors_origins=("https://app.dev.pat.example", "https://localhost:3000"),
        access_log_retention_days=30,
    ),
    backup=BackupConfig(daily_retention_days=7),
    retain_data=False,
    allow_destroy=True,
    tagging=Tagging(data_classification="internal"),
)
