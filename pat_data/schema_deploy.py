"""What the schema migrator does at deploy time and on its daily schedule, independent of Lambda.

`deploy_schema`: wait for the writer, migrate, maintain partitions, make the login roles' passwords match their
secrets. `maintain_partitions`: the daily run. `emf_metrics` shapes the CloudWatch Embedded Metric Format line the
Lambda prints (metrics from a log line: no PutMetricData call, no monitoring endpoint needed in isolated subnets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pat_data.connect import Target, connect
from pat_data.contract import SCHEMA_METRICS_DIMENSION, SCHEMA_METRICS_NAMESPACE, Operation, SchemaMetric
from pat_data.migrations import ENGINE_VERSION, MigrateResult, Migrator
from pat_data.partitions import MaintenanceReport, PartitionMaintainer, load_config, utc_now

log = logging.getLogger(__name__)

METRIC_NAMESPACE = SCHEMA_METRICS_NAMESPACE
AUTH_SQLSTATES = {"28P01", "28000"}


class WriterUnavailableError(RuntimeError):
    """The writer did not accept connections before the deadline."""


@dataclass(frozen=True)
class DeployResult:
    migrate: MigrateResult
    partitions: MaintenanceReport
    passwords_set: list[str]
    engine_version: str = ENGINE_VERSION


def wait_for_writer(
    target: Target,
    *,
    deadline: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Connect-and-`SELECT 1` with exponential backoff until the writer answers or `deadline` (monotonic) passes.

    A scale-to-zero or freshly created Aurora cluster refuses connections for a while; failing the deploy for that
    would be wrong. Returns the number of attempts. Authentication errors are not retried: they will not heal.
    """
    delay, attempt = 1.0, 0
    while True:
        attempt += 1
        try:
            with connect(replace(target, connect_timeout=5)) as conn:
                conn.execute("SELECT 1")
            return attempt
        except psycopg.OperationalError as exc:
            state = exc.sqlstate or ""
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if state in AUTH_SQLSTATES or "authentication failed" in message:
                raise
            if clock() + delay >= deadline:
                raise WriterUnavailableError(
                    f"writer {target.host}:{target.port} not accepting connections after {attempt} attempts: {message}"
                ) from exc
            log.warning("writer not ready, retrying", extra={"attempt": attempt, "error": message, "delay_s": delay})
            sleep(delay)
            delay = min(delay * 2, 20.0)


def ensure_login_passwords(owner: Target, logins: Mapping[str, str]) -> list[str]:
    """Set each role's password to its secret's, only where the secret's password does not already log in.

    Checking first keeps this from fighting Secrets Manager rotation, which changes the password itself. The
    password is sent as a client-computed SCRAM verifier, so even a statement log never sees it.
    """
    changed: list[str] = []
    for role, password in logins.items():
        try:
            with connect(replace(owner, user=role, password=password, connect_timeout=5)) as conn:
                conn.execute("SELECT 1")
            continue
        except psycopg.OperationalError as exc:
            if exc.sqlstate not in AUTH_SQLSTATES and "authentication failed" not in str(exc):
                raise
        with connect(owner, autocommit=True) as conn:
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        changed.append(role)
        log.info("login password aligned with its secret", extra={"role": role})
    return changed


def deploy_schema(
    owner: Target,
    *,
    migrations_dir: Path,
    partitions_file: Path,
    env: str,
    logins: Mapping[str, str],
    deadline: float,
    out_of_order: bool = False,
    now: Callable[[], datetime] = utc_now,
) -> DeployResult:
    """Everything a Create/Update of the custom resource does, in order; raises on the first failure."""
    config = load_config(partitions_file, env)  # validate the config before touching the database
    migrator = Migrator(owner, migrations_dir, out_of_order=out_of_order)
    wait_for_writer(owner, deadline=deadline)
    result = migrator.migrate()
    report = PartitionMaintainer(owner, config, now=now).run()
    passwords = ensure_login_passwords(owner, logins)
    return DeployResult(migrate=result, partitions=report, passwords_set=passwords)


def maintain_partitions(
    owner: Target, *, partitions_file: Path, env: str, deadline: float, now: Callable[[], datetime] = utc_now
) -> MaintenanceReport:
    config = load_config(partitions_file, env)
    wait_for_writer(owner, deadline=deadline)
    return PartitionMaintainer(owner, config, now=now).run()


def emf_metrics(env: str, metrics: Mapping[SchemaMetric, float], *, timestamp_ms: int | None = None) -> dict[str, Any]:
    """A CloudWatch Embedded Metric Format document (print it as one JSON line from Lambda)."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [[SCHEMA_METRICS_DIMENSION]],
                    "Metrics": [{"Name": name.value, "Unit": "Count"} for name in metrics],
                }
            ],
        },
        SCHEMA_METRICS_DIMENSION: env,
        **{name.value: value for name, value in metrics.items()},
    }


OPERATIONS = tuple(Operation)
LOGIN_CHECK_APPLICATION = "pat-login-check"
# What pg_stat_activity shows in place of another role's state without pg_read_all_stats (Aurora's master user has
# it through rds_superuser; the local owner does not).
HIDDEN_STATE = "hidden (needs pg_read_all_stats)"


def run_operation(
    owner: Target,
    operation: str,
    arguments: Mapping[str, Any],
    *,
    migrations_dir: Path,
    partitions_file: Path,
    env: str,
    logins: Mapping[str, str] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """One on-call operation, as JSON-ready data (used by the Lambda and by `patops --env local`).

    They run where the writer is reachable: in the migrator Lambda inside the VPC (patops invokes it) or against the
    local services. `logins` maps each login role to the password its secret holds now (what `deploy_schema` gets);
    only `check-login` reads it, and the owner's own login is checked with `owner`.
    """
    if operation == Operation.CONNECTIONS:
        return connection_summary(owner)
    if operation == Operation.CHECK_LOGIN:
        role = arguments.get("role")
        if not role:
            raise ValueError("check-login needs arguments.role: the login role to check, e.g. pat_app")
        return check_login(owner, str(role), logins or {})
    if operation in (Operation.PARTITIONS_STATUS, Operation.PARTITIONS_MAINTAIN):
        maintainer = PartitionMaintainer(owner, load_config(partitions_file, env), now=now)
        report = maintainer.status() if operation == Operation.PARTITIONS_STATUS else maintainer.run()
        return {
            "created": report.created,
            "dropped": report.dropped,
            "detached": report.detached,
            "future_partitions": report.future_partitions,
            "min_future_partitions": report.min_future_partitions,
            "default_rows": report.default_rows,
            "warnings": report.warnings,
        }
    migrator = Migrator(owner, migrations_dir, out_of_order=bool(arguments.get("out_of_order", False)))
    return _migration_operation(migrator, operation, arguments)


def _migration_operation(migrator: Migrator, operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    if operation == Operation.INFO:
        rows = migrator.info()
        return {"migrations": [_info_row(row) for row in rows]}
    if operation == Operation.PLAN:
        return {"pending": [m.script for m in migrator.plan()]}
    if operation == Operation.VALIDATE:
        validation = migrator.validate()
        return {
            "valid": not validation.problems,
            "problems": validation.problems,
            "pending": [m.script for m in validation.pending],
            "future": [r.script for r in validation.future],
        }
    if operation == Operation.REPAIR:
        actions = migrator.repair(dry_run=not arguments.get("apply", False))
        return {"applied": bool(arguments.get("apply", False)), "actions": [vars(a) for a in actions]}
    if operation == Operation.BASELINE:
        migrator.baseline(str(arguments["version"]))
        return {"baseline": str(arguments["version"])}
    raise ValueError(f"unknown operation {operation!r}: allowed are {', '.join(OPERATIONS)}")


def connection_summary(owner: Target) -> dict[str, Any]:
    """Client sessions grouped by user, application and state (`patops db connections`), against max_connections.

    Sessions of roles whose details the owner may not read still count: they are the ones with a database but no
    backend type, under the state HIDDEN_STATE.
    """
    with connect(owner) as conn:
        rows = conn.execute(
            "SELECT usename, application_name, coalesce(state, %s), count(*), max(now() - state_change)::text "
            "FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' "
            "OR (backend_type IS NULL AND datname IS NOT NULL AND usename IS NOT NULL) "
            "GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3",
            (HIDDEN_STATE,),
        ).fetchall()
        setting = conn.execute("SELECT current_setting('max_connections')::int").fetchone()
    groups = [
        {"user": u, "application": a, "state": s, "count": int(c), "longest_in_state": d} for u, a, s, c, d in rows
    ]
    return {
        "connections": groups,
        "total": sum(group["count"] for group in groups),
        "max_connections": int(setting[0]) if setting else None,
    }


def check_login(owner: Target, role: str, logins: Mapping[str, str]) -> dict[str, Any]:
    """Log in as `role` with its secret's current password and `SELECT 1`: ok, or the server's error text.

    After a rotation has finished, AWSCURRENT holds the new password, so this is the check that the rotation really
    changed the role's password. The result never contains a password.
    """
    if role == owner.user:
        target = owner
    elif role in logins:
        target = replace(owner, user=role, password=logins[role])
    else:
        allowed = ", ".join(sorted({owner.user, *logins}))
        raise ValueError(f"check-login: no secret for role {role!r} here: allowed are {allowed}")
    try:
        with connect(replace(target, connect_timeout=5, application_name=LOGIN_CHECK_APPLICATION)) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if target.password:  # libpq does not echo passwords; make sure no message ever does
            message = message.replace(target.password, "********")
        return {"role": role, "ok": False, "error": message}
    return {"role": role, "ok": True, "error": None}


def _info_row(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "description": row.description,
        "script": row.script,
        "state": str(row.state),
        "installed_on": row.installed_on.isoformat() if row.installed_on else None,
        "execution_time_ms": row.execution_time_ms,
    }
