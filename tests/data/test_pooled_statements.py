"""Every statement the pooled paths send, checked against what makes RDS Proxy pin a session.

Staging and prod reach Aurora through RDS Proxy; a pinned client session keeps one database connection until the
client disconnects, which turns the proxy into a 1:1 pass-through. AWS's page "Avoiding pinning an RDS Proxy"
(https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/rds-proxy-pinning.html, section on PostgreSQL) says:

    For PostgreSQL, the following interactions also cause pinning:
    - Using SET commands.
    - Using PREPARE, DISCARD, DEALLOCATE, or EXECUTE commands to manage prepared statements.
    - Creating temporary sequences, tables, or views.
    - Declaring cursors.
    - Discarding the session state.
    - Listening on a notification channel.
    - Loading a library module such as auto_explain.
    - Manipulating sequences using functions such as nextval and setval.
    - Interacting with locks using functions such as pg_advisory_lock and pg_try_advisory_lock.

    - Setting a parameter, or resetting a parameter to its default. Specifically, using SET and set_config
      commands to assign default values to session variables.
    - Calling stored procedures and stored functions doesn't cause pinning. RDS Proxy doesn't detect any session
      state changes resulting from such calls. Make sure that your application doesn't change session state inside
      stored routines if you rely on that session state to persist across transactions.

and, for every engine: "Any statement with a text size greater than 16 KB causes the proxy to pin the session."
Under "Minimizing pinning": "However, for PostgreSQL setting a variable leads to session pinning." (transaction-level
advisory locks, pg_advisory_xact_lock and its siblings, do not pin).

How statements are recorded: `log_statement = 'all'` for pat_app in a database of its own, read back from the
server's log, so what is checked is what reached PostgreSQL through PgBouncer (transaction mode, prepared statements
off), BEGIN/COMMIT and pool checks included, as the proxy would see it. Only top-level statements are logged, as the
proxy only sees those (what triggers do inside, e.g. an audit row's sequence, is not sent by the client).

The tenant boundary: the client never runs set_config (the page lists it, with no exception for transaction-local
settings; pghistory's users saw `set_config(..., true)` pin in RDS Proxy's logs:
https://github.com/AmbitionEng/django-pghistory/issues/245). It calls `pat.set_request_context(tenant, actor)`
(V011), which sets both transaction-locally inside the database: a function call, which the page says does not pin,
and state that does not persist across transactions, the page's condition for state changed inside a routine.
No exception is made here: a client `set_config` of any kind fails the test.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import ClientCursor, sql

from pat_data.connect import Target, connect, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.migrations import Migrator
from pat_data.partitions import PartitionMaintainer, load_config
from pat_data.repositories import Database, EmailRepository, NewEmail, TenantRepository, add_attachment
from tests.data.conftest import MIGRATIONS, PARTITIONS, app_connection

DataTier = tuple[LocalPostgres, LocalPgBouncer]
SUPERUSER_PASSWORD = "local-superuser-password"  # the throwaway local server's

# One pattern per item of the page's PostgreSQL list (statement text, upper-cased, comments stripped).
PINNING = {
    "SET command": re.compile(r"^\s*(SET|RESET)\b"),
    "prepared statement (PREPARE/DISCARD/DEALLOCATE/EXECUTE)": re.compile(
        r"^\s*(PREPARE|DISCARD|DEALLOCATE|EXECUTE)\b"
    ),
    "temporary sequence/table/view": re.compile(
        r"\b(TEMP|TEMPORARY)\s+(TABLE|SEQUENCE|VIEW)\b|\bINTO\s+(TEMP|TEMPORARY)\b"
    ),
    "declaring a cursor": re.compile(r"^\s*DECLARE\b"),
    "listening on a channel": re.compile(r"^\s*(LISTEN|UNLISTEN)\b"),
    "loading a library": re.compile(r"^\s*LOAD\b"),
    "sequence function": re.compile(r"\b(NEXTVAL|SETVAL|CURRVAL|LASTVAL)\s*\("),
    "session advisory lock": re.compile(r"\bPG_(TRY_)?ADVISORY_(UN)?LOCK(_SHARED|_ALL)?\s*\("),
    "setting a variable": re.compile(r"\bSET_CONFIG\s*\("),
}
STATEMENT_TEXT_LIMIT = 16 * 1024  # "Any statement with a text size greater than 16 KB causes the proxy to pin"
# The tenant scope every tenant-scoped transaction starts with (pat_data.repositories.TENANT_SCOPE).
TENANT_SCOPE = re.compile(r"^\s*SELECT PAT\.SET_REQUEST_CONTEXT\((\$1|'[0-9A-F-]{36}'), (\$2|'[^']*')\)\s*$")
# PgBouncer (not the client) replays the client's startup parameters on the server connection it assigns, in this
# exact form; RDS Proxy receives them as startup parameters of the client connection instead.
PGBOUNCER_STARTUP_SYNC = re.compile(
    r"^SET (application_name|client_encoding|datestyle|timezone|standard_conforming_strings)='[^']*'$"
)
LOGGED = re.compile(r"^\S+ \S+ \S+ \[\d+\] LOG:  (statement|execute (?P<name>[^:]+)): (?P<text>.*)$")


def logged_statements(log: Path, offset: int) -> list[str]:
    """Top-level statements logged after `offset`, each split on `;` (a simple-query message may carry several)."""
    statements: list[str] = []
    current: list[str] | None = None
    with log.open(encoding="utf-8", errors="replace") as handle:
        handle.seek(offset)
        for line in handle.read().splitlines():
            match = LOGGED.match(line)
            if match:
                if current is not None:
                    statements.append("\n".join(current))
                name = match.group("name")
                if name is not None and name != "<unnamed>":
                    statements.append(f"EXECUTE {name}")  # a named (prepared) statement through the pooler
                current = [match.group("text")]
            elif current is not None and line.startswith("\t"):
                current.append(line[1:])
            elif current is not None:
                statements.append("\n".join(current))
                current = None
    if current is not None:
        statements.append("\n".join(current))
    parts: list[str] = []
    for statement in statements:
        parts += [part.strip() for part in split_outside_quotes(statement) if part.strip()]
    return parts


def split_outside_quotes(text: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        if char == ";" and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(char)
    out.append("".join(buf))
    return out


def pinning_reasons(statement: str) -> list[str]:
    upper = re.sub(r"--[^\n]*", "", statement).upper()
    reasons = [reason for reason, pattern in PINNING.items() if pattern.search(upper)]
    if len(statement.encode()) > STATEMENT_TEXT_LIMIT:
        reasons.append(f"statement text over {STATEMENT_TEXT_LIMIT} bytes")
    return reasons


@pytest.fixture(scope="module")
def logged_database(data_tier: DataTier, new_database: Callable[[], Target]) -> tuple[Target, Path]:
    postgres, _ = data_tier
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    PartitionMaintainer(owner, load_config(PARTITIONS, "dev"), now=lambda: datetime.now(UTC)).run()
    superuser = Target(**{**vars(owner), "user": "postgres", "password": SUPERUSER_PASSWORD})
    with connect(superuser, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE pat_app IN DATABASE {} SET log_statement = 'all'").format(sql.Identifier(owner.dbname))
        )
    return owner, postgres.log


def test_no_pooled_path_sends_a_statement_that_pins_an_rds_proxy_session(
    data_tier: DataTier, logged_database: tuple[Target, Path]
) -> None:
    _, bouncer = data_tier
    owner, log = logged_database
    with connect(owner) as conn:
        row = conn.execute(
            "INSERT INTO pat.tenants (slug, name) VALUES (%s, 'P') RETURNING id", (f"p-{uuid.uuid4().hex[:8]}",)
        ).fetchone()
    assert row is not None
    tenant = uuid.UUID(str(row[0]))
    offset = log.stat().st_size
    app_pool = pool(target_from_dsn(bouncer.dsn("pat_app", owner.dbname), pooled=True), min_size=1, max_size=2)
    try:
        db = Database(app_pool)
        repo = EmailRepository(db)
        now = datetime.now(UTC).replace(microsecond=0)
        batch = [
            NewEmail(idempotency_key=f"pin-{i}", received_at=now - timedelta(hours=i), message_id=f"<pin-{i}@m>",
                     sender="a@example.com", recipients=["b@example.com"], subject=f"pinning {i}", text_body="body",
                     size_bytes=10)
            for i in range(20)
        ]  # fmt: skip
        paths = {
            "ingest": lambda: repo.ingest(tenant, batch),
            "page": lambda: repo.page(tenant, limit=5),
            "page after/status/since": lambda: repo.page(
                tenant, limit=5, after=(now, uuid.uuid4()), status="received", since=now - timedelta(days=30)
            ),
            "search": lambda: repo.search(tenant, "pinning"),
        }
        for call in paths.values():
            call()
        first = repo.page(tenant, limit=1).items[0]
        paths_on_row = {
            "get": lambda: repo.get(tenant, first["id"]),
            "get with received_at": lambda: repo.get(tenant, first["id"], received_at=first["received_at"]),
            "add_tag": lambda: repo.add_tag(tenant, first["id"], "Pinned"),
            "page by tag": lambda: repo.page(tenant, tag="pinned"),
            "remove_tag": lambda: repo.remove_tag(tenant, first["id"], "pinned"),
            "set_status": lambda: repo.set_status(tenant, first["id"], "read"),
            "add_attachment": lambda: add_attachment(
                db,
                tenant,
                email_id=first["id"],
                filename="a.pdf",
                content_type="application/pdf",
                size_bytes=1,
                sha256_hex="cd" * 32,
            ),
            "soft_delete": lambda: repo.soft_delete(tenant, first["id"]),
            "settings": lambda: TenantRepository(db).settings(tenant),
        }
        for call in paths_on_row.values():
            call()
    finally:
        app_pool.close()
    time.sleep(0.2)  # the server writes its log asynchronously to our read
    statements = [s for s in logged_statements(log, offset) if not PGBOUNCER_STARTUP_SYNC.match(s)]
    assert any("INSERT INTO pat.emails" in s for s in statements), "statement logging is not on"
    assert any(TENANT_SCOPE.match(s.upper()) for s in statements)
    offending = {s: pinning_reasons(s) for s in statements if pinning_reasons(s)}
    assert offending == {}, offending


def test_the_checker_flags_what_the_page_lists() -> None:
    for statement in (
        "SET search_path = pat",
        "SET LOCAL app.tenant_id = 'x'",
        "RESET ALL",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE ALL",
        "DISCARD ALL",
        "CREATE TEMP TABLE ingest_staging ON COMMIT DROP AS SELECT 1",
        "CREATE TEMPORARY SEQUENCE s",
        "SELECT 1 INTO TEMP t",
        "DECLARE c CURSOR FOR SELECT 1",
        "LISTEN changes",
        "LOAD 'auto_explain'",
        "SELECT nextval('pat.audit_log_id_seq')",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_lock(1)",
        "SELECT set_config('app.tenant_id', 'x', false)",
        "SELECT set_config('statement_timeout', '1s', true)",
        "SELECT set_config('app.tenant_id', '11111111-2222-3333-4444-555555555555', true)",
        "SELECT id FROM pat.emails WHERE subject IN (" + ", ".join(["'x'"] * 5000) + ")",
    ):
        assert pinning_reasons(statement), statement
    tenant = "11111111-2222-3333-4444-555555555555"
    for statement in (
        f"SELECT pat.set_request_context('{tenant}', 'app')",
        "SELECT pg_advisory_xact_lock(1)",
        "BEGIN",
        "COMMIT",
        "SELECT id FROM pat.emails WHERE subject = 'SET x; LISTEN y'",
    ):
        assert not any(pinning_reasons(part) for part in split_outside_quotes(statement)), statement


def test_statement_logging_parser_reads_the_server_format(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    log.write_text(
        "2026-01-01 00:00:00.000 UTC [42] LOG:  statement: BEGIN\n"
        "2026-01-01 00:00:00.001 UTC [42] LOG:  execute <unnamed>: INSERT INTO pat.emails\n"
        "\tSELECT 1\n"
        "2026-01-01 00:00:00.001 UTC [42] DETAIL:  parameters: $1 = 'x'\n"
        "2026-01-01 00:00:00.002 UTC [42] LOG:  execute _pg3_0: SELECT 2\n"
        "2026-01-01 00:00:00.003 UTC [42] LOG:  statement: SELECT set_config('a', 'b', true); SELECT 3\n"
    )
    assert logged_statements(log, 0) == [
        "BEGIN",
        "INSERT INTO pat.emails\nSELECT 1",
        "EXECUTE _pg3_0",
        "SELECT 2",
        "SELECT set_config('a', 'b', true)",
        "SELECT 3",
    ]


@pytest.mark.parametrize("user", ["pat_app", "pat_readonly"])
def test_the_request_context_lives_exactly_one_transaction(
    data_tier: DataTier, logged_database: tuple[Target, Path], user: str
) -> None:
    """What the page asks of state set inside a routine: it must not be relied on across transactions. Set by
    pat.set_request_context it is visible to the rest of its own transaction (RLS reads it), gone after COMMIT or
    ROLLBACK on the same server connection, and, in a one-message read, gone after that message."""
    owner, _ = logged_database
    tenant = str(uuid.uuid4())
    with app_connection(data_tier, owner, user) as conn:  # one client connection: one server connection at a time
        with conn.transaction():
            conn.execute("SELECT pat.set_request_context(%s, 'user:7')", (tenant,))
            assert conn.execute("SELECT pat.current_tenant_id()::text, pat.current_actor()").fetchone() == (
                tenant,
                "user:7",
            )
            server = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert server is not None
        # On the same server connection (PgBouncer reuses the one released last: server_round_robin = 0, its
        # default), so "gone" is the transaction's end, not a different session.
        assert conn.execute("SELECT pat.current_tenant_id(), pg_backend_pid()").fetchone() == (None, server[0])
        conn.rollback()

        def set_then_fail() -> None:
            with conn.transaction():
                conn.execute("SELECT pat.set_request_context(%s, 'x')", (tenant,))
                conn.execute("DO $$ BEGIN RAISE EXCEPTION 'abort'; END $$")

        with pytest.raises(psycopg.errors.RaiseException):
            set_then_fail()
        assert conn.execute("SELECT pat.current_tenant_id(), pg_backend_pid()").fetchone() == (None, server[0])
        conn.rollback()
        conn.autocommit = True
        with ClientCursor(conn) as cursor:
            cursor.execute("SELECT pat.set_request_context(%s, 'x'); SELECT pat.current_tenant_id()::text", (tenant,))
            assert cursor.nextset()
            assert cursor.fetchone() == (tenant,)
        assert conn.execute("SELECT pat.current_tenant_id(), current_setting('app.actor', true)").fetchone() in {
            (None, None),
            (None, ""),
        }


def test_request_context_is_callable_by_the_app_roles_only(logged_database: tuple[Target, Path]) -> None:
    owner, _ = logged_database
    with connect(owner) as conn:
        grantees = conn.execute(
            "SELECT coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC') FROM pg_proc p, aclexplode(p.proacl) a "
            "WHERE p.oid = 'pat.set_request_context(text, text)'::regprocedure AND a.privilege_type = 'EXECUTE' "
            "ORDER BY 1"
        ).fetchall()
        definer = conn.execute(
            "SELECT prosecdef FROM pg_proc WHERE oid = 'pat.set_request_context(text, text)'::regprocedure"
        ).fetchone()
    assert grantees == [("pat_app",), ("pat_owner",), ("pat_readonly",)]  # the owner's own grant; no PUBLIC
    assert definer == (False,)  # SECURITY INVOKER: it sets the caller's own settings and reads nothing
