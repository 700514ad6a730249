"""Connections from a secret: the one way pat_data code, the migrator Lambda and patops reach PostgreSQL.

A target is either a Secrets Manager secret (the JSON RDS writes: host, port, username, password, dbname) or a
local DSN. Pooled targets (PgBouncer in transaction mode, RDS Proxy) get `prepare_threshold=None`: psycopg would
otherwise prepare a statement after 5 executions on one server connection and run it on another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg_pool import ConnectionPool

DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_APPLICATION_NAME = "pat"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where and how to connect. `pooled` marks PgBouncer/RDS Proxy targets; migrations must use a direct one."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = None
    pooled: bool = False
    sslmode: str = "verify-full"
    sslrootcert: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    application_name: str = DEFAULT_APPLICATION_NAME

    def with_host(self, host: str, port: int | None = None, *, pooled: bool) -> Target:
        """The same credentials against another endpoint (the pooler, the reader)."""
        return replace(self, host=host, port=port or self.port, pooled=pooled)

    def conninfo(self) -> str:
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
            # Detect a dead peer (failover, NLB idle drop) within ~1 minute instead of the kernel's 2 hours.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        return conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})

    def connect_kwargs(self) -> dict[str, Any]:
        return {"prepare_threshold": None} if self.pooled else {}

    def __repr__(self) -> str:  # never print the password
        return f"Target({self.user}@{self.host}:{self.port}/{self.dbname}, pooled={self.pooled})"


class SecretFormatError(ValueError):
    """A secret or DSN that cannot describe a PostgreSQL target."""


def target_from_secret(
    secret: Mapping[str, Any] | str,
    *,
    pooled: bool = False,
    sslmode: str = "verify-full",
    sslrootcert: str | None = None,
    application_name: str = DEFAULT_APPLICATION_NAME,
) -> Target:
    """Build a Target from an RDS-style secret (dict or its JSON string)."""
    data = json.loads(secret) if isinstance(secret, str) else dict(secret)
    missing = [key for key in ("host", "username", "password") if not data.get(key)]
    if missing:
        raise SecretFormatError(
            f"secret is missing {', '.join(missing)}: attach it to the cluster (SecretTargetAttachment) so RDS "
            "writes host/port/dbname"
        )
    return Target(
        host=data["host"],
        port=int(data.get("port", 5432)),
        dbname=data.get("dbname") or "pat",
        user=data["username"],
        password=data["password"],
        pooled=pooled,
        sslmode=sslmode,
        sslrootcert=sslrootcert,
        application_name=application_name,
    )


def target_from_dsn(dsn: str, *, pooled: bool = False, application_name: str = DEFAULT_APPLICATION_NAME) -> Target:
    """Build a Target from a libpq DSN/URI (the local environment and tests)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SecretFormatError(f"not a PostgreSQL DSN: {exc}") from exc
    return Target(
        host=str(params.get("host", "localhost")),
        port=int(str(params.get("port", 5432))),
        dbname=str(params.get("dbname", "postgres")),
        user=str(params.get("user", "postgres")),
        password=str(params["password"]) if "password" in params else None,
        pooled=pooled,
        sslmode=str(params.get("sslmode", "prefer")),
        application_name=application_name,
    )


def target_from_secrets_manager(
    secret_id: str, *, client: Any, pooled: bool = False, sslrootcert: str | None = None
) -> Target:
    """Resolve a Secrets Manager secret (boto3 `secretsmanager` client passed in, so callers control the session)."""
    value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    return target_from_secret(value, pooled=pooled, sslrootcert=sslrootcert)


def connect(target: Target, **kwargs: Any) -> psycopg.Connection[Any]:
    """One connection; pooled targets never use server-side prepared statements."""
    return psycopg.connect(target.conninfo(), **{**target.connect_kwargs(), **kwargs})


def pool(
    target: Target, *, min_size: int = 1, max_size: int = 10, name: str | None = None, **kwargs: Any
) -> ConnectionPool:
    """A psycopg_pool pool with the same rules as `connect`; opened before it is returned (fails fast)."""
    created = ConnectionPool(
        target.conninfo(),
        min_size=min_size,
        max_size=max_size,
        name=name or target.application_name,
        kwargs={**target.connect_kwargs(), **kwargs},
        open=False,
        check=ConnectionPool.check_connection,
    )
    created.open(wait=True, timeout=target.connect_timeout * 2)
    return created
