"""The Pat schema as the application sees it: RLS isolation, no DDL, audit, full-text search, idempotency, checks.

The application role connects through PgBouncer in transaction mode and sets its tenant per transaction
(SET LOCAL app.tenant_id), exactly as production code does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
import pytest

from pat_data.connect import Target, connect
from pat_data.local import LocalPgBouncer, LocalPostgres
from tests.data.conftest import app_connection

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Tenants:
    a: uuid.UUID
    b: uuid.UUID
    email_b: uuid.UUID


def as_tenant(conn: Conn, tenant: uuid.UUID | None, actor: str = "user:test") -> None:
    """Inside an open transaction: scope it to a tenant (transaction-local, so it never leaks through the pool)."""
    if tenant is not None:
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
    conn.execute("SELECT set_config('app.actor', %s, true)", (actor,))


def in_tenant(conn: Conn, tenant: uuid.UUID, action: Callable[[], object], actor: str = "user:test") -> None:
    """Run `action` in one transaction scoped to `tenant` (for the expected-error cases)."""
    with conn.transaction():
        as_tenant(conn, tenant, actor)
        action()


def insert_email(
    conn: Conn, tenant: uuid.UUID, *, subject: str, key: str, received_at: datetime | None = None
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, subject, "
        "text_body, size_bytes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (tenant, received_at or datetime.now(UTC), f"<{key}@mail>", key, "alice@example.com", ["bob@example.com"],
         subject, f"Body of {subject}", 2048),
    ).fetchone()  # fmt: skip
    assert row is not None
    return uuid.UUID(str(row[0]))


@pytest.fixture(scope="module")
def app(data_tier: tuple[LocalPostgres, LocalPgBouncer], pat_database: Target) -> Iterator[Conn]:
    with app_connection(data_tier, pat_database) as conn:
        yield conn


@pytest.fixture(scope="module")
def tenants(pat_database: Target, app: Conn) -> Tenants:
    ids = []
    with connect(pat_database) as owner:  # operators create tenants (the owner's operator policy)
        for slug in (f"acme-{uuid.uuid4().hex[:8]}", f"globex-{uuid.uuid4().hex[:8]}"):
            row = owner.execute(
                "INSERT INTO pat.tenants (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug.title())
            ).fetchone()
            assert row is not None
            ids.append(uuid.UUID(str(row[0])))
    with app.transaction():
        as_tenant(app, ids[1])
        email_b = insert_email(app, ids[1], subject="Globex secret merger", key="b-1")
    with app.transaction():
        as_tenant(app, ids[0])
        insert_email(app, ids[0], subject="Quarterly invoice for March", key="a-1")
    return Tenants(a=ids[0], b=ids[1], email_b=email_b)


def test_tenant_a_cannot_read_or_write_tenant_b(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, tenants.a)
        seen = {row[0] for row in app.execute("SELECT tenant_id FROM pat.emails").fetchall()}
        assert seen == {tenants.a}
        assert app.execute("SELECT count(*) FROM pat.emails WHERE id = %s", (tenants.email_b,)).fetchone() == (0,)
        updated = app.execute("UPDATE pat.emails SET status = 'read' WHERE id = %s", (tenants.email_b,)).rowcount
        deleted = app.execute("DELETE FROM pat.emails WHERE tenant_id = %s", (tenants.b,)).rowcount
        assert (updated, deleted) == (0, 0)
        visible_tenants = app.execute("SELECT id FROM pat.tenants").fetchall()
        assert visible_tenants == [(tenants.a,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        in_tenant(app, tenants.a, lambda: insert_email(app, tenants.b, subject="planted", key="planted-1"))
    with app.transaction():
        as_tenant(app, tenants.b)
        status = app.execute("SELECT status FROM pat.emails WHERE id = %s", (tenants.email_b,)).fetchone()
    assert status == ("received",)  # B's row untouched


def test_no_tenant_set_sees_nothing(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, None)
        for table in ("emails", "users", "tenants", "tags", "workflows", "audit_log"):
            assert app.execute(f"SELECT count(*) FROM pat.{table}").fetchone() == (0,), table


@pytest.mark.parametrize("role", ["pat_app", "pat_readonly"])
def test_the_request_context_function_gives_the_same_boundary(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], pat_database: Target, tenants: Tenants, role: str
) -> None:
    """Production scopes a transaction with pat.set_request_context (V011), not set_config: the guarantees above hold
    on that path too, for both app roles: a tenant reads and changes only its own rows, and no tenant (NULL or '')
    means no rows at all."""
    with app_connection(data_tier, pat_database, role) as conn:
        with conn.transaction():
            conn.execute("SELECT pat.set_request_context(%s, 'user:rc')", (str(tenants.a),))
            assert {row[0] for row in conn.execute("SELECT tenant_id FROM pat.emails").fetchall()} == {tenants.a}
            assert conn.execute("SELECT count(*) FROM pat.emails WHERE id = %s", (tenants.email_b,)).fetchone() == (0,)
            assert conn.execute("SELECT id FROM pat.tenants").fetchall() == [(tenants.a,)]
        for unset in (None, ""):
            with conn.transaction():
                conn.execute("SELECT pat.set_request_context(%s, 'user:rc')", (unset,))
                for table in ("emails", "users", "tenants", "tags", "workflows", "audit_log"):
                    assert conn.execute(f"SELECT count(*) FROM pat.{table}").fetchone() == (0,), (unset, table)
        with conn.transaction():
            conn.execute("SELECT pat.set_request_context(%s, 'user:rc')", (str(tenants.a),))
            if role == "pat_readonly":
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("UPDATE pat.emails SET status = 'read'")
            else:
                changed = conn.execute("UPDATE pat.emails SET status = 'read' WHERE id = %s", (tenants.email_b,))
                assert changed.rowcount == 0
        if role == "pat_app":
            with conn.transaction():
                conn.execute("SELECT pat.set_request_context(%s, 'user:rc')", (str(tenants.a),))
                # A savepoint, so the scope set above is the one the rejected INSERT ran under.
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level"), conn.transaction():
                    insert_email(conn, tenants.b, subject="planted", key="planted-rc")
        with conn.transaction():
            conn.execute("SELECT pat.set_request_context(%s, 'user:rc')", (str(tenants.b),))
            status = conn.execute("SELECT status FROM pat.emails WHERE id = %s", (tenants.email_b,)).fetchone()
        assert status == ("received",)  # B's row untouched


def test_the_tenant_setting_does_not_leak_to_the_next_transaction(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, tenants.a)
    with app.transaction():
        assert app.execute("SELECT count(*) FROM pat.emails").fetchone() == (0,)


@pytest.mark.parametrize(
    "ddl",
    ["CREATE TABLE pat.sneaky (id int)", "ALTER TABLE pat.emails ADD COLUMN sneaky int", "DROP TABLE pat.tags",
     "ALTER TABLE pat.emails DISABLE ROW LEVEL SECURITY", "CREATE TABLE public.sneaky (id int)",
     "TRUNCATE pat.emails"],
)  # fmt: skip
def test_app_role_cannot_run_ddl(app: Conn, tenants: Tenants, ddl: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
        app.execute(ddl)


def test_app_role_cannot_read_a_partition_directly(app: Conn, tenants: Tenants) -> None:
    """Partitions carry no RLS of their own: only the parent may be granted."""
    partition = f"emails_p{datetime.now(UTC):%Y%m}"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
        app.execute(f"SELECT count(*) FROM pat.{partition}")


def test_readonly_role_reads_its_tenant_and_cannot_write(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], pat_database: Target, tenants: Tenants
) -> None:
    with app_connection(data_tier, pat_database, "pat_readonly") as readonly:
        with readonly.transaction():
            as_tenant(readonly, tenants.b)
            assert readonly.execute("SELECT count(*) FROM pat.emails").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            in_tenant(readonly, tenants.b, lambda: readonly.execute("UPDATE pat.emails SET status = 'read'"))


def test_audit_trigger_records_changes_with_actor_and_tenant(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, tenants.a, actor="user:42")
        row = app.execute(
            "INSERT INTO pat.users (tenant_id, email, timezone) VALUES (%s, 'carol@acme.test', 'Europe/Paris') "
            "RETURNING id",
            (tenants.a,),
        ).fetchone()
        assert row is not None
        user_id = str(row[0])
        app.execute("UPDATE pat.users SET role = 'admin' WHERE id = %s", (user_id,))
        app.execute("UPDATE pat.users SET role = 'admin' WHERE id = %s", (user_id,))  # no change: not audited
        app.execute("DELETE FROM pat.users WHERE id = %s", (user_id,))
        audit = app.execute(
            "SELECT operation, actor, tenant_id, old_row ->> 'role', new_row ->> 'role' FROM pat.audit_log "
            "WHERE table_name = 'users' AND row_key = %s ORDER BY id",
            (user_id,),
        ).fetchall()
    assert audit == [
        ("INSERT", "user:42", tenants.a, None, "member"),
        ("UPDATE", "user:42", tenants.a, "member", "admin"),
        ("DELETE", "user:42", tenants.a, "admin", None),
    ]
    with app.transaction():
        as_tenant(app, tenants.b)
        assert app.execute("SELECT count(*) FROM pat.audit_log WHERE row_key = %s", (user_id,)).fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        in_tenant(app, tenants.a, lambda: app.execute("DELETE FROM pat.audit_log"))


def test_email_updates_are_audited_without_bodies(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, tenants.a, actor="system:spam-filter")
        email = insert_email(app, tenants.a, subject="Audit me", key=f"audit-{uuid.uuid4()}")
        app.execute("UPDATE pat.emails SET status = 'quarantined', spam_score = 9.5 WHERE id = %s", (email,))
        row = app.execute(
            "SELECT actor, new_row ->> 'status', new_row ? 'text_body' FROM pat.audit_log "
            "WHERE table_name = 'emails' AND row_key = %s",
            (str(email),),
        ).fetchone()
    assert row == ("system:spam-filter", "quarantined", False)


def test_full_text_search_finds_the_seeded_email(app: Conn, tenants: Tenants) -> None:
    # Search reads the owner-only index through pat.search_email_ids (V008 dropped pat.emails.search).
    with app.transaction():
        as_tenant(app, tenants.a)
        found = app.execute(
            "SELECT e.subject FROM pat.search_email_ids(%s, 20) s "
            "JOIN pat.emails e ON e.id = s.email_id AND e.received_at = s.received_at WHERE e.deleted_at IS NULL",
            ("quarterly invoice",),
        ).fetchall()
        leaked = app.execute("SELECT count(*) FROM pat.search_email_ids('merger', 20)").fetchone()
    assert found == [("Quarterly invoice for March",)]
    assert leaked == (0,)  # B's email matches the words but not the tenant


def test_idempotency_key_rejects_a_duplicate_even_at_another_time(app: Conn, tenants: Tenants) -> None:
    key = f"smtp-{uuid.uuid4()}"
    received = datetime.now(UTC).replace(microsecond=0)
    with app.transaction():
        as_tenant(app, tenants.a)
        insert_email(app, tenants.a, subject="first", key=key, received_at=received)
    for retry_at in (received, received + timedelta(seconds=3)):
        with pytest.raises(psycopg.errors.UniqueViolation):
            in_tenant(app, tenants.a, partial(insert_email, app, tenants.a, subject="r", key=key, received_at=retry_at))
    with app.transaction():  # the same key is another tenant's own business
        as_tenant(app, tenants.b)
        insert_email(app, tenants.b, subject="b uses the same key", key=key, received_at=received)


def test_user_email_is_unique_per_tenant_among_live_rows_and_timezones_are_iana(app: Conn, tenants: Tenants) -> None:
    with app.transaction():
        as_tenant(app, tenants.a)
        app.execute("INSERT INTO pat.users (tenant_id, email) VALUES (%s, 'Dave@Acme.test')", (tenants.a,))
    duplicate = "INSERT INTO pat.users (tenant_id, email) VALUES (%s, 'dave@acme.test')"
    with pytest.raises(psycopg.errors.UniqueViolation):
        in_tenant(app, tenants.a, lambda: app.execute(duplicate, (tenants.a,)))
    with app.transaction():
        as_tenant(app, tenants.a)
        app.execute("UPDATE pat.users SET deleted_at = now() WHERE lower(email) = 'dave@acme.test'")
        app.execute("INSERT INTO pat.users (tenant_id, email) VALUES (%s, 'dave@acme.test')", (tenants.a,))
    insert_user = "INSERT INTO pat.users (tenant_id, email, timezone) VALUES (%s, %s, %s)"
    for zone in ("Mars/Olympus_Mons", "UTC+3", "", "Europe/../etc"):
        params = (tenants.a, f"{uuid.uuid4().hex}@acme.test", zone)
        with pytest.raises(psycopg.errors.CheckViolation, match="users_timezone_iana"):
            in_tenant(app, tenants.a, partial(app.execute, insert_user, params))
    with app.transaction():
        as_tenant(app, tenants.a)
        app.execute(
            "INSERT INTO pat.users (tenant_id, email, timezone) VALUES (%s, 'tz@acme.test', 'America/Argentina/Salta')",
            (tenants.a,),
        )


def test_check_constraints_and_updated_at(app: Conn, tenants: Tenants) -> None:
    def explode() -> None:
        email = insert_email(app, tenants.a, subject="s", key=f"chk-{uuid.uuid4()}")
        app.execute("UPDATE pat.emails SET status = 'exploded' WHERE id = %s", (email,))

    with pytest.raises(psycopg.errors.CheckViolation, match="emails_status_valid"):
        in_tenant(app, tenants.a, explode)
    with app.transaction():
        as_tenant(app, tenants.a)
        email = insert_email(app, tenants.a, subject="s", key=f"upd-{uuid.uuid4()}")
        app.execute("UPDATE pat.emails SET updated_at = '2000-01-01', status = 'read' WHERE id = %s", (email,))
        row = app.execute(
            "SELECT updated_at > created_at - interval '1 minute' FROM pat.emails WHERE id = %s", (email,)
        )
        assert row.fetchone() == (True,)
