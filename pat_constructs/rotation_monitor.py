"""Pages when a rotated database secret stops rotating: a stale-age alarm per secret and a RotationFailed rule.

Secrets Manager publishes no rotation metric, so a small Lambda (lambdas/rotation_age over pat_data.rotation_age)
runs hourly, reads each secret's LastRotatedDate with DescribeSecret and publishes `DaysSinceLastRotation` to
`Pat/Secrets`. Each secret's alarm fires once that age exceeds the rotation schedule plus a grace, and treats missing
data as breaching: a publisher that stopped running, or that cannot read the secret, pages too. RotationFailed events
(CloudTrail service events) go to the on-call topic at once, through a role of their own, so the topic's resource
policy in the Ops stack needs no entry for EventBridge. The Lambda calls only AWS APIs, so it runs outside the VPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Annotations, Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from pat_constructs import controls
from pat_constructs.alarms import catalog
from pat_constructs.alarms.metrics import SecretRotationMetrics
from pat_constructs.bundling import python_code
from pat_constructs.monitoring import RUNBOOK, Alarms
from pat_constructs.vpc_lambda import FunctionCode, VpcLambda
from pat_data import rotation_age

RUNTIME = lambda_.Runtime.PYTHON_3_14
HANDLER = "lambdas.rotation_age.handler.handler"
BUNDLE_INCLUDE = (
    "pat_data/__init__.py",
    "pat_data/rotation_age.py",
    "lambdas/__init__.py",
    "lambdas/rotation_age/__init__.py",
    "lambdas/rotation_age/handler.py",
)
RUNBOOK_SECTION = catalog.ROTATION_OVERDUE_RUNBOOK
# Hourly, away from the top of the hour: an alarm needs a datapoint in each of its periods to tell "fresh" from
# "publisher dead", and an hourly run lets an alarm return to OK within the hour after a successful rotation.
DEFAULT_SCHEDULE = events.Schedule.cron(minute="23")


class RotationMonitor(Construct):
    """Per-secret `DaysSinceLastRotation` alarms (threshold: `rotation_days + grace_days`) and a RotationFailed rule.

    `secrets` maps a role name (owner, app, readonly: the metric's `Secret` dimension) to the secret whose rotation
    schedule runs every `rotation_days`. `grace_days` defaults to pat_data.rotation_age.DEFAULT_GRACE_DAYS (2).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        secrets: Mapping[str, secretsmanager.ISecret],
        rotation_days: int,
        alarm_topic: sns.ITopic,
        logs_key: kms.IKey,
        log_retention_days: int,
        project_root: Path,
        grace_days: int = rotation_age.DEFAULT_GRACE_DAYS,
        schedule: events.Schedule = DEFAULT_SCHEDULE,
    ) -> None:
        super().__init__(scope, construct_id)
        if not secrets:
            raise ValueError("RotationMonitor needs at least one secret to watch")
        secret_arns = {role: secret.secret_arn for role, secret in sorted(secrets.items())}
        self.threshold_days = rotation_days + grace_days
        code, self.bundle_hash = python_code(
            root=project_root,
            requirements=project_root / "lambdas" / "rotation_age" / "requirements.txt",
            include=BUNDLE_INCLUDE,
            runtime=RUNTIME,
        )
        publisher = VpcLambda(
            self,
            function=FunctionCode(
                description=f"Pat {env_name}: publish DaysSinceLastRotation of the rotated database secrets",
                runtime=RUNTIME,
                handler=HANDLER,
                code=code,
                memory_size=256,
                timeout=Duration.seconds(60),
                # No environment: the rule's input names the secrets, so there is nothing for a key to protect.
            ),
            statements=[
                iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=list(secret_arns.values())),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": rotation_age.NAMESPACE}},
                ),
            ],
            placement=controls.PUBLISHER_OUTSIDE_VPC,
            logs_key=logs_key,
            log_retention_days=log_retention_days,
            # Failed invocations (after Lambda's default retries, two; no EventInvokeConfig, so this dead-letter
            # queue is the failure path) and events EventBridge could not deliver: 14 days for on-call.
            failure_queue_id="DeadLetterQueue",
            unscoped_actions=controls.METRICS_NAMESPACE_AND_TRACING,
        )
        self.function = publisher.function
        self.dead_letter_queue = publisher.failure_queue
        self.schedule = events.Rule(
            self,
            "Hourly",
            description=f"Pat {env_name}: publish the rotation age of each rotated database secret",
            schedule=schedule,
            targets=[
                targets.LambdaFunction(
                    self.function,
                    event=events.RuleTargetInput.from_object(
                        {rotation_age.EVENT_ENVIRONMENT: env_name, rotation_age.EVENT_SECRETS: secret_arns}
                    ),
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                    dead_letter_queue=self.dead_letter_queue,
                )
            ],
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            env_name=env_name,
            topic=alarm_topic,
            specs=catalog.secrets(
                SecretRotationMetrics(env_name),
                roles=list(secret_arns),
                rotation_days=rotation_days,
                grace_days=grace_days,
            ),
        )
        self.rotation_failed = self._rotation_failed_rule(env_name, secret_arns, alarm_topic, logs_key)

    def _rotation_failed_rule(
        self, env_name: str, secret_arns: Mapping[str, str], topic: sns.ITopic, logs_key: kms.IKey
    ) -> events.Rule:
        """RotationFailed is a CloudTrail service event: it reaches EventBridge only while CloudTrail records
        management events in the account and region (a trail, or the default event history)."""
        # EventBridge publishes with this role (not the topic's resource policy, which lives in the Ops stack); SNS
        # encrypts with the logs key on the role's behalf, which the key policy admits via sns.<region>.
        publisher = iam.Role(self, "RotationFailedRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"))
        iam.ManagedPolicy(
            self,
            "RotationFailedPolicy",
            roles=[publisher],
            statements=[
                iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[logs_key.key_arn]),
            ],
        )
        secret = events.EventField.from_path("$.detail.additionalEventData.SecretId")
        error = events.EventField.from_path("$.detail.errorMessage")
        message = (
            f"Pat {env_name}: Secrets Manager failed to rotate {secret}: {error} "
            f"Runbook: {RUNBOOK}#{RUNBOOK_SECTION} (and #secret-rotation-failure)"
        )
        rule = events.Rule(
            self,
            "RotationFailed",
            description=f"Pat {env_name}: page on-call when a database secret's rotation fails",
            event_pattern=events.EventPattern(
                source=["aws.secretsmanager"],
                detail_type=["AWS Service Event via CloudTrail"],
                detail={
                    "eventName": ["RotationFailed"],
                    "additionalEventData": {"SecretId": list(secret_arns.values())},
                },
            ),
            targets=[
                targets.SnsTopic(
                    topic,
                    message=events.RuleTargetInput.from_text(message),
                    role=publisher.without_policy_updates(),
                    authorize_using_role=True,
                    retry_attempts=8,
                    dead_letter_queue=self.dead_letter_queue,
                )
            ],
        )
        # topic_arn() builds the ARN from this stack's own AWS::AccountId and AWS::Region: same account and region.
        Annotations.of(rule).acknowledge_warning(
            "@aws-cdk/aws-events:ruleUnresolvedEnvironment",
            "The on-call topic's ARN is built from this stack's account and region, so rule and target share both.",
        )
        return rule
