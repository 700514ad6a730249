"""The IAM actions every VPC Lambda here needs that have no resource-level permissions (ENIs, X-Ray), in one place:
the policies use them (pat_constructs/vpc_lambda.py), controls.LAMBDA_NETWORKING_AND_TRACING explains them, and the
checkov rule recognises exactly them."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

# The EC2 actions of AWSLambdaVPCAccessExecutionRole and the actions of AWSXRayDaemonWriteAccess (AWS Managed
# Policy Reference; docs/aws-facts-iam-kms-lambda.md): a test holds these policies to the managed ones.
ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
)


def eni_statement() -> iam.PolicyStatement:
    """Lambda's VPC networking."""
    return iam.PolicyStatement(actions=list(ENI_ACTIONS), resources=["*"])


def xray_statement() -> iam.PolicyStatement:
    """Active tracing."""
    return iam.PolicyStatement(actions=list(XRAY_ACTIONS), resources=["*"])
