"""Pat-<env>-Storage: attachments (bucket + its key + access logs + CloudFront), and in environments that
replicate, Pat-<env>-StorageReplica in the disaster-recovery region (deployed first: S3 checks the destination)."""

from __future__ import annotations

from constructs import Construct

from pat_constructs.discovery import Discovery
from pat_constructs.storage import AttachmentStorage, Lifecycle, ReplicaStorage
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


def lifecycle_from(config: EnvironmentConfig) -> Lifecycle:
    storage = config.storage
    return Lifecycle(
        intelligent_tiering_after_days=storage.intelligent_tiering_after_days,
        glacier_after_days=storage.glacier_after_days,
        noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
        abort_incomplete_multipart_days=storage.abort_incomplete_multipart_days,
    )


class StorageReplicaStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, region: str) -> None:
        super().__init__(
            scope,
            config=config,
            part="StorageReplica",
            description=f"attachment replicas in {region} (disaster recovery)",
            region=region,
        )
        self.replica = ReplicaStorage(
            self,
            "Replica",
            env_name=config.name,
            lifecycle=lifecycle_from(config),
            access_log_retention_days=config.storage.access_log_retention_days,
        )


class StorageStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig) -> None:
        super().__init__(
            scope,
            config=config,
            part="Storage",
            description="attachments bucket, key and CloudFront",
            # The distribution id flows to the us-east-1 edge-monitoring stack (CloudFront metrics live there).
            cross_region_references=True,
        )
        storage = config.storage
        self.attachments = AttachmentStorage(
            self,
            "Attachments",
            env_name=config.name,
            lifecycle=lifecycle_from(config),
            cors_origins=storage.cors_origins,
            access_log_retention_days=storage.access_log_retention_days,
            price_class=storage.price_class,
            web_acl_arn=storage.web_acl_arn,
            domain_names=storage.cdn_domain_names,
            certificate_arn=storage.cdn_certificate_arn,
            replication_region=storage.replication_region,
        )
        self.replica: StorageReplicaStack | None = None
        if storage.replication_region is not None:
            self.replica = StorageReplicaStack(scope, config=config, region=storage.replication_region)
            self.add_stack_dependency(
                self.replica, "S3 validates the replication destination bucket when it is configured"
            )
        Discovery(
            self,
            "Discovery",
            env_name=config.name,
            values={
                contract.STORAGE_BUCKET_NAME: self.attachments.bucket.bucket_name,
                contract.STORAGE_KEY_ARN: self.attachments.key.key_arn,
                contract.STORAGE_DISTRIBUTION_ID: self.attachments.distribution.distribution_id,
                contract.STORAGE_DISTRIBUTION_DOMAIN: self.attachments.distribution.distribution_domain_name,
            },
        )
