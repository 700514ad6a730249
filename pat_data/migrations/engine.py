"""The migration engine: Flyway semantics (history, checksums, validate/migrate/info/baseline/repair) on psycopg 3.

Safe to run at deploy time in prod, concurrently and again after a failure:
- one session-level advisory lock serializes migrators (bounded wait; the timeout names the holder);
- one transaction per file with `lock_timeout`/`statement_timeout`, retried a few times when a lock is not granted;
- files marked `-- pat:transactional=false` run statement by statement in autocommit (CREATE INDEX CONCURRENTLY);
  a failure there is recorded as a failed row that blocks further runs until an explicit `repair`;
- applied migrations newer than every file on disk ("future", e.g. a CloudFormation rollback running the previous
  code) are ignored, as Flyway's default `ignoreMigrationPatterns=*:future` does: the engine only moves forward.
It must connect to the writer directly: advisory locks and SET do not survive a transaction-mode pooler.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from pat_data.connect import Target, connect
from pat_data.migrations.files import (
    MigrationFile,
    Version,
    discover,
    format_version,
    line_of,
    parse_version,
    split_statements,
)

ENGINE_VERSION = "1.0.0"
# Format of the history table this engine writes. Later formats may only add columns, so an older engine (a
# CloudFormation rollback) can still read the table; it refuses to write one it does not know.
HISTORY_FORMAT = 1
HISTORY_COMMENT = "pat_data.migrations history format {format}"
DEFAULT_HISTORY_TABLE = "public.flyway_schema_history"
BASELINE_DESCRIPTION = "<< Flyway Baseline >>"
APPLICATION_NAME = "pat-migrator"

log = logging.getLogger(__name__)
Connection = psycopg.Connection[TupleRow]  # the engine reads rows as tuples


class MigrationError(RuntimeError):
    """The engine refused or failed; the message says what, where, and the fix."""


class LockTimeoutError(MigrationError):
    """Another migrator held the advisory lock for longer than the bounded wait."""


class MigrationValidationError(MigrationError):
    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("migration validation failed:\n  - " + "\n  - ".join(self.problems))


class MigrationFailedError(MigrationError):
    """A migration file failed; its transaction was rolled back (unless it is non-transactional)."""

    def __init__(self, script: str, message: str, *, sqlstate: str | None = None, line: int | None = None) -> None:
        self.script, self.sqlstate, self.line = script, sqlstate, line
        where = f"{script}" + (f" line {line}" if line else "")
        super().__init__(f"{where}: {message}")


class State(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    FAILED = "failed"
    FUTURE = "future"
    MISSING = "missing"
    BASELINE = "baseline"
    BELOW_BASELINE = "below baseline"
    OUT_OF_ORDER = "out of order"


@dataclass(frozen=True)
class HistoryRow:
    installed_rank: int
    version: str | None
    description: str
    type: str
    script: str
    checksum: int | None
    installed_by: str
    installed_on: datetime
    execution_time: int
    success: bool

    @property
    def parsed_version(self) -> Version:
        return parse_version(self.version) if self.version else ()


@dataclass(frozen=True)
class InfoRow:
    version: str
    description: str
    script: str
    state: State
    installed_on: datetime | None = None
    execution_time_ms: int | None = None


@dataclass(frozen=True)
class Validation:
    problems: list[str]
    pending: list[MigrationFile]
    future: list[HistoryRow]
    applied: list[HistoryRow]

    def raise_if_invalid(self) -> None:
        if self.problems:
            raise MigrationValidationError(self.problems)


@dataclass(frozen=True)
class MigrateResult:
    applied: list[str]
    current_version: str | None
    future: list[str]
    execution_ms: int


@dataclass(frozen=True)
class RepairAction:
    script: str
    action: str


@dataclass
class Migrator:
    """Applies `migrations` (a directory or already-read files) to the database behind `target` (a DIRECT writer)."""

    target: Target
    migrations: Sequence[MigrationFile] | Path
    history_table: str = DEFAULT_HISTORY_TABLE
    out_of_order: bool = False
    lock_wait_seconds: float = 60.0
    lock_retries: int = 5
    retry_backoff_seconds: float = 2.0
    installed_by: str | None = None
    _files: list[MigrationFile] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.target.pooled:
            raise MigrationError(
                f"{self.target!r} is a pooled endpoint: migrations need the writer endpoint directly (advisory locks, "
                "SET and non-transactional DDL break behind PgBouncer/RDS Proxy in transaction mode)"
            )
        self._files = discover(self.migrations) if isinstance(self.migrations, Path) else list(self.migrations)
        schema, _, table = self.history_table.rpartition(".")
        self._table = sql.Identifier(schema or "public", table)
        self._success_index = sql.Identifier(f"{table}_s_idx")
        digest = hashlib.sha256(f"pat_data.migrations:{self.history_table}".encode()).digest()
        self.lock_key = int.from_bytes(digest[:8], "big", signed=True)

    @property
    def files(self) -> list[MigrationFile]:
        return list(self._files)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        target = replace(self.target, application_name=APPLICATION_NAME)
        with connect(target, autocommit=True) as conn:
            yield conn

    @contextmanager
    def _locked(self, conn: Connection) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_wait_seconds
        delay = 0.2
        while not _scalar(conn, "SELECT pg_try_advisory_lock(%s)", (self.lock_key,)):
            if time.monotonic() >= deadline:
                raise LockTimeoutError(self._lock_holder_message(conn))
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))

    def _lock_holder_message(self, conn: Connection) -> str:
        row = conn.execute(
            """
            SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.usename, a.client_addr::text,
                   a.state, date_trunc('second', now() - a.backend_start)::text
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.classid = ((%(key)s >> 32) & 4294967295)::oid AND l.objid = (%(key)s & 4294967295)::oid
              AND l.objsubid = 1
            """,
            {"key": self.lock_key},
        ).fetchone()
        waited = f"waited {self.lock_wait_seconds:.0f}s for the migration lock"
        if row is None:
            return f"{waited}; the holder released it meanwhile: run again"
        pid, app, user, addr, state, age = row
        return (
            f"{waited}, held by pid {pid} (application_name={app}, user={user}, client={addr or 'local'}, "
            f"state={state}, connected {age} ago). If that migrator is gone but its session is stuck, end it with "
            f"SELECT pg_terminate_backend({pid}); then run again"
        )

    def _history_exists(self, conn: Connection) -> bool:
        return _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (self.history_table,)) is True

    def _history_format(self, conn: Connection) -> int:
        comment = _scalar(conn, "SELECT obj_description(to_regclass(%s), 'pg_class')", (self.history_table,))
        prefix = HISTORY_COMMENT.format(format="")
        if isinstance(comment, str) and comment.startswith(prefix) and comment[len(prefix) :].isdigit():
            return int(comment[len(prefix) :])
        return 0  # created by Flyway itself, or by hand: same columns, unstamped

    def _ensure_history(self, conn: Connection) -> int:
        """Create (or stamp) the history table; returns its format. Call with the lock held."""
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    """
                    CREATE TABLE IF NOT EXISTS {table} (
                        installed_rank integer NOT NULL PRIMARY KEY,
                        version varchar(50),
                        description varchar(200) NOT NULL,
                        type varchar(20) NOT NULL,
                        script varchar(1000) NOT NULL,
                        checksum integer,
                        installed_by varchar(100) NOT NULL,
                        installed_on timestamp NOT NULL DEFAULT now(),
                        execution_time integer NOT NULL,
                        success boolean NOT NULL
                    )
                    """
                ).format(table=self._table)
            )
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} (success)").format(
                    index=self._success_index,
                    table=self._table,
                )
            )
            current = self._history_format(conn)
            if current < HISTORY_FORMAT:
                conn.execute(
                    sql.SQL("COMMENT ON TABLE {table} IS {comment}").format(
                        table=self._table, comment=sql.Literal(HISTORY_COMMENT.format(format=HISTORY_FORMAT))
                    )
                )
                current = HISTORY_FORMAT
        return current

    def _rows(self, conn: Connection) -> list[HistoryRow]:
        if not self._history_exists(conn):
            return []
        cursor = conn.execute(
            sql.SQL(
                "SELECT installed_rank, version, description, type, script, checksum, installed_by, installed_on, "
                "execution_time, success FROM {table} ORDER BY installed_rank"
            ).format(table=self._table)
        )
        return [HistoryRow(*row) for row in cursor.fetchall()]

    def _validate(self, rows: list[HistoryRow]) -> Validation:
        problems: list[str] = []
        local = {m.version: m for m in self._files}
        newest_local = max(local, default=())
        baseline = max((r.parsed_version for r in rows if r.type == "BASELINE"), default=())
        applied = [r for r in rows if r.type == "SQL" and r.success]
        future: list[HistoryRow] = []
        for row in rows:
            if not row.success:
                problems.append(
                    f"{row.script}: failed on {row.installed_on:%Y-%m-%d %H:%M} UTC and was not transactional, so it "
                    "may have left partial changes: inspect and clean up, then run `repair` to clear the failed row"
                )
        for row in applied:
            migration = local.get(row.parsed_version)
            if migration is None:
                if row.parsed_version > newest_local:
                    future.append(row)
                else:
                    problems.append(
                        f"{row.script}: applied (version {row.version}) but missing on disk: restore the file; "
                        "applied migrations are never deleted"
                    )
            elif migration.checksum != row.checksum:
                problems.append(
                    f"{migration.script}: changed after it was applied (checksum {row.checksum} in the history, "
                    f"{migration.checksum} on disk): revert the edit and put the change in a new migration; if the "
                    "edit is cosmetic (comments), run `repair` to accept it"
                )
            elif migration.description != row.description or migration.script != row.script:
                problems.append(
                    f"{migration.script}: version {row.version} was applied as {row.script}: rename the file back, or "
                    "run `repair` to record the new name"
                )
        applied_versions = {r.parsed_version for r in applied}
        labels = {r.parsed_version: r.version or "" for r in rows if r.success}
        newest_applied = max([*applied_versions, baseline], default=())
        pending = [m for m in self._files if m.version not in applied_versions and m.version > baseline]
        if not self.out_of_order:
            for migration in pending:
                if migration.version < newest_applied:
                    problems.append(
                        f"{migration.script}: version {migration.version_text} is older than the newest applied "
                        f"version {labels.get(newest_applied, format_version(newest_applied))}: renumber it above "
                        "that, or run with out_of_order"
                    )
        return Validation(problems=problems, pending=pending, future=future, applied=applied)

    def validate(self) -> Validation:
        """Compare the history with the files; never writes."""
        with self._connection() as conn:
            return self._validate(self._rows(conn))

    def plan(self) -> list[MigrationFile]:
        """Dry run: the migrations `migrate` would apply, in order (raises when validation fails)."""
        validation = self.validate()
        validation.raise_if_invalid()
        return validation.pending

    def info(self) -> list[InfoRow]:
        """History and pending migrations, Flyway `info` style."""
        with self._connection() as conn:
            rows = self._rows(conn)
        validation = self._validate(rows)
        future = {r.installed_rank for r in validation.future}
        local = {m.version for m in self._files}
        newest_applied = max((r.parsed_version for r in validation.applied), default=())
        result: list[InfoRow] = []
        for row in rows:
            if row.type == "BASELINE":
                state = State.BASELINE
            elif not row.success:
                state = State.FAILED
            elif row.installed_rank in future:
                state = State.FUTURE
            elif row.parsed_version not in local:
                state = State.MISSING
            else:
                state = State.SUCCESS
            result.append(
                InfoRow(row.version or "", row.description, row.script, state, row.installed_on, row.execution_time)
            )
        for migration in validation.pending:
            state = State.OUT_OF_ORDER if migration.version < newest_applied else State.PENDING
            result.append(InfoRow(migration.version_text, migration.description, migration.script, state))
        baseline = max((r.parsed_version for r in rows if r.type == "BASELINE"), default=())
        applied_versions = {r.parsed_version for r in rows}
        for migration in self._files:
            if migration.version <= baseline and migration.version not in applied_versions:
                result.append(
                    InfoRow(migration.version_text, migration.description, migration.script, State.BELOW_BASELINE)
                )
        return result

    def migrate(self) -> MigrateResult:
        """Validate, then apply every pending migration in version order, under the advisory lock."""
        started = time.perf_counter()
        with self._connection() as conn, self._locked(conn):
            history_format = self._ensure_history_if_writable(conn)
            validation = self._validate(self._rows(conn))
            validation.raise_if_invalid()
            if validation.future:
                log.warning(
                    "database is ahead of these files; ignoring future migrations",
                    extra={"future": [r.script for r in validation.future]},
                )
            if validation.pending and history_format > HISTORY_FORMAT:
                raise MigrationError(
                    f"{self.history_table} has format {history_format}, written by a newer pat_data; this engine "
                    f"writes format {HISTORY_FORMAT}: run the newer engine"
                )
            applied: list[str] = []
            for migration in validation.pending:
                self._apply(conn, migration)
                applied.append(migration.version_text)
            done = [r for r in self._rows(conn) if r.success and r.version]
            current = max(done, key=lambda r: r.parsed_version).version if done else None
        return MigrateResult(
            applied=applied,
            current_version=current,
            future=[r.version or "" for r in validation.future],
            execution_ms=int((time.perf_counter() - started) * 1000),
        )

    def _ensure_history_if_writable(self, conn: Connection) -> int:
        if self._history_exists(conn) and self._history_format(conn) > HISTORY_FORMAT:
            return self._history_format(conn)
        return self._ensure_history(conn)

    def _installed_by(self, conn: Connection) -> str:
        return self.installed_by or str(_scalar(conn, "SELECT current_user")) or getpass.getuser()

    def _record(self, conn: Connection, migration: MigrationFile, *, elapsed_ms: int, success: bool) -> None:
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} (installed_rank, version, description, type, script, checksum, installed_by, "
                "execution_time, success) VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM {table}), "
                "%s, %s, 'SQL', %s, %s, %s, %s, %s)"
            ).format(table=self._table),
            (
                migration.version_text,
                migration.description,
                migration.script,
                migration.checksum,
                self._installed_by(conn),
                elapsed_ms,
                success,
            ),
        )

    def _apply(self, conn: Connection, migration: MigrationFile) -> None:
        log.info("applying migration", extra={"script": migration.script, "transactional": migration.transactional})
        if migration.transactional:
            self._apply_in_transaction(conn, migration)
        else:
            self._apply_statements(conn, migration)

    def _apply_in_transaction(self, conn: Connection, migration: MigrationFile) -> None:
        for attempt in range(1, self.lock_retries + 1):
            started = time.perf_counter()
            try:
                with conn.transaction():
                    _set(conn, "lock_timeout", migration.lock_timeout, local=True)
                    _set(conn, "statement_timeout", migration.statement_timeout, local=True)
                    conn.execute(migration.sql.encode())
                    self._record(conn, migration, elapsed_ms=_elapsed_ms(started), success=True)
                return
            except psycopg.errors.LockNotAvailable as exc:
                if attempt == self.lock_retries:
                    raise _failure(migration, exc, offset=0, note=f"lock not granted after {attempt} attempts") from exc
                log.warning(
                    "lock not granted, retrying",
                    extra={"script": migration.script, "attempt": attempt, "lock_timeout": migration.lock_timeout},
                )
                time.sleep(self.retry_backoff_seconds * attempt)
            except psycopg.Error as exc:
                failure = _failure(migration, exc, offset=0, note="rolled back")
                if failure.line is None:
                    failure = self._locate(conn, migration) or failure
                raise failure from exc

    def _locate(self, conn: Connection, migration: MigrationFile) -> MigrationFailedError | None:
        """Find the failing statement of a transactional file whose error carried no position (a runtime error):
        replay it statement by statement inside a transaction that is always rolled back."""
        try:
            with conn.transaction(force_rollback=True):
                _set(conn, "lock_timeout", migration.lock_timeout, local=True)
                _set(conn, "statement_timeout", migration.statement_timeout, local=True)
                for statement in split_statements(migration.sql):
                    try:
                        conn.execute(statement.sql.encode())
                    except psycopg.Error as exc:
                        return _failure(
                            migration, exc, offset=statement.offset, note="rolled back", single_statement=True
                        )
        except psycopg.Error:
            return None
        return None

    def _apply_statements(self, conn: Connection, migration: MigrationFile) -> None:
        started = time.perf_counter()
        invalid_before = _invalid_indexes(conn)
        _set(conn, "lock_timeout", migration.lock_timeout, local=False)
        _set(conn, "statement_timeout", migration.statement_timeout, local=False)
        try:
            for statement in split_statements(migration.sql):
                try:
                    conn.execute(statement.sql.encode())
                except psycopg.Error as exc:
                    raise _failure(
                        migration,
                        exc,
                        offset=statement.offset,
                        note="not transactional: earlier statements stay",
                        single_statement=True,
                    ) from exc
            invalid = sorted(_invalid_indexes(conn) - invalid_before)
            if invalid:
                raise MigrationFailedError(
                    migration.script,
                    f"left INVALID index(es) {', '.join(invalid)}: DROP INDEX CONCURRENTLY them, then run `repair` "
                    "and deploy again",
                )
            self._record(conn, migration, elapsed_ms=_elapsed_ms(started), success=True)
        except MigrationFailedError:
            self._record(conn, migration, elapsed_ms=_elapsed_ms(started), success=False)
            raise
        finally:
            conn.execute("RESET lock_timeout")
            conn.execute("RESET statement_timeout")

    def baseline(self, version: str, description: str = BASELINE_DESCRIPTION) -> None:
        """Mark an existing database as being at `version` (only on an empty history)."""
        parse_version(version)  # refuse a malformed version before touching the database
        with self._connection() as conn, self._locked(conn):
            self._ensure_history(conn)
            if self._rows(conn):
                raise MigrationError(f"{self.history_table} is not empty: baseline only applies to a fresh history")
            conn.execute(
                sql.SQL(
                    "INSERT INTO {table} (installed_rank, version, description, type, script, checksum, installed_by, "
                    "execution_time, success) VALUES (1, %s, %s, 'BASELINE', %s, NULL, %s, 0, true)"
                ).format(table=self._table),
                (version.replace("_", "."), description, description, self._installed_by(conn)),  # as Flyway stores it
            )

    def repair(self, *, dry_run: bool = False) -> list[RepairAction]:
        """Explicit only: remove failed rows and realign checksums/descriptions with the files on disk."""
        local = {m.version: m for m in self._files}
        with self._connection() as conn, self._locked(conn):
            actions: list[RepairAction] = []
            rows = self._rows(conn)
            with conn.transaction():
                for row in rows:
                    migration = local.get(row.parsed_version)
                    if not row.success:
                        actions.append(RepairAction(row.script, "remove failed row"))
                        if not dry_run:
                            conn.execute(
                                sql.SQL("DELETE FROM {table} WHERE installed_rank = %s").format(table=self._table),
                                (row.installed_rank,),
                            )
                    elif (
                        row.type == "SQL"
                        and migration is not None
                        and (
                            migration.checksum != row.checksum
                            or migration.description != row.description
                            or migration.script != row.script
                        )
                    ):
                        actions.append(
                            RepairAction(migration.script, f"realign checksum {row.checksum} -> {migration.checksum}")
                        )
                        if not dry_run:
                            conn.execute(
                                sql.SQL(
                                    "UPDATE {table} SET checksum = %s, description = %s, script = %s "
                                    "WHERE installed_rank = %s"
                                ).format(table=self._table),
                                (migration.checksum, migration.description, migration.script, row.installed_rank),
                            )
            return actions


def _scalar(conn: Connection, query: str, params: Sequence[object] = ()) -> object:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _set(conn: Connection, name: str, value: str, *, local: bool) -> None:
    statement = "SET LOCAL {} = {}" if local else "SET {} = {}"
    conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Literal(value)))


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _invalid_indexes(conn: Connection) -> set[str]:
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE NOT i.indisvalid AND c.relkind = 'i' "
        "AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
    ).fetchall()
    return {row[0] for row in rows}


def _failure(
    migration: MigrationFile, exc: psycopg.Error, *, offset: int, note: str, single_statement: bool = False
) -> MigrationFailedError:
    diag = exc.diag
    line: int | None = None
    if diag.statement_position:
        line = line_of(migration.sql, offset + int(diag.statement_position) - 1)
    elif single_statement:
        line = line_of(migration.sql, offset)  # where the failing statement starts
    message = diag.message_primary or str(exc).strip()
    details = [f"{diag.sqlstate or '?'} {message}"]
    if diag.message_detail:
        details.append(diag.message_detail)
    if diag.message_hint:
        details.append(f"hint: {diag.message_hint}")
    if diag.context:
        details.append(f"context: {diag.context.splitlines()[0]}")
    details.append(note)
    return MigrationFailedError(migration.script, "; ".join(details), sqlstate=diag.sqlstate, line=line)
