"""VpcLambda on a bare Stack: what every function of ours gets, in the caller's scope, with its acknowledgments."""

from __future__ import annotations

from collections.abc import Iterator

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template
from constructs import Construct

from pat_constructs import compliance, controls
from pat_constructs.lambda_permissions import ENI_ACTIONS, XRAY_ACTIONS
from pat_constructs.vpc_lambda import FunctionCode, OnFailureDestination, VpcLambda, VpcPlacement
from tests.conftest import cdk_context

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:pat-test-AbCdEf"


def build(*, in_vpc: bool, destination: bool) -> tuple[cdk.Stack, Construct, VpcLambda]:
    app = cdk.App(context=cdk_context())
    stack = cdk.Stack(app, "Test", env=cdk.Environment(account="111111111111", region="eu-west-1"))
    logs_key = kms.Key(stack, "LogsKey")
    owner = Construct(stack, "Owner")
    placement: VpcPlacement | controls.Control = controls.PUBLISHER_OUTSIDE_VPC
    if in_vpc:
        vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0)
        group = ec2.SecurityGroup(stack, "Group", vpc=vpc)
        placement = VpcPlacement(vpc=vpc, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, security_group=group)
    recipe = VpcLambda(
        owner,
        function=FunctionCode(
            description="test function",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler="index.handler",
            code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
            memory_size=256,
            timeout=cdk.Duration.seconds(30),
            environment={"NAME": "value"},
        ),
        statements=[iam.PolicyStatement(actions=["secretsmanager:DescribeSecret"], resources=[SECRET_ARN])],
        placement=placement,
        logs_key=logs_key,
        log_retention_days=30,
        failure_queue_id="FailureQueue",
        on_failure=OnFailureDestination(retry_attempts=2, max_event_age=cdk.Duration.hours(6)) if destination else None,
    )
    return stack, owner, recipe


@pytest.fixture(scope="module")
def in_vpc() -> tuple[cdk.Stack, Construct, VpcLambda]:
    return build(in_vpc=True, destination=True)


@pytest.fixture(scope="module")
def outside() -> tuple[cdk.Stack, Construct, VpcLambda]:
    return build(in_vpc=False, destination=False)


def acknowledged(scope: Construct) -> Iterator[tuple[str, str]]:
    for ack in compliance.recorded_acknowledgments(scope):
        yield ack.path.rsplit("/", 1)[-1], ack.finding_id


def test_resources_sit_in_the_callers_scope(in_vpc: tuple[cdk.Stack, Construct, VpcLambda]) -> None:
    _, owner, _ = in_vpc
    assert {child.node.id for child in owner.node.children} >= {
        "LogGroup",
        "FailureQueue",
        "Role",
        "Policy",
        "Function",
    }


def test_in_vpc_with_on_failure_destination(in_vpc: tuple[cdk.Stack, Construct, VpcLambda]) -> None:
    stack, _, _ = in_vpc
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {"Statement": [Match.object_like({"Principal": {"Service": "lambda.amazonaws.com"}})]}
            )
        },
    )
    statements = next(iter(template.find_resources("AWS::IAM::ManagedPolicy").values()))["Properties"][
        "PolicyDocument"
    ]["Statement"]
    star = [s for s in statements if s["Resource"] == "*"]
    assert len(star) == 1
    assert set(star[0]["Action"]) == {*ENI_ACTIONS, *XRAY_ACTIONS}
    assert statements[0]["Action"] == "secretsmanager:DescribeSecret"
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "TracingConfig": {"Mode": "Active"},
            "LoggingConfig": Match.object_like({"LogFormat": "JSON"}),
            "VpcConfig": Match.object_like({"SecurityGroupIds": Match.any_value()}),
            "Environment": {"Variables": {"NAME": "value"}},
            "DeadLetterConfig": Match.absent(),
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 21600, "DestinationConfig": Match.any_value()},
    )
    template.has_resource_properties("AWS::SQS::Queue", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 30})


def test_outside_vpc_with_dead_letter_queue(outside: tuple[cdk.Stack, Construct, VpcLambda]) -> None:
    stack, _, _ = outside
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Lambda::Function", {"VpcConfig": Match.absent(), "DeadLetterConfig": Match.any_value()}
    )
    template.resource_count_is("AWS::Lambda::EventInvokeConfig", 0)
    statements = next(iter(template.find_resources("AWS::IAM::ManagedPolicy").values()))["Properties"][
        "PolicyDocument"
    ]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not actions & set(ENI_ACTIONS)
    assert set(XRAY_ACTIONS) <= actions


def test_acknowledgments_follow_placement_and_failure_path(
    in_vpc: tuple[cdk.Stack, Construct, VpcLambda], outside: tuple[cdk.Stack, Construct, VpcLambda]
) -> None:
    assert sorted(acknowledged(in_vpc[1])) == sorted(
        [
            ("Policy", "AwsSolutions-IAM5[Resource::*]"),
            *(("Function", f) for f in controls.UNRESERVED_BY_DESIGN.nag),
            *(("Function", f) for f in controls.ON_FAILURE_DESTINATION.nag),
            *(("FailureQueue", f) for f in controls.TERMINAL_QUEUE.nag),
        ]
    )
    assert sorted(acknowledged(outside[1])) == sorted(
        [
            ("Policy", "AwsSolutions-IAM5[Resource::*]"),
            *(("Function", f) for f in controls.UNRESERVED_BY_DESIGN.nag),
            *(("Function", f) for f in controls.PUBLISHER_OUTSIDE_VPC.nag),
            *(("FailureQueue", f) for f in controls.TERMINAL_DEAD_LETTER_QUEUE.nag),
        ]
    )
