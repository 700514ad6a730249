"""PgBouncer on ECS Fargate behind an internal NLB (dev), with the hook that redeploys it after a secret rotates."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from aws_cdk import aws_sns as sns
from constructs import Construct

from pat_constructs import controls
from pat_constructs.alarms import catalog
from pat_constructs.alarms.metrics import PgBouncerMetrics
from pat_constructs.compliance import acknowledge
from pat_constructs.lambda_permissions import eni_statement, xray_statement
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.monitoring import Alarms
from pat_constructs.pooler import POOLER_PORT, PoolerEndpoints
from pat_constructs.queues import failure_queue
from pat_constructs.settings.pooler import PgBouncerSettings
from pat_data.contract import PhysicalNames

RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
# The image's entrypoint writes DB_USER into the auth file and pgbouncer.ini, then runs this command: it adds the
# read-only login and starts PgBouncer. Aurora gives no role read access to pg_authid/pg_shadow, so auth_query
# cannot work there: PgBouncer authenticates the login roles from their secrets (auth_file) instead.
PGBOUNCER_COMMAND = [
    "sh",
    "-c",
    'printf \'"%s" "%s"\\n\' "$READONLY_USER" "$READONLY_PASSWORD" >> /etc/pgbouncer/userlist.txt '
    "&& exec /usr/bin/pgbouncer /etc/pgbouncer/pgbouncer.ini",
]


class PgBouncerPooler(Construct):
    """PgBouncer (transaction pooling) on Fargate behind an internal, cross-zone NLB.

    Credentials: the `pat_app` and `pat_readonly` secrets are injected by ECS at task start into PgBouncer's auth
    file (SCRAM to clients and to Aurora). When either secret rotates, the RotationHook forces a rolling redeploy,
    so tasks pick up the new password within minutes; existing server connections keep working meanwhile.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        cluster: rds.IDatabaseCluster,
        app_secret: secretsmanager.ISecret,
        readonly_secret: secretsmanager.ISecret,
        database_key: kms.IKey,
        security_group: ec2.ISecurityGroup,
        logs_key: kms.IKey,
        log_retention_days: int,
        retain: bool,
        settings: PgBouncerSettings,
        alarm_topic: sns.ITopic,
        cpu_alarm_percent: float,
    ) -> None:
        super().__init__(scope, construct_id)
        # By ARN, so ECS's automatic secret grant cannot add a resource policy in the Data stack (cycle).
        app_secret = secretsmanager.Secret.from_secret_complete_arn(self, "AppSecret", app_secret.secret_arn)
        readonly_secret = secretsmanager.Secret.from_secret_complete_arn(
            self, "ReadonlySecret", readonly_secret.secret_arn
        )
        private = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.ecs_cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=PhysicalNames(env_name).pooler_cluster,
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        namespace = servicediscovery.PrivateDnsNamespace(
            self,
            "Namespace",
            name=PhysicalNames(env_name).pooler_namespace,
            vpc=vpc,
            description="Pat internal service names",
        )
        log_group = encrypted_log_group(self, "LogGroup", encryption_key=logs_key, retention_days=log_retention_days)
        # Explicit execution role with a customer-managed policy (no CDK inline policy): pull, log, read one secret.
        execution_role = iam.Role(self, "ExecutionRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        iam.ManagedPolicy(
            self,
            "ExecutionPolicy",
            roles=[execution_role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
                ),
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[app_secret.secret_arn, readonly_secret.secret_arn],
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[database_key.key_arn]),
            ],
        )
        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            execution_role=execution_role.without_policy_updates(),
            cpu=settings.cpu,
            memory_limit_mib=settings.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        task.add_volume(name="tls")
        logging = ecs.LogDrivers.aws_logs(stream_prefix="pgbouncer", log_group=log_group)
        # Fetches the RDS CA bundle (server_tls_sslmode=verify-full) and makes the client-side TLS key pair.
        tls_init = task.add_container(
            "TlsInit",
            image=ecs.ContainerImage.from_registry(settings.tls_init_image),
            essential=False,
            logging=logging,
            command=[
                "sh",
                "-ec",
                "apk add --no-cache openssl >/dev/null && "
                f"wget -qO /tls/rds-ca.pem {RDS_CA_BUNDLE_URL} && "
                "openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=pgbouncer "
                "-keyout /tls/server.key -out /tls/server.crt && "
                "chown 70:70 /tls/* && chmod 600 /tls/server.key",
            ],
        )
        tls_init.add_mount_points(ecs.MountPoint(container_path="/tls", source_volume="tls", read_only=False))
        endpoint = cluster.cluster_endpoint
        bouncer = task.add_container(
            "PgBouncer",
            image=ecs.ContainerImage.from_registry(settings.image),
            command=PGBOUNCER_COMMAND,
            logging=logging,
            port_mappings=[ecs.PortMapping(container_port=POOLER_PORT, protocol=ecs.Protocol.TCP)],
            environment={
                "DB_HOST": endpoint.hostname,
                "DB_PORT": str(endpoint.port),
                "AUTH_TYPE": "scram-sha-256",
                "POOL_MODE": "transaction",
                # Prepared statements stay off on every pooled path (psycopg's prepare_threshold=None, as RDS Proxy
                # needs): 0 turns PgBouncer's prepared-statement tracking off, which 1.24.0 turned on by default
                # (200; https://www.pgbouncer.org/changelog.html 1.24.0, pgbouncer PR #1144).
                "MAX_PREPARED_STATEMENTS": "0",
                "DEFAULT_POOL_SIZE": str(settings.default_pool_size),
                "MAX_CLIENT_CONN": str(settings.max_client_conn),
                "SERVER_TLS_SSLMODE": "verify-full",
                "SERVER_TLS_CA_FILE": "/tls/rds-ca.pem",
                "CLIENT_TLS_SSLMODE": "require",
                "CLIENT_TLS_KEY_FILE": "/tls/server.key",
                "CLIENT_TLS_CERT_FILE": "/tls/server.crt",
                "TCP_KEEPALIVE": "1",
                "TCP_KEEPIDLE": str(settings.tcp_keepidle_seconds),
                "TCP_KEEPINTVL": "30",
                "IGNORE_STARTUP_PARAMETERS": "extra_float_digits,options",
                "LOG_CONNECTIONS": "0",
                "LOG_DISCONNECTIONS": "0",
                "STATS_PERIOD": "60",
            },
            # Injected by ECS from Secrets Manager at task start: never in the template or task definition.
            secrets={
                "DB_USER": ecs.Secret.from_secrets_manager(app_secret, "username"),
                "DB_PASSWORD": ecs.Secret.from_secrets_manager(app_secret, "password"),
                "READONLY_USER": ecs.Secret.from_secrets_manager(readonly_secret, "username"),
                "READONLY_PASSWORD": ecs.Secret.from_secrets_manager(readonly_secret, "password"),
            },
            health_check=ecs.HealthCheck(
                command=["CMD-SHELL", f"pg_isready -h 127.0.0.1 -p {POOLER_PORT} || exit 1"],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(20),
            ),
        )
        bouncer.add_mount_points(ecs.MountPoint(container_path="/tls", source_volume="tls", read_only=True))
        bouncer.add_container_dependencies(
            ecs.ContainerDependency(container=tls_init, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            service_name="pgbouncer",
            cluster=self.ecs_cluster,
            task_definition=task,
            desired_count=settings.min_tasks,
            min_healthy_percent=100,
            max_healthy_percent=200,
            vpc_subnets=private,
            security_groups=[security_group],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            cloud_map_options=ecs.CloudMapOptions(name="pgbouncer", cloud_map_namespace=namespace),
        )
        scaling = self.service.auto_scale_task_count(min_capacity=settings.min_tasks, max_capacity=settings.max_tasks)
        scaling.scale_on_cpu_utilization("CpuScaling", target_utilization_percent=settings.cpu_target_percent)

        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=False,
            vpc_subnets=private,
            cross_zone_enabled=True,
            security_groups=[security_group],
            deletion_protection=retain,
        )
        listener = self.load_balancer.add_listener("Postgres", port=POOLER_PORT, protocol=elbv2.Protocol.TCP)
        self.target_group = listener.add_targets(
            "Tasks",
            port=POOLER_PORT,
            protocol=elbv2.Protocol.TCP,
            targets=[self.service],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                protocol=elbv2.Protocol.TCP, interval=Duration.seconds(10), healthy_threshold_count=2
            ),
        )
        self.rotation_hook = PgBouncerRotationHook(
            self,
            "RotationHook",
            vpc=vpc,
            service=self.service,
            secrets=[app_secret, readonly_secret],
            logs_key=logs_key,
            log_retention_days=log_retention_days,
        )
        self._acknowledge(task, listener, deletion_protection=retain)
        self.alarms = self._alarms(env_name, alarm_topic, settings, cpu_alarm_percent)

    def _alarms(
        self, env_name: str, topic: sns.ITopic, settings: PgBouncerSettings, cpu_alarm_percent: float
    ) -> Alarms:
        """PgBouncer's alarms live with it: its NLB target group has no fixed name the Ops stack could use."""
        metrics = PgBouncerMetrics.of(self.service, self.target_group)
        specs = catalog.pgbouncer(metrics, min_tasks=settings.min_tasks, cpu_percent=cpu_alarm_percent)
        return Alarms(self, "Alarms", env_name=env_name, topic=topic, specs=specs)

    def _acknowledge(
        self, task: ecs.FargateTaskDefinition, listener: elbv2.NetworkListener, *, deletion_protection: bool
    ) -> None:
        acknowledge(task, controls.PGBOUNCER_SETTINGS_ONLY)
        acknowledge(self.load_balancer, controls.NLB_FLOW_LOGS)
        if not deletion_protection:
            acknowledge(self.load_balancer, controls.STATELESS_LOAD_BALANCER)
        acknowledge(listener, controls.POSTGRES_TLS_IN_PROTOCOL)
        self.endpoints = PoolerEndpoints(
            kind="pgbouncer",
            endpoint=self.load_balancer.load_balancer_dns_name,
            reader_endpoint=self.load_balancer.load_balancer_dns_name,
            port=POOLER_PORT,
        )


_ROTATION_HOOK_CODE = """
import os, boto3
def handler(event, context):
    boto3.client("ecs").update_service(
        cluster=os.environ["CLUSTER"], service=os.environ["SERVICE"], forceNewDeployment=True
    )
    return {"redeployed": os.environ["SERVICE"]}
"""


class PgBouncerRotationHook(Construct):
    """After a login secret rotates, force a rolling redeploy so every task reads the new password."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        service: ecs.FargateService,
        secrets: Sequence[secretsmanager.ISecret],
        logs_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group = encrypted_log_group(self, "LogGroup", encryption_key=logs_key, retention_days=log_retention_days)
        # Failed invocations (after EventBridge's retries) are kept for 14 days for the on-call to replay.
        self.dead_letter_queue = failure_queue(self, "DeadLetterQueue", encryption_key=logs_key)
        security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="PgBouncer rotation hook: HTTPS out to the ECS API"
        )
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[role],
            statements=[
                iam.PolicyStatement(actions=["ecs:UpdateService"], resources=[service.service_arn]),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
                ),
                iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]),
                xray_statement(),
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[logs_key.key_arn]),
                eni_statement(),
            ],
        )
        acknowledge(policy, controls.LAMBDA_NETWORKING_AND_TRACING)
        acknowledge(self.dead_letter_queue, controls.TERMINAL_DEAD_LETTER_QUEUE)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline(_ROTATION_HOOK_CODE),
            role=role.without_policy_updates(),
            log_group=log_group,
            timeout=Duration.seconds(30),
            memory_size=256,
            tracing=lambda_.Tracing.ACTIVE,
            dead_letter_queue=self.dead_letter_queue,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group],
            # Names only: Lambda's own key encrypts them; the logs key does not admit Lambda (see the migrator).
            environment={"CLUSTER": service.cluster.cluster_name, "SERVICE": service.service_name},
            description="Redeploy PgBouncer after a login role's password rotated",
        )
        self.function.node.add_dependency(policy)
        acknowledge(self.function, controls.UNRESERVED_BY_DESIGN)
        self.rule = events.Rule(
            self,
            "OnRotation",
            description="Secrets Manager finished rotating a secret PgBouncer authenticates with",
            event_pattern=events.EventPattern(
                source=["aws.secretsmanager"],
                detail_type=["AWS Service Event via CloudTrail"],
                detail={
                    "eventName": ["RotationSucceeded"],
                    "additionalEventData": {"SecretId": [secret.secret_arn for secret in secrets]},
                },
            ),
            # Events EventBridge could not deliver land in the same dead-letter queue as failed invocations.
            targets=[targets.LambdaFunction(self.function, retry_attempts=4, dead_letter_queue=self.dead_letter_queue)],
        )
