"""ElastiCache (Redis OSS or Valkey) in cluster mode, TLS + AUTH, CMK at rest, logs to encrypted log groups.

Why cluster mode and not what seed 001 asked for (AOF + Sentinel): ElastiCache does not support AOF in cluster
mode, and failover is managed by the service (a replica in another AZ is promoted automatically), which is what
Sentinel would do. Durability comes from the replicas (each shard survives losing a node or an AZ) and daily
snapshots; the cache holds nothing that PostgreSQL does not, so losing it costs latency, not data.
"""

from __future__ import annotations

import string

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pat_constructs import controls
from pat_constructs.compliance import acknowledge
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.secrets import generated_secret
from pat_constructs.settings.cache import CacheSettings
from pat_data.contract import PhysicalNames

# ElastiCache AUTH tokens: 16-128 printable characters; of the symbols only !&#$^<>- are allowed. Letters and
# digits alone (64 of them) give ~380 bits and never need escaping in a URL, shell or JSON.
AUTH_TOKEN_EXCLUDED_CHARACTERS = string.punctuation + " "
AUTH_TOKEN_LENGTH = 64
PARAMETER_FAMILIES = {("redis", "7"): "redis7", ("valkey", "7"): "valkey7", ("valkey", "8"): "valkey8"}


class CacheCluster(Construct):
    """A cluster-mode replication group: `shards` node groups of 1 primary + `replicas_per_shard`, Multi-AZ."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        client_security_group: ec2.ISecurityGroup,
        cache_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention_days: int,
        settings: CacheSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        engine, engine_version, port = settings.engine, settings.engine_version, settings.port
        self.port = port
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description=f"Pat {env_name} cache", allow_all_outbound=False
        )
        # Applications and patops only (the client group); nothing else reaches the cache port.
        self.security_group.add_ingress_rule(client_security_group, ec2.Port.tcp(port), "Clients to the cache (TLS)")
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "SubnetGroup",
            description=f"Pat {env_name} cache: isolated subnets",
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        family = PARAMETER_FAMILIES[(engine, engine_version.split(".", maxsplit=1)[0])]
        parameters = elasticache.CfnParameterGroup(
            self,
            "Parameters",
            cache_parameter_group_family=family,
            description=f"Pat {env_name} cache ({family}, cluster mode)",
            properties={
                "cluster-enabled": "yes",
                # A pure cache: PostgreSQL is the source of truth, so any key may go under memory pressure. Values
                # and tag sets all carry TTLs, which bounds how stale a missed invalidation can be.
                "maxmemory-policy": settings.eviction_policy,
                # No keyspace notifications: nothing subscribes, and they cost CPU on every write.
                "notify-keyspace-events": "",
            },
        )
        self.auth_secret: secretsmanager.ISecret = generated_secret(
            self,
            "AuthSecret",
            description=f"Pat {env_name} cache AUTH token (rotate with: patops cache rotate-auth --env {env_name})",
            encryption_key=cache_key,
            template={"username": "default"},
            generate_key="token",
            length=AUTH_TOKEN_LENGTH,
            exclude_characters=AUTH_TOKEN_EXCLUDED_CHARACTERS,
        )
        acknowledge(self.auth_secret, controls.CACHE_AUTH_ROTATED_BY_PATOPS)
        slow_log = encrypted_log_group(self, "SlowLog", encryption_key=logs_key, retention_days=log_retention_days)
        engine_log = encrypted_log_group(self, "EngineLog", encryption_key=logs_key, retention_days=log_retention_days)

        def delivery(
            log_type: str, group_name: str
        ) -> elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty:
            return elasticache.CfnReplicationGroup.LogDeliveryConfigurationRequestProperty(
                destination_type="cloudwatch-logs",
                destination_details=elasticache.CfnReplicationGroup.DestinationDetailsProperty(
                    cloud_watch_logs_details=elasticache.CfnReplicationGroup.CloudWatchLogsDestinationDetailsProperty(
                        log_group=group_name
                    )
                ),
                log_format="json",
                log_type=log_type,
            )

        self.replication_group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_id=PhysicalNames(env_name).cache_replication_group,
            replication_group_description=f"Pat {env_name} cache (cluster mode)",
            engine=engine,
            engine_version=engine_version,
            cache_node_type=settings.node_type,
            num_node_groups=settings.shards,
            replicas_per_node_group=settings.replicas_per_shard,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            cache_parameter_group_name=parameters.ref,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.security_group.security_group_id],
            port=port,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            at_rest_encryption_enabled=True,
            kms_key_id=cache_key.key_arn,
            auth_token=self.auth_secret.secret_value_from_json("token").unsafe_unwrap(),
            snapshot_retention_limit=settings.snapshot_retention_days,
            snapshot_window=settings.snapshot_window,
            preferred_maintenance_window=settings.maintenance_window,
            auto_minor_version_upgrade=True,
            log_delivery_configurations=[
                delivery("slow-log", slow_log.log_group_name),
                delivery("engine-log", engine_log.log_group_name),
            ],
        )
        self.configuration_endpoint = self.replication_group.attr_configuration_end_point_address
