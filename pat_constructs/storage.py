"""Attachment storage: a KMS-encrypted, versioned bucket behind CloudFront (OAC), its access-log bucket, and
optional cross-region replication to a replica bucket with its own key.

The circular dependency CDK warns about (`@aws-cdk/aws-cloudfront-origins:wildcardKeyPolicyForOac`) comes from
key policy -> distribution -> bucket -> key. We break the distribution -> bucket edge instead of widening the key
policy: the bucket has a deterministic name, and the distribution's origin is built from that name, not from the
bucket resource. The key policy can then name exactly this distribution's ARN, and the bucket policy too.
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws, Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pat_constructs import controls
from pat_constructs.checkov import CDN_FACTS
from pat_constructs.compliance import acknowledge
from pat_constructs.keys import STORAGE, STORAGE_REPLICA, data_key
from pat_constructs.settings.storage import StorageSettings
from pat_data.contract import PhysicalNames

PRICE_CLASSES = {
    "PriceClass_100": cloudfront.PriceClass.PRICE_CLASS_100,
    "PriceClass_200": cloudfront.PriceClass.PRICE_CLASS_200,
    "PriceClass_All": cloudfront.PriceClass.PRICE_CLASS_ALL,
}
# Attachment keys are content-addressed (tenants/<tenant>/<sha256>): an object never changes under its key.
IMMUTABLE_TTL = Duration.days(365)


def attachment_bucket_name(env_name: str, region: str) -> str:
    """Deterministic, account- and region-unique: both the distribution and the replication rule derive it."""
    return PhysicalNames(env_name).attachment_bucket(Aws.ACCOUNT_ID, region)


def replica_bucket_name(env_name: str, region: str) -> str:
    return PhysicalNames(env_name).attachment_replica_bucket(Aws.ACCOUNT_ID, region)


def replica_key_alias(env_name: str) -> str:
    return PhysicalNames(env_name).key_alias(STORAGE_REPLICA.name)


def lifecycle_rules(settings: StorageSettings) -> list[s3.LifecycleRule]:
    """Tier current versions down as they age, expire noncurrent versions and abandoned multipart uploads."""
    transitions = [
        s3.Transition(
            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
            transition_after=Duration.days(settings.intelligent_tiering_after_days),
        )
    ]
    if settings.glacier_after_days is not None:
        transitions.append(
            s3.Transition(
                storage_class=s3.StorageClass.GLACIER, transition_after=Duration.days(settings.glacier_after_days)
            )
        )
    return [
        s3.LifecycleRule(
            id="tier-current-versions",
            transitions=transitions,
            abort_incomplete_multipart_upload_after=Duration.days(settings.abort_incomplete_multipart_days),
        ),
        s3.LifecycleRule(
            id="expire-noncurrent-versions",
            noncurrent_version_expiration=Duration.days(settings.noncurrent_version_expiration_days),
            expired_object_delete_marker=True,
        ),
    ]


def data_bucket(
    scope: Construct,
    *,
    bucket_name: str,
    key: kms.IKey,
    settings: StorageSettings,
    logs: s3.IBucket,
    server_access_logs_prefix: str,
    cors: list[s3.CorsRule] | None = None,
) -> s3.Bucket:
    """Attachment data (primary or replica): own CMK with bucket key, private, TLS 1.2+, versioned, logged."""
    return s3.Bucket(
        scope,
        "Bucket",
        bucket_name=bucket_name,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=lifecycle_rules(settings),
        server_access_logs_bucket=logs,
        server_access_logs_prefix=server_access_logs_prefix,
        cors=cors,
    )


class AccessLogBucket(Construct):
    """Target of S3 server access logs and CloudFront standard logs; expires its objects after `retention_days`."""

    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int, acls_for_cloudfront: bool) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # S3 server access logging can only deliver to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            # CloudFront standard logging writes with the awslogsdelivery ACL; S3 server access logs do not need it.
            object_ownership=(
                s3.ObjectOwnership.BUCKET_OWNER_PREFERRED
                if acls_for_cloudfront
                else s3.ObjectOwnership.BUCKET_OWNER_ENFORCED
            ),
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-logs",
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        # cdk-nag does not ask a log-target bucket to log its own access; encryption and replication it does ask.
        acknowledge(self.bucket, controls.ACCESS_LOGS_SSE_S3)
        acknowledge(self.bucket, controls.ACCESS_LOGS_NOT_REPLICATED)


class AttachmentStorage(Construct):
    """The attachment bucket (SSE-KMS with its own key), access logs, CloudFront with OAC, optional replication."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: StorageSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = data_key(self, "Key", env_name=env_name, data_class=STORAGE)
        self.logs = AccessLogBucket(
            self, "AccessLogs", retention_days=settings.access_log_retention_days, acls_for_cloudfront=True
        )
        self.bucket_name = attachment_bucket_name(env_name, Aws.REGION)
        self.bucket = data_bucket(
            self,
            bucket_name=self.bucket_name,
            key=self.key,
            settings=settings,
            logs=self.logs.bucket,
            server_access_logs_prefix="s3-access/attachments/",
            # Browsers upload with presigned PUT/POST URLs from these origins only; downloads go through CloudFront.
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.POST],
                    allowed_origins=list(settings.cors_origins),
                    allowed_headers=["content-type", "content-md5", "x-amz-*"],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
        )
        self.distribution = self._distribution(env_name, settings)
        distribution_arn = (
            f"arn:{Aws.PARTITION}:cloudfront::{Aws.ACCOUNT_ID}:distribution/{self.distribution.distribution_id}"
        )
        cloudfront_principal = iam.ServicePrincipal("cloudfront.amazonaws.com")
        # Exactly this distribution may read objects (bucket policy) and decrypt them (key policy).
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontOriginAccessControlRead",
                principals=[cloudfront_principal],
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects("*")],
                conditions={"StringEquals": {"AWS:SourceArn": distribution_arn}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudFrontOriginAccessControlDecrypt",
                principals=[cloudfront_principal],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"AWS:SourceArn": distribution_arn}},
            )
        )
        self.replication_role: iam.Role | None = None
        if settings.replication_region is not None:
            self._replicate(env_name, settings.replication_region)
        else:
            acknowledge(self.bucket, controls.REPLICATION_PER_ENVIRONMENT)

    def _distribution(self, env_name: str, settings: StorageSettings) -> cloudfront.Distribution:
        web_acl_arn, certificate_arn = settings.web_acl_arn, settings.cdn_certificate_arn
        origin_bucket = s3.Bucket.from_bucket_attributes(
            self, "OriginBucket", bucket_name=self.bucket_name, region=Aws.REGION
        )
        cache_policy = cloudfront.CachePolicy(
            self,
            "ImmutableCachePolicy",
            comment="Content-addressed attachments: cache long, key on the path only",
            default_ttl=IMMUTABLE_TTL,
            min_ttl=Duration.days(1),
            max_ttl=IMMUTABLE_TTL,
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            header_behavior=cloudfront.CacheHeaderBehavior.none(),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.none(),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Security headers for user-supplied attachments",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(730), include_subdomains=True, preload=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                # Attachments are untrusted user content: an HTML attachment must not run script in our origin.
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
                    override=True,
                ),
                xss_protection=cloudfront.ResponseHeadersXSSProtection(protection=True, mode_block=True, override=True),
            ),
        )
        distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"Pat {env_name} attachments",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(
                    origin_bucket, origin_access_levels=[cloudfront.AccessLevel.READ]
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cache_policy,
                response_headers_policy=headers,
                compress=True,
            ),
            price_class=PRICE_CLASSES[settings.price_class],
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            domain_names=list(settings.cdn_domain_names) or None,
            certificate=(
                acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn) if certificate_arn else None
            ),
            # Only effective with a custom certificate (the default one is fixed at TLSv1, acknowledged below).
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021 if certificate_arn else None,
            enable_logging=True,
            log_bucket=self.logs.bucket,
            log_file_prefix="cloudfront/attachments/",
            web_acl_id=web_acl_arn,
        )
        self._acknowledge_distribution(
            distribution, has_certificate=certificate_arn is not None, has_waf=bool(web_acl_arn)
        )
        # Read by the checkov skip rules (pat_constructs/checkov.py), which cannot resolve the lazy config early.
        distribution.node.add_metadata(CDN_FACTS, {"web_acl": bool(web_acl_arn), "certificate": bool(certificate_arn)})
        # The bucket and key policies are written in this construct (they must name the distribution's ARN).
        Annotations.of(distribution).acknowledge_warning(
            "@aws-cdk/aws-cloudfront-origins:updateImportedBucketPolicyOac",
            "The bucket policy granting this distribution is added on the bucket itself in AttachmentStorage.",
        )
        return distribution

    @staticmethod
    def _acknowledge_distribution(
        distribution: cloudfront.Distribution, *, has_certificate: bool, has_waf: bool
    ) -> None:
        acknowledge(distribution, controls.GLOBAL_DELIVERY)
        if not has_waf:
            acknowledge(distribution, controls.NO_WEB_ACL)
        if not has_certificate:
            acknowledge(distribution, controls.DEFAULT_CDN_CERTIFICATE)

    def _replicate(self, env_name: str, replication_region: str) -> None:
        destination_arn = f"arn:{Aws.PARTITION}:s3:::{replica_bucket_name(env_name, replication_region)}"
        replica_key = f"arn:{Aws.PARTITION}:kms:{replication_region}:{Aws.ACCOUNT_ID}:{replica_key_alias(env_name)}"
        role = iam.Role(self, "ReplicationRole", assumed_by=iam.ServicePrincipal("s3.amazonaws.com"))
        policy = iam.ManagedPolicy(
            self,
            "ReplicationPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetReplicationConfiguration", "s3:ListBucket"], resources=[self.bucket.bucket_arn]
                ),
                iam.PolicyStatement(
                    actions=[
                        "s3:GetObjectVersionForReplication",
                        "s3:GetObjectVersionAcl",
                        "s3:GetObjectVersionTagging",
                    ],
                    resources=[self.bucket.arn_for_objects("*")],
                ),
                iam.PolicyStatement(
                    actions=["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                    resources=[f"{destination_arn}/*"],
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.key.key_arn]),
                iam.PolicyStatement(
                    actions=["kms:Encrypt", "kms:GenerateDataKey"],
                    resources=[f"arn:{Aws.PARTITION}:kms:{replication_region}:{Aws.ACCOUNT_ID}:key/*"],
                    # Only the replica key, named by its alias (its id is unknown to this region's stack).
                    conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": replica_key_alias(env_name)}},
                ),
            ],
        )
        self.replication_role = role
        self._acknowledge_replication(policy, env_name, replication_region)
        cfn = self.bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        cfn.replication_configuration = s3.CfnBucket.ReplicationConfigurationProperty(
            role=role.role_arn,
            rules=[
                s3.CfnBucket.ReplicationRuleProperty(
                    id="attachments-to-dr-region",
                    status="Enabled",
                    priority=1,
                    filter=s3.CfnBucket.ReplicationRuleFilterProperty(prefix=""),
                    delete_marker_replication=s3.CfnBucket.DeleteMarkerReplicationProperty(status="Enabled"),
                    source_selection_criteria=s3.CfnBucket.SourceSelectionCriteriaProperty(
                        sse_kms_encrypted_objects=s3.CfnBucket.SseKmsEncryptedObjectsProperty(status="Enabled")
                    ),
                    destination=s3.CfnBucket.ReplicationDestinationProperty(
                        bucket=destination_arn,
                        encryption_configuration=s3.CfnBucket.EncryptionConfigurationProperty(
                            replica_kms_key_id=replica_key
                        ),
                    ),
                )
            ],
        )

    def _acknowledge_replication(self, policy: iam.ManagedPolicy, env_name: str, replication_region: str) -> None:
        bucket_logical_id = Stack.of(self).resolve(self.bucket.node.default_child.logical_id)  # type: ignore[union-attr]
        replica = replica_bucket_name(env_name, replication_region).replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")
        acknowledge(
            policy,
            controls.S3_REPLICATION_ROLE,
            applies_to=[
                f"Resource::<{bucket_logical_id}.Arn>/*",
                f"Resource::arn:<AWS::Partition>:s3:::{replica}/*",
                f"Resource::arn:<AWS::Partition>:kms:{replication_region}:<AWS::AccountId>:key/*",
            ],
        )


class ReplicaStorage(Construct):
    """The disaster-recovery copy in another region: own key, versioned, SSE-KMS, same lifecycle, own access logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: StorageSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = data_key(self, "Key", env_name=env_name, data_class=STORAGE_REPLICA)
        self.logs = AccessLogBucket(
            self, "AccessLogs", retention_days=settings.access_log_retention_days, acls_for_cloudfront=False
        )
        self.bucket = data_bucket(
            self,
            bucket_name=replica_bucket_name(env_name, Aws.REGION),
            key=self.key,
            settings=settings,
            logs=self.logs.bucket,
            server_access_logs_prefix="s3-access/attachments-replica/",
        )
        acknowledge(self.bucket, controls.REPLICATION_DESTINATION)
