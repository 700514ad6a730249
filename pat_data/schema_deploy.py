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
from pat_data.migrations import ENGINE_VERSION, MigrateResult, Migrator
from pat_data.partitions import MaintenanceReport, PartitionMaintainer, load_config, utc_now

log = logging.getLogger(__name__)

METRIC_NAMESPACE = "Pat/Schema"
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


def emf_metrics(env: str, metrics: Mapping[str, float], *, timestamp_ms: int | None = None) -> dict[str, Any]:
    """A CloudWatch Embedded Metric Format document (print it as one JSON line from Lambda)."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [["Environment"]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in metrics],
                }
            ],
        },
        "Environment": env,
        **metrics,
    }


OPERATIONS = ("info", "plan", "validate", "repair", "baseline", "partitions-status", "partitions-maintain")


def run_operation(
    owner: Target,
    operation: str,
    arguments: Mapping[str, Any],
    *,
    migrations_dir: Path,
    partitions_file: Path,
    env: str,
    now: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """One on-call operation on the schema, as JSON-ready data (used by the Lambda and by `patops --env local`)."""
    migrator = Migrator(owner, migrations_dir, out_of_order=bool(arguments.get("out_of_order", False)))
    if operation == "info":
        rows = migrator.info()
        return {"migrations": [_info_row(row) for row in rows]}
    if operation == "plan":
        return {"pending": [m.script for m in migrator.plan()]}
    if operation == "validate":
        validation = migrator.validate()
        return {
            "valid": not validation.problems,
            "problems": validation.problems,
            "pending": [m.script for m in validation.pending],
            "future": [r.script for r in validation.future],
        }
    if operation == "repair":
        actions = migrator.repair(dry_run=not arguments.get("apply", False))
        return {"applied": bool(arguments.get("apply", False)), "actions": [vars(a) for a in actions]}
    if operation == "baseline":
        migrator.baseline(str(arguments["version"]))
        return {"baseline": str(arguments["version"])}
    maintainer = PartitionMaintainer(owner, load_config(partitions_file, env), now=now)
    if operation in ("partitions-status", "partitions-maintain"):
        report = maintainer.status() if operation == "partitions-status" else maintainer.run()
        return {
            "created": report.created,
            "dropped": report.dropped,
            "detached": report.detached,
            "future_partitions": report.future_partitions,
            "min_future_partitions": report.min_future_partitions,
            "default_rows": report.default_rows,
            "warnings": report.warnings,
        }
    raise ValueError(f"unknown operation {operation!r}: allowed are {', '.join(OPERATIONS)}")


def _info_row(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "description": row.description,
        "script": row.script,
        "state": str(row.state),
        "installed_on": row.installed_on.isoformat() if row.installed_on else None,
        "execution_time_ms": row.execution_time_ms,
    }
