"""A private PostgreSQL (Aurora's version) + PgBouncer (transaction mode) for the data tests, started once per session.

The session starts the way a deploy does: `pat_owner`, made like Aurora's master user (a non-superuser that may
create roles and databases), owns database `pat`, and `deploy_schema` migrates it, which creates the login roles
(`pat_app`, `pat_readonly`, V001) and sets their passwords as SCRAM verifiers. Databases for the schema tests are
created per test (or per module), owned by `pat_owner`; the roles are cluster-wide, so they already exist there.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from pat_data.connect import Target, target_from_dsn
from pat_data.local import (
    LocalPgBouncer,
    LocalPostgres,
    LocalRedisCluster,
    create_owner_database,
    postgres_with_pgbouncer,
)
from pat_data.migrations import Migrator
from pat_data.partitions import PartitionMaintainer, load_config
from pat_data.schema_deploy import deploy_schema

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "schema" / "migrations"
PARTITIONS = ROOT / "schema" / "partitions.toml"
APP_USERS = {"pat_app": "local-app-password", "pat_readonly": "local-readonly-password"}
OWNER, OWNER_PASSWORD = "pat_owner", "local-owner-password"  # the cluster's master user and its secret's password
_names = itertools.count(1)


@pytest.fixture(scope="session")
def data_tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPostgres, LocalPgBouncer]]:
    root = tmp_path_factory.mktemp("data-tier")
    with postgres_with_pgbouncer(root, APP_USERS) as (postgres, bouncer):
        deploy_schema(
            target_from_dsn(create_owner_database(postgres, owner=OWNER, password=OWNER_PASSWORD)),
            migrations_dir=MIGRATIONS,
            partitions_file=PARTITIONS,
            env="dev",
            logins=APP_USERS,
            deadline=time.monotonic() + 60,
        )
        yield postgres, bouncer


@pytest.fixture(scope="session")
def new_database(data_tier: tuple[LocalPostgres, LocalPgBouncer]) -> Callable[[], Target]:
    """Factory: a fresh, empty database owned by pat_owner; returns the owner's (direct) target."""
    postgres, _ = data_tier

    def create() -> Target:
        dbname = f"pat_test_{next(_names)}"
        return target_from_dsn(create_owner_database(postgres, owner=OWNER, password=OWNER_PASSWORD, dbname=dbname))

    return create


@pytest.fixture(scope="session")
def pat_database(new_database: Callable[[], Target]) -> Target:
    """The full schema with this month's partitions (prod retention), shared by read-mostly schema tests."""
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    PartitionMaintainer(owner, load_config(PARTITIONS, "prod"), now=lambda: datetime.now(UTC)).run()
    return owner


def app_connection(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], database: Target, user: str = "pat_app"
) -> psycopg.Connection[tuple[object, ...]]:
    """A connection as an application role through PgBouncer in transaction mode, as production clients do."""
    _, bouncer = data_tier
    return psycopg.connect(bouncer.dsn(user, dbname=database.dbname), prepare_threshold=None)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A private 3-master Redis cluster for the cache tests (tests that kill a node start their own)."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()
