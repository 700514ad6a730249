"""Every log group of the platform comes from here: CMK-encrypted, with the environment's retention."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    encryption_key: kms.IKey,
    retention_days: int,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with the logs CMK; retention is set on the L1 because config holds plain day counts."""
    group = logs.LogGroup(scope, construct_id, encryption_key=encryption_key, log_group_name=log_group_name)
    cfn = group.node.default_child
    assert isinstance(cfn, logs.CfnLogGroup)
    cfn.retention_in_days = retention_days
    return group
