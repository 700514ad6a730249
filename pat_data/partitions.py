"""Monthly partition maintenance from `schema/partitions.toml`, without pg_partman (Aurora ships 5.x, Debian 4.7).

For each partitioned table: keep a DEFAULT partition, create monthly partitions from last month up to `premake`
months ahead, and retire months older than the environment's retention (drop, or detach-only). Every step is its
own short transaction with a `lock_timeout` and bounded retries, and everything is idempotent, so the deploy-time
run and the daily run can repeat or overlap safely. Time is injectable (`now`), which is how tests travel in time.

The report carries what on-call needs: rows sitting in DEFAULT partitions (they block creating the matching month)
and the minimum number of future partitions over all tables (alarm when it falls low).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from pat_data.connect import Target, connect

log = logging.getLogger(__name__)

SCHEMA = "pat"
EXPIRY_ACTIONS = ("drop", "detach")
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
APPLICATION_NAME = "pat-partitions"
Conn = psycopg.Connection[TupleRow]


class PartitionConfigError(ValueError):
    """schema/partitions.toml is invalid; the message names the file, the table and the key to fix."""


class PartitionMaintenanceError(RuntimeError):
    """A maintenance step failed (after retries); the message names the table and partition."""


@dataclass(frozen=True, kw_only=True)
class TablePolicy:
    table: str
    column: str
    premake: int
    retention_months: int
    on_expiry: str
    follows: str | None = None


@dataclass(frozen=True, kw_only=True)
class PurgePolicy:
    """A non-partitioned table trimmed in batches after the retention of the table it follows."""

    table: str
    column: str
    retention_months: int
    batch_size: int


@dataclass(frozen=True, kw_only=True)
class PartitionConfig:
    env: str
    tables: tuple[TablePolicy, ...]
    purges: tuple[PurgePolicy, ...] = ()
    schema: str = SCHEMA


def _month(value: datetime) -> int:
    return value.year * 12 + value.month - 1


def _month_start(month: int) -> datetime:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: int) -> str:
    start = _month_start(month)
    return f"{table}_p{start:%Y%m}"


class _ConfigReader:
    """Validates one parsed partitions.toml for one environment; every error names the file, section and key."""

    TABLE_KEYS = frozenset({"column", "interval", "premake", "retention", "on_expiry", "follows"})

    def __init__(self, path: Path, env: str, data: dict[str, Any]) -> None:
        self.path, self.env, self.data = path, env, data
        self.defaults: dict[str, Any] = data.get("defaults", {})

    def fail(self, where: str, message: str) -> PartitionConfigError:
        return PartitionConfigError(f"{self.path.name}: [{where}] {message}")

    def retention(self, where: str, raw: dict[str, Any]) -> int:
        value = raw.get("retention")
        if not isinstance(value, dict) or self.env not in value:
            raise self.fail(
                where,
                f"retention has no value for environment '{self.env}': add retention = {{ {self.env} = <months> }}",
            )
        months = value[self.env]
        if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= 1200:
            raise self.fail(where, f"retention.{self.env} = {months!r}: must be a whole number of months, 1 to 1200")
        return months

    def table(self, name: str, raw: dict[str, Any]) -> TablePolicy | None:
        """The policy of a table that follows nothing; None for a follower (resolved against its parent later)."""
        where = f"tables.{name}"
        if extra := set(raw) - self.TABLE_KEYS:
            allowed = ", ".join(sorted(self.TABLE_KEYS))
            raise self.fail(where, f"unknown key(s) {', '.join(sorted(extra))}: allowed are {allowed}")
        for identifier in (name, raw.get("column")):
            if not isinstance(identifier, str) or not IDENTIFIER.match(identifier):
                raise self.fail(where, f"{identifier!r} is not a lower-case SQL identifier (table name / column)")
        interval = raw.get("interval", self.defaults.get("interval", "month"))
        if interval != "month":
            raise self.fail(where, f"interval = {interval!r}: only 'month' is supported")
        if "follows" in raw:
            if {"retention", "on_expiry", "premake"} & set(raw):
                raise self.fail(
                    where, "a table that follows another inherits premake, retention, on_expiry: remove them"
                )
            return None
        premake = raw.get("premake", self.defaults.get("premake", 12))
        if not isinstance(premake, int) or isinstance(premake, bool) or not 1 <= premake <= 60:
            raise self.fail(where, f"premake = {premake!r}: must be between 1 and 60 months")
        on_expiry = raw.get("on_expiry")
        if on_expiry not in EXPIRY_ACTIONS:
            raise self.fail(where, f"on_expiry = {on_expiry!r}: must be one of {', '.join(EXPIRY_ACTIONS)}")
        return TablePolicy(
            table=name,
            column=raw["column"],
            premake=premake,
            retention_months=self.retention(where, raw),
            on_expiry=on_expiry,
        )

    def purge(self, name: str, raw: dict[str, Any], parents: dict[str, TablePolicy]) -> PurgePolicy:
        where = f"purge.{name}"
        if not IDENTIFIER.match(name) or not IDENTIFIER.match(str(raw.get("column", ""))):
            raise self.fail(where, "table name and column must be lower-case SQL identifiers")
        batch = raw.get("batch_size", 5000)
        if not isinstance(batch, int) or not 100 <= batch <= 100_000:
            raise self.fail(where, f"batch_size = {batch!r}: must be between 100 and 100000")
        if "follows" in raw:
            if raw["follows"] not in parents:
                raise self.fail(where, f"follows = {raw['follows']!r}: not a configured partitioned table")
            months = parents[raw["follows"]].retention_months
        else:
            months = self.retention(where, raw)
        return PurgePolicy(table=name, column=raw["column"], retention_months=months, batch_size=batch)

    def read(self) -> PartitionConfig:
        if unknown := set(self.data) - {"defaults", "tables", "purge"}:
            raise self.fail(", ".join(sorted(unknown)), "unknown section: allowed are defaults, tables, purge")
        raw_tables: dict[str, dict[str, Any]] = self.data.get("tables", {})
        if not raw_tables:
            raise self.fail("tables", "no partitioned table configured")
        parents: dict[str, TablePolicy] = {}
        followers: list[tuple[str, dict[str, Any]]] = []
        for name, raw in raw_tables.items():
            policy = self.table(name, raw)
            if policy is None:
                followers.append((name, raw))
            else:
                parents[name] = policy
        tables = list(parents.values())
        for name, raw in followers:
            parent = parents.get(raw["follows"])
            if parent is None:
                raise self.fail(
                    f"tables.{name}", f"follows = {raw['follows']!r}: not a configured table that follows nothing"
                )
            tables.append(replace(parent, table=name, column=raw["column"], follows=parent.table))
        purges = [self.purge(name, raw, parents) for name, raw in self.data.get("purge", {}).items()]
        return PartitionConfig(env=self.env, tables=tuple(tables), purges=tuple(purges))


def load_config(path: Path, env: str) -> PartitionConfig:
    """Read and validate the partition config for one environment (errors name the file, table and key)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PartitionConfigError(f"{path}: not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PartitionConfigError(f"{path}: not valid TOML: {exc}") from exc
    return _ConfigReader(path, env, data).read()


@dataclass
class MaintenanceReport:
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    purged_rows: dict[str, int] = field(default_factory=dict)
    default_rows: dict[str, int] = field(default_factory=dict)
    future_partitions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    elapsed_ms: int = 0

    @property
    def min_future_partitions(self) -> int:
        return min(self.future_partitions.values(), default=0)

    @property
    def total_default_rows(self) -> int:
        return sum(self.default_rows.values())


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PartitionMaintainer:
    """Runs the config against the database behind `target` (the writer; owner credentials)."""

    target: Target
    config: PartitionConfig
    now: Callable[[], datetime] = utc_now
    lock_timeout: str = "2s"
    retries: int = 5
    backoff_seconds: float = 1.0
    lock_wait_seconds: float = 120.0

    def __post_init__(self) -> None:
        digest = hashlib.sha256(f"pat_data.partitions:{self.config.schema}".encode()).digest()
        self.lock_key = int.from_bytes(digest[:8], "big", signed=True)

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        with connect(replace(self.target, application_name=APPLICATION_NAME), autocommit=True) as conn:
            yield conn

    def _ident(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.config.schema, name)

    def _partitions(self, conn: Conn, table: str) -> tuple[set[int], bool]:
        """Months that exist as `<table>_pYYYYMM` partitions, and whether the DEFAULT partition exists."""
        rows = conn.execute(
            "SELECT c.relname, c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relnamespace = %s::regnamespace AND p.relname = %s",
            (self.config.schema, table),
        ).fetchall()
        if not rows and not self._is_partitioned(conn, table):
            raise PartitionMaintenanceError(
                f"{self.config.schema}.{table} is not a partitioned table: apply the migrations first, or remove it "
                "from schema/partitions.toml"
            )
        pattern = re.compile(rf"^{re.escape(table)}_p(\d{{4}})(\d{{2}})$")
        months = set()
        has_default = False
        for name, is_default in rows:
            if is_default:
                has_default = True
            elif match := pattern.match(name):
                months.add(int(match[1]) * 12 + int(match[2]) - 1)
        return months, has_default

    def _is_partitioned(self, conn: Conn, table: str) -> bool:
        row = conn.execute(
            "SELECT c.relkind = 'p' FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relname = %s",
            (self.config.schema, table),
        ).fetchone()
        return bool(row and row[0])

    def _step(self, conn: Conn, description: str, *statements: sql.Composed) -> None:
        """One short transaction with lock_timeout; retried with backoff when a lock is not granted."""
        for attempt in range(1, self.retries + 1):
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(self.lock_timeout)))
                    for statement in statements:
                        conn.execute(statement)
                return
            except psycopg.errors.LockNotAvailable as exc:
                if attempt == self.retries:
                    raise PartitionMaintenanceError(
                        f"{description}: lock not granted within {self.lock_timeout} after {attempt} attempts "
                        "(long transactions on the table? see pg_stat_activity): the next run retries"
                    ) from exc
                log.warning("lock not granted, retrying", extra={"step": description, "attempt": attempt})
                time.sleep(self.backoff_seconds * attempt)
            except psycopg.Error as exc:
                raise PartitionMaintenanceError(f"{description}: {exc.diag.sqlstate} {str(exc).strip()}") from exc

    @contextmanager
    def _locked(self, conn: Conn) -> Iterator[None]:
        deadline = time.monotonic() + self.lock_wait_seconds
        while conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,)).fetchone() != (True,):
            if time.monotonic() >= deadline:
                raise PartitionMaintenanceError(
                    f"another partition maintenance run held the lock for {self.lock_wait_seconds:.0f}s: run again"
                )
            time.sleep(0.5)
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_key,))

    def run(self) -> MaintenanceReport:
        started = time.perf_counter()
        report = MaintenanceReport()
        current = _month(self.now())
        with self._connection() as conn, self._locked(conn):
            for policy in self.config.tables:
                self._create(conn, policy, current, report)
            # Children before their parents: their rows reference the parent's partitions.
            for policy in sorted(self.config.tables, key=lambda p: p.follows is None):
                self._expire(conn, policy, current, report)
            for purge in self.config.purges:
                self._purge(conn, purge, current, report)
            self._observe(conn, current, report)
        report.elapsed_ms = int((time.perf_counter() - started) * 1000)
        log.info(
            "partition maintenance done",
            extra={
                "partitions_created": len(report.created),
                "partitions_dropped": len(report.dropped),
                "partitions_detached": len(report.detached),
                "min_future_partitions": report.min_future_partitions,
                "default_rows": report.total_default_rows,
                "elapsed_ms": report.elapsed_ms,
            },
        )
        return report

    def status(self) -> MaintenanceReport:
        """Read-only: rows in DEFAULT partitions and future partitions per table (for patops and alarms)."""
        report = MaintenanceReport()
        with self._connection() as conn:
            self._observe(conn, _month(self.now()), report)
        return report

    def _create(self, conn: Conn, policy: TablePolicy, current: int, report: MaintenanceReport) -> None:
        months, has_default = self._partitions(conn, policy.table)
        parent = self._ident(policy.table)
        default = self._ident(f"{policy.table}_default")
        if not has_default:
            self._step(
                conn,
                f"create {policy.table}_default",
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT").format(default, parent),
            )
            report.created.append(f"{policy.table}_default")
        # Last month too: mail received just before midnight on the 1st must not land in DEFAULT.
        for month in range(current - 1, current + policy.premake + 1):
            if month in months or month < current - policy.retention_months:
                continue
            name = partition_name(policy.table, month)
            low, high = _month_start(month), _month_start(month + 1)
            stranded = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} >= %s AND {} < %s").format(
                    default, sql.Identifier(policy.column), sql.Identifier(policy.column)
                ),
                (low, high),
            ).fetchone()
            if stranded and stranded[0]:
                report.warnings.append(
                    f"{name} not created: {stranded[0]} row(s) for {low:%Y-%m} are in {policy.table}_default; move "
                    "them out (runbook: docs/runbooks.md#partition-emergency), then maintenance creates the partition"
                )
                continue
            self._step(
                conn,
                f"create {name}",
                sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    self._ident(name), parent, sql.Literal(low.isoformat()), sql.Literal(high.isoformat())
                ),
            )
            report.created.append(name)

    def _expire(self, conn: Conn, policy: TablePolicy, current: int, report: MaintenanceReport) -> None:
        months, _ = self._partitions(conn, policy.table)
        parent = self._ident(policy.table)
        for month in sorted(m for m in months if m < current - policy.retention_months):
            name = partition_name(policy.table, month)
            detach = sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(parent, self._ident(name))
            if policy.on_expiry == "drop":
                self._step(conn, f"drop {name}", detach, sql.SQL("DROP TABLE {}").format(self._ident(name)))
                report.dropped.append(name)
            else:
                self._step(conn, f"detach {name}", detach)
                report.detached.append(name)

    def _purge(self, conn: Conn, purge: PurgePolicy, current: int, report: MaintenanceReport) -> None:
        cutoff = _month_start(current - purge.retention_months)
        table, column = self._ident(purge.table), sql.Identifier(purge.column)
        statement = sql.SQL(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {column} < %s LIMIT %s))"
        ).format(table=table, column=column)
        total = 0
        while True:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(self.lock_timeout)))
                deleted = conn.execute(statement, (cutoff, purge.batch_size)).rowcount
            total += deleted
            if deleted < purge.batch_size:
                break
        report.purged_rows[purge.table] = total

    def _observe(self, conn: Conn, current: int, report: MaintenanceReport) -> None:
        for policy in self.config.tables:
            months, has_default = self._partitions(conn, policy.table)
            ahead = 0
            while current + ahead + 1 in months:
                ahead += 1
            report.future_partitions[policy.table] = ahead
            if has_default:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(self._ident(f"{policy.table}_default"))
                ).fetchone()
                report.default_rows[policy.table] = int(row[0]) if row else 0
                if report.default_rows[policy.table]:
                    report.warnings.append(
                        f"{policy.table}_default holds {report.default_rows[policy.table]} row(s): they match no "
                        "monthly partition (clock skew or imported old mail); see docs/runbooks.md#partition-emergency"
                    )
            else:
                report.warnings.append(f"{policy.table} has no DEFAULT partition: run maintenance")
