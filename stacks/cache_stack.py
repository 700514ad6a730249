"""Pat-<env>-Cache: ElastiCache in cluster mode (stateful: SNAPSHOT on removal where data is retained)."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.cache import CacheCluster
from pat_constructs.discovery import Discovery
from pat_data import contract
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


class CacheStack(PatStack):
    def __init__(
        self,
        scope: Construct,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        client_security_group: ec2.ISecurityGroup,
        cache_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        cache = config.cache
        super().__init__(
            scope,
            config=config,
            part="Cache",
            description=f"ElastiCache {cache.engine} {cache.engine_version}, {cache.shards} shard(s)",
        )
        self.cache = CacheCluster(
            self,
            "Cache",
            env_name=config.name,
            vpc=vpc,
            client_security_group=client_security_group,
            cache_key=cache_key,
            logs_key=logs_key,
            log_retention_days=config.log_retention_days,
            settings=cache,
        )
        Discovery(
            self,
            "Discovery",
            env_name=config.name,
            values={
                contract.CACHE_CONFIGURATION_ENDPOINT: self.cache.configuration_endpoint,
                contract.CACHE_PORT: str(cache.port),
                contract.CACHE_REPLICATION_GROUP: self.cache.replication_group.ref,
                contract.CACHE_AUTH_SECRET_ARN: self.cache.auth_secret.secret_arn,
            },
        )
