"""Pat-<env>-Schema: applies schema/ to the writer at deploy time and maintains partitions daily (stateless).

Deployed after the Data stack (it depends on the writer instance); destroying it never touches the database.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.discovery import Discovery
from pat_constructs.schema_migrator import SchemaMigrator
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SchemaStack(PatStack):
    def __init__(
        self,
        scope: Construct,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        data: DataStack,
        database_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, config=config, part="Schema", description="schema migrations, partition maintenance")
        self.migrator = SchemaMigrator(
            self,
            "Migrator",
            env_name=config.name,
            vpc=vpc,
            security_group=data.migrator_security_group,
            writer=data.cluster,
            owner_secret=data.aurora.owner_secret,
            login_secrets={"pat_app": data.user_secrets["app"], "pat_readonly": data.user_secrets["readonly"]},
            database_key=database_key,
            logs_key=logs_key,
            log_retention_days=config.log_retention_days,
            project_root=PROJECT_ROOT,
        )
        CfnOutput(self, "SchemaVersion", value=self.migrator.current_version, description="Newest applied migration")
        Discovery(
            self,
            "Discovery",
            env_name=config.name,
            values={
                contract.SCHEMA_MIGRATOR_FUNCTION: self.migrator.function.function_name,
                contract.SCHEMA_FAILURE_QUEUE_URL: self.migrator.failure_queue.queue_url,
            },
        )
