"""One removal-policy rule for every stateful resource type, so no stack can forget it.

protected: RETAIN (SNAPSHOT for databases and caches) and deletion protection where the service has it.
retained: RETAIN/SNAPSHOT without deletion protection (non-prod that keeps its data).
disposable: DESTROY, only when the environment config explicitly allows it.

Aurora instances are not stateful: the cluster holds the data (and its final snapshot). They are DESTROYed with
their cluster in every environment, as CDK does for a snapshotted cluster: RDS refuses to delete a cluster that
still has instances, and a RETAINed instance that CloudFormation replaces stays in the cluster, running and billed.
`make replacements` still flags a writer replacement as disruptive.
"""

from __future__ import annotations

import enum

import jsii
from aws_cdk import CfnResource, IAspect, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import IConstruct

# Resource types that hold data or protect it (keys, secrets) and therefore follow the rule.
STATEFUL_TYPES = frozenset(
    {
        "AWS::KMS::Key",
        "AWS::RDS::DBCluster",
        "AWS::SecretsManager::Secret",
        "AWS::ElastiCache::ReplicationGroup",
        "AWS::S3::Bucket",
        "AWS::Logs::LogGroup",
        "AWS::Backup::BackupVault",
    }
)
# Types where CloudFormation can take a final snapshot instead of keeping the resource.
_SNAPSHOT_TYPES = frozenset({"AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup"})


class DataProtection(enum.Enum):
    PROTECTED = "protected"
    RETAINED = "retained"
    DISPOSABLE = "disposable"

    @classmethod
    def for_env(cls, *, retain_data: bool, allow_destroy: bool) -> DataProtection:
        if retain_data:
            return cls.PROTECTED
        return cls.DISPOSABLE if allow_destroy else cls.RETAINED


@jsii.implements(IAspect)
class RemovalPolicyRule:
    """Aspect applying the environment's DataProtection to every stateful L1 resource below the scope."""

    def __init__(self, protection: DataProtection) -> None:
        self.protection = protection

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, rds.CfnDBInstance) and node.db_cluster_identifier is not None:
            node.apply_removal_policy(RemovalPolicy.DESTROY)
            return
        if not isinstance(node, CfnResource) or node.cfn_resource_type not in STATEFUL_TYPES:
            return
        if self.protection is DataProtection.DISPOSABLE:
            node.apply_removal_policy(RemovalPolicy.DESTROY)
            return
        keep = RemovalPolicy.SNAPSHOT if node.cfn_resource_type in _SNAPSHOT_TYPES else RemovalPolicy.RETAIN
        node.apply_removal_policy(keep)
        if self.protection is DataProtection.PROTECTED:
            _enable_deletion_protection(node)


def _enable_deletion_protection(node: CfnResource) -> None:
    """Services with a deletion-protection switch; ElastiCache, S3 and KMS rely on RETAIN/SNAPSHOT alone."""
    if isinstance(node, rds.CfnDBCluster):
        node.deletion_protection = True
    elif isinstance(node, logs.CfnLogGroup):
        node.deletion_protection_enabled = True
