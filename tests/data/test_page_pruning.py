"""page() on a database with years of monthly partitions: the pages of the unbounded query, from a walk that plans
the newest months only.

Work is what the server plans (partitions named in EXPLAIN) and how many statements the repository sends, never wall
time. The database has ~60 months of pat.emails (time-travelled maintenance, retention raised to 60 months) plus the
premade future months and DEFAULT, so an unbounded first page would plan every one of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from psycopg import ClientCursor, sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from pat_data.connect import Target, connect, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.migrations import Migrator
from pat_data.partitions import PartitionMaintainer, load_config
from pat_data.repositories import Database, EmailRepository, NewEmail, Page
from tests.data.conftest import MIGRATIONS, PARTITIONS, app_connection

DataTier = tuple[LocalPostgres, LocalPgBouncer]
MONTHS_BACK = 47  # maintenance runs this many months back, each making last month to 12 months ahead
CONFIG = load_config(PARTITIONS, "prod")
PREMAKE = next(t.premake for t in CONFIG.tables if t.table == "emails")
# Months (relative to this one) with mail: DEFAULT beyond the premade months and below the oldest partition, the
# future, the recent months, gaps that make the walk widen, and the oldest partition.
MAIL_MONTHS = (PREMAKE + 8, 3, 0, -1, -2, -5, -12, -20, -35, -MONTHS_BACK - 1, -MONTHS_BACK - 9)
STATUSES = ("received", "read", "archived")
COLUMNS = "e.id, e.received_at, e.sender, e.subject, e.status, e.size_bytes"


def month_of(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def month_start(month: int) -> datetime:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


THIS_MONTH = month_of(datetime.now(UTC))


@dataclass
class RecordingDatabase(Database):
    """Keeps each read's query and parameters: what the repository sends, to explain it as sent."""

    reads: list[tuple[sql.Composable, list[object]]] = field(default_factory=list)

    def read(
        self, tenant_id: uuid.UUID | str, query: sql.Composable, params: Sequence[object] = (), **options: Any
    ) -> list[dict[str, Any]]:
        self.reads.append((query, list(params)))
        return super().read(tenant_id, query, params, **options)


@pytest.fixture(scope="module")
def old_database(new_database: Callable[[], Target]) -> Target:
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    config = replace(CONFIG, tables=tuple(replace(t, retention_months=60) for t in CONFIG.tables))
    for back in range(MONTHS_BACK, 0, -1):
        moment = month_start(THIS_MONTH - back) + timedelta(days=14)
        PartitionMaintainer(owner, config, now=partial(lambda at: at, moment)).run()
    PartitionMaintainer(owner, config).run()
    return owner


@pytest.fixture(scope="module")
def app_pool(data_tier: DataTier, old_database: Target) -> Iterator[ConnectionPool]:
    _, bouncer = data_tier
    created = pool(target_from_dsn(bouncer.dsn("pat_app", old_database.dbname), pooled=True), min_size=1, max_size=4)
    yield created
    created.close()


def new_tenant(owner: Target) -> uuid.UUID:
    with connect(owner) as conn:
        row = conn.execute(
            "INSERT INTO pat.tenants (slug, name) VALUES (%s, 'P') RETURNING id", (f"prune-{uuid.uuid4().hex[:10]}",)
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def mail(prefix: str) -> list[NewEmail]:
    """Three emails per month of MAIL_MONTHS, in the middle of the month, statuses in turn."""
    return [
        NewEmail(
            idempotency_key=f"{prefix}-{month}-{i}",
            received_at=month_start(THIS_MONTH + month) + timedelta(days=10 + i, minutes=i),
            message_id=f"<{prefix}-{month}-{i}@prune.test>",
            sender=f"sender{i}@example.com",
            recipients=["inbox@prune.test"],
            subject=f"month {month} #{i}",
            status=STATUSES[(month + i) % len(STATUSES)],
        )
        for month in MAIL_MONTHS
        for i in range(3)
    ]


@pytest.fixture(scope="module")
def tenant(old_database: Target, app_pool: ConnectionPool) -> uuid.UUID:
    repo = EmailRepository(Database(app_pool))
    tenant_id, neighbour = new_tenant(old_database), new_tenant(old_database)
    assert repo.ingest(tenant_id, mail("t")).inserted == 3 * len(MAIL_MONTHS)
    repo.ingest(neighbour, mail("n"))  # same months, another tenant: not listed
    for item in repo.page(tenant_id, limit=500).items[::2]:
        repo.add_tag(tenant_id, item["id"], "Keep")
    return tenant_id


def unbounded(
    app_pool: ConnectionPool,
    tenant_id: uuid.UUID,
    *,
    status: str | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every matching row of the tenant, newest first: the plain query with no bound on the partition key."""
    conditions = [sql.SQL("e.deleted_at IS NULL")]
    params: list[object] = []
    for condition, value in (("e.status = %s", status), ("e.received_at >= %s", since), ("e.received_at < %s", until)):
        if value is not None:
            conditions.append(sql.SQL(condition))
            params.append(value)
    if tag is not None:
        conditions.append(
            sql.SQL(
                "EXISTS (SELECT FROM pat.email_tags et JOIN pat.tags t ON t.tenant_id = et.tenant_id "
                "AND t.id = et.tag_id WHERE et.tenant_id = e.tenant_id AND et.email_id = e.id "
                "AND et.email_received_at = e.received_at AND lower(t.name) = lower(%s) AND t.deleted_at IS NULL)"
            )
        )
        params.append(tag)
    query = sql.SQL(
        "SELECT {columns} FROM pat.emails e WHERE e.tenant_id = pat.current_tenant_id() AND {conditions} "
        "ORDER BY e.received_at DESC, e.id DESC"
    ).format(columns=sql.SQL(COLUMNS), conditions=sql.SQL(" AND ").join(conditions))
    return Database(app_pool).read(tenant_id, query, params)


def pages_of(rows: list[dict[str, Any]], limit: int) -> list[Page]:
    """The keyset contract: a page of `limit` rows carries its last row as the cursor, a shorter page ends the walk."""
    pages = []
    for offset in range(0, len(rows) + 1, limit):
        items = rows[offset : offset + limit]
        pages.append(Page(items, (items[-1]["received_at"], items[-1]["id"]) if len(items) == limit else None))
        if len(items) < limit:
            break
    return pages


def walk(repo: EmailRepository, tenant_id: uuid.UUID, limit: int, **filters: Any) -> list[Page]:
    pages = [repo.page(tenant_id, limit=limit, **filters)]
    while (cursor := pages[-1].next_cursor) is not None:
        pages.append(repo.page(tenant_id, limit=limit, after=cursor, **filters))
    return pages


def emails_partitions(owner: Target) -> set[str]:
    with connect(owner) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'pat.emails'::regclass"
        ).fetchall()
    return {str(name) for (name,) in rows}


def planned_partitions(
    data_tier: DataTier, owner: Target, tenant_id: uuid.UUID, query: sql.Composable, params: Sequence[object]
) -> set[str]:
    """The pat.emails partitions in the plan of `query`, planned as pat_app under the tenant with the values inlined,
    as Database.read sends it (client-side binding: the planner sees constants and prunes at plan time)."""
    children = emails_partitions(owner)
    with (
        app_connection(data_tier, owner) as conn,
        conn.transaction(),
        ClientCursor(conn, row_factory=dict_row) as cursor,
    ):
        cursor.execute("SELECT pat.set_request_context(%s, 'test')", (str(tenant_id),))
        row = cursor.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params).fetchone()
    assert row is not None
    nodes, names = [row["QUERY PLAN"][0]["Plan"]], set()
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node.get("Relation Name") in children:
            names.add(node["Relation Name"])
    return names


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 500])
def test_pages_are_those_of_the_unbounded_query(app_pool: ConnectionPool, tenant: uuid.UUID, limit: int) -> None:
    repo = EmailRepository(Database(app_pool))
    rows = unbounded(app_pool, tenant)
    assert len(rows) == 3 * len(MAIL_MONTHS)
    assert walk(repo, tenant, limit) == pages_of(rows, limit)


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "read"},
        {"tag": "keep"},
        {"status": "archived", "tag": "KEEP"},
        {"since": month_start(THIS_MONTH - 20)},
        {"until": month_start(THIS_MONTH - 1) + timedelta(days=11)},
        {"since": month_start(THIS_MONTH - 36), "until": month_start(THIS_MONTH + 4), "status": "received"},
    ],
    ids="+".join,
)
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_filtered_pages_are_those_of_the_unbounded_query(
    app_pool: ConnectionPool, tenant: uuid.UUID, filters: dict[str, Any], limit: int
) -> None:
    rows = unbounded(app_pool, tenant, **filters)
    assert rows, "a filter that matches nothing proves nothing"
    assert walk(EmailRepository(Database(app_pool)), tenant, limit, **filters) == pages_of(rows, limit)


def test_the_first_page_plans_the_newest_months_not_every_partition(
    data_tier: DataTier, old_database: Target, app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    children = emails_partitions(old_database)
    assert len(children) >= 50
    db = RecordingDatabase(app_pool)
    page = EmailRepository(db).page(tenant, limit=5)
    assert page.items == unbounded(app_pool, tenant)[:5]
    assert len(db.reads) == 1, "the newest two months (and the future) hold five rows: one statement"
    planned = planned_partitions(data_tier, old_database, tenant, *db.reads[0])
    # Last month, this month, the premade months and DEFAULT (future mail is listed first): nothing older.
    newest = {f"emails_p{month_start(THIS_MONTH + back):%Y%m}" for back in range(-1, PREMAKE + 1)} & children
    assert planned == newest | {"emails_default"}
    assert len(planned) == PREMAKE + 3


def test_a_page_after_a_cursor_plans_at_most_its_two_months(
    data_tier: DataTier, old_database: Target, app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    rows = unbounded(app_pool, tenant)
    cursor_row = next(row for row in rows if month_of(row["received_at"]) == THIS_MONTH - 5)
    db = RecordingDatabase(app_pool)
    page = EmailRepository(db).page(tenant, limit=2, after=(cursor_row["received_at"], cursor_row["id"]))
    assert page.items == rows[rows.index(cursor_row) + 1 :][:2]
    assert len(db.reads) == 1
    planned = planned_partitions(data_tier, old_database, tenant, *db.reads[0])
    assert planned == {f"emails_p{month_start(THIS_MONTH - back):%Y%m}" for back in (5, 6)}


def test_a_sparse_mailbox_widens_the_window_a_bounded_number_of_times(
    data_tier: DataTier, old_database: Target, app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    db = RecordingDatabase(app_pool)
    page = EmailRepository(db).page(tenant, limit=500)
    assert page.items == unbounded(app_pool, tenant)
    assert page.next_cursor is None
    assert len(db.reads) == 5, "four windows, then one unbounded below the last"
    planned = [planned_partitions(data_tier, old_database, tenant, *read) for read in db.reads]
    # The windows partition the months: each partition is planned by one statement, DEFAULT by the first and last.
    assert sum(len(names) for names in planned) == len(emails_partitions(old_database)) + 1
    assert [len(names) for names in planned[1:4]] == [2, 4, 8]
