"""Tenant-scoped repositories over psycopg 3 pools (PgBouncer / RDS Proxy friendly) with read-through caching.

Every call is one transaction that starts with `SELECT pat.set_request_context(<tenant>, <actor>)` (V011: it sets
`app.tenant_id` and `app.actor` transaction-locally, so nothing leaks through a transaction-mode pooler) and runs as
`pat_app`, so the database's row-level security decides what a tenant sees. Pooled paths send no session state: no
temporary tables, no prepared statements, no cursors, no `SET` or `set_config` (a client's set_config pins an RDS
Proxy session; a function call does not: tests/data/test_pooled_statements.py quotes AWS and records what each path
sends). Each read statement is one round trip (`Database.read`); a page reads recent partitions first, so it may take
a few (`EmailRepository.page`). Transient failures
(connection lost, admin shutdown, a failover's read-only writer, serialization failure, deadlock) are retried with
jittered back-off for idempotent operations only; everything else raises.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg import ClientCursor, sql
from psycopg.rows import TupleRow, dict_row
from psycopg_pool import ConnectionPool

from pat_data.cache import Cache

log = logging.getLogger(__name__)
T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]

CONNECTION_EXCEPTIONS = ("08000", "08001", "08003", "08004", "08006")  # class 08, connection exception
TRANSIENT_SQLSTATES = {
    "57P01",  # admin_shutdown (failover, restart)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now
    "25006",  # read_only_sql_transaction: writing to a writer that was just demoted
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    *CONNECTION_EXCEPTIONS,
}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.OperationalError | psycopg.InternalError) and exc.sqlstate is None:
        # The connection itself was lost: no server answer to classify. Through PgBouncer a server killed under
        # an open transaction can also surface as a protocol-level InternalError on COMMIT.
        return True
    return isinstance(exc, psycopg.Error) and exc.sqlstate in TRANSIENT_SQLSTATES


def retrying(
    operation: Callable[[], T],
    *,
    attempts: int = 4,
    base_delay: float = 0.05,
    max_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run an IDEMPOTENT operation, retrying transient errors with full-jitter exponential back-off."""
    for attempt in range(1, attempts + 1):
        try:
            return operation()
        except psycopg.Error as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2**attempt))  # noqa: S311 - jitter, not a secret
            log.warning("transient database error, retrying", extra={"attempt": attempt, "sqlstate": exc.sqlstate})
            sleep(delay)
    raise AssertionError("unreachable")


# A function call, not the client's own set_config: RDS Proxy pins a session on set_config, not on a function call
# (V011 quotes AWS's page).
TENANT_SCOPE = "SELECT pat.set_request_context(%s, %s)"


class SchemaBehindCodeError(RuntimeError):
    """This pat_data needs a migration the database has not had: the deploy order was code first, schema second."""


@contextmanager
def _schema_required() -> Iterator[None]:
    """Turn 'function pat.set_request_context does not exist' into the operator's fix (docs/migrations.md)."""
    try:
        yield
    except psycopg.errors.UndefinedFunction as exc:
        if "set_request_context" not in str(exc):
            raise
        raise SchemaBehindCodeError(
            "pat.set_request_context(text, text) does not exist in this database: its schema is older than this "
            "pat_data (it needs V011). Apply the migrations first (`cdk deploy` of the data tier runs them; "
            "`scripts/patops --env <env> migrations plan` lists what is pending), then roll out this code: "
            "docs/migrations.md, 'Schema first, then the code that needs it'."
        ) from exc


@dataclass
class Database:
    """The writer pool, and optionally a reader pool for reads that tolerate replica lag."""

    writer: ConnectionPool
    reader: ConnectionPool | None = None

    @contextmanager
    def tenant(self, tenant_id: uuid.UUID | str, *, actor: str = "app", stale_ok: bool = False) -> Iterator[Conn]:
        """One transaction scoped to `tenant_id` (RLS) with `actor` recorded by the audit trigger."""
        pool = self.reader if stale_ok and self.reader is not None else self.writer
        with pool.connection() as conn, conn.transaction():
            with _schema_required():
                conn.execute(TENANT_SCOPE, (str(tenant_id), actor))
            yield conn

    def read(
        self,
        tenant_id: uuid.UUID | str,
        query: sql.Composable,
        params: Sequence[object] = (),
        *,
        stale_ok: bool = False,
        actor: str = "app",
    ) -> list[dict[str, Any]]:
        """One tenant-scoped SELECT in ONE round trip: `SELECT pat.set_request_context(...); <query>` sent as a
        single simple-protocol message (client-side binding with psycopg's quoting), which the server runs as one
        implicit transaction.

        The server parses, plans and runs the two statements in order, so the tenant is set before the query is
        planned: RLS and `pat.current_tenant_id()` see it (tests/data/test_repositories.py checks isolation through
        this path). The setting is transaction-local and ends with the implicit transaction. No BEGIN/COMMIT round
        trips, no prepared statement (the simple protocol has none), nothing left on the server connection.
        `query` takes positional `%s` parameters only.
        """
        pool = self.reader if stale_ok and self.reader is not None else self.writer
        statement = sql.SQL("{}; {}").format(sql.SQL(TENANT_SCOPE), query)
        with pool.connection() as conn:
            # Per call (a client-side flag, no round trip): the pool's connections keep autocommit off for tenant().
            conn.autocommit = True
            try:
                with ClientCursor(conn, row_factory=dict_row) as cursor, _schema_required():
                    cursor.execute(statement, (str(tenant_id), actor, *params))
                    if not cursor.nextset():
                        raise AssertionError("the tenant-scoped query returned no result set")
                    return cursor.fetchall()
            finally:
                if not conn.closed:
                    conn.autocommit = False


@dataclass(frozen=True, kw_only=True)
class NewEmail:
    idempotency_key: str
    received_at: datetime
    message_id: str
    sender: str
    recipients: Sequence[str]
    subject: str = ""
    text_body: str | None = None
    html_body: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    status: str = "received"
    spam_score: float | None = None


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    duplicates: int


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: tuple[datetime, uuid.UUID] | None


EMAIL_COLUMNS = (
    "id",
    "received_at",
    "message_id",
    "idempotency_key",
    "sender",
    "recipients",
    "subject",
    "text_body",
    "html_body",
    "headers",
    "metadata",
    "size_bytes",
    "status",
    "spam_score",
)
# Ingest sends one array per column (the id is drawn by the server); recipients (text[] per email) travel as JSON text,
# since SQL arrays of arrays must be rectangular.
INGEST_ARRAYS = (
    ("received_at", "timestamptz"),
    ("message_id", "text"),
    ("idempotency_key", "text"),
    ("sender", "text"),
    ("recipients", "jsonb"),
    ("subject", "text"),
    ("text_body", "text"),
    ("html_body", "text"),
    ("headers", "jsonb"),
    ("metadata", "jsonb"),
    ("size_bytes", "int8"),
    ("status", "text"),
    ("spam_score", "numeric"),
)
INGEST_STATEMENT = sql.SQL(
    "WITH batch AS MATERIALIZED ("
    "  SELECT gen_random_uuid() AS id, * FROM unnest({arrays}) AS b ({names})),"
    " claimed AS ("
    "  INSERT INTO pat.email_idempotency_keys (tenant_id, idempotency_key, email_id, received_at)"
    "  SELECT pat.current_tenant_id(), idempotency_key, id, received_at FROM batch"
    "  ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING email_id)"
    " INSERT INTO pat.emails (tenant_id, {columns})"
    " SELECT pat.current_tenant_id(), b.id, b.received_at, b.message_id, b.idempotency_key, b.sender,"
    "  ARRAY(SELECT jsonb_array_elements_text(b.recipients)), b.subject, b.text_body, b.html_body, b.headers,"
    "  b.metadata, b.size_bytes, b.status, b.spam_score"
    " FROM batch b JOIN claimed c ON c.email_id = b.id"
).format(
    arrays=sql.SQL(", ").join(sql.SQL("%b::{}[]").format(sql.SQL(kind)) for _, kind in INGEST_ARRAYS),
    names=sql.SQL(", ").join(sql.Identifier(name) for name, _ in INGEST_ARRAYS),
    columns=sql.SQL(", ").join(sql.Identifier(name) for name in EMAIL_COLUMNS),
)
SUMMARY = (
    "id, tenant_id, received_at, message_id, sender, recipients, subject, status, spam_score, size_bytes, metadata, "
    "created_at, updated_at"
)


class EmailRepository:
    """Emails of one platform: ingest, read, list, search, tag, soft delete; hot reads cached."""

    def __init__(self, db: Database, *, cache: Cache | None = None) -> None:
        self.db = db
        self.cache = cache

    @staticmethod
    def _cache_id(tenant_id: uuid.UUID | str, email_id: uuid.UUID | str) -> str:
        return f"{tenant_id}:{email_id}"

    def ingest(self, tenant_id: uuid.UUID | str, emails: Sequence[NewEmail], *, actor: str = "ingest") -> IngestResult:
        """One statement per batch: claim the idempotency keys, insert only the winners.

        The batch travels as one array per column and `unnest()` turns it back into rows (no temporary table, which
        would pin an RDS Proxy session, and one pass instead of COPY + claim + INSERT). The claim is
        `INSERT ... ON CONFLICT DO NOTHING` into the ledger: a key already claimed (an earlier batch, a duplicate
        inside this batch, or a concurrent ingest of the same batch, which waits on the ledger's unique index and
        then loses) returns no row, so its email is not inserted. RLS's WITH CHECK applies to both inserts (tenant
        from `pat.set_request_context` in the same transaction). The ledger trigger (V009, statement-level) still
        verifies that every inserted email owns its key. Idempotent as a whole, so it is retried on transient errors.
        The arrays travel in binary (`%b`): no text escaping of every body on the client, no array parsing on the
        server (text arrays cost ~40 % of the client's CPU per batch in a profile; the sustained rate went from 9.0K
        to 10.5K emails/s on the 2-core bench, where client and server share the cores). For the same reason the ids
        are drawn by the server (gen_random_uuid, once per row in the materialized batch) and the JSON columns travel
        as JSON text, cast to jsonb by the server, which parses them either way.
        """
        if not emails:
            return IngestResult(0, 0)
        columns: dict[str, list[Any]] = {name: [] for name, _ in INGEST_ARRAYS}
        for e in emails:
            columns["received_at"].append(e.received_at)
            columns["message_id"].append(e.message_id)
            columns["idempotency_key"].append(e.idempotency_key)
            columns["sender"].append(e.sender)
            columns["recipients"].append(json.dumps(list(e.recipients)))
            columns["subject"].append(e.subject)
            columns["text_body"].append(e.text_body)
            columns["html_body"].append(e.html_body)
            columns["headers"].append(json.dumps(dict(e.headers)))
            columns["metadata"].append(json.dumps(dict(e.metadata)))
            columns["size_bytes"].append(e.size_bytes)
            columns["status"].append(e.status)
            columns["spam_score"].append(e.spam_score)
        params = [columns[name] for name, _ in INGEST_ARRAYS]

        def attempt() -> int:
            with self.db.tenant(tenant_id, actor=actor) as conn:
                return conn.execute(INGEST_STATEMENT, params).rowcount

        inserted = retrying(attempt)
        return IngestResult(inserted=inserted, duplicates=len(emails) - inserted)

    def get(
        self, tenant_id: uuid.UUID | str, email_id: uuid.UUID | str, *, received_at: datetime | None = None
    ) -> dict[str, Any] | None:
        """One email, or None (another tenant's, deleted, or unknown).

        Pass `received_at` whenever the caller has it (every page and search row carries it): the query then names
        the partition key, so the planner keeps ONE monthly partition instead of planning all of them, which is most
        of a pooled read's cost without prepared statements. Without it every partition is planned (correct, slower):
        ids are random UUIDs, so nothing bounds the month. The cache key is the id alone, so both forms share it.
        """

        def load() -> dict[str, Any] | None:
            # The explicit tenant condition lets the primary key (tenant_id, id, received_at) find the row; RLS alone
            # adds it as a security-barrier filter the index cannot use.
            conditions = [sql.SQL("tenant_id = pat.current_tenant_id() AND id = %s AND deleted_at IS NULL")]
            params: list[object] = [email_id]
            if received_at is not None:
                conditions.append(sql.SQL("received_at = %s"))
                params.append(received_at)
            query = sql.SQL("SELECT {summary}, text_body FROM pat.emails WHERE {conditions}").format(
                summary=sql.SQL(SUMMARY), conditions=sql.SQL(" AND ").join(conditions)
            )
            rows = retrying(lambda: self.db.read(tenant_id, query, params))
            return rows[0] if rows else None

        if self.cache is None:
            return load()
        key = self._cache_id(tenant_id, email_id)
        return self.cache.get_or_load("email", key, load, tags=[f"tenant:{tenant_id}"])

    def page(
        self,
        tenant_id: uuid.UUID | str,
        *,
        limit: int = 100,
        after: tuple[datetime, uuid.UUID] | None = None,
        status: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        stale_ok: bool = False,
    ) -> Page:
        """Newest first, keyset-paginated on (received_at, id): stable under concurrent inserts, O(limit) per page.

        Read in windows of months, because a query that does not bound the partition key plans and opens every monthly
        partition of pat.emails (a Merge Append over all of them: with two years of retention, a first page planned
        and descended ~40 indexes to return rows from the newest one or two). The first window starts at the month
        before the newest row wanted (now, the cursor or `until`, whichever bounds the page); each window is its own
        round trip with the window's start as a query parameter, so the server plans it with the value and prunes the
        older partitions. Only when a window returns fewer than `limit` rows does the walk go on below its start, in
        windows that double (the newest 2, 4, 8, then 16 months), then once unbounded below the last start: at most
        five round trips, and exactly the rows of the unbounded query in its order (the slices do not overlap).
        Windows have no upper side of their own: mail dated in the future (premade partitions, DEFAULT) sorts first
        and stays listed, so a first page still plans those (normally empty) partitions; a page after a cursor is
        bounded on both sides. A mailbox with fewer than `limit` rows in its last 16 months pays the extra round
        trips. Each window is its own transaction, as each page already is.
        """
        if not 1 <= limit <= 500:
            raise ValueError(f"limit={limit}: between 1 and 500")
        conditions = [sql.SQL("e.deleted_at IS NULL")]
        params: list[object] = []
        if after is not None:
            # The plain bound is redundant with the row comparison but names the partition key, so partitions newer
            # than the cursor are pruned at plan time (a row comparison prunes nothing).
            conditions.append(sql.SQL("e.received_at <= %s AND (e.received_at, e.id) < (%s, %s)"))
            params += [after[0], after[0], after[1]]
        if status is not None:
            conditions.append(sql.SQL("e.status = %s"))
            params.append(status)
        if since is not None:
            conditions.append(sql.SQL("e.received_at >= %s"))
            params.append(since)
        if until is not None:
            conditions.append(sql.SQL("e.received_at < %s"))
            params.append(until)
        if tag is not None:
            conditions.append(
                sql.SQL(
                    "EXISTS (SELECT FROM pat.email_tags et JOIN pat.tags t ON t.tenant_id = et.tenant_id "
                    "AND t.id = et.tag_id WHERE et.tenant_id = e.tenant_id AND et.email_id = e.id "
                    "AND et.email_received_at = e.received_at AND lower(t.name) = lower(%s) AND t.deleted_at IS NULL)"
                )
            )
            params.append(tag)
        newest = min((bound for bound in (after[0] if after else None, until) if bound is not None), default=None)
        anchor = (newest or datetime.now(UTC)).astimezone(UTC)  # partitions are UTC months
        month = anchor.year * 12 + anchor.month - 1
        month_starts = (
            datetime((month - back) // 12, (month - back) % 12 + 1, 1, tzinfo=UTC) for back in (1, 3, 7, 15)
        )
        starts: list[datetime | None] = [start for start in month_starts if since is None or start > since]
        items: list[dict[str, Any]] = []
        below: datetime | None = None  # the previous window's start: this window reads only older rows
        for lower in [*starts, None]:
            window, window_params = list(conditions), list(params)
            if below is not None:
                window.append(sql.SQL("e.received_at < %s"))
                window_params.append(below)
            if lower is not None:
                window.append(sql.SQL("e.received_at >= %s"))
                window_params.append(lower)
            query = sql.SQL(
                "SELECT e.id, e.received_at, e.sender, e.subject, e.status, e.size_bytes FROM pat.emails e "
                "WHERE e.tenant_id = pat.current_tenant_id() AND {conditions} "
                "ORDER BY e.received_at DESC, e.id DESC LIMIT %s"
            ).format(conditions=sql.SQL(" AND ").join(window))
            window_params.append(limit - len(items))
            items += retrying(partial(self.db.read, tenant_id, query, window_params, stale_ok=stale_ok))
            if lower is None or len(items) == limit:
                break
            below = lower
        cursor = (items[-1]["received_at"], items[-1]["id"]) if len(items) == limit else None
        return Page(items=items, next_cursor=cursor)

    def search(
        self,
        tenant_id: uuid.UUID | str,
        text: str,
        *,
        limit: int = 20,
        offset: int = 0,
        candidates: int = 1000,
        stale_ok: bool = False,
    ) -> list[dict[str, Any]]:
        """Ranked full-text search (websearch syntax: quotes, OR, -word) over subject, sender and body.

        Ranking is done among the `candidates` newest matches of the whole mailbox (no date bound): a common word can
        match most of a tenant's mail, and ranking all of it costs seconds. `pat.search_email_ids` (V008) finds and
        ranks them in the owner-only search index, for the tenant set on this transaction; the rows are then read from
        pat.emails under RLS by (id, received_at), so only the tenant's own, live mail is ever returned, in the
        function's order. See docs/architecture.md#search.
        """

        def attempt() -> list[dict[str, Any]]:
            with self.db.tenant(tenant_id, stale_ok=stale_ok) as conn, conn.cursor(row_factory=dict_row) as cursor:
                hits = cursor.execute(
                    "SELECT email_id AS id, received_at, rank FROM pat.search_email_ids(%s, %s, %s, %s)",
                    (text, limit, offset, candidates),
                ).fetchall()
                if not hits:
                    return []
                # received_at = ANY(constant array) prunes to the partitions of the hits at plan time.
                cursor.execute(
                    "SELECT id, received_at, subject, sender FROM pat.emails "
                    "WHERE tenant_id = pat.current_tenant_id() AND deleted_at IS NULL "
                    "AND id = ANY(%s) AND received_at = ANY(%s)",
                    ([hit["id"] for hit in hits], sorted({hit["received_at"] for hit in hits})),
                )
                rows = {(row["id"], row["received_at"]): row for row in cursor.fetchall()}
            found = ((rows.get((hit["id"], hit["received_at"])), hit["rank"]) for hit in hits)
            return [{**row, "rank": rank} for row, rank in found if row is not None]

        return retrying(attempt)

    def _change(
        self,
        tenant_id: uuid.UUID | str,
        email_id: uuid.UUID | str,
        statement: str,
        params: Sequence[object],
        actor: str,
    ) -> bool:
        def attempt() -> bool:
            with self.db.tenant(tenant_id, actor=actor) as conn:
                return conn.execute(statement, params).rowcount > 0

        changed = retrying(attempt)
        if self.cache is not None:
            self.cache.invalidate("email", self._cache_id(tenant_id, email_id))
        return changed

    def set_status(
        self, tenant_id: uuid.UUID | str, email_id: uuid.UUID | str, status: str, *, actor: str = "app"
    ) -> bool:
        return self._change(
            tenant_id,
            email_id,
            "UPDATE pat.emails SET status = %s WHERE id = %s AND deleted_at IS NULL",
            (status, email_id),
            actor,
        )

    def soft_delete(self, tenant_id: uuid.UUID | str, email_id: uuid.UUID | str, *, actor: str = "app") -> bool:
        return self._change(
            tenant_id,
            email_id,
            "UPDATE pat.emails SET deleted_at = now() WHERE id = %s AND deleted_at IS NULL",
            (email_id,),
            actor,
        )

    def add_tag(self, tenant_id: uuid.UUID | str, email_id: uuid.UUID | str, name: str, *, actor: str = "app") -> bool:
        def attempt() -> bool:
            with self.db.tenant(tenant_id, actor=actor) as conn:
                tag = conn.execute(
                    "SELECT id FROM pat.tags WHERE lower(name) = lower(%s) AND deleted_at IS NULL", (name,)
                ).fetchone()
                if tag is None:
                    tag = conn.execute(
                        "INSERT INTO pat.tags (tenant_id, name) VALUES (pat.current_tenant_id(), %s) RETURNING id",
                        (name,),
                    ).fetchone()
                assert tag is not None
                return (
                    conn.execute(
                        "INSERT INTO pat.email_tags (tenant_id, email_id, email_received_at, tag_id) "
                        "SELECT tenant_id, id, received_at, %s FROM pat.emails WHERE id = %s "
                        "ON CONFLICT DO NOTHING",
                        (tag[0], email_id),
                    ).rowcount
                    > 0
                )

        return retrying(attempt)

    def remove_tag(
        self, tenant_id: uuid.UUID | str, email_id: uuid.UUID | str, name: str, *, actor: str = "app"
    ) -> bool:
        return self._change(
            tenant_id,
            email_id,
            "DELETE FROM pat.email_tags et USING pat.tags t WHERE t.tenant_id = et.tenant_id AND t.id = et.tag_id "
            "AND et.email_id = %s AND lower(t.name) = lower(%s)",
            (email_id, name),
            actor,
        )


class TenantRepository:
    """Tenant settings: read on almost every request, so cached; writes go through the operator (owner) path."""

    def __init__(self, db: Database, *, cache: Cache | None = None) -> None:
        self.db, self.cache = db, cache

    def settings(self, tenant_id: uuid.UUID | str) -> dict[str, Any] | None:
        def load() -> dict[str, Any] | None:
            def attempt() -> dict[str, Any] | None:
                with self.db.tenant(tenant_id) as conn, conn.cursor(row_factory=dict_row) as cursor:
                    cursor.execute(
                        "SELECT id, slug, name, plan, status, settings FROM pat.tenants WHERE id = %s", (tenant_id,)
                    )
                    return cursor.fetchone()

            return retrying(attempt)

        if self.cache is None:
            return load()
        return self.cache.get_or_load("tenant", str(tenant_id), load, tags=[f"tenant:{tenant_id}"])

    def invalidate(self, tenant_id: uuid.UUID | str) -> None:
        """After an operator changed the tenant (or to drop everything cached for it)."""
        if self.cache is not None:
            self.cache.invalidate_tag(f"tenant:{tenant_id}")


@dataclass(frozen=True)
class AttachmentLinks:
    """Where attachments go (presigned S3 PUT with SSE-KMS) and come from (CloudFront, or a presigned S3 GET)."""

    s3: Any
    bucket: str
    distribution_domain: str | None = None
    expires_seconds: int = 900

    @staticmethod
    def key(tenant_id: uuid.UUID | str, sha256_hex: str) -> str:
        if len(sha256_hex) != 64 or any(c not in "0123456789abcdef" for c in sha256_hex):
            raise ValueError("sha256_hex: 64 lower-case hex characters")
        return f"tenants/{tenant_id}/{sha256_hex}"

    def upload_url(self, tenant_id: uuid.UUID | str, sha256_hex: str, content_type: str) -> str:
        return str(
            self.s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": self.key(tenant_id, sha256_hex), "ContentType": content_type},
                ExpiresIn=self.expires_seconds,
            )
        )

    def download_url(self, tenant_id: uuid.UUID | str, sha256_hex: str) -> str:
        key = self.key(tenant_id, sha256_hex)
        if self.distribution_domain:
            return f"https://{self.distribution_domain}/{key}"
        return str(
            self.s3.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expires_seconds
            )
        )


def add_attachment(
    db: Database,
    tenant_id: uuid.UUID | str,
    *,
    email_id: uuid.UUID | str,
    filename: str,
    content_type: str,
    size_bytes: int,
    sha256_hex: str,
) -> uuid.UUID:
    """Record an attachment's metadata (the object itself is uploaded with AttachmentLinks.upload_url)."""
    with db.tenant(tenant_id) as conn:
        row = conn.execute(
            "INSERT INTO pat.attachments (tenant_id, email_id, email_received_at, filename, content_type, size_bytes, "
            "sha256, s3_key) SELECT tenant_id, id, received_at, %s, %s, %s, %s, %s FROM pat.emails WHERE id = %s "
            "RETURNING id",
            (
                filename,
                content_type,
                size_bytes,
                bytes.fromhex(sha256_hex),
                AttachmentLinks.key(tenant_id, sha256_hex),
                email_id,
            ),
        ).fetchone()
    if row is None:
        raise LookupError(f"email {email_id} not found for tenant {tenant_id}")
    return uuid.UUID(str(row[0]))
