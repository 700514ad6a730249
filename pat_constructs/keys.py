"""Customer-managed KMS keys, one per data class, each usable only through the AWS services that hold that data."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_data.contract import PhysicalNames

# Administration without data access, listed action by action (AWS's default administrator statement uses
# wildcards: `kms:Create*` includes CreateGrant and `kms:Put*` PutKeyPolicy, either of which hands out Decrypt).
ADMIN_ACTIONS = (
    "kms:CreateAlias",
    "kms:DescribeKey",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
    "kms:RevokeGrant",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:DeleteAlias",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)
USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")
GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")
# The role CloudFormation deploys with (CDK bootstrap: cdk-<qualifier>-cfn-exec-role-<account>-<region>). It alone
# may replace a key policy: CloudFormation needs that to update the policy, and KMS refuses a new key whose policy
# would not let its creator call PutKeyPolicy (the lockout safety check).
DEPLOY_ROLE_PATTERN = "arn:{partition}:iam::{account}:role/cdk-*-cfn-exec-role-{account}-{region}"
# Services that WRITE into resources the logs key encrypts, each from this account only: SNS moves undeliverable
# pages into the encrypted dead-letter queue, EventBridge delivers undeliverable events into rule targets'
# dead-letter queues, CloudWatch alarms publish to the on-call topic.
SERVICE_WRITERS = (
    ("SnsToEncryptedDeadLetterQueue", "sns.amazonaws.com"),
    ("EventBridgeToEncryptedQueues", "events.amazonaws.com"),
    ("CloudWatchAlarmsToEncryptedTopic", "cloudwatch.amazonaws.com"),
)


@dataclass(frozen=True, kw_only=True)
class DataClass:
    """A class of data and the AWS services (`kms:ViaService` prefixes) allowed to use its key for it."""

    name: str
    description: str
    via_services: tuple[str, ...]


DATA_CLASSES = (
    DataClass(
        name="database",
        description="Aurora storage, Performance Insights, database secrets",
        via_services=("rds", "secretsmanager"),
    ),
    DataClass(
        name="cache", description="ElastiCache at rest, cache secrets", via_services=("elasticache", "secretsmanager")
    ),
    DataClass(
        name="logs",
        description="CloudWatch Logs (flow, database, Lambda logs), on-call notifications and dead-letter queues",
        via_services=("sns", "sqs"),
    ),
    DataClass(name="backup", description="AWS Backup vaults", via_services=("backup",)),
)
# The attachment key lives in the Storage stack, next to the distribution its policy names (see storage.py), and
# its disaster-recovery twin in the replica region's stack.
STORAGE = DataClass(name="storage", description="S3 attachment objects", via_services=("s3",))
STORAGE_REPLICA = DataClass(
    name="storage-replica", description="S3 attachment replicas (disaster recovery)", via_services=("s3",)
)


class DataKeys(Construct):
    """One rotated CMK per data class with alias `alias/pat/<env>/<class>` and a key policy scoped to its services.

    The account root may administer the keys but may only use them through the listed services (kms:ViaService), so
    an IAM policy alone can never turn a key into a general-purpose decrypt oracle.
    """

    def __init__(self, scope: Construct, construct_id: str, *, env_name: str) -> None:
        super().__init__(scope, construct_id)
        self.keys: dict[str, kms.IKey] = {}
        for data_class in DATA_CLASSES:
            self.keys[data_class.name] = data_key(
                self, data_class.name.capitalize(), env_name=env_name, data_class=data_class
            )
        self.database: kms.IKey = self.keys["database"]
        self.cache: kms.IKey = self.keys["cache"]
        self.logs: kms.IKey = self.keys["logs"]
        self.backup: kms.IKey = self.keys["backup"]


def data_key(scope: Construct, construct_id: str, *, env_name: str, data_class: DataClass) -> kms.Key:
    """A rotated CMK `alias/pat/<env>/<class>` whose use is bound to the class's services (kms:ViaService)."""
    account = iam.AccountRootPrincipal()
    via_services = {
        "kms:CallerAccount": Aws.ACCOUNT_ID,
        "kms:ViaService": [f"{svc}.{Aws.REGION}.amazonaws.com" for svc in data_class.via_services],
    }
    deploy_role = DEPLOY_ROLE_PATTERN.format(partition=Aws.PARTITION, account=Aws.ACCOUNT_ID, region=Aws.REGION)
    policy = iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministration", principals=[account], actions=list(ADMIN_ACTIONS), resources=["*"]
            ),
            iam.PolicyStatement(
                sid="KeyPolicyByCloudFormationOnly",
                principals=[account],
                actions=["kms:PutKeyPolicy"],
                resources=["*"],
                conditions={"ArnLike": {"aws:PrincipalArn": deploy_role}},
            ),
            iam.PolicyStatement(
                sid="UseThroughOwningServices",
                principals=[account],
                actions=list(USE_ACTIONS),
                resources=["*"],
                conditions={"StringEquals": via_services},
            ),
            # Grants only for the owning services' own resources (RDS, ElastiCache, Backup create them), never a
            # grant a principal could make for itself.
            iam.PolicyStatement(
                sid="GrantsForOwningServicesOnly",
                principals=[account],
                actions=list(GRANT_ACTIONS),
                resources=["*"],
                conditions={"StringEquals": via_services, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
        ]
    )
    if data_class.name == "logs":
        # CloudWatch Logs encrypts log groups itself (not "via" a caller), bound to this account's log groups.
        policy.add_statements(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryption",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=list(USE_ACTIONS),
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )
        for sid, service in SERVICE_WRITERS:
            policy.add_statements(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )
    return kms.Key(
        scope,
        construct_id,
        description=f"Pat {env_name} {data_class.name} key: {data_class.description}",
        alias=PhysicalNames(env_name).key_alias(data_class.name),
        enable_key_rotation=True,
        policy=policy,
    )
