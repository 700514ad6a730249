"""Pat-<env>-Ops: the on-call topic, alarms, dashboard and AWS Backup (copying, where configured, to the vault of
Pat-<env>-BackupDr, stacks/backup_dr_stack.py; the CDN alarm lives in stacks/edge_monitoring_stack.py).

Every identifier here is derived from a fixed name (cluster `pat-<env>`, proxy `pat-<env>`, cache nodes
`pat-<env>-cache-NNNN-NNN`, migrator `pat-<env>-schema-migrator`, bucket name), so this stack imports nothing from
the stateful stacks and never locks one of their exports. Its alarms are the catalog's fixed-name tiers
(stacks/alarms.py `ops_alarms`).
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.backup import DataBackup
from pat_constructs.discovery import Discovery
from pat_constructs.monitoring import Alarms, OnCallTopic, OpsDashboard
from pat_constructs.storage import attachment_bucket_name
from pat_data import contract
from pat_data.contract import PhysicalNames
from stacks.alarms import ops_alarms
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


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
            settings=config.backup,
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
