"""Builds one environment's stacks and wires them together (shared by app.py and the tests)."""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from stacks.access_stack import AccessStack
from stacks.cache_stack import CacheStack
from stacks.config import EnvironmentConfig
from stacks.data_stack import DataStack
from stacks.keys_stack import KeysStack
from stacks.network_stack import NetworkStack
from stacks.ops_stack import EdgeMonitoringStack, OpsStack
from stacks.schema_stack import SchemaStack
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
    ops: OpsStack
    edge: EdgeMonitoringStack


def build_environment(scope: Construct, config: EnvironmentConfig) -> PatEnvironment:
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
    ops = OpsStack(scope, config=config, logs_key=keys.keys.logs, backup_key=keys.keys.backup)
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
        ops=ops,
        edge=edge,
    )
