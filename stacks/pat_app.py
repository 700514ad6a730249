"""Builds one environment's stacks and wires them together (shared by app.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from stacks.access_stack import AccessStack
from stacks.backup_dr_stack import BackupDrStack
from stacks.cache_stack import CacheStack
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack
from stacks.edge_monitoring_stack import EdgeMonitoringStack
from stacks.keys_stack import KeysStack
from stacks.network_stack import NetworkStack
from stacks.ops_stack import OpsStack
from stacks.schema_stack import SchemaStack
from stacks.storage_replica_stack import StorageReplicaStack
from stacks.storage_stack import StorageStack


@dataclass(frozen=True)
class PatEnvironment:
    config: EnvironmentConfig
    keys: KeysStack
    network: NetworkStack
    data: DataStack
    access: AccessStack
    schema: SchemaStack
    cache: CacheStack
    storage: StorageStack
    # In the disaster-recovery region, where config replicates attachments (storage.replication_region).
    storage_replica: StorageReplicaStack | None
    ops: OpsStack
    # In the disaster-recovery region, where config copies backups (backup.copy_region).
    backup_dr: BackupDrStack | None
    edge: EdgeMonitoringStack


def build_environment(scope: Construct, config: EnvironmentConfig) -> PatEnvironment:
    """Every stack of one environment, in a fixed order, with the dependencies CloudFormation cannot infer."""
    keys = KeysStack(scope, config=config)
    network = NetworkStack(scope, config=config, logs_key=keys.keys.logs)
    data = DataStack(scope, config=config, vpc=network.vpc, database_key=keys.keys.database, logs_key=keys.keys.logs)
    access = AccessStack(
        scope, config=config, vpc=network.vpc, data=data, database_key=keys.keys.database, logs_key=keys.keys.logs
    )
    schema = SchemaStack(
        scope, config=config, vpc=network.vpc, data=data, database_key=keys.keys.database, logs_key=keys.keys.logs
    )
    cache = CacheStack(
        scope,
        config=config,
        vpc=network.vpc,
        client_security_group=data.client_security_group,
        cache_key=keys.keys.cache,
        logs_key=keys.keys.logs,
    )
    storage = StorageStack(scope, config=config)
    storage_replica = None
    if config.storage.replication_region is not None:
        storage_replica = StorageReplicaStack(scope, config=config, region=config.storage.replication_region)
        storage.add_stack_dependency(
            storage_replica, "S3 validates the replication destination bucket when it is configured"
        )
    ops = OpsStack(scope, config=config, logs_key=keys.keys.logs, backup_key=keys.keys.backup)
    backup_dr = None
    if config.backup.copy_region is not None:
        backup_dr = BackupDrStack(scope, config=config, region=config.backup.copy_region)
        ops.add_stack_dependency(backup_dr, "the copy destination vault must exist before the plan")
    # The rotation-age alarms and the RotationFailed rule (Data stack) notify the on-call topic by its fixed ARN.
    data.add_stack_dependency(ops, "rotation-age alarms and the RotationFailed rule notify the on-call topic")
    # The pooler's alarms publish to the on-call topic by its fixed ARN: the topic must exist first.
    access.add_stack_dependency(ops, "PgBouncer alarms notify the on-call topic")
    # The pooler's only logins (pat_app, pat_readonly) are created and given their passwords by the Schema stack's
    # migrator: on a first deploy RDS Proxy's targets (and PgBouncer's auth) would wait on roles that do not exist.
    access.add_stack_dependency(schema, "the pooler's logins are created by the schema migrator")
    edge = EdgeMonitoringStack(scope, config=config, distribution_id=storage.attachments.distribution.distribution_id)
    return PatEnvironment(
        config=config,
        keys=keys,
        network=network,
        data=data,
        access=access,
        schema=schema,
        cache=cache,
        storage=storage,
        storage_replica=storage_replica,
        ops=ops,
        backup_dr=backup_dr,
        edge=edge,
    )
