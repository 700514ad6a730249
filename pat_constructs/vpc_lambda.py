"""The one recipe for this platform's own Lambda functions: a role only Lambda assumes, a customer-managed policy
(the function's statements, then its log group, failure queue, logs key, VPC networking and X-Ray), an encrypted log
group, a failure queue that keeps asynchronous failures 14 days, VPC placement with a security group, and the
acknowledgments every such function needs (pat_constructs/controls.py).

It is a recipe, not a Construct: it builds its resources directly in the caller's scope (`Role`, `Policy`,
`LogGroup`, the queue, `Function`), so the construct paths, and the logical IDs CloudFormation derives from them,
are the ones these functions had before the recipe existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from constructs import Construct

from pat_constructs import controls
from pat_constructs.compliance import acknowledge
from pat_constructs.controls import Control
from pat_constructs.lambda_permissions import eni_statement, xray_statement
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.queues import failure_queue


@dataclass(frozen=True, kw_only=True)
class VpcPlacement:
    """Where the function's network interfaces go."""

    vpc: ec2.IVpc
    subnet_type: ec2.SubnetType
    security_group: ec2.ISecurityGroup


@dataclass(frozen=True, kw_only=True)
class OnFailureDestination:
    """Asynchronous failures go to the queue as an on-failure destination (keeps the request and the error).

    Without it the queue is the function's dead-letter queue, after Lambda's default retries.
    """

    retry_attempts: int
    max_event_age: Duration


@dataclass(frozen=True, kw_only=True)
class FunctionCode:
    """What differs from one function to the next: its code, size and environment."""

    description: str
    runtime: lambda_.Runtime
    handler: str
    code: lambda_.Code
    memory_size: int
    timeout: Duration
    function_name: str | None = None
    # Names and ARNs only: Lambda's own key encrypts them (see controls.ENVIRONMENT_NAMES_ONLY).
    environment: Mapping[str, str] | None = None


class VpcLambda:
    """Builds one function in `scope`. Attributes: `function`, `role`, `policy`, `log_group`, `failure_queue`.

    `placement` is a VpcPlacement, or, for a function that reaches nothing in the VPC, the control that answers
    LambdaInsideVPC. `statements` are the function's own permissions (each names its resource). `unscoped_actions`
    is the control answering IAM5[Resource::*], when the function's own statements add actions without
    resource-level permissions to the ENI and X-Ray ones.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        function: FunctionCode,
        statements: Sequence[iam.PolicyStatement],
        placement: VpcPlacement | Control,
        logs_key: kms.IKey,
        log_retention_days: int,
        failure_queue_id: str,
        on_failure: OnFailureDestination | None = None,
        unscoped_actions: Control = controls.LAMBDA_NETWORKING_AND_TRACING,
    ) -> None:
        self.log_group = encrypted_log_group(
            scope, "LogGroup", encryption_key=logs_key, retention_days=log_retention_days
        )
        self.failure_queue = failure_queue(scope, failure_queue_id, encryption_key=logs_key)
        self.role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.policy = iam.ManagedPolicy(
            scope,
            "Policy",
            roles=[self.role],
            # Policy minimization merges the ENI statement with X-Ray's in the ENI statement's place.
            statements=[
                *statements,
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]
                ),
                iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failure_queue.queue_arn]),
                *([eni_statement()] if isinstance(placement, VpcPlacement) else []),
                iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[logs_key.key_arn]),
                xray_statement(),
            ],
        )
        vpc = placement if isinstance(placement, VpcPlacement) else None
        self.function = lambda_.Function(
            scope,
            "Function",
            function_name=function.function_name,
            description=function.description,
            runtime=function.runtime,
            architecture=lambda_.Architecture.X86_64,
            handler=function.handler,
            code=function.code,
            role=self.role.without_policy_updates(),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            memory_size=function.memory_size,
            timeout=function.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            environment=dict(function.environment) if function.environment is not None else None,
            vpc=vpc.vpc if vpc else None,
            vpc_subnets=ec2.SubnetSelection(subnet_type=vpc.subnet_type) if vpc else None,
            security_groups=[vpc.security_group] if vpc else None,
            # One failure path: the dead-letter queue, or the on-failure destination with its own retry bounds.
            dead_letter_queue=None if on_failure else self.failure_queue,
            on_failure=destinations.SqsDestination(self.failure_queue) if on_failure else None,
            retry_attempts=on_failure.retry_attempts if on_failure else None,
            max_event_age=on_failure.max_event_age if on_failure else None,
        )
        self.function.node.add_dependency(self.policy)
        self._acknowledge(placement, unscoped_actions, on_failure is not None)

    def _acknowledge(self, placement: VpcPlacement | Control, unscoped_actions: Control, destination: bool) -> None:
        acknowledge(self.policy, unscoped_actions)
        acknowledge(self.function, controls.UNRESERVED_BY_DESIGN)
        if not isinstance(placement, VpcPlacement):
            acknowledge(self.function, placement)
        if destination:
            acknowledge(self.function, controls.ON_FAILURE_DESTINATION)
            acknowledge(self.failure_queue, controls.TERMINAL_QUEUE)
        else:
            acknowledge(self.failure_queue, controls.TERMINAL_DEAD_LETTER_QUEUE)
