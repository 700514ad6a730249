"""Metric factories, one per service: each knows its namespace, metric names, statistics and dimensions, so the
catalog (catalog.py) says only what to watch and when to page.

Laid out as cdk-monitoring-constructs lays out its `*MetricFactory` classes. A factory holds dimension values, not
constructs: a fixed name from PhysicalNames where the resource has one, the construct's token where it has none (the
PgBouncer NLB, the CloudFront distribution), so the catalog can be listed from the configuration alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from pat_data import rotation_age
from pat_data.contract import (
    POOLER_SERVICE,
    SCHEMA_METRICS_DIMENSION,
    SCHEMA_METRICS_NAMESPACE,
    PhysicalNames,
    SchemaMetric,
)

ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
ONE_HOUR = Duration.hours(1)
ONE_DAY = Duration.days(1)
# CloudWatch: a metric math alarm references at most 10 metrics, a hard limit (docs/aws-facts-data-ops.md).
MAX_METRICS_PER_MATH_ALARM = 10
# A dimension value that exists only once the stack is deployed (listing the catalog from configuration alone).
DEPLOY_TIME = "(known at deploy time)"


def metric(
    namespace: str, name: str, dimensions: Mapping[str, str], statistic: str, period: Duration
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace, metric_name=name, dimensions_map=dict(dimensions), statistic=statistic, period=period
    )


def max_of(label: str, metrics: Mapping[str, cloudwatch.IMetric], period: Duration) -> cloudwatch.IMetric:
    """The worst of up to 10 metrics, as metric math (alarms cannot use SEARCH); a single metric stays plain."""
    if len(metrics) > MAX_METRICS_PER_MATH_ALARM:
        raise ValueError(f"{label}: {len(metrics)} metrics, a math alarm takes at most {MAX_METRICS_PER_MATH_ALARM}")
    if len(metrics) == 1:
        return next(iter(metrics.values()))
    return cloudwatch.MathExpression(
        expression=f"MAX([{','.join(metrics)}])", using_metrics=dict(metrics), label=label, period=period
    )


@dataclass(frozen=True)
class AuroraMetrics:
    """AWS/RDS metrics of one Aurora Serverless v2 cluster (cluster-level: every instance)."""

    cluster_identifier: str

    def _cluster(self, name: str, statistic: str, period: Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        return metric("AWS/RDS", name, {"DBClusterIdentifier": self.cluster_identifier}, statistic, period)

    def cpu_percent(self) -> cloudwatch.Metric:
        return self._cluster("CPUUtilization", "Average")

    def acu_utilization_percent(self) -> cloudwatch.Metric:
        return self._cluster("ACUUtilization", "Average")

    def capacity_acu(self) -> cloudwatch.Metric:
        return self._cluster("ServerlessDatabaseCapacity", "Maximum", ONE_MINUTE)

    def connections(self) -> cloudwatch.Metric:
        return self._cluster("DatabaseConnections", "Maximum")

    def freeable_memory_bytes(self) -> cloudwatch.Metric:
        return self._cluster("FreeableMemory", "Minimum")

    def deadlocks_per_second(self) -> cloudwatch.Metric:
        return self._cluster("Deadlocks", "Average", ONE_MINUTE)

    def write_latency_seconds(self) -> cloudwatch.Metric:
        return self._cluster("WriteLatency", "Average")

    def read_latency_seconds(self) -> cloudwatch.Metric:
        return self._cluster("ReadLatency", "Average")

    def replica_lag_ms(self) -> cloudwatch.Metric:
        return self._cluster("AuroraReplicaLagMaximum", "Maximum")


@dataclass(frozen=True)
class RdsProxyMetrics:
    """AWS/RDS metrics of one RDS Proxy."""

    proxy_name: str

    def _proxy(self, name: str, statistic: str) -> cloudwatch.Metric:
        return metric("AWS/RDS", name, {"ProxyName": self.proxy_name}, statistic, FIVE_MINUTES)

    def failed_client_logins(self) -> cloudwatch.Metric:
        return self._proxy("ClientConnectionsSetupFailedAuth", "Sum")

    def pinned_sessions(self) -> cloudwatch.Metric:
        return self._proxy("DatabaseConnectionsCurrentlySessionPinned", "Maximum")


@dataclass(frozen=True, kw_only=True)
class PgBouncerMetrics:
    """The PgBouncer ECS service (Container Insights, AWS/ECS) and its NLB target group (AWS/NetworkELB)."""

    cluster_name: str
    service_name: str
    load_balancer_full_name: str
    target_group_full_name: str

    @classmethod
    def of(cls, service: ecs.BaseService, target_group: elbv2.INetworkTargetGroup) -> PgBouncerMetrics:
        """From the constructs. The NLB's dimensions are the ones CDK's own target-group metrics use (the load
        balancer's full name parsed from the listener ARN), read off one of them rather than derived again here."""
        nlb = target_group.metrics.custom("UnHealthyHostCount").dimensions or {}
        return cls(
            cluster_name=service.cluster.cluster_name,
            service_name=service.service_name,
            load_balancer_full_name=str(nlb["LoadBalancer"]),
            target_group_full_name=str(nlb["TargetGroup"]),
        )

    @classmethod
    def named(cls, names: PhysicalNames) -> PgBouncerMetrics:
        """From the fixed names; the NLB's full names are assigned at deploy time."""
        return cls(
            cluster_name=names.pooler_cluster,
            service_name=POOLER_SERVICE,
            load_balancer_full_name=DEPLOY_TIME,
            target_group_full_name=DEPLOY_TIME,
        )

    @property
    def _service(self) -> dict[str, str]:
        return {"ClusterName": self.cluster_name, "ServiceName": self.service_name}

    def running_tasks(self) -> cloudwatch.Metric:
        return metric("ECS/ContainerInsights", "RunningTaskCount", self._service, "Minimum", ONE_MINUTE)

    def cpu_percent(self) -> cloudwatch.Metric:
        """The busiest task: PgBouncer is single-threaded, so one hot task is the signal, not the average."""
        return metric("AWS/ECS", "CPUUtilization", self._service, "Maximum", FIVE_MINUTES)

    def unhealthy_targets(self) -> cloudwatch.Metric:
        dimensions = {"LoadBalancer": self.load_balancer_full_name, "TargetGroup": self.target_group_full_name}
        return metric("AWS/NetworkELB", "UnHealthyHostCount", dimensions, "Maximum", ONE_MINUTE)


@dataclass(frozen=True)
class ElastiCacheMetrics:
    """AWS/ElastiCache per-node metrics of a cluster-mode replication group, and the worst node of a group of them."""

    node_ids: tuple[str, ...]

    @classmethod
    def replication_group(cls, names: PhysicalNames, *, shards: int, replicas_per_shard: int) -> ElastiCacheMetrics:
        """Every node, shard by shard (PhysicalNames.cache_node)."""
        return cls(
            tuple(
                names.cache_node(shard, node)
                for shard in range(1, shards + 1)
                for node in range(1, replicas_per_shard + 2)
            )
        )

    @property
    def replica_ids(self) -> tuple[str, ...]:
        """The nodes that start as replicas (node 001 of each shard starts as its primary)."""
        return tuple(node for node in self.node_ids if not node.endswith("-001"))

    def groups(self, node_ids: Sequence[str]) -> list[tuple[str, ...]]:
        """`node_ids` in groups small enough for one metric math alarm each."""
        return [
            tuple(node_ids[i : i + MAX_METRICS_PER_MATH_ALARM])
            for i in range(0, len(node_ids), MAX_METRICS_PER_MATH_ALARM)
        ]

    def worst(self, name: str, statistic: str, label: str, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        per_node = {
            f"n{index}": metric("AWS/ElastiCache", name, {"CacheClusterId": node}, statistic, FIVE_MINUTES)
            for index, node in enumerate(node_ids)
        }
        return max_of(label, per_node, FIVE_MINUTES)

    def engine_cpu_percent(self, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        return self.worst("EngineCPUUtilization", "Maximum", "max engine CPU", node_ids)

    def memory_percent(self, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        return self.worst("DatabaseMemoryUsagePercentage", "Maximum", "max memory %", node_ids)

    def evictions(self, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        return self.worst("Evictions", "Sum", "max evictions", node_ids)

    def replication_lag_seconds(self, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        return self.worst("ReplicationLag", "Maximum", "max replication lag", node_ids)

    def connections(self, node_ids: Sequence[str]) -> cloudwatch.IMetric:
        return self.worst("CurrConnections", "Maximum", "max connections", node_ids)


@dataclass(frozen=True)
class CloudFrontMetrics:
    """AWS/CloudFront metrics of one distribution (published in us-east-1 only, with Region=Global)."""

    distribution_id: str

    def error_rate_5xx_percent(self) -> cloudwatch.Metric:
        dimensions = {"DistributionId": self.distribution_id, "Region": "Global"}
        return metric("AWS/CloudFront", "5xxErrorRate", dimensions, "Average", FIVE_MINUTES)


@dataclass(frozen=True)
class LambdaMetrics:
    """AWS/Lambda metrics of one function."""

    function_name: str

    def errors(self) -> cloudwatch.Metric:
        return metric("AWS/Lambda", "Errors", {"FunctionName": self.function_name}, "Sum", FIVE_MINUTES)


@dataclass(frozen=True)
class SchemaMetrics:
    """Pat/Schema: what the schema migrator publishes (Embedded Metric Format lines, lambdas/schema_migrator)."""

    env_name: str

    def _schema(self, name: SchemaMetric, statistic: str, period: Duration) -> cloudwatch.Metric:
        # `.value`: jsii would try to pass an Enum member as one of its own enums.
        dimensions = {SCHEMA_METRICS_DIMENSION: self.env_name}
        return metric(SCHEMA_METRICS_NAMESPACE, name.value, dimensions, statistic, period)

    def migration_failures(self) -> cloudwatch.Metric:
        return self._schema(SchemaMetric.MIGRATION_FAILURES, "Maximum", FIVE_MINUTES)

    def maintenance_failures(self) -> cloudwatch.Metric:
        return self._schema(SchemaMetric.MAINTENANCE_FAILURES, "Maximum", ONE_DAY)

    def future_partitions_min(self) -> cloudwatch.Metric:
        return self._schema(SchemaMetric.FUTURE_PARTITIONS_MIN, "Minimum", ONE_DAY)

    def default_partition_rows(self) -> cloudwatch.Metric:
        return self._schema(SchemaMetric.DEFAULT_PARTITION_ROWS, "Maximum", ONE_DAY)


@dataclass(frozen=True)
class BackupMetrics:
    """AWS/Backup job metrics of one vault (daily sums)."""

    vault_name: str

    def _vault(self, name: str) -> cloudwatch.Metric:
        return metric("AWS/Backup", name, {"BackupVaultName": self.vault_name}, "Sum", ONE_DAY)

    def backup_jobs_failed(self) -> cloudwatch.Metric:
        return self._vault("NumberOfBackupJobsFailed")

    def copy_jobs_failed(self) -> cloudwatch.Metric:
        return self._vault("NumberOfCopyJobsFailed")


@dataclass(frozen=True)
class SecretRotationMetrics:
    """Pat/Secrets: the rotation age lambdas/rotation_age publishes hourly per secret (pat_data.rotation_age)."""

    env_name: str

    def days_since_last_rotation(self, role: str) -> cloudwatch.Metric:
        dimensions = {rotation_age.ROLE_DIMENSION: role, rotation_age.ENVIRONMENT_DIMENSION: self.env_name}
        return metric(rotation_age.NAMESPACE, rotation_age.METRIC_NAME, dimensions, "Maximum", ONE_HOUR)
