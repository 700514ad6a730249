"""Every alarm of an environment, by the stack that creates it, from the configuration alone (no synthesis).

The Ops stack creates its alarms from `ops_alarms`; the PgBouncer pooler (Access), the rotation monitor (Data) and
the CloudFront alarm (EdgeMonitoring) call the same catalog functions with their constructs' dimension values.
`environment_alarms` calls them with the values the stacks pass, so `make cost` counts what gets deployed, and a test
holds the listing to the synthesized templates (names, thresholds, descriptions) for every environment and pooler.
"""

from __future__ import annotations

from pat_constructs.alarms import catalog
from pat_constructs.alarms.catalog import AlarmSpec
from pat_constructs.alarms.metrics import (
    DEPLOY_TIME,
    AuroraMetrics,
    BackupMetrics,
    CloudFrontMetrics,
    ElastiCacheMetrics,
    LambdaMetrics,
    PgBouncerMetrics,
    RdsProxyMetrics,
    SchemaMetrics,
    SecretRotationMetrics,
)
from pat_data import contract, rotation_age
from pat_data.contract import PhysicalNames
from stacks.config import EnvironmentConfig


def ops_alarms(config: EnvironmentConfig) -> list[AlarmSpec]:
    """The Pat-<env>-Ops alarms: every tier whose resources have fixed names, so that stack imports nothing."""
    names, thresholds, db, cache = PhysicalNames(config.name), config.ops.thresholds, config.database, config.cache
    specs = catalog.database(
        AuroraMetrics(names.db_cluster), thresholds, max_capacity=db.max_capacity, has_readers=bool(db.readers)
    )
    if db.pooler == "rds_proxy":
        specs += catalog.rds_proxy(RdsProxyMetrics(names.db_proxy), thresholds)
    nodes = ElastiCacheMetrics.replication_group(
        names, shards=cache.shards, replicas_per_shard=cache.replicas_per_shard
    )
    specs += catalog.cache(nodes, thresholds)
    specs += catalog.schema(LambdaMetrics(names.migrator_function), SchemaMetrics(config.name), thresholds)
    specs += catalog.backup(BackupMetrics(names.backup_vault))
    return specs


def environment_alarms(config: EnvironmentConfig) -> dict[str, list[AlarmSpec]]:
    """Every alarm of the environment, keyed by the part of the stack that creates it (`Pat-<env>-<part>`).

    Dimensions that exist only after a deploy (the PgBouncer NLB's full names, the distribution id) read
    `DEPLOY_TIME` here; names, thresholds and descriptions are the deployed ones.
    """
    names, thresholds, db = PhysicalNames(config.name), config.ops.thresholds, config.database
    pooler: list[AlarmSpec] = []
    if db.pooler == "pgbouncer":
        pooler = catalog.pgbouncer(
            PgBouncerMetrics.named(names),
            min_tasks=db.pgbouncer.min_tasks,
            cpu_percent=thresholds.pgbouncer_cpu_percent,
        )
    return {
        "Ops": ops_alarms(config),
        "Access": pooler,
        # The Data stack's rotation monitor watches the owner's and the logins' secrets, with the default grace.
        "Data": catalog.secrets(
            SecretRotationMetrics(config.name),
            roles=sorted(contract.DB_SECRET_ARNS),
            rotation_days=db.secret_rotation_days,
            grace_days=rotation_age.DEFAULT_GRACE_DAYS,
        ),
        "EdgeMonitoring": catalog.cdn(
            CloudFrontMetrics(DEPLOY_TIME), error_rate_percent=thresholds.cdn_5xx_error_rate_percent
        ),
    }


def alarm_count(config: EnvironmentConfig) -> int:
    return sum(len(specs) for specs in environment_alarms(config).values())
