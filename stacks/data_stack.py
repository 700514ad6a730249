"""Pat-<env>-Data: the stateful data tier. Aurora, its secrets and the security groups that may reach it.

Client security groups (pooler, migrator) live here too, so the stateless Access and Schema stacks only attach
them: flipping the pooler between RDS Proxy and PgBouncer never edits the database's ingress rules.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from pat_constructs.aurora import AuroraCluster
from pat_constructs.discovery import Discovery
from pat_constructs.monitoring import topic_arn
from pat_constructs.pooler import POOLER_PORT
from pat_constructs.rotation_monitor import RotationMonitor
from pat_constructs.secrets import generated_secret, rotate_postgres_single_user
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig

# Login roles created by the schema migrations; their passwords live only in these secrets.
APP_USERS = {
    "app": ("pat_app", "application read/write through RLS"),
    "readonly": ("pat_readonly", "read-only reporting and on-call queries"),
}


class DataStack(PatStack):
    def __init__(
        self,
        scope: Construct,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        database_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, config=config, part="Data", description="Aurora PostgreSQL, secrets (stateful)")
        db = config.database

        def client_group(construct_id: str, description: str) -> ec2.SecurityGroup:
            return ec2.SecurityGroup(self, construct_id, vpc=vpc, description=description, allow_all_outbound=True)

        self.pooler_security_group = client_group("PoolerSecurityGroup", "Pooler (RDS Proxy or PgBouncer tasks)")
        self.migrator_security_group = client_group("MigratorSecurityGroup", "Schema migrator Lambda")
        self.rotation_security_group = client_group("RotationSecurityGroup", "Secrets Manager rotation Lambdas")
        # Applications and patops attach this group to reach the pooler; nothing else may.
        self.client_security_group = client_group("ClientSecurityGroup", "Applications and patops (via the pooler)")
        pooler_port = ec2.Port.tcp(POOLER_PORT)
        self.pooler_security_group.add_ingress_rule(self.client_security_group, pooler_port, "Clients to the pooler")
        # The PgBouncer NLB and its tasks share the pooler group: NLB-to-task traffic stays inside it.
        self.pooler_security_group.add_ingress_rule(self.pooler_security_group, pooler_port, "NLB to PgBouncer tasks")

        self.aurora = AuroraCluster(
            self,
            "Aurora",
            env_name=config.name,
            vpc=vpc,
            settings=db,
            database_key=database_key,
            logs_key=logs_key,
            log_retention_days=config.log_retention_days,
        )
        self.aurora.allow_from(self.pooler_security_group, "PostgreSQL from the pooler")
        self.aurora.allow_from(self.migrator_security_group, "PostgreSQL from the schema migrator (direct, no pooler)")
        self.aurora.allow_from(self.rotation_security_group, "PostgreSQL from secret rotation")
        self.cluster = self.aurora.cluster
        if not config.retain_data:
            self.aurora.acknowledge_disposable()

        owner_rotation = rotate_postgres_single_user(
            self.aurora.owner_secret,
            vpc=vpc,
            security_group=self.rotation_security_group,
            every_days=db.secret_rotation_days,
            rotate_immediately=True,
        )
        # Rotating immediately logs in: not before the writer (and every reader) exists and accepts connections.
        owner_rotation.node.add_dependency(*self.aurora.instances)
        self.user_secrets: dict[str, secretsmanager.ISecret] = {}
        for key, (username, purpose) in APP_USERS.items():
            secret = generated_secret(
                self,
                f"{username.title().replace('_', '')}Secret",
                description=f"Pat {config.name} {username}: {purpose}",
                encryption_key=database_key,
                template={"username": username},
            )
            # host/port/dbname/engine are added to the secret, so a secret alone is enough to connect.
            attached = secret.attach(self.cluster)
            # The role is created by the schema migrations: the first rotation waits for the schedule.
            rotation = rotate_postgres_single_user(
                attached,
                vpc=vpc,
                security_group=self.rotation_security_group,
                every_days=db.secret_rotation_days,
                rotate_immediately=False,
            )
            rotation.node.add_dependency(*self.aurora.instances)
            self.user_secrets[key] = attached

        # A failed or stalled rotation pages on-call (the topic is the Ops stack's, by its fixed ARN).
        self.rotation_monitor = RotationMonitor(
            self,
            "RotationMonitor",
            env_name=config.name,
            secrets={"owner": self.aurora.owner_secret, **self.user_secrets},
            rotation_days=db.secret_rotation_days,
            alarm_topic=sns.Topic.from_topic_arn(self, "OnCallTopic", topic_arn(config.name)),
            logs_key=logs_key,
            log_retention_days=config.log_retention_days,
            project_root=Path(__file__).resolve().parents[1],
        )

        self.discovery = Discovery(
            self,
            "Discovery",
            env_name=config.name,
            values={
                contract.DB_CLUSTER_IDENTIFIER: self.cluster.cluster_identifier,
                contract.DB_WRITER_ENDPOINT: self.cluster.cluster_endpoint.hostname,
                contract.DB_READER_ENDPOINT: self.cluster.cluster_read_endpoint.hostname,
                contract.DB_PORT: str(self.aurora.port),
                contract.DB_CLIENT_SECURITY_GROUP: self.client_security_group.security_group_id,
                contract.DB_OWNER_SECRET_ARN: self.aurora.owner_secret.secret_arn,
                **{contract.DB_LOGIN_SECRET_ARNS[key]: s.secret_arn for key, s in self.user_secrets.items()},
            },
        )
