"""Pat-<env>-Access: the stateless way in. The pooler chosen in config; replaceable without touching data."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from pat_constructs.discovery import Discovery
from pat_constructs.monitoring import topic_arn
from pat_constructs.pgbouncer import PgBouncerPooler
from pat_constructs.rds_proxy import RdsProxyPooler
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack


class AccessStack(PatStack):
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
        super().__init__(scope, config=config, part="Access", description=f"{config.database.pooler} pooler")
        db = config.database
        if db.pooler == "rds_proxy":
            self.pooler: RdsProxyPooler | PgBouncerPooler = RdsProxyPooler(
                self,
                "RdsProxy",
                env_name=config.name,
                vpc=vpc,
                cluster=data.cluster,
                cluster_engine=data.aurora.engine,
                cluster_port=data.aurora.port,
                secrets=[data.user_secrets["app"], data.user_secrets["readonly"]],
                database_key=database_key,
                security_group=data.pooler_security_group,
                has_readers=bool(db.readers),
                settings=db.rds_proxy,
            )
        else:
            self.pooler = PgBouncerPooler(
                self,
                "PgBouncer",
                env_name=config.name,
                vpc=vpc,
                cluster=data.cluster,
                app_secret=data.user_secrets["app"],
                readonly_secret=data.user_secrets["readonly"],
                database_key=database_key,
                retain=config.retain_data,
                security_group=data.pooler_security_group,
                logs_key=logs_key,
                log_retention_days=config.log_retention_days,
                settings=db.pgbouncer,
                alarm_topic=sns.Topic.from_topic_arn(self, "OnCallTopic", topic_arn(config.name)),
                cpu_alarm_percent=config.ops.thresholds.pgbouncer_cpu_percent,
            )
        endpoints = self.pooler.endpoints
        Discovery(
            self,
            "Discovery",
            env_name=config.name,
            values={
                contract.POOLER_KIND: endpoints.kind,
                contract.POOLER_ENDPOINT: endpoints.endpoint,
                contract.POOLER_READER_ENDPOINT: endpoints.reader_endpoint,
                contract.POOLER_PORT: str(endpoints.port),
            },
        )
