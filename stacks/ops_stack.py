"""Pat-<env>-Ops: the on-call topic, alarms, dashboard and AWS Backup (plus, where configured, the backup copy
vault in the disaster-recovery region: Pat-<env>-BackupDr, deployed first).

Every identifier here is derived from a fixed name (cluster `pat-<env>`, proxy `pat-<env>`, cache nodes
`pat-<env>-cache-NNNN-NNN`, migrator `pat-<env>-schema-migrator`, bucket name), so this stack imports nothing from
the stateful stacks and never locks one of their exports.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.backup import DataBackup, DrBackupVault, vault_name
from pat_constructs.discovery import Discovery
from pat_constructs.keys import DATA_CLASSES, data_key
from pat_constructs.monitoring import Alarms, AlarmSpec, OnCallTopic, OpsDashboard, max_of
from pat_constructs.schema_migrator import migrator_function_name
from pat_constructs.storage import attachment_bucket_name
from pat_data import contract
from pat_data.contract import PhysicalNames
from stacks.base import PatStack
from stacks.config import EnvironmentConfig

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
FIVE_MINUTES = Duration.minutes(5)
ONE_DAY = Duration.days(1)
EDGE_REGION = "us-east-1"
LOGS = next(c for c in DATA_CLASSES if c.name == "logs")
# CloudWatch: a metric math alarm references at most 10 metrics, a hard limit (docs/aws-facts-data-ops.md).
MAX_METRICS_PER_MATH_ALARM = 10


def cache_node_ids(env_name: str, shards: int, replicas_per_shard: int) -> list[str]:
    """Every node of the replication group, shard by shard (PhysicalNames.cache_node)."""
    names = PhysicalNames(env_name)
    return [
        names.cache_node(shard, node) for shard in range(1, shards + 1) for node in range(1, replicas_per_shard + 2)
    ]


class BackupDrStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, region: str) -> None:
        super().__init__(
            scope, config=config, part="BackupDr", description=f"backup copy vault in {region}", region=region
        )
        self.vault = DrBackupVault(
            self,
            "DrVault",
            env_name=config.name,
            vault_lock=config.backup.vault_lock,
            lock_min_retention_days=config.backup.lock_min_retention_days,
            lock_max_retention_days=config.backup.lock_max_retention_days,
        )


class OpsStack(PatStack):
    def __init__(
        self, scope: Construct, *, config: EnvironmentConfig, logs_key: kms.IKey, backup_key: kms.IKey
    ) -> None:
        super().__init__(scope, config=config, part="Ops", description="on-call topic, alarms, dashboard, backup")
        env, ops = config.name, config.ops
        self.on_call = OnCallTopic(
            self,
            "OnCall",
            env_name=env,
            encryption_key=logs_key,
            emails=ops.alarm_emails,
            https_endpoints=ops.alarm_https_endpoints,
        )
        self.backup = DataBackup(
            self,
            "Backup",
            env_name=env,
            backup_key=backup_key,
            resource_arns=[
                f"arn:{Aws.PARTITION}:rds:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster:pat-{env}",
                f"arn:{Aws.PARTITION}:s3:::{attachment_bucket_name(env, Aws.REGION)}",
            ],
            daily_retention_days=config.backup.daily_retention_days,
            weekly_retention_days=config.backup.weekly_retention_days,
            monthly_retention_days=config.backup.monthly_retention_days,
            vault_lock=config.backup.vault_lock,
            lock_min_retention_days=config.backup.lock_min_retention_days,
            lock_max_retention_days=config.backup.lock_max_retention_days,
            copy_region=config.backup.copy_region,
            copy_retention_days=config.backup.copy_retention_days,
        )
        self.alarms = Alarms(self, "Alarms", env_name=env, topic=self.on_call.topic, specs=self.alarm_specs(config))
        self.dashboard = OpsDashboard(self, "Dashboard", env_name=env, alarms=self.alarms, extra={})
        Discovery(
            self,
            "Discovery",
            env_name=env,
            values={
                contract.OPS_TOPIC_ARN: self.on_call.topic.topic_arn,
                contract.OPS_BACKUP_VAULT: self.backup.vault.backup_vault_name,
                contract.OPS_BACKUP_PLAN_ID: self.backup.plan.backup_plan_id,
                contract.OPS_DASHBOARD: PhysicalNames(env).dashboard,
            },
        )

    @staticmethod
    def alarm_specs(config: EnvironmentConfig) -> list[AlarmSpec]:
        env, t, db, cache = config.name, config.ops.thresholds, config.database, config.cache
        names = PhysicalNames(env)

        def rds(name: str, statistic: str, period: Duration = FIVE_MINUTES, **dims: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/RDS",
                metric_name=name,
                dimensions_map=dims or {"DBClusterIdentifier": names.db_cluster},
                statistic=statistic,
                period=period,
            )

        specs = [
            AlarmSpec(name="AuroraCpu", metric=rds("CPUUtilization", "Average"), threshold=t.aurora_cpu_percent,
                      summary=f"Aurora CPU: above {t.aurora_cpu_percent:g}% for 15 min.", runbook="aurora-cpu",
                      tier="Database"),
            AlarmSpec(name="AuroraAcuUtilization", metric=rds("ACUUtilization", "Average"),
                      threshold=t.aurora_acu_utilization_percent,
                      summary=f"Aurora ACU utilization: above {t.aurora_acu_utilization_percent:g}% of max capacity.",
                      runbook="aurora-capacity", tier="Database"),
            AlarmSpec(name="AuroraCapacityAtMax",
                      metric=rds("ServerlessDatabaseCapacity", "Maximum", Duration.minutes(1)),
                      threshold=db.max_capacity, comparison=GTE, evaluation_periods=t.aurora_capacity_at_max_minutes,
                      summary=f"Aurora capacity: at the {db.max_capacity:g} ACU ceiling for "
                      f"{t.aurora_capacity_at_max_minutes} min.", runbook="aurora-capacity", tier="Database"),
            AlarmSpec(name="AuroraConnections", metric=rds("DatabaseConnections", "Maximum"),
                      threshold=t.aurora_connections, summary=f"Aurora connections: above {t.aurora_connections}.",
                      runbook="aurora-connections", tier="Database"),
            AlarmSpec(name="AuroraFreeableMemory", metric=rds("FreeableMemory", "Minimum"),
                      threshold=t.aurora_freeable_memory_mib * 1024 * 1024, comparison=LT,
                      summary=f"Aurora freeable memory: below {t.aurora_freeable_memory_mib} MiB.",
                      runbook="aurora-memory", tier="Database"),
            AlarmSpec(name="AuroraDeadlocks", metric=rds("Deadlocks", "Average", Duration.minutes(1)),
                      threshold=t.aurora_deadlocks_per_minute, evaluation_periods=5, datapoints_to_alarm=3,
                      summary=f"Aurora deadlocks: above {t.aurora_deadlocks_per_minute:g}/s in 3 of 5 minutes.",
                      runbook="deadlocks", tier="Database"),
            AlarmSpec(name="AuroraWriteLatency", metric=rds("WriteLatency", "Average"),
                      threshold=t.aurora_write_latency_ms / 1000,
                      summary=f"Aurora write latency: above {t.aurora_write_latency_ms:g} ms.", runbook="db-latency",
                      tier="Database"),
            AlarmSpec(name="AuroraReadLatency", metric=rds("ReadLatency", "Average"),
                      threshold=t.aurora_read_latency_ms / 1000,
                      summary=f"Aurora read latency: above {t.aurora_read_latency_ms:g} ms.", runbook="db-latency",
                      tier="Database"),
        ]  # fmt: skip
        if db.readers:
            specs.append(
                AlarmSpec(
                    name="AuroraReplicaLag",
                    metric=rds("AuroraReplicaLagMaximum", "Maximum"),
                    threshold=t.aurora_replica_lag_ms,
                    summary=f"Aurora replica lag: above {t.aurora_replica_lag_ms} ms.",
                    runbook="replica-lag",
                    tier="Database",
                )
            )
        if db.pooler == "rds_proxy":
            specs += [
                AlarmSpec(name="ProxyConnectionErrors",
                          metric=rds("ClientConnectionsSetupFailedAuth", "Sum", ProxyName=names.db_proxy),
                          threshold=t.proxy_connection_errors,
                          summary=f"RDS Proxy: more than {t.proxy_connection_errors} failed client logins per 5 min.",
                          runbook="pooler-incident", tier="Pooler"),
                AlarmSpec(name="ProxyPinnedSessions",
                          metric=rds("DatabaseConnectionsCurrentlySessionPinned", "Maximum", ProxyName=names.db_proxy),
                          threshold=t.proxy_pinned_sessions,
                          summary=f"RDS Proxy: more than {t.proxy_pinned_sessions} pinned sessions.",
                          runbook="pooler-incident", tier="Pooler"),
            ]  # fmt: skip

        nodes = cache_node_ids(env, cache.shards, cache.replicas_per_shard)
        replicas = [n for n in nodes if not n.endswith("-001")]

        def per_node(name: str, statistic: str, node_ids: list[str]) -> dict[str, cloudwatch.IMetric]:
            return {
                f"n{index}": cloudwatch.Metric(namespace="AWS/ElastiCache", metric_name=name,
                                               dimensions_map={"CacheClusterId": node}, statistic=statistic,
                                               period=FIVE_MINUTES)
                for index, node in enumerate(node_ids)
            }  # fmt: skip

        def worst(
            name: str,
            label: str,
            metric_name: str,
            statistic: str,
            node_ids: list[str],
            *,
            threshold: float,
            summary: str,
            runbook: str,
        ) -> None:
            """The worst node, as metric math over at most 10 nodes per alarm (CloudWatch's hard limit for metric
            math alarms): a larger cluster gets one alarm per group of 10 nodes, so every node stays watched."""
            groups = [
                node_ids[i : i + MAX_METRICS_PER_MATH_ALARM]
                for i in range(0, len(node_ids), MAX_METRICS_PER_MATH_ALARM)
            ]
            for index, group in enumerate(groups):
                suffix = "" if index == 0 else str(index + 1)
                part = "" if len(groups) == 1 else f" (nodes {group[0][-8:]}..{group[-1][-8:]})"
                specs.append(
                    AlarmSpec(
                        name=f"{name}{suffix}",
                        metric=max_of(label, per_node(metric_name, statistic, group), FIVE_MINUTES),
                        threshold=threshold,
                        summary=summary + part,
                        runbook=runbook,
                        tier="Cache",
                    )
                )

        worst(
            "CacheEngineCpu",
            "max engine CPU",
            "EngineCPUUtilization",
            "Maximum",
            nodes,
            threshold=t.cache_cpu_percent,
            summary=f"Cache engine CPU: a node above {t.cache_cpu_percent:g}%.",
            runbook="cache-pressure",
        )
        worst(
            "CacheMemory",
            "max memory %",
            "DatabaseMemoryUsagePercentage",
            "Maximum",
            nodes,
            threshold=t.cache_memory_percent,
            summary=f"Cache memory: a node above {t.cache_memory_percent:g}%.",
            runbook="cache-pressure",
        )
        worst(
            "CacheEvictions",
            "max evictions",
            "Evictions",
            "Sum",
            nodes,
            threshold=t.cache_evictions_per_5min,
            summary=f"Cache evictions: a node evicted over {t.cache_evictions_per_5min} keys in 5 min.",
            runbook="cache-pressure",
        )
        worst(
            "CacheReplicationLag",
            "max replication lag",
            "ReplicationLag",
            "Maximum",
            replicas,
            threshold=t.cache_replication_lag_seconds,
            summary=f"Cache replication lag: a replica over {t.cache_replication_lag_seconds:g} s behind.",
            runbook="cache-node-failed",
        )
        worst("CacheConnections", "max connections", "CurrConnections", "Maximum", nodes,
              threshold=t.cache_connections, summary=f"Cache connections: a node above {t.cache_connections}.",
              runbook="cache-pressure")  # fmt: skip

        def schema_metric(name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="Pat/Schema", metric_name=name, dimensions_map={"Environment": env},
                                     statistic=statistic, period=period)  # fmt: skip

        specs += [
            AlarmSpec(name="MigratorErrors",
                      metric=cloudwatch.Metric(namespace="AWS/Lambda", metric_name="Errors", statistic="Sum",
                                               dimensions_map={"FunctionName": migrator_function_name(env)},
                                               period=FIVE_MINUTES),
                      threshold=t.migrator_errors, comparison=GTE, evaluation_periods=1,
                      summary="Schema migrator Lambda: an invocation failed.", runbook="migration-failure",
                      tier="Schema"),
            AlarmSpec(name="MigrationFailures", metric=schema_metric("MigrationFailures", "Maximum", FIVE_MINUTES),
                      threshold=1, comparison=GTE, evaluation_periods=1,
                      summary="Schema migration: a deploy-time migration failed.", runbook="migration-failure",
                      tier="Schema"),
            AlarmSpec(name="MaintenanceFailures", metric=schema_metric("MaintenanceFailures", "Maximum", ONE_DAY),
                      threshold=1, comparison=GTE, evaluation_periods=1,
                      summary="Partition maintenance: the daily run failed.", runbook="partition-emergency",
                      tier="Schema"),
            # Breaching when missing: no datapoint for two days means maintenance is not running at all.
            AlarmSpec(name="FuturePartitions", metric=schema_metric("FuturePartitionsMin", "Minimum", ONE_DAY),
                      threshold=t.min_future_partitions, comparison=LT, evaluation_periods=2,
                      missing_data=cloudwatch.TreatMissingData.BREACHING,
                      summary=f"Partitions: fewer than {t.min_future_partitions} future months on some table.",
                      runbook="partition-emergency", tier="Schema"),
            AlarmSpec(name="DefaultPartitionRows", metric=schema_metric("DefaultPartitionRows", "Maximum", ONE_DAY),
                      threshold=t.default_partition_rows, comparison=GTE, evaluation_periods=1,
                      summary="Partitions: rows are landing in a DEFAULT partition.", runbook="partition-emergency",
                      tier="Schema"),
        ]  # fmt: skip

        def backup_metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(namespace="AWS/Backup", metric_name=name, statistic="Sum", period=ONE_DAY,
                                     dimensions_map={"BackupVaultName": vault_name(env)})  # fmt: skip

        specs += [
            AlarmSpec(name="BackupJobsFailed", metric=backup_metric("NumberOfBackupJobsFailed"), threshold=1,
                      comparison=GTE, evaluation_periods=1, summary="AWS Backup: a backup job failed.",
                      runbook="backup-failure", tier="Backup"),
            AlarmSpec(name="BackupCopyJobsFailed", metric=backup_metric("NumberOfCopyJobsFailed"), threshold=1,
                      comparison=GTE, evaluation_periods=1, summary="AWS Backup: a copy to the DR region failed.",
                      runbook="backup-failure", tier="Backup"),
        ]  # fmt: skip
        return specs


class EdgeMonitoringStack(PatStack):
    """Pat-<env>-EdgeMonitoring (us-east-1): CloudFront publishes its metrics in us-east-1 only, and an alarm must
    live in its metric's region, so the CDN alarm gets its own topic (same subscriptions) and key there."""

    def __init__(self, scope: Construct, *, config: EnvironmentConfig, distribution_id: str) -> None:
        super().__init__(
            scope,
            config=config,
            part="EdgeMonitoring",
            description="CloudFront alarm (us-east-1)",
            region=EDGE_REGION,
            cross_region_references=True,
        )
        env, ops = config.name, config.ops
        key = data_key(self, "Key", env_name=env, data_class=LOGS)
        self.on_call = OnCallTopic(
            self,
            "OnCall",
            env_name=env,
            encryption_key=key,
            emails=ops.alarm_emails,
            https_endpoints=ops.alarm_https_endpoints,
        )
        threshold = ops.thresholds.cdn_5xx_error_rate_percent
        spec = AlarmSpec(
            name="Cdn5xxErrorRate",
            metric=cloudwatch.Metric(
                namespace="AWS/CloudFront",
                metric_name="5xxErrorRate",
                dimensions_map={"DistributionId": distribution_id, "Region": "Global"},
                statistic="Average",
                period=FIVE_MINUTES,
            ),
            threshold=threshold,
            summary=f"CloudFront: more than {threshold:g}% of attachment requests fail with 5xx.",
            runbook="cdn-5xx",
            tier="Storage",
        )
        self.alarms = Alarms(self, "Alarms", env_name=env, topic=self.on_call.topic, specs=[spec])
