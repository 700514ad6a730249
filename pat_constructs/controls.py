"""The compensating controls of this platform, written once: each names the cdk-nag findings and the checkov checks
it answers, and its text is the reason both tools record.

`pat_constructs.compliance.acknowledge(construct, control)` acknowledges every cdk-nag finding of a control on one
construct; the checkov skip rules (pat_constructs/checkov.py) name the control they rely on. Control Tower
suppressions, when they arrive, take their reasons from here too. No CDK import: the catalog is plain data.

A control answers the findings its text makes true. Where one compensating control meets different sets of findings
(a queue that cdk-nag sees as a dead-letter queue is not asked SQS3), those are two controls, so that acknowledging
a control never leaves a stale acknowledgment behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pat_data.contract import NAG_PACKS

# The packs of contract.NAG_PACKS by name, in its order; REGULATORY are the three that share rule names.
AWS_SOLUTIONS, HIPAA, NIST, PCI, SERVERLESS = NAG_PACKS
REGULATORY = (HIPAA, NIST, PCI)
MIN_REASON_WORDS = 12


def rule(name: str, *packs: str) -> tuple[str, ...]:
    """The finding ids of one cdk-nag rule in each of `packs` (e.g. `rule("LambdaDLQ", HIPAA, NIST)`)."""
    unknown = [pack for pack in packs if pack not in NAG_PACKS]
    if unknown or not packs:
        raise ValueError(f"rule {name!r}: packs {packs!r} must be a non-empty subset of contract.NAG_PACKS")
    return tuple(f"{pack}-{name}" for pack in packs)


@dataclass(frozen=True, eq=False, kw_only=True)
class Control:
    """One compensating control. Compared by identity: only the instances of CATALOG are controls.

    `nag` lists the finding ids it answers; `applies_to` the fixed finding detail (cdk-nag's `[...]` suffix, such as
    `Resource::*`), or `names_resources` when each caller names the resources or policies it acknowledges.
    `checkov` lists the check ids it answers; `checkov_wording` keeps, per check, the comment deployed templates
    already carry where it is a shorter wording of the same control (so templates stay byte-identical).
    """

    id: str
    text: str
    nag: tuple[str, ...] = ()
    applies_to: tuple[str, ...] = ()
    names_resources: bool = False
    checkov: tuple[str, ...] = ()
    checkov_wording: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nag and len(self.text.split()) < MIN_REASON_WORDS:
            raise ValueError(
                f"control {self.id}: the text is a cdk-nag reason and needs at least {MIN_REASON_WORDS} words "
                f"naming the compensating control, got {self.text!r}"
            )
        for finding in self.nag:
            if any(sep in finding for sep in (",", " ", "[")) or not finding.startswith(tuple(NAG_PACKS)):
                raise ValueError(f"control {self.id}: {finding!r} is not one '<pack>-<rule>' of contract.NAG_PACKS")
        if self.applies_to and self.names_resources:
            raise ValueError(f"control {self.id}: a fixed applies_to and names_resources exclude each other")
        if not self.nag and not self.checkov:
            raise ValueError(f"control {self.id}: answers neither a cdk-nag finding nor a checkov check")
        if extra := set(self.checkov_wording) - set(self.checkov):
            raise ValueError(f"control {self.id}: wording for checks it does not answer: {sorted(extra)}")

    def finding_ids(self, applies_to: Sequence[str] = ()) -> tuple[str, ...]:
        """The cdk-nag finding ids this control acknowledges on one construct (with the caller's resources)."""
        if self.names_resources != bool(applies_to):
            raise ValueError(
                f"control {self.id}: "
                + ("name the resources it answers (applies_to=...)" if self.names_resources else "takes no applies_to")
            )
        details = self.applies_to or tuple(applies_to)
        return tuple(f"{finding}[{detail}]" for finding in self.nag for detail in details) if details else self.nag

    def checkov_comment(self, check_id: str) -> str:
        if check_id not in self.checkov:
            raise ValueError(f"control {self.id} does not answer checkov {check_id}")
        return self.checkov_wording.get(check_id, self.text)


AWS_MANAGED_SERVICE_ROLE = Control(
    id="aws-managed-service-role",
    text="AWS managed service-role policy, maintained by AWS for the one service that assumes this role; the role "
    "trusts only that service principal, so only that service can use the permissions.",
    nag=rule("IAM4", AWS_SOLUTIONS),
    names_resources=True,
)
AURORA_CONTINUOUS_BACKUP = Control(
    id="aurora-continuous-backup",
    text="Aurora instances hold no data of their own; the cluster has continuous backups with point-in-time restore "
    "for the configured retention, which cdk-nag cannot see (cdk-nag#1627).",
    nag=rule("RDSInBackupPlan", HIPAA, NIST),
)
DISPOSABLE_DATABASE = Control(
    id="disposable-database",
    text="This environment is declared disposable in config (allow_destroy); prod and every retain_data environment "
    "get deletion protection from the removal-policy rule, asserted by the template tests.",
    nag=rule("RDS10", AWS_SOLUTIONS) + rule("RDSInstanceDeletionProtectionEnabled", HIPAA, NIST),
)
ACCESS_LOGS_SSE_S3 = Control(
    id="access-logs-sse-s3",
    text="S3 server access logging only delivers to buckets encrypted with SSE-S3; the bucket holds request "
    "metadata only, blocks public access and accepts TLS 1.2+ only.",
    nag=rule("S3DefaultEncryptionKMS", *REGULATORY),
)
ACCESS_LOGS_NOT_REPLICATED = Control(
    id="access-logs-not-replicated",
    text="Access logs are operational data with a short retention; replicating them would double their cost "
    "without protecting customer data, which is replicated by its own bucket.",
    nag=rule("S3BucketReplicationEnabled", *REGULATORY),
)
ACCESS_LOG_BUCKET = Control(
    id="access-log-bucket",
    text="This is the access-log bucket: S3 server access logs and CloudFront logs are written here.",
    checkov=("CKV_AWS_18",),
)
REPLICATION_PER_ENVIRONMENT = Control(
    id="replication-per-environment",
    text="Replication is switched on per environment (prod replicates to a second region); this environment keeps "
    "versioning on, so it is replication-ready, and holds no production data.",
    nag=rule("S3BucketReplicationEnabled", *REGULATORY),
)
REPLICATION_DESTINATION = Control(
    id="replication-destination",
    text="This bucket is the replication destination in the disaster-recovery region; replicating it again would "
    "only add a third copy of the same objects.",
    nag=rule("S3BucketReplicationEnabled", *REGULATORY),
)
S3_REPLICATION_ROLE = Control(
    id="s3-replication-role",
    text="S3 replication reads every object version of the one source bucket, writes every object of the one "
    "replica bucket and encrypts with the replica key, which a kms:ResourceAliases condition singles out; the "
    "role is assumable by S3 alone.",
    nag=rule("IAM5", AWS_SOLUTIONS),
    names_resources=True,
)
GLOBAL_DELIVERY = Control(
    id="global-delivery",
    text="Pat is a global email platform: recipients open attachments from anywhere, so a geo restriction would "
    "break delivery; access is limited by unguessable content-addressed keys and HTTPS-only GET/HEAD.",
    nag=rule("CFR1", AWS_SOLUTIONS),
)
NO_WEB_ACL = Control(
    id="no-web-acl",
    text="No web ACL configured for this environment (storage.web_acl_arn); GET/HEAD of unguessable keys only.",
    nag=rule("CFR2", AWS_SOLUTIONS),
    checkov=("CKV_AWS_68",),
)
DEFAULT_CDN_CERTIFICATE = Control(
    id="default-cdn-certificate",
    text="Without a custom domain the default *.cloudfront.net certificate fixes the TLS policy; setting "
    "storage.cdn_domain_names and cdn_certificate_arn switches the distribution to TLSv1.2_2021.",
    nag=rule("CFR4", AWS_SOLUTIONS),
    checkov=("CKV_AWS_174",),
    checkov_wording={
        "CKV_AWS_174": "Default *.cloudfront.net certificate (fixed policy); storage.cdn_certificate_arn enables "
        "TLSv1.2_2021."
    },
)
TERMINAL_QUEUE = Control(
    id="terminal-queue",
    text="This queue is itself where failed deliveries end (a subscription's dead-letter queue or a Lambda "
    "on-failure destination, which the rules do not recognise); nothing consumes it automatically and messages "
    "stay 14 days for on-call review.",
    nag=rule("SQS3", AWS_SOLUTIONS) + rule("SQSRedrivePolicy", SERVERLESS),
)
TERMINAL_DEAD_LETTER_QUEUE = Control(
    id="terminal-dead-letter-queue",
    text="This queue is itself a dead-letter queue: nothing consumes it automatically, messages stay 14 days for "
    "on-call review, so a further dead-letter queue behind it adds nothing.",
    nag=rule("SQSRedrivePolicy", SERVERLESS),
)
CACHE_AUTH_ROTATED_BY_PATOPS = Control(
    id="cache-auth-rotated-by-patops",
    text="CloudFormation cannot rotate an ElastiCache AUTH token; patops cache rotate-auth rotates it through "
    "ModifyReplicationGroup (ROTATE, then SET) and updates this secret, as the cache runbook describes.",
    nag=rule("SMG4", AWS_SOLUTIONS) + rule("SecretsManagerRotationEnabled", HIPAA, NIST),
)
PUBLIC_SUBNETS_NAT_ONLY = Control(
    id="public-subnets-nat-only",
    text="Public subnets hold only NAT gateways; no instance there gets a public IP (map_public_ip_on_launch=False) "
    "and data stores sit in isolated subnets without any route out.",
    nag=rule("VPCNoUnrestrictedRouteToIGW", *REGULATORY),
)
LAMBDA_NETWORKING_AND_TRACING = Control(
    id="lambda-networking-and-tracing",
    text="Only Lambda VPC networking (EC2 network interfaces) and X-Ray actions use Resource '*': they have no "
    "resource-level permissions; every other statement names its resource.",
    nag=rule("IAM5", AWS_SOLUTIONS),
    applies_to=("Resource::*",),
    checkov=("CKV_AWS_111",),
)
METRICS_NAMESPACE_AND_TRACING = Control(
    id="metrics-namespace-and-tracing",
    text="PutMetricData and the X-Ray actions have no resource-level permissions; PutMetricData is bound to the "
    "Pat/Secrets namespace by the cloudwatch:namespace condition, and every other statement names its ARN.",
    nag=rule("IAM5", AWS_SOLUTIONS),
    applies_to=("Resource::*",),
)
UNRESERVED_BY_DESIGN = Control(
    id="unreserved-by-design",
    text="No reserved concurrency on purpose: a reservation must leave the account's unreserved floor and a single "
    "slot throttles synchronous invokes; advisory locks or idempotent actions bound the effect.",
    nag=rule("LambdaConcurrency", HIPAA, NIST),
    checkov=("CKV_AWS_115",),
)
ON_FAILURE_DESTINATION = Control(
    id="on-failure-destination",
    text="Asynchronous failures go to an on-failure destination (EventInvokeConfig, an encrypted failure queue), "
    "which keeps the request and the error; the rules only recognise the older dead-letter-queue setting.",
    nag=rule("LambdaDLQ", HIPAA, NIST, SERVERLESS),
    checkov=("CKV_AWS_116",),
    checkov_wording={
        "CKV_AWS_116": "Asynchronous failures go to an on-failure destination (EventInvokeConfig), which keeps the "
        "request and the error; checkov only recognises the older dead-letter-queue setting."
    },
)
ENVIRONMENT_NAMES_ONLY = Control(
    id="environment-names-only",
    text="The environment holds only names and ARNs (no secret), encrypted at rest with Lambda's own key; a "
    "customer key would have to admit Lambda in its key policy.",
    checkov=("CKV_AWS_173",),
)
PUBLISHER_OUTSIDE_VPC = Control(
    id="publisher-outside-vpc",
    text="The rotation-age publisher calls only Secrets Manager DescribeSecret and CloudWatch PutMetricData and "
    "reaches nothing in the VPC; its role allows nothing else.",
    nag=rule("LambdaInsideVPC", *REGULATORY),
    checkov=("CKV_AWS_117",),
)
CDK_PROVIDER_FRAMEWORK = Control(
    id="cdk-provider-framework",
    text="CDK's provider framework function relays one CloudFormation event per stack operation: CloudFormation "
    "invokes it synchronously and reports its failures in the stack events, a reservation would only take from "
    "the account's unreserved pool, the default memory is ample, and the function it invokes is traced with X-Ray.",
    nag=rule("LambdaDLQ", SERVERLESS, HIPAA, NIST)
    + rule("LambdaConcurrency", HIPAA, NIST)
    + rule("LambdaDefaultMemorySize", SERVERLESS)
    + rule("LambdaTracing", SERVERLESS),
    checkov=("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"),
    checkov_wording={
        "CKV_AWS_115": "CDK-generated custom-resource provider: runs only during CloudFormation operations of this "
        "stack.",
        "CKV_AWS_116": "CDK-generated custom-resource provider: invoked synchronously by CloudFormation, which "
        "reports failures.",
        "CKV_AWS_117": "CDK-generated custom-resource provider: calls only AWS APIs during deploys, no data-plane "
        "access.",
    },
)
PGBOUNCER_SETTINGS_ONLY = Control(
    id="pgbouncer-settings-only",
    text="The container environment holds only non-secret PgBouncer settings; the login roles' credentials are "
    "injected by ECS from Secrets Manager at task start and never appear in the task definition.",
    nag=rule("ECS2", AWS_SOLUTIONS),
)
NLB_FLOW_LOGS = Control(
    id="nlb-flow-logs",
    text="NLB access logs exist only for TLS listeners; this TCP NLB carries PostgreSQL, whose TLS is end to end, "
    "and VPC flow logs record every flow.",
    nag=rule("ELB2", AWS_SOLUTIONS) + rule("ELBLoggingEnabled", *REGULATORY),
    checkov=("CKV_AWS_91",),
)
STATELESS_LOAD_BALANCER = Control(
    id="stateless-load-balancer",
    text="Outside retained environments the internal NLB is stateless and disposable with its stack; retained "
    "environments (prod) enable deletion protection through the same config switch.",
    nag=rule("ELBDeletionProtectionEnabled", HIPAA, NIST),
)
POSTGRES_TLS_IN_PROTOCOL = Control(
    id="postgres-tls-in-protocol",
    text="PostgreSQL negotiates TLS inside its own protocol, so the NLB passes TCP through and PgBouncer terminates "
    "TLS with client_tls_sslmode=require; the pooler-to-Aurora leg is verify-full TLS.",
    nag=rule("ELBv2ACMCertificateRequired", *REGULATORY),
)

# Every control defined above, in order of definition (the only instances acknowledge() and the skip rules take).
CATALOG: tuple[Control, ...] = tuple(value for value in tuple(globals().values()) if isinstance(value, Control))
