"""Pat-<env>-Ops: the on-call topic, alarms, dashboard and AWS Backup (plus, where configured, the backup copy
vault in the disaster-recovery region: Pat-<env>-BackupDr, deployed first).

Every identifier here is derived from a fixed name (cluster `pat-<env>`, proxy `pat-<env>`, cache nodes
`pat-<env>-cache-NNNN-NNN`, migrator `pat-<env>-schema-migrator`, bucket name), so this stack imports nothing from
the stateful stacks and never locks one of their exports. Its alarms are the catalog's fixed-name tiers
(stacks/alarms.py `ops_alarms`).
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.alarms import catalog
from pat_constructs.alarms.metrics import CloudFrontMetrics
from pat_constructs.backup import DataBackup, DrBackupVault
from pat_constructs.discovery import Discovery
from pat_constructs.keys import DATA_CLASSES, data_key
from pat_constructs.monitoring import Alarms, OnCallTopic, OpsDashboard
from pat_constructs.storage import attachment_bucket_name
from pat_data import contract
from pat_data.contract import PhysicalNames
from stacks.alarms import ops_alarms
from stacks.base import PatStack
from stacks.config import EnvironmentConfig

EDGE_REGION = "us-east-1"
LOGS = next(c for c in DATA_CLASSES if c.name == "logs")


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
                f"arn:{Aws.PARTITION}:rds:{Aws.REGION}:{Aws.ACCOUNT_ID}:cluster:{PhysicalNames(env).db_cluster}",
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
        self.alarms = Alarms(self, "Alarms", env_name=env, topic=self.on_call.topic, specs=ops_alarms(config))
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
        specs = catalog.cdn(
            CloudFrontMetrics(distribution_id), error_rate_percent=ops.thresholds.cdn_5xx_error_rate_percent
        )
        self.alarms = Alarms(self, "Alarms", env_name=env, topic=self.on_call.topic, specs=specs)
