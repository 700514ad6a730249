"""Pat-<env>-StorageReplica: attachment replicas in the disaster-recovery region (deployed first: S3 checks the
replication destination when the rule is created)."""

from __future__ import annotations

from constructs import Construct

from pat_constructs.storage import ReplicaStorage
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


class StorageReplicaStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, region: str) -> None:
        super().__init__(
            scope,
            config=config,
            part="StorageReplica",
            description=f"attachment replicas in {region} (disaster recovery)",
            region=region,
        )
        self.replica = ReplicaStorage(self, "Replica", env_name=config.name, settings=config.storage)
