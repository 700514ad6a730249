"""Repositories on the real local services, as production runs them: pat_app through PgBouncer (transaction mode),
the Redis cluster for read-through caching."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql
from psycopg_pool import ConnectionPool

from pat_data.cache import Cache, CacheSettings, cluster_client
from pat_data.connect import Target, connect, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster
from pat_data.migrations import Migrator
from pat_data.migrations.files import discover
from pat_data.repositories import (
    AttachmentLinks,
    Database,
    EmailRepository,
    NewEmail,
    SchemaBehindCodeError,
    TenantRepository,
    add_attachment,
    retrying,
)
from tests.data.conftest import MIGRATIONS

DataTier = tuple[LocalPostgres, LocalPgBouncer]
START = datetime(2026, 11, 1, tzinfo=UTC)


def emails(prefix: str, count: int, *, start: datetime = START, subject: str = "Status update") -> list[NewEmail]:
    return [
        NewEmail(
            idempotency_key=f"{prefix}-{i}",
            received_at=start + timedelta(minutes=i),
            message_id=f"<{prefix}-{i}@mail.test>",
            sender=f"sender{i % 7}@example.com",
            recipients=["inbox@acme.test"],
            subject=f"{subject} {i}",
            text_body=f"Body {i}: quarterly numbers and a meeting note.",
            headers={"x-mailer": "bench"},
            size_bytes=1000 + i,
        )
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def app_pool(data_tier: DataTier, pat_database: Target) -> Iterator[ConnectionPool]:
    _, bouncer = data_tier
    created = pool(target_from_dsn(bouncer.dsn("pat_app", pat_database.dbname), pooled=True), min_size=2, max_size=8)
    yield created
    created.close()


@pytest.fixture
def tenant(pat_database: Target) -> uuid.UUID:
    with connect(pat_database) as conn:
        row = conn.execute(
            "INSERT INTO pat.tenants (slug, name, settings) VALUES (%s, 'T', '{\"theme\": \"dark\"}') RETURNING id",
            (f"t-{uuid.uuid4().hex[:10]}",),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


@pytest.fixture
def cache(redis_cluster: LocalRedisCluster) -> Iterator[Cache]:
    client = cluster_client(
        CacheSettings(host="127.0.0.1", port=redis_cluster.ports[0], password=redis_cluster.password, tls=False)
    )
    yield Cache(client, namespace=f"r{uuid.uuid4().hex[:6]}")
    client.close()


def test_ingest_is_idempotent_across_batches_and_within_one(app_pool: ConnectionPool, tenant: uuid.UUID) -> None:
    repo = EmailRepository(Database(app_pool))
    first = repo.ingest(tenant, emails("a", 500))
    assert (first.inserted, first.duplicates) == (500, 0)
    again = repo.ingest(tenant, emails("a", 600))  # 500 seen before + 100 new
    assert (again.inserted, again.duplicates) == (100, 500)
    batch = emails("b", 3)
    within = repo.ingest(tenant, [*batch, batch[0]])
    assert (within.inserted, within.duplicates) == (3, 1)
    assert len(repo.page(tenant, limit=500).items) == 500


def test_a_tenant_sees_only_its_own_emails_through_the_repository(
    app_pool: ConnectionPool, pat_database: Target
) -> None:
    repo = EmailRepository(Database(app_pool))
    a, b = (uuid.uuid4(), uuid.uuid4())
    with connect(pat_database) as conn:
        for tenant_id in (a, b):
            conn.execute(
                "INSERT INTO pat.tenants (id, slug, name) VALUES (%s, %s, 'x')", (tenant_id, f"s-{tenant_id.hex[:12]}")
            )
    repo.ingest(a, emails("iso", 5))
    ids = [item["id"] for item in repo.page(a).items]
    assert len(ids) == 5
    assert repo.get(b, ids[0]) is None
    assert repo.page(b).items == []
    assert repo.search(b, "quarterly") == []
    assert repo.set_status(b, ids[0], "read") is False
    assert repo.get(a, ids[0])["status"] == "received"  # type: ignore[index]


def test_keyset_pagination_is_stable_while_newer_mail_arrives(app_pool: ConnectionPool, tenant: uuid.UUID) -> None:
    repo = EmailRepository(Database(app_pool))
    repo.ingest(tenant, emails("k", 250))
    seen: list[Any] = []
    page = repo.page(tenant, limit=40)
    arrivals = 0
    while True:
        seen += [item["id"] for item in page.items]
        # Newer mail lands between page requests (another writer); earlier pages never shift.
        arrivals += repo.ingest(tenant, emails(f"late{arrivals}", 10, start=START + timedelta(days=2))).inserted
        if page.next_cursor is None:
            break
        page = repo.page(tenant, limit=40, after=page.next_cursor)
    original = {item["id"] for item in repo.page(tenant, limit=500, until=START + timedelta(days=1)).items}
    assert len(seen) == len(set(seen)) == 250  # no duplicates, no gaps
    assert set(seen) == original
    assert arrivals > 0


def test_filters_tags_and_soft_delete(app_pool: ConnectionPool, tenant: uuid.UUID) -> None:
    repo = EmailRepository(Database(app_pool))
    repo.ingest(tenant, emails("f", 20))
    items = repo.page(tenant, limit=20).items
    first, second = items[0]["id"], items[1]["id"]
    assert repo.add_tag(tenant, first, "Urgent") is True
    assert repo.add_tag(tenant, first, "urgent") is False  # same tag, case-insensitive, already there
    assert [i["id"] for i in repo.page(tenant, tag="URGENT").items] == [first]
    assert repo.remove_tag(tenant, first, "urgent") is True
    assert repo.page(tenant, tag="urgent").items == []
    repo.set_status(tenant, second, "archived")
    assert [i["id"] for i in repo.page(tenant, status="archived").items] == [second]
    assert repo.soft_delete(tenant, second) is True
    assert repo.get(tenant, second) is None
    window = repo.page(tenant, since=START + timedelta(minutes=5), until=START + timedelta(minutes=10)).items
    assert len(window) == 5


def test_full_text_search_ranks_subject_matches_first(app_pool: ConnectionPool, tenant: uuid.UUID) -> None:
    repo = EmailRepository(Database(app_pool))
    repo.ingest(tenant, emails("body", 30))  # "quarterly" only in the body
    repo.ingest(tenant, emails("subj", 2, subject="Quarterly invoice"))  # and in the subject (weight A)
    results = repo.search(tenant, "quarterly", limit=5)
    assert [r["subject"] for r in results[:2]] == ["Quarterly invoice 1", "Quarterly invoice 0"]
    assert results[0]["rank"] > results[2]["rank"]
    assert len(repo.search(tenant, "quarterly", limit=10, offset=30)) == 2
    assert repo.search(tenant, '"meeting note" -quarterly') == []


def test_hot_reads_are_cached_and_invalidated_by_writes(
    app_pool: ConnectionPool, tenant: uuid.UUID, cache: Cache
) -> None:
    repo = EmailRepository(Database(app_pool), cache=cache)
    repo.ingest(tenant, emails("c", 3))
    email_id = repo.page(tenant).items[0]["id"]
    assert repo.get(tenant, email_id)["status"] == "received"  # type: ignore[index]
    assert repo.get(tenant, email_id)["status"] == "received"  # type: ignore[index]
    assert (cache.stats.misses, cache.stats.hits) == (1, 1)
    repo.set_status(tenant, email_id, "read")
    assert repo.get(tenant, email_id)["status"] == "read"  # type: ignore[index]
    tenants = TenantRepository(Database(app_pool), cache=cache)
    assert tenants.settings(tenant)["settings"] == {"theme": "dark"}  # type: ignore[index]
    assert tenants.settings(tenant)["settings"] == {"theme": "dark"}  # type: ignore[index]
    assert cache.stats.hits == 2
    tenants.invalidate(tenant)  # the whole tenant's cached values, across slots
    assert cache.client.exists(cache.key("email", f"{tenant}:{email_id}")) == 0


class KillOnce(Database):
    """Terminates the server connection at the end of the first transaction, before COMMIT reaches it."""

    def __init__(self, writer: ConnectionPool, owner: Target) -> None:
        super().__init__(writer)
        self.owner, self.killed = owner, 0

    @contextmanager
    def tenant(self, tenant_id: Any, *, actor: str = "app", stale_ok: bool = False) -> Iterator[Any]:
        with super().tenant(tenant_id, actor=actor, stale_ok=stale_ok) as conn:
            yield conn
            if not self.killed:
                self.killed += 1
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                with connect(self.owner, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (row[0],))


def test_a_killed_connection_is_retried_without_duplicate_writes(
    app_pool: ConnectionPool, pat_database: Target, tenant: uuid.UUID
) -> None:
    superuser = Target(**{**vars(pat_database), "user": "postgres", "password": "local-superuser-password"})
    db = KillOnce(app_pool, superuser)
    result = EmailRepository(db).ingest(tenant, emails("kill", 50))
    assert db.killed == 1
    assert result.inserted == 50
    assert len(EmailRepository(Database(app_pool)).page(tenant, limit=100).items) == 50


def test_only_transient_errors_are_retried() -> None:
    calls: list[int] = []

    def syntax_error() -> None:
        calls.append(1)
        raise psycopg.errors.SyntaxError("nope")

    with pytest.raises(psycopg.errors.SyntaxError):
        retrying(syntax_error, sleep=lambda _: None)
    assert calls == [1]

    def flaky() -> str:
        calls.append(2)
        if calls.count(2) < 3:
            raise psycopg.errors.SerializationFailure("retry me")
        return "ok"

    assert retrying(flaky, sleep=lambda _: None) == "ok"
    assert calls.count(2) == 3


def test_reads_fail_open_when_the_cache_is_gone(app_pool: ConnectionPool, tenant: uuid.UUID, tmp_path: Path) -> None:
    cluster = LocalRedisCluster(tmp_path / "gone").start()
    client = cluster_client(
        CacheSettings(host="127.0.0.1", port=cluster.ports[0], password=cluster.password, tls=False)
    )
    repo = EmailRepository(Database(app_pool), cache=Cache(client))
    repo.ingest(tenant, emails("open", 2))
    email_id = repo.page(tenant).items[0]["id"]
    assert repo.get(tenant, email_id) is not None
    cluster.stop()
    assert repo.get(tenant, email_id)["id"] == email_id  # type: ignore[index]
    assert repo.set_status(tenant, email_id, "read") is True
    assert repo.cache is not None
    assert repo.cache.stats.errors >= 1
    client.close()


def test_reader_split_and_attachments(
    data_tier: DataTier, pat_database: Target, app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    _, bouncer = data_tier
    reader = pool(target_from_dsn(bouncer.dsn("pat_readonly", pat_database.dbname), pooled=True), max_size=2)
    try:
        db = Database(app_pool, reader=reader)
        repo = EmailRepository(db)
        repo.ingest(tenant, emails("att", 1))
        email_id = repo.page(tenant, stale_ok=True).items[0]["id"]  # served by the read-only role
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(tenant, stale_ok=True) as conn:
            conn.execute("UPDATE pat.emails SET status = 'read'")
    finally:
        reader.close()
    digest = "ab" * 32
    attachment = add_attachment(
        db,
        tenant,
        email_id=email_id,
        filename="q3.pdf",
        content_type="application/pdf",
        size_bytes=10,
        sha256_hex=digest,
    )
    assert isinstance(attachment, uuid.UUID)
    with mock_aws():
        links = AttachmentLinks(boto3.client("s3", region_name="eu-west-1"), bucket="pat-dev-attachments")
        assert f"tenants/{tenant}/{digest}" in links.upload_url(tenant, digest, "application/pdf")
        cdn = AttachmentLinks(links.s3, bucket="b", distribution_domain="d111.cloudfront.net")
        assert cdn.download_url(tenant, digest) == f"https://d111.cloudfront.net/tenants/{tenant}/{digest}"
    with pytest.raises(ValueError, match="64 lower-case hex"):
        AttachmentLinks.key(tenant, "xyz")


def test_two_concurrent_ingests_of_the_same_batch_store_exactly_one_copy(
    app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    """The idempotency drill: both calls race on the ledger's unique index; the loser inserts nothing."""
    import threading

    repo = EmailRepository(Database(app_pool))
    batch = emails("drill", 1000)
    start = threading.Barrier(2)
    results: list[Any] = []

    def ingest() -> None:
        start.wait()
        results.append(repo.ingest(tenant, batch))

    threads = [threading.Thread(target=ingest) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.inserted for r in results) == [0, 1000]
    assert sum(r.duplicates for r in results) == 1000
    first = repo.page(tenant, limit=500)
    assert len(first.items) + len(repo.page(tenant, limit=500, after=first.next_cursor).items) == 1000


def test_no_pat_app_insert_skips_the_ledger(
    data_tier: DataTier, pat_database: Target, app_pool: ConnectionPool, tenant: uuid.UUID
) -> None:
    """V009's statement-level trigger: a raw INSERT claims its key, and fails when the key belongs to another email."""
    db = Database(app_pool)
    raw = (
        "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, size_bytes) "
        "VALUES (pat.current_tenant_id(), %s, 'm', %s, 's@x.test', '{r@x.test}', 1) RETURNING id"
    )
    with db.tenant(tenant) as conn:
        row = conn.execute(raw, (START, "raw-1")).fetchone()
        assert row is not None
        claimed = conn.execute(
            "SELECT email_id FROM pat.email_idempotency_keys WHERE idempotency_key = 'raw-1'"
        ).fetchone()
    assert claimed == (row[0],)  # the raw insert claimed its key
    with pytest.raises(psycopg.errors.UniqueViolation), db.tenant(tenant) as conn:
        conn.execute(raw, (START + timedelta(days=40), "raw-1"))  # another month: only the ledger can refuse it
    with db.tenant(tenant) as conn:  # a key claimed for a different email id
        conn.execute(
            "INSERT INTO pat.email_idempotency_keys (tenant_id, idempotency_key, email_id, received_at) "
            "VALUES (pat.current_tenant_id(), 'raw-2', gen_random_uuid(), %s)",
            (START,),
        )
    with pytest.raises(psycopg.errors.UniqueViolation), db.tenant(tenant) as conn:
        conn.execute(raw, (START, "raw-2"))
    with pytest.raises(psycopg.errors.UniqueViolation), db.tenant(tenant) as conn:
        conn.execute(  # one statement, two emails, one key, different months
            "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, "
            "size_bytes) SELECT pat.current_tenant_id(), t, 'm', 'raw-3', 's@x.test', '{r@x.test}', 1 "
            "FROM unnest(%s::timestamptz[]) t",
            ([START, START + timedelta(days=40)],),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.tenant(tenant) as conn:
        conn.execute("ALTER TABLE pat.emails DISABLE TRIGGER emails_claim_idempotency_keys")


def test_get_with_received_at_plans_one_partition_and_keeps_the_tenant_boundary(
    app_pool: ConnectionPool, pat_database: Target
) -> None:
    from psycopg import sql

    repo = EmailRepository(Database(app_pool))
    a, b = (uuid.uuid4(), uuid.uuid4())
    with connect(pat_database) as conn:
        for tenant_id in (a, b):
            conn.execute(
                "INSERT INTO pat.tenants (id, slug, name) VALUES (%s, %s, 'x')", (tenant_id, f"g-{tenant_id.hex[:12]}")
            )
    now = datetime.now(UTC).replace(microsecond=0)
    repo.ingest(a, emails("prune", 3, start=now - timedelta(days=1)))
    item = repo.page(a, limit=1).items[0]
    found = repo.get(a, item["id"], received_at=item["received_at"])
    assert found is not None
    assert found["id"] == item["id"]
    assert repo.get(a, item["id"], received_at=item["received_at"] + timedelta(seconds=1)) is None
    assert repo.get(b, item["id"], received_at=item["received_at"]) is None  # RLS through the one-round-trip path
    assert repo.get(b, item["id"]) is None
    plan = Database(app_pool).read(
        a,
        sql.SQL(
            "EXPLAIN SELECT id FROM pat.emails WHERE tenant_id = pat.current_tenant_id() AND id = %s "
            "AND received_at = %s"
        ),
        (item["id"], item["received_at"]),
    )
    text = "\n".join(row["QUERY PLAN"] for row in plan)
    assert text.count(" on emails_") == 1, text


def test_code_ahead_of_the_schema_gets_the_deploy_order_not_a_missing_function(
    data_tier: DataTier, new_database: Callable[[], Target]
) -> None:
    """Every tenant-scoped call starts with pat.set_request_context (V011). Against a schema without it (application
    code rolled out before the data tier's migration ran) the error says what to do, for both kinds of call."""
    _, bouncer = data_tier
    owner = new_database()
    Migrator(owner, [f for f in discover(MIGRATIONS) if f.script < "V011"]).migrate()
    older = pool(target_from_dsn(bouncer.dsn("pat_app", owner.dbname), pooled=True), min_size=1, max_size=1)
    try:
        db = Database(older)
        tenant_id = uuid.uuid4()
        with pytest.raises(SchemaBehindCodeError, match=r"needs V011\).*migrations plan.*Schema first"):
            db.read(tenant_id, sql.SQL("SELECT 1"))
        with pytest.raises(SchemaBehindCodeError, match="needs V011"), db.tenant(tenant_id) as conn:
            conn.execute("SELECT 1")
        Migrator(owner, discover(MIGRATIONS)).migrate()
        assert db.read(tenant_id, sql.SQL("SELECT pat.current_tenant_id()")) == [{"current_tenant_id": tenant_id}]
    finally:
        older.close()
