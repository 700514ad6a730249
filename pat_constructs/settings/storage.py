"""Settings of `pat_constructs.storage`: the attachment bucket, its lifecycle, access logs, CloudFront, replication."""

from __future__ import annotations

from dataclasses import dataclass

CLOUDFRONT_PRICE_CLASSES = ("PriceClass_100", "PriceClass_200", "PriceClass_All")


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Attachment bucket, its access-log bucket and the CloudFront distribution in front of it.

    The replica bucket (`ReplicaStorage`) follows the same lifecycle and access-log retention.
    """

    # The https origins allowed to upload with presigned URLs. Required.
    cors_origins: tuple[str, ...]
    # Intelligent-Tiering from day N (objects are immutable, read mostly in their first weeks).
    intelligent_tiering_after_days: int = 30
    # Glacier Flexible Retrieval from day N; None keeps objects in Intelligent-Tiering.
    glacier_after_days: int | None = None
    # Overwritten or deleted versions are kept this many days.
    noncurrent_version_expiration_days: int = 30
    # Unfinished multipart uploads are aborted after this many days.
    abort_incomplete_multipart_days: int = 7
    # S3 server access logs and CloudFront standard logs expire after this many days.
    access_log_retention_days: int = 90
    # Cross-region replication to a replica bucket with its own key in this region; None = replication-ready only.
    replication_region: str | None = None
    # One of CLOUDFRONT_PRICE_CLASSES.
    price_class: str = "PriceClass_100"
    # A WAFv2 web ACL (CLOUDFRONT scope) in front of the distribution; None = no WAF.
    web_acl_arn: str | None = None
    # A custom domain with an ACM certificate (us-east-1) lets CloudFront enforce TLSv1.2_2021; the default
    # *.cloudfront.net certificate has a fixed TLSv1 policy.
    cdn_domain_names: tuple[str, ...] = ()
    cdn_certificate_arn: str | None = None
