"""Aurora PostgreSQL Serverless v2: writer + readers, CMK everywhere, TLS-only, logs and metrics an operator needs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pat_constructs import controls
from pat_constructs.compliance import acknowledge
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.secrets import DEFAULT_EXCLUDED_CHARACTERS
from pat_constructs.settings.aurora import AuroraSettings
from pat_data.contract import PhysicalNames, managed_policy

POSTGRES_PORT = 5432
OWNER_USERNAME = "pat_owner"


def cluster_parameters(*, log_min_duration_statement_ms: int, idle_in_transaction_timeout_ms: int) -> dict[str, str]:
    """Cluster parameter group values, each one for a reason an operator would ask about.

    Nothing here may write a statement's text where it could carry a password: Secrets Manager's rotation runs
    `ALTER USER ... WITH PASSWORD '<cleartext>'` for every secret (the master's too), and the postgresql log is
    exported to CloudWatch. Every setting that echoes statement text is pinned below and by a test.
    """
    return {
        # Refuse any connection that is not TLS (the parameter lives in the CLUSTER group on Aurora).
        "rds.force_ssl": "1",
        # Per-query statistics (pg_stat_statements), the audit trail (pgaudit) and slow plans (auto_explain).
        "shared_preload_libraries": "pg_stat_statements,pgaudit,auto_explain",
        "pg_stat_statements.track": "top",
        # Utility statements are stored verbatim (constants are not normalized): ALTER USER ... PASSWORD would be.
        "pg_stat_statements.track_utility": "0",
        # Schema and role changes are audited by pgaudit, which redacts passwords in CREATE/ALTER ROLE; statement
        # parameters are not logged.
        "pgaudit.log": "ddl,role",
        "pgaudit.log_parameter": "0",
        # No statement logging by PostgreSQL itself: `ddl` would log ALTER USER ... PASSWORD '<cleartext>'.
        "log_statement": "none",
        # A failing statement is logged with its error but without its text (the default `error` would write the
        # text of a failed ALTER USER ... PASSWORD).
        "log_min_error_statement": "panic",
        # Slow queries: auto_explain logs only plannable statements (never a utility command such as ALTER USER),
        # which log_min_duration_statement would log with their text.
        "log_min_duration_statement": "-1",
        "auto_explain.log_min_duration": str(log_min_duration_statement_ms),
        "auto_explain.log_analyze": "0",
        # Lock waits longer than deadlock_timeout (1 s) are logged: the first clue for blocked DDL/migrations.
        "log_lock_waits": "1",
        # A client that forgets COMMIT cannot hold locks and pooled connections forever.
        "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout_ms),
        # Temp files over 10 MB are logged: work_mem pressure shows up before it hurts.
        "log_temp_files": "10240",
    }


class AuroraCluster(Construct):
    """Aurora PostgreSQL Serverless v2 in isolated subnets, reachable only from security groups given to `allow_from`.

    The cluster identifier is fixed (`pat-<env>`) so runbooks, log group names and alarms can find it; the log
    group is created first so RDS writes into our encrypted group with our retention instead of creating its own.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        settings: AuroraSettings,
        database_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        engine_version, readers = settings.engine_version, settings.readers
        self.cluster_identifier = PhysicalNames(env_name).db_cluster
        self.engine = engine = rds.DatabaseClusterEngine.aurora_postgres(
            version=rds.AuroraPostgresEngineVersion.of(engine_version, engine_version.split(".", maxsplit=1)[0])
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"Aurora {self.cluster_identifier}: PostgreSQL from the pooler, migrator and rotation only",
            allow_all_outbound=False,
        )
        parameter_group = rds.ParameterGroup(
            self,
            "ClusterParameters",
            engine=engine,
            description=f"Pat {env_name} Aurora cluster parameters",
            parameters=cluster_parameters(
                log_min_duration_statement_ms=settings.log_min_duration_statement_ms,
                idle_in_transaction_timeout_ms=settings.idle_in_transaction_timeout_ms,
            ),
        )
        self.log_group = encrypted_log_group(
            self,
            "PostgresqlLogGroup",
            encryption_key=logs_key,
            retention_days=log_retention_days,
            log_group_name=f"/aws/rds/cluster/{self.cluster_identifier}/postgresql",
        )
        # Enhanced monitoring (OS metrics every 60 s) needs this service role; AWS maintains its policy.
        monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    managed_policy("AmazonRDSEnhancedMonitoringRole").arn_suffix
                )
            ],
        )
        acknowledge(
            monitoring_role,
            controls.AWS_MANAGED_SERVICE_ROLE,
            applies_to=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"],
        )
        performance_insights = _performance_insight_retention(settings.performance_insights_retention_days)
        instance_options: dict[str, Any] = {
            "auto_minor_version_upgrade": True,
            "publicly_accessible": False,
            "enable_performance_insights": True,
            "performance_insight_encryption_key": database_key,
            "performance_insight_retention": performance_insights,
        }
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            cluster_identifier=self.cluster_identifier,
            engine=engine,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group],
            port=POSTGRES_PORT,
            credentials=rds.Credentials.from_generated_secret(
                OWNER_USERNAME, encryption_key=database_key, exclude_characters=DEFAULT_EXCLUDED_CHARACTERS
            ),
            default_database_name="pat",
            parameter_group=parameter_group,
            serverless_v2_min_capacity=settings.min_capacity,
            serverless_v2_max_capacity=settings.max_capacity,
            writer=rds.ClusterInstance.serverless_v2("Writer", **instance_options),
            readers=[
                rds.ClusterInstance.serverless_v2(
                    f"Reader{index + 1}",
                    scale_with_writer=reader.promotion_tier <= 1,
                    availability_zone=reader.availability_zone,
                    **instance_options,
                )
                for index, reader in enumerate(readers)
            ],
            storage_encrypted=True,
            storage_encryption_key=database_key,
            enable_performance_insights=True,
            performance_insight_encryption_key=database_key,
            performance_insight_retention=performance_insights,
            monitoring_interval=Duration.seconds(60),
            monitoring_role=monitoring_role,
            cloudwatch_logs_exports=["postgresql"],
            iam_authentication=True,
            copy_tags_to_snapshot=True,
            backup=rds.BackupProps(
                retention=Duration.days(settings.backup_retention_days), preferred_window="02:00-03:00"
            ),
            preferred_maintenance_window="sun:03:30-sun:04:30",
            storage_type=rds.DBClusterStorageType.AURORA,
        )
        self.cluster.node.add_dependency(self.log_group)
        # The exact promotion tier from config (CDK only distinguishes "scales with writer" 1 from 2).
        tiers = {"Writer": None, **{f"Reader{i + 1}": r.promotion_tier for i, r in enumerate(readers)}}
        # Every instance of the cluster: whatever must log in (an immediate rotation) waits for all of them.
        self.instances: list[rds.CfnDBInstance] = []
        for instance_id, tier in tiers.items():
            instance = self.cluster.node.find_child(instance_id).node.default_child
            assert isinstance(instance, rds.CfnDBInstance)
            self.instances.append(instance)
            if tier is not None:
                instance.promotion_tier = tier
            acknowledge(instance, controls.AURORA_CONTINUOUS_BACKUP)
        assert self.cluster.secret is not None
        self.owner_secret: secretsmanager.ISecret = self.cluster.secret
        self.endpoint = self.cluster.cluster_endpoint
        self.reader_endpoint = self.cluster.cluster_read_endpoint
        self.port = POSTGRES_PORT

    def acknowledge_disposable(self) -> None:
        """For environments the config declares disposable: no deletion protection, by design."""
        acknowledge(self.cluster.node.default_child, controls.DISPOSABLE_DATABASE)  # type: ignore[arg-type]

    def allow_from(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Open PostgreSQL to one security group (never a CIDR)."""
        self.security_group.add_ingress_rule(peer, ec2.Port.tcp(POSTGRES_PORT), description)


def _performance_insight_retention(days: int) -> rds.PerformanceInsightRetention:
    by_days = {
        7: rds.PerformanceInsightRetention.DEFAULT,
        31: rds.PerformanceInsightRetention.MONTHS_1,
        93: rds.PerformanceInsightRetention.MONTHS_3,
        186: rds.PerformanceInsightRetention.MONTHS_6,
        372: rds.PerformanceInsightRetention.MONTHS_12,
        731: rds.PerformanceInsightRetention.LONG_TERM,
    }
    return by_days[days]
