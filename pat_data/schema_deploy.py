"""What the schema migrator does at deploy time and on its daily schedule, independent of Lambda.

`deploy_schema`: wait for the writer, migrate, maintain partitions, make the login roles' passwords match their
secrets. `maintain_partitions`: the daily run. `emf_metrics` shapes the CloudWatch Embedded Metric Format line the
Lambda prints (metrics from a log line: no PutMetricData call, no monitoring endpoint needed in isolated subnets).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
    passwords_rotating: list[str] = field(default_factory=list)  # left alone: a rotation of their secret is running
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


@dataclass(frozen=True)
class LoginSecret:
    """A login role's secret as Secrets Manager holds it at one moment."""

    password: str  # the AWSCURRENT version's
    # The secret has an AWSPENDING version other than its AWSCURRENT one: a rotation is between createSecret and
    # finishSecret (or failed there and left its pending version behind).
    rotating: bool = False


@dataclass(frozen=True)
class PasswordAlignment:
    changed: list[str]  # roles whose password was set to their secret's
    rotating: list[str]  # roles left alone because a rotation of their secret is in progress


class LoginPasswordLockError(RuntimeError):
    """Another deploy held the login-password lock for longer than the bounded wait."""


# Advisory locks live in one database; every deploy of an environment connects to the same one, so this key
# serializes them (the migrator's and partition maintenance's keys are other keys).
LOGIN_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"pat_data.schema_deploy:login_passwords").digest()[:8], "big", signed=True
)
LOGIN_LOCK_TIMEOUT = "60s"


def _logs_in(owner: Target, role: str, password: str) -> bool:
    """Whether `password` logs `role` in; other connection errors are raised, not taken for a wrong password."""
    try:
        with connect(replace(owner, user=role, password=password, connect_timeout=5)) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        if exc.sqlstate not in AUTH_SQLSTATES and "authentication failed" not in str(exc):
            raise
        return False
    return True


def ensure_login_passwords(
    owner: Target,
    logins: Mapping[str, str],
    *,
    read_secret: Callable[[str], LoginSecret] | None = None,
    lock_timeout: str = LOGIN_LOCK_TIMEOUT,
) -> PasswordAlignment:
    """Set each role's password to its secret's, only where the secret's password does not already log in, and
    never while a rotation of that secret is in progress.

    `logins` holds the AWSCURRENT passwords read when the deploy started. `read_secret(role)` reads the secret again
    (AWSCURRENT and whether a rotation is in progress); without it the passwords are taken as they are, with no
    rotation (the local environment).

    Check-then-set runs under a session advisory lock on the owner connection (bounded wait: `lock_timeout`), so two
    concurrent deploys cannot both set a password: the second checks after the first has set it, and finds it logs in.

    Secrets Manager's single-user rotation changes the password itself: createSecret stores AWSPENDING, setSecret
    logs in and sets the database password to it, testSecret logs in with it, finishSecret moves AWSCURRENT to it.
    Between setSecret and finishSecret the database holds AWSPENDING while AWSCURRENT is the old password; setting
    AWSCURRENT then would make testSecret fail, or, after testSecret, leave the database on the old password once
    finishSecret made the new one current. So, only once AWSCURRENT does not log in, the secret is read again:
    - a rotation is in progress: the role is left alone and reported (`rotating`). The rotation owns the password
      until finishSecret, which leaves the secret and the database agreeing; accepting AWSPENDING instead would need
      one more login for the same outcome, and setting it would break clients if the rotation then failed. A
      rotation that failed and left AWSPENDING behind is the rotation alarm's business: finish or cancel it, and the
      next deploy aligns the role;
    - AWSCURRENT changed since the deploy started (a rotation finished meanwhile) and the new one logs in: aligned;
    - otherwise the role is set to AWSCURRENT as read just now.
    What remains is the milliseconds between that read and the ALTER ROLE: a rotation that runs createSecret and
    setSecret inside them fails its testSecret while AWSCURRENT keeps working, and Secrets Manager's next attempt
    succeeds. The password is sent as a client-computed SCRAM verifier, so even a statement log never sees it.
    """
    changed: list[str] = []
    rotating: list[str] = []
    with connect(owner, autocommit=True) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout)))
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOGIN_LOCK_KEY,))
        except psycopg.errors.LockNotAvailable as exc:
            raise LoginPasswordLockError(
                f"another schema deploy held the login-password lock (advisory key {LOGIN_LOCK_KEY}) for "
                f"more than {lock_timeout}: run this deploy again when it has finished"
            ) from exc
        conn.execute("RESET lock_timeout")
        for role, password in logins.items():
            if _logs_in(owner, role, password):
                continue
            secret = read_secret(role) if read_secret else LoginSecret(password)
            if secret.rotating:
                rotating.append(role)
                log.warning("login password left to the rotation in progress", extra={"role": role})
                continue
            if secret.password != password and _logs_in(owner, role, secret.password):
                continue
            verifier = conn.pgconn.encrypt_password(secret.password.encode(), role.encode(), b"scram-sha-256")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier.decode()))
            )
            changed.append(role)
            log.info("login password aligned with its secret", extra={"role": role})
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOGIN_LOCK_KEY,))
    return PasswordAlignment(changed=changed, rotating=rotating)


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
    read_secret: Callable[[str], LoginSecret] | None = None,
) -> DeployResult:
    """Everything a Create/Update of the custom resource does, in order; raises on the first failure.

    `logins` maps each login role to its secret's AWSCURRENT password; `read_secret` re-reads a secret (see
    `ensure_login_passwords`)."""
    config = load_config(partitions_file, env)  # validate the config before touching the database
    migrator = Migrator(owner, migrations_dir, out_of_order=out_of_order)
    wait_for_writer(owner, deadline=deadline)
    result = migrator.migrate()
    report = PartitionMaintainer(owner, config, now=now).run()
    passwords = ensure_login_passwords(owner, logins, read_secret=read_secret)
    return DeployResult(
        migrate=result, partitions=report, passwords_set=passwords.changed, passwords_rotating=passwords.rotating
    )


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
