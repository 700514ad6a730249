"""Every write path a trigger runs on costs the same on a large tenant as on an empty one, whatever plan the server
connection has cached.

PL/pgSQL caches a statement's plan per server backend, planned with the row counts of the first call that backend
made: a trigger query over a transition table planned for a 2 000-row batch can hash a whole ledger for every later
1-row batch. Each case here opens a fresh server connection, runs the large batch first (the plan a pooled connection
may hold), then single-row calls, and compares the shared blocks (hit + read) per call that pg_stat_statements counts
for the top-level statement, nested trigger statements included, between a tenant holding BIG emails and a tenant
holding only the first batch. Counted by the server, so independent of the machine's speed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from pat_data.connect import Target, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.repositories import Database, EmailRepository, NewEmail
from tests.data.conftest import APP_USERS

DataTier = tuple[LocalPostgres, LocalPgBouncer]
BIG = 100_000
FIRST_BATCH = 2_000
SINGLE_CALLS = 8
# Per-call blocks on the big tenant may be up to twice the smaller baseline plus this much: a deeper B-tree (one more
# level per index probed), dead row versions left by the large first statement, the heap pages a 1-row statement lands
# on; nothing that grows with the data (a plan that reads the ledger or the search index costs thousands).
SLACK_BLOCKS = 40
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Tenants:
    owner: Target
    big: uuid.UUID
    empty: uuid.UUID


def new_emails(prefix: str, count: int) -> list[NewEmail]:
    return [
        NewEmail(
            idempotency_key=f"{prefix}-{i}",
            received_at=NOW - timedelta(seconds=i),
            message_id=f"<{prefix}-{i}@cost.test>",
            sender="sender@example.com",
            recipients=["inbox@cost.test"],
            subject=f"cost {prefix} {i}",
            text_body="a short body",
            size_bytes=100,
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def tenants(data_tier: DataTier, pat_database: Target) -> Tenants:
    """A tenant with BIG emails (loaded as pat_app, so the ledger, the search index and every trigger fill as in
    production) and an empty tenant, in the shared schema database; pg_stat_statements installed there."""
    postgres, _ = data_tier
    with psycopg.connect(postgres.dsn(dbname=pat_database.dbname), autocommit=True) as su:
        su.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        su.execute(f"ALTER DATABASE {pat_database.dbname} SET pg_stat_statements.track = 'all'")
    ids = []
    with psycopg.connect(pat_database.conninfo(), autocommit=True) as owner:
        for label in ("cost-big", "cost-empty"):
            row = owner.execute(
                "INSERT INTO pat.tenants (slug, name) VALUES (%s, %s) RETURNING id", (label, label)
            ).fetchone()
            assert row is not None
            ids.append(uuid.UUID(str(row[0])))
    big, empty = ids
    direct = postgres.dsn("pat_app", APP_USERS["pat_app"], pat_database.dbname)
    with psycopg.connect(direct, autocommit=True) as app:
        app.execute("SET statement_timeout = 0")
        app.execute("SELECT set_config('app.tenant_id', %s, false)", (str(big),))
        for start in range(0, BIG, 50_000):
            app.execute(
                "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, "
                "subject, text_body, size_bytes) "
                "SELECT pat.current_tenant_id(), %s - g * interval '3 seconds', '<big-' || g || '@cost.test>', "
                "'big-' || g, 'sender@example.com', '{inbox@cost.test}', 'big ' || g, 'a short body', 100 "
                "FROM generate_series(%s::int, %s::int) g",
                (NOW - timedelta(minutes=5), start, start + 49_999),
            )
    with psycopg.connect(pat_database.conninfo(), autocommit=True) as owner:
        owner.execute("VACUUM (ANALYZE) pat.emails")
        owner.execute("ANALYZE pat.email_idempotency_keys")
        owner.execute("ANALYZE pat.email_search")
    return Tenants(owner=pat_database, big=big, empty=empty)


@pytest.fixture
def fresh_connection(data_tier: DataTier, pat_database: Target) -> Iterator[Callable[[], ConnectionPool]]:
    """Factory: a pool of ONE new pat_app server connection (direct, so the backend and its plan cache are known)."""
    postgres, _ = data_tier
    opened: list[ConnectionPool] = []

    def make() -> ConnectionPool:
        target = target_from_dsn(postgres.dsn("pat_app", APP_USERS["pat_app"], pat_database.dbname), pooled=True)
        created = pool(target, min_size=1, max_size=1)
        opened.append(created)
        return created

    yield make
    for created in opened:
        created.close()


class Counter:
    """Shared blocks (hit + read) per call of the top-level statements matching `pattern`, from pg_stat_statements."""

    def __init__(self, postgres: LocalPostgres, owner: Target) -> None:
        self.dsn = postgres.dsn(dbname=owner.dbname)

    def reset(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as su:
            su.execute("SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database()")

    def per_call(self, pattern: str) -> float:
        with psycopg.connect(self.dsn, autocommit=True) as su:
            row = su.execute(
                "SELECT sum(shared_blks_hit + shared_blks_read), sum(calls) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND toplevel "
                "AND userid = 'pat_app'::regrole AND query LIKE %s",
                (pattern,),
            ).fetchone()
        assert row is not None
        assert row[1], f"no top-level statement like {pattern!r} was counted"
        return float(row[0]) / float(row[1])


def measure(
    data_tier: DataTier,
    tenants: Tenants,
    fresh: Callable[[], ConnectionPool],
    tenant: uuid.UUID,
    *,
    warm: Callable[[EmailRepository, uuid.UUID], object],
    single: Callable[[EmailRepository, uuid.UUID, int], object],
    pattern: str,
    cold: bool = False,
) -> float:
    """Blocks per `single` call on a fresh server connection whose first call was `warm` (the large batch); `cold`:
    `warm` runs on another connection, so this one plans every statement for the single call."""
    postgres, _ = data_tier
    counter = Counter(postgres, tenants.owner)
    repo = EmailRepository(Database(fresh()))
    warm(EmailRepository(Database(fresh())) if cold else repo, tenant)
    single(repo, tenant, 0)  # not counted: the connection's first use of each relation loads its catalog entries
    counter.reset()
    for i in range(1, SINGLE_CALLS + 1):
        single(repo, tenant, i)
    return counter.per_call(pattern)


def assert_flat(
    data_tier: DataTier,
    tenants: Tenants,
    fresh: Callable[[], ConnectionPool],
    *,
    name: str,
    warm: Callable[[EmailRepository, uuid.UUID], object],
    single: Callable[[EmailRepository, uuid.UUID, int], object],
    pattern: str,
) -> None:
    """After a large first batch, a single call on the big tenant costs what it costs on the empty tenant, and what
    it costs on a connection that planned for single calls (tables shared by every tenant: the search index)."""
    per_call = {
        "empty": measure(data_tier, tenants, fresh, tenants.empty, warm=warm, single=single, pattern=pattern),
        "big": measure(data_tier, tenants, fresh, tenants.big, warm=warm, single=single, pattern=pattern),
        "big, planned for one row": measure(
            data_tier, tenants, fresh, tenants.big, warm=warm, single=single, pattern=pattern, cold=True
        ),
    }
    shown = ", ".join(f"{label} {blocks:.0f}" for label, blocks in per_call.items())
    limit = 2 * min(per_call["empty"], per_call["big, planned for one row"]) + SLACK_BLOCKS
    assert per_call["big"] <= limit, f"{name}: shared blocks per call after a {FIRST_BATCH}-row first batch: {shown}"


INGEST = "WITH batch AS MATERIALIZED%INSERT INTO pat.emails%"
RAW_INSERT = (
    "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, size_bytes)"
)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def test_single_email_ingest_after_a_large_batch_costs_the_same_on_a_large_tenant(
    data_tier: DataTier, tenants: Tenants, fresh_connection: Callable[[], ConnectionPool]
) -> None:
    """The V009 claim planned for 2 000 rows hashed the tenant's whole ledger for every 1-email batch after it."""
    assert_flat(
        data_tier,
        tenants,
        fresh_connection,
        name="ingest of 1 email",
        warm=lambda repo, tenant: repo.ingest(tenant, new_emails(unique("first"), FIRST_BATCH)),
        single=lambda repo, tenant, _: repo.ingest(tenant, new_emails(unique("one"), 1)),
        pattern=INGEST,
    )


def _raw_insert(repo: EmailRepository, tenant: uuid.UUID, rows: int) -> None:
    with repo.db.tenant(tenant) as conn:
        conn.execute(
            RAW_INSERT + " SELECT pat.current_tenant_id(), now(), 'raw', %s || g, 's@example.com', '{r@cost.test}', 1 "
            "FROM generate_series(1, %s) g",
            (unique("raw"), rows),
        )


def test_a_raw_insert_after_a_large_one_costs_the_same_on_a_large_tenant(
    data_tier: DataTier, tenants: Tenants, fresh_connection: Callable[[], ConnectionPool]
) -> None:
    """A plain INSERT by pat_app (no claim of its own): the trigger claims its key by index, whatever it cached."""
    assert_flat(
        data_tier,
        tenants,
        fresh_connection,
        name="raw 1-row insert",
        warm=lambda repo, tenant: _raw_insert(repo, tenant, FIRST_BATCH),
        single=lambda repo, tenant, _: _raw_insert(repo, tenant, 1),
        pattern=RAW_INSERT + "%",
    )


def _newest(repo: EmailRepository, tenant: uuid.UUID, count: int, *, skip: int = 0) -> list[tuple[uuid.UUID, datetime]]:
    rows = repo.db.read(
        tenant,
        sql.SQL(
            "SELECT id, received_at FROM pat.emails WHERE tenant_id = pat.current_tenant_id() AND deleted_at IS NULL "
            "ORDER BY received_at DESC, id DESC LIMIT %s OFFSET %s"
        ),
        (count, skip),
    )
    return [(row["id"], row["received_at"]) for row in rows]


def _ensure(repo: EmailRepository, tenant: uuid.UUID, count: int) -> None:
    """The empty tenant gets the rows the large first statement works on (it holds only what the tests add)."""
    missing = count - len(_newest(repo, tenant, count))
    if missing > 0:
        repo.ingest(tenant, new_emails(unique("fill"), missing))


def _update(repo: EmailRepository, tenant: uuid.UUID, assignment: str, ids: list[uuid.UUID]) -> None:
    with repo.db.tenant(tenant) as conn:
        conn.execute(
            sql.SQL("UPDATE pat.emails SET {} WHERE tenant_id = pat.current_tenant_id() AND id = ANY(%s)").format(
                sql.SQL(assignment)
            ),
            (ids,),
        )


UPDATES = {
    "set_status": ("status = 'read'", lambda repo, tenant, email: repo.set_status(tenant, email[0], "archived")),
    "re-subject": (
        "subject = subject || ' r'",
        lambda repo, tenant, email: _update(repo, tenant, "subject = subject || ' x'", [email[0]]),
    ),
    "soft_delete": ("subject = subject || ' s'", lambda repo, tenant, email: repo.soft_delete(tenant, email[0])),
}


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_single_row_updates_after_a_large_one_cost_the_same_on_a_large_tenant(
    data_tier: DataTier, tenants: Tenants, fresh_connection: Callable[[], ConnectionPool], name: str
) -> None:
    """The search index's update trigger compares both transition tables and removes documents from
    pat.email_search, which holds every tenant's; the audit and updated_at triggers run per row."""
    first, single = UPDATES[name]
    targets: dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]] = {}

    def warm(repo: EmailRepository, tenant: uuid.UUID) -> None:
        _ensure(repo, tenant, FIRST_BATCH + SINGLE_CALLS + 1)
        rows = _newest(repo, tenant, FIRST_BATCH + SINGLE_CALLS + 1)
        targets[tenant] = rows[FIRST_BATCH:]
        _update(repo, tenant, first, [email_id for email_id, _ in rows[:FIRST_BATCH]])

    assert_flat(
        data_tier,
        tenants,
        fresh_connection,
        name=name,
        warm=warm,
        single=lambda repo, tenant, i: single(repo, tenant, targets[tenant][i]),
        pattern="UPDATE pat.emails%",
    )


def test_single_row_deletes_after_a_large_one_cost_the_same_on_a_large_tenant(
    data_tier: DataTier, tenants: Tenants, fresh_connection: Callable[[], ConnectionPool]
) -> None:
    """The search index's delete trigger (a hard delete: erasure, retention moves) after a large DELETE."""
    targets: dict[uuid.UUID, list[tuple[uuid.UUID, datetime]]] = {}

    def delete(repo: EmailRepository, tenant: uuid.UUID, rows: list[tuple[uuid.UUID, datetime]]) -> None:
        with repo.db.tenant(tenant) as conn:
            conn.execute(
                "DELETE FROM pat.emails WHERE tenant_id = pat.current_tenant_id() AND id = ANY(%s) "
                "AND received_at = ANY(%s)",
                ([email_id for email_id, _ in rows], [received for _, received in rows]),
            )

    def warm(repo: EmailRepository, tenant: uuid.UUID) -> None:
        _ensure(repo, tenant, FIRST_BATCH + SINGLE_CALLS + 1)
        rows = _newest(repo, tenant, FIRST_BATCH + SINGLE_CALLS + 1)
        targets[tenant] = rows[FIRST_BATCH:]
        delete(repo, tenant, rows[:FIRST_BATCH])

    assert_flat(
        data_tier,
        tenants,
        fresh_connection,
        name="hard delete",
        warm=warm,
        single=lambda repo, tenant, i: delete(repo, tenant, [targets[tenant][i]]),
        pattern="DELETE FROM pat.emails%",
    )
