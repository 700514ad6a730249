"""Pat-<env>-Storage: attachments (bucket + its key + access logs + CloudFront); where configured, replicating to
Pat-<env>-StorageReplica (stacks/storage_replica_stack.py)."""

from __future__ import annotations

from constructs import Construct

from pat_constructs.discovery import Discovery
from pat_constructs.storage import AttachmentStorage
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


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
        self.attachments = AttachmentStorage(self, "Attachments", env_name=config.name, settings=config.storage)
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
