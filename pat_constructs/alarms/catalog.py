"""The alarm catalog: one function per tier, returning that tier's alarms as AlarmSpecs.

Each function takes the metric factories of its service (metrics.py) and the thresholds it reads; it creates no
construct, so the same list serves the construct that materializes it (pat_constructs.monitoring.Alarms), the
listing of an environment's alarms without synthesis (stacks/alarms.py) and the cost estimate. The order of a tier's
list is the order of its alarms on the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aws_cdk import aws_cloudwatch as cloudwatch

from pat_constructs.alarms.metrics import (
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

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
BREACHING = cloudwatch.TreatMissingData.BREACHING
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING

ROTATION_OVERDUE_RUNBOOK = "secret-rotation-overdue"
# Three missed hours (or three stale readings) before paging: one failed run retried later is not an incident.
ROTATION_EVALUATION_HOURS = 3


@dataclass(frozen=True, kw_only=True)
class AlarmSpec:
    """One alarm: what it watches, when it fires, and where its runbook section is."""

    name: str
    metric: cloudwatch.IMetric
    threshold: float
    comparison: cloudwatch.ComparisonOperator = GT
    evaluation_periods: int = 3
    datapoints_to_alarm: int | None = None
    missing_data: cloudwatch.TreatMissingData = NOT_BREACHING
    summary: str
    runbook: str
    tier: str

    @property
    def slug(self) -> str:
        """The alarm's name after the environment prefix (PhysicalNames.alarm): `AuroraCpu` -> `aurora-cpu`."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", self.name).lower()


# The thresholds each tier reads, as read-only views: the environment's AlarmThresholds (stacks/config.py) provides
# them all, and a construct can be handed any object that has them.


class DatabaseThresholds(Protocol):
    @property
    def aurora_cpu_percent(self) -> float: ...
    @property
    def aurora_acu_utilization_percent(self) -> float: ...
    @property
    def aurora_capacity_at_max_minutes(self) -> int: ...
    @property
    def aurora_connections(self) -> int: ...
    @property
    def aurora_freeable_memory_mib(self) -> int: ...
    @property
    def aurora_replica_lag_ms(self) -> int: ...
    @property
    def aurora_deadlocks_per_minute(self) -> float: ...
    @property
    def aurora_write_latency_ms(self) -> float: ...
    @property
    def aurora_read_latency_ms(self) -> float: ...


class ProxyThresholds(Protocol):
    @property
    def proxy_connection_errors(self) -> int: ...
    @property
    def proxy_pinned_sessions(self) -> int: ...


class CacheThresholds(Protocol):
    @property
    def cache_cpu_percent(self) -> float: ...
    @property
    def cache_memory_percent(self) -> float: ...
    @property
    def cache_evictions_per_5min(self) -> int: ...
    @property
    def cache_replication_lag_seconds(self) -> float: ...
    @property
    def cache_connections(self) -> int: ...


class SchemaThresholds(Protocol):
    @property
    def migrator_errors(self) -> int: ...
    @property
    def min_future_partitions(self) -> int: ...
    @property
    def default_partition_rows(self) -> int: ...


def database(
    metrics: AuroraMetrics, thresholds: DatabaseThresholds, *, max_capacity: float, has_readers: bool
) -> list[AlarmSpec]:
    """Aurora: load, capacity, connections, memory, deadlocks, latency; replica lag once there are readers."""
    t = thresholds
    specs = [
        AlarmSpec(
            name="AuroraCpu",
            metric=metrics.cpu_percent(),
            threshold=t.aurora_cpu_percent,
            summary=f"Aurora CPU: above {t.aurora_cpu_percent:g}% for 15 min.",
            runbook="aurora-cpu",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraAcuUtilization",
            metric=metrics.acu_utilization_percent(),
            threshold=t.aurora_acu_utilization_percent,
            summary=f"Aurora ACU utilization: above {t.aurora_acu_utilization_percent:g}% of max capacity.",
            runbook="aurora-capacity",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraCapacityAtMax",
            metric=metrics.capacity_acu(),
            threshold=max_capacity,
            comparison=GTE,
            evaluation_periods=t.aurora_capacity_at_max_minutes,
            summary=f"Aurora capacity: at the {max_capacity:g} ACU ceiling for {t.aurora_capacity_at_max_minutes} min.",
            runbook="aurora-capacity",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraConnections",
            metric=metrics.connections(),
            threshold=t.aurora_connections,
            summary=f"Aurora connections: above {t.aurora_connections}.",
            runbook="aurora-connections",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraFreeableMemory",
            metric=metrics.freeable_memory_bytes(),
            threshold=t.aurora_freeable_memory_mib * 1024 * 1024,
            comparison=LT,
            summary=f"Aurora freeable memory: below {t.aurora_freeable_memory_mib} MiB.",
            runbook="aurora-memory",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraDeadlocks",
            metric=metrics.deadlocks_per_second(),
            threshold=t.aurora_deadlocks_per_minute,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            summary=f"Aurora deadlocks: above {t.aurora_deadlocks_per_minute:g}/s in 3 of 5 minutes.",
            runbook="deadlocks",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraWriteLatency",
            metric=metrics.write_latency_seconds(),
            threshold=t.aurora_write_latency_ms / 1000,
            summary=f"Aurora write latency: above {t.aurora_write_latency_ms:g} ms.",
            runbook="db-latency",
            tier="Database",
        ),
        AlarmSpec(
            name="AuroraReadLatency",
            metric=metrics.read_latency_seconds(),
            threshold=t.aurora_read_latency_ms / 1000,
            summary=f"Aurora read latency: above {t.aurora_read_latency_ms:g} ms.",
            runbook="db-latency",
            tier="Database",
        ),
    ]
    if has_readers:
        specs.append(
            AlarmSpec(
                name="AuroraReplicaLag",
                metric=metrics.replica_lag_ms(),
                threshold=t.aurora_replica_lag_ms,
                summary=f"Aurora replica lag: above {t.aurora_replica_lag_ms} ms.",
                runbook="replica-lag",
                tier="Database",
            )
        )
    return specs


def rds_proxy(metrics: RdsProxyMetrics, thresholds: ProxyThresholds) -> list[AlarmSpec]:
    """The pooler tier when RDS Proxy pools: failed client logins and pinned sessions."""
    t = thresholds
    return [
        AlarmSpec(
            name="ProxyConnectionErrors",
            metric=metrics.failed_client_logins(),
            threshold=t.proxy_connection_errors,
            summary=f"RDS Proxy: more than {t.proxy_connection_errors} failed client logins per 5 min.",
            runbook="pooler-incident",
            tier="Pooler",
        ),
        AlarmSpec(
            name="ProxyPinnedSessions",
            metric=metrics.pinned_sessions(),
            threshold=t.proxy_pinned_sessions,
            summary=f"RDS Proxy: more than {t.proxy_pinned_sessions} pinned sessions.",
            runbook="pooler-incident",
            tier="Pooler",
        ),
    ]


def pgbouncer(metrics: PgBouncerMetrics, *, min_tasks: int, cpu_percent: float) -> list[AlarmSpec]:
    """The pooler tier when PgBouncer pools: tasks running, the busiest task's CPU, targets failing health checks."""
    return [
        AlarmSpec(
            name="PgBouncerTasks",
            metric=metrics.running_tasks(),
            threshold=min_tasks,
            comparison=LT,
            evaluation_periods=3,
            missing_data=BREACHING,
            summary=f"PgBouncer tasks: fewer than {min_tasks} running.",
            runbook="pooler-incident",
            tier="Pooler",
        ),
        AlarmSpec(
            name="PgBouncerCpu",
            metric=metrics.cpu_percent(),
            threshold=cpu_percent,
            summary=f"PgBouncer CPU: a task above {cpu_percent:g}% (single-threaded: scale out).",
            runbook="pooler-incident",
            tier="Pooler",
        ),
        AlarmSpec(
            name="PgBouncerUnhealthyTargets",
            metric=metrics.unhealthy_targets(),
            threshold=0,
            evaluation_periods=3,
            summary="PgBouncer NLB: a task fails its health check.",
            runbook="pooler-incident",
            tier="Pooler",
        ),
    ]


def _worst_node(
    name: str,
    metric: Callable[[Sequence[str]], cloudwatch.IMetric],
    groups: Sequence[tuple[str, ...]],
    *,
    threshold: float,
    summary: str,
    runbook: str,
) -> list[AlarmSpec]:
    """The worst node of each group: one alarm per group of at most 10 nodes (CloudWatch's limit for a metric math
    alarm), so a larger cluster keeps every node watched; the second group's alarm is `<name>2`, and so on."""
    specs = []
    for index, group in enumerate(groups):
        suffix = "" if index == 0 else str(index + 1)
        part = "" if len(groups) == 1 else f" (nodes {group[0][-8:]}..{group[-1][-8:]})"
        specs.append(
            AlarmSpec(
                name=f"{name}{suffix}",
                metric=metric(group),
                threshold=threshold,
                summary=summary + part,
                runbook=runbook,
                tier="Cache",
            )
        )
    return specs


def cache(metrics: ElastiCacheMetrics, thresholds: CacheThresholds) -> list[AlarmSpec]:
    """ElastiCache, worst node first: engine CPU, memory, evictions, replication lag (replicas), connections."""
    t = thresholds
    nodes, replicas = metrics.groups(metrics.node_ids), metrics.groups(metrics.replica_ids)
    return [
        *_worst_node(
            "CacheEngineCpu",
            metrics.engine_cpu_percent,
            nodes,
            threshold=t.cache_cpu_percent,
            summary=f"Cache engine CPU: a node above {t.cache_cpu_percent:g}%.",
            runbook="cache-pressure",
        ),
        *_worst_node(
            "CacheMemory",
            metrics.memory_percent,
            nodes,
            threshold=t.cache_memory_percent,
            summary=f"Cache memory: a node above {t.cache_memory_percent:g}%.",
            runbook="cache-pressure",
        ),
        *_worst_node(
            "CacheEvictions",
            metrics.evictions,
            nodes,
            threshold=t.cache_evictions_per_5min,
            summary=f"Cache evictions: a node evicted over {t.cache_evictions_per_5min} keys in 5 min.",
            runbook="cache-pressure",
        ),
        *_worst_node(
            "CacheReplicationLag",
            metrics.replication_lag_seconds,
            replicas,
            threshold=t.cache_replication_lag_seconds,
            summary=f"Cache replication lag: a replica over {t.cache_replication_lag_seconds:g} s behind.",
            runbook="cache-node-failed",
        ),
        *_worst_node(
            "CacheConnections",
            metrics.connections,
            nodes,
            threshold=t.cache_connections,
            summary=f"Cache connections: a node above {t.cache_connections}.",
            runbook="cache-pressure",
        ),
    ]


def schema(migrator: LambdaMetrics, metrics: SchemaMetrics, thresholds: SchemaThresholds) -> list[AlarmSpec]:
    """The schema migrator and the partitions it maintains."""
    t = thresholds
    return [
        AlarmSpec(
            name="MigratorErrors",
            metric=migrator.errors(),
            threshold=t.migrator_errors,
            comparison=GTE,
            evaluation_periods=1,
            summary="Schema migrator Lambda: an invocation failed.",
            runbook="migration-failure",
            tier="Schema",
        ),
        AlarmSpec(
            name="MigrationFailures",
            metric=metrics.migration_failures(),
            threshold=1,
            comparison=GTE,
            evaluation_periods=1,
            summary="Schema migration: a deploy-time migration failed.",
            runbook="migration-failure",
            tier="Schema",
        ),
        AlarmSpec(
            name="MaintenanceFailures",
            metric=metrics.maintenance_failures(),
            threshold=1,
            comparison=GTE,
            evaluation_periods=1,
            summary="Partition maintenance: the daily run failed.",
            runbook="partition-emergency",
            tier="Schema",
        ),
        # Breaching when missing: no datapoint for two days means maintenance is not running at all.
        AlarmSpec(
            name="FuturePartitions",
            metric=metrics.future_partitions_min(),
            threshold=t.min_future_partitions,
            comparison=LT,
            evaluation_periods=2,
            missing_data=BREACHING,
            summary=f"Partitions: fewer than {t.min_future_partitions} future months on some table.",
            runbook="partition-emergency",
            tier="Schema",
        ),
        AlarmSpec(
            name="DefaultPartitionRows",
            metric=metrics.default_partition_rows(),
            threshold=t.default_partition_rows,
            comparison=GTE,
            evaluation_periods=1,
            summary="Partitions: rows are landing in a DEFAULT partition.",
            runbook="partition-emergency",
            tier="Schema",
        ),
    ]


def backup(metrics: BackupMetrics) -> list[AlarmSpec]:
    """AWS Backup: a failed backup job, a failed copy to the DR region."""
    return [
        AlarmSpec(
            name="BackupJobsFailed",
            metric=metrics.backup_jobs_failed(),
            threshold=1,
            comparison=GTE,
            evaluation_periods=1,
            summary="AWS Backup: a backup job failed.",
            runbook="backup-failure",
            tier="Backup",
        ),
        AlarmSpec(
            name="BackupCopyJobsFailed",
            metric=metrics.copy_jobs_failed(),
            threshold=1,
            comparison=GTE,
            evaluation_periods=1,
            summary="AWS Backup: a copy to the DR region failed.",
            runbook="backup-failure",
            tier="Backup",
        ),
    ]


def secrets(
    metrics: SecretRotationMetrics, *, roles: Sequence[str], rotation_days: int, grace_days: int
) -> list[AlarmSpec]:
    """Per rotated secret: its age past the schedule plus a grace. Missing data breaches: a publisher that stopped
    running, or that cannot read the secret, pages too."""
    return [
        AlarmSpec(
            name=f"SecretRotationAge{role.title().replace('_', '')}",
            metric=metrics.days_since_last_rotation(role),
            threshold=rotation_days + grace_days,
            evaluation_periods=ROTATION_EVALUATION_HOURS,
            missing_data=BREACHING,
            summary=f"Secret {role}: not rotated for over {rotation_days}+{grace_days} days, or its rotation "
            f"age has not been published for {ROTATION_EVALUATION_HOURS} hours.",
            runbook=ROTATION_OVERDUE_RUNBOOK,
            tier="Secrets",
        )
        for role in roles
    ]


def cdn(metrics: CloudFrontMetrics, *, error_rate_percent: float) -> list[AlarmSpec]:
    """CloudFront in front of the attachment bucket: the share of requests failing with 5xx."""
    return [
        AlarmSpec(
            name="Cdn5xxErrorRate",
            metric=metrics.error_rate_5xx_percent(),
            threshold=error_rate_percent,
            summary=f"CloudFront: more than {error_rate_percent:g}% of attachment requests fail with 5xx.",
            runbook="cdn-5xx",
            tier="Storage",
        )
    ]
