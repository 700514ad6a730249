"""The schema migrator: a custom resource that applies schema/ at deploy time, and the same Lambda on a daily
schedule for partition maintenance and on demand for on-call operations (patops).

The Lambda runs in the isolated subnets with the migrator security group (the only direct, pooler-less way to the
writer), reads the owner and login secrets through the Secrets Manager endpoint, and verifies the writer's
certificate against the RDS CA bundle shipped in its asset. It has no reserved concurrency: a reservation must
leave the account's unreserved floor of 100 (new accounts' reduced quotas may leave nothing to reserve), and a
single slot would throttle a deploy's synchronous invoke while the daily run holds it. PostgreSQL advisory locks
serialize concurrent migrations (and, with another lock, maintenance runs); the login-password alignment runs
outside both.
Its properties carry content hashes of schema/ and of the engine, so CloudFormation invokes it only when either
changed, and the handler can tell a rollback (a schema other than its bundle's) from a deploy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from pat_constructs import controls
from pat_constructs.bundling import python_code, rds_ca_bundle
from pat_constructs.compliance import acknowledge
from pat_constructs.lambda_permissions import eni_statement
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.vpc_lambda import FunctionCode, OnFailureDestination, VpcLambda, VpcPlacement
from pat_data import contract

RUNTIME = lambda_.Runtime.PYTHON_3_14
HANDLER = "lambdas.schema_migrator.handler.handler"
BUNDLE_INCLUDE = (
    "pat_data",
    "schema",
    "lambdas/__init__.py",
    "lambdas/schema_migrator/__init__.py",
    "lambdas/schema_migrator/handler.py",
)
ENGINE_FILES = (
    "pat_data/migrations",
    "pat_data/partitions.py",
    "pat_data/schema_deploy.py",
    "pat_data/connect.py",
    "lambdas/schema_migrator/handler.py",
)
# 03:17 UTC: away from the top of the hour, when scheduled jobs (and deploys) cluster.
DEFAULT_SCHEDULE = events.Schedule.cron(minute="17", hour="3")


def migrator_function_name(env_name: str) -> str:
    """Fixed, so alarms and patops find it without cross-stack references."""
    return contract.PhysicalNames(env_name).migrator_function


class SchemaMigrator(Construct):
    """Custom resource `Custom::PatSchema` + daily maintenance. Attributes: AppliedVersions, CurrentVersion."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        writer: IConstruct,
        owner_secret: secretsmanager.ISecret,
        login_secrets: Mapping[str, secretsmanager.ISecret],
        database_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention_days: int,
        project_root: Path,
        schedule: events.Schedule = DEFAULT_SCHEDULE,
    ) -> None:
        super().__init__(scope, construct_id)
        # By ARN, so no automatic grant reaches back into the Data stack's resource policies.
        owner = secretsmanager.Secret.from_secret_complete_arn(self, "OwnerSecret", owner_secret.secret_arn)
        logins = {
            role: secretsmanager.Secret.from_secret_complete_arn(self, f"LoginSecret{index}", secret.secret_arn)
            for index, (role, secret) in enumerate(sorted(login_secrets.items()))
        }
        code, self.bundle_hash = python_code(
            root=project_root,
            requirements=project_root / "lambdas" / "schema_migrator" / "requirements.txt",
            include=BUNDLE_INCLUDE,
            runtime=RUNTIME,
            generated={contract.RDS_CA_BUNDLE: rds_ca_bundle(project_root)},
        )
        migrator = VpcLambda(
            self,
            function=FunctionCode(
                function_name=migrator_function_name(env_name),
                description=f"Pat {env_name}: apply schema/ migrations, maintain partitions, align login passwords",
                runtime=RUNTIME,
                handler=HANDLER,
                code=code,
                memory_size=512,
                # The Provider invokes synchronously: Lambda's 15-minute ceiling is the custom resource's timeout.
                # The handler stops 45 s before it to report a clean error rather than being killed mid-file.
                timeout=Duration.seconds(contract.MIGRATOR_TIMEOUT_SECONDS),
                # Names and ARNs only, so Lambda's own key encrypts them at rest: a customer key here would have to
                # admit Lambda in its policy, and the logs key admits only the services that write logs and pages.
                environment={
                    contract.ENV_NAME: env_name,
                    contract.ENV_OWNER_SECRET_ARN: owner.secret_arn,
                    contract.ENV_LOGIN_SECRET_ARNS: json.dumps({role: s.secret_arn for role, s in logins.items()}),
                    contract.ENV_DB_SSLMODE: "verify-full",
                    contract.ENV_DB_SSLROOTCERT: contract.RDS_CA_BUNDLE,
                },
            ),
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[owner.secret_arn, *(s.secret_arn for s in logins.values())],
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[database_key.key_arn]),
            ],
            placement=VpcPlacement(vpc=vpc, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, security_group=security_group),
            logs_key=logs_key,
            log_retention_days=log_retention_days,
            # Async failures (the daily run, after Lambda's own retries) land here for on-call, 14 days.
            failure_queue_id="FailureQueue",
            on_failure=OnFailureDestination(retry_attempts=2, max_event_age=Duration.hours(6)),
        )
        self.function = migrator.function
        self.failure_queue = migrator.failure_queue

        self.schedule = events.Rule(
            self,
            "DailyMaintenance",
            description=f"Pat {env_name}: daily partition maintenance (premake, retention, default-partition check)",
            schedule=schedule,
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object({contract.EVENT_ACTION: contract.ACTION_MAINTAIN}),
                    retry_attempts=2,
                    max_event_age=Duration.hours(2),
                    dead_letter_queue=self.failure_queue,
                )
            ],
        )

        provider_group = ec2.SecurityGroup(
            self,
            "ProviderSecurityGroup",
            vpc=vpc,
            description="Schema custom resource provider: HTTPS to the Lambda API and the CloudFormation response URL",
            allow_all_outbound=False,
        )
        provider_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and S3")
        provider_role = iam.Role(self, "ProviderRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        provider_log_group = encrypted_log_group(
            self, "ProviderLogGroup", encryption_key=logs_key, retention_days=log_retention_days
        )
        provider_policy = iam.ManagedPolicy(
            self,
            "ProviderPolicy",
            roles=[provider_role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction", "lambda:GetFunction"],
                    resources=[self.function.function_arn],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[provider_log_group.log_group_arn]
                ),
                eni_statement(),
            ],
        )
        acknowledge(provider_policy, controls.LAMBDA_NETWORKING_AND_TRACING)
        # The Provider framework (CDK's) relays CloudFormation events to the migrator and posts the result to the
        # pre-signed S3 response URL, so it sits in the NAT subnets; the migrator itself has no internet path.
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function,
            framework_on_event_role=provider_role.without_policy_updates(),
            log_group=provider_log_group,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[provider_group],
        )
        self.provider.node.add_dependency(provider_policy)
        self._acknowledge(self.provider)
        self.schema_hash = contract.schema_hash(project_root)
        self.engine_hash = contract.content_hash(project_root, ENGINE_FILES)
        self.resource = CustomResource(
            self,
            "Schema",
            service_token=self.provider.service_token,
            resource_type="Custom::PatSchema",
            properties={
                contract.PROP_SCHEMA_HASH: self.schema_hash,
                contract.PROP_ENGINE_HASH: self.engine_hash,
                contract.PROP_ENVIRONMENT: env_name,
            },
        )
        # Not before the writer instance exists and accepts connections (the handler still retries a resuming one).
        self.resource.node.add_dependency(writer)
        self.applied_versions = self.resource.get_att_string("AppliedVersions")
        self.current_version = self.resource.get_att_string("CurrentVersion")

    @staticmethod
    def _acknowledge(provider: cr.Provider) -> None:
        acknowledge(provider.node.find_child("framework-onEvent"), controls.CDK_PROVIDER_FRAMEWORK)
