"""Search under forced RLS (V008): the owner-only index pat.email_search and pat.search_email_ids().

The application (pat_app through PgBouncer, tenant per transaction) reaches the index only through the SECURITY DEFINER
function, which takes the tenant from app.tenant_id itself. These tests hold the tenant boundary on that new path and
check that the fast path answers exactly what the plain RLS query over pat.emails answers.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import ClientCursor, sql
from psycopg_pool import ConnectionPool

from pat_data.connect import Target, connect, pool, target_from_dsn
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.migrations import Migrator
from pat_data.migrations.files import discover
from pat_data.repositories import Database, EmailRepository
from tests.data.conftest import MIGRATIONS, app_connection

Conn = psycopg.Connection[tuple[object, ...]]
DataTier = tuple[LocalPostgres, LocalPgBouncer]
NOW = datetime.now(UTC).replace(microsecond=0)
# The pinned query set: common, mid and rare words of the skewed vocabulary, and websearch syntax.
QUERIES = (
    "w0",
    "w1",
    "w3",
    "w12",
    "w40",
    "w150",
    "w0 w5",
    '"w0 w1"',
    "w2 -w0",
    "w180 or w190",
    "alice@example.com",
    "subjectword",
)
# The expression of the generated column V008 replaced (V003), written out again: the reference must not share code.
DOCUMENT = (
    "setweight(to_tsvector('simple', coalesce(e.subject, '')), 'A') "
    "|| setweight(to_tsvector('simple', coalesce(e.sender, '')), 'B') "
    "|| setweight(to_tsvector('simple', left(coalesce(e.text_body, ''), 100000)), 'C')"
)


def plain_query(limit: int, candidates: int) -> str:
    """Today's ranked search as a plain query over pat.emails under RLS: the reference for the fast path."""
    return (
        f"SELECT id, received_at, rank FROM ("
        f"  SELECT e.id, e.received_at, ts_rank_cd({DOCUMENT}, websearch_to_tsquery('simple', %(q)s)) AS rank"
        f"  FROM pat.emails e WHERE e.deleted_at IS NULL AND {DOCUMENT} @@ websearch_to_tsquery('simple', %(q)s)"
        f"  ORDER BY e.received_at DESC, e.id DESC LIMIT {candidates}) c "
        f"ORDER BY rank DESC, received_at DESC, id DESC LIMIT {limit}"
    )


def words(rng: random.Random, count: int) -> str:
    # Squared-uniform over 200 words (as the bench's corpus): w0 is in most mail, w150+ in little.
    return " ".join(f"w{int(rng.random() ** 2 * 200)}" for _ in range(count))


def insert_mail(conn: Conn, tenant: uuid.UUID, count: int, seed: int, *, extra: str = "") -> None:
    """`count` emails in ONE statement (the trigger sees them all in one transition table), spread over 3 years."""
    rng = random.Random(seed)
    rows = [
        (
            NOW - timedelta(days=rng.randrange(0, 1100), seconds=rng.randrange(86400)),
            f"k-{seed}-{i}",
            f"{words(rng, 4)} {extra}".strip(),
            f"{'alice' if i % 5 == 0 else 'bob'}@example.com",
            words(rng, 40) + (" subjectword" if i % 97 == 0 else ""),
        )
        for i in range(count)
    ]
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        conn.execute(
            "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, subject, "
            "text_body, size_bytes) "
            "SELECT pat.current_tenant_id(), r, '<' || k || '@t>', k, snd, '{x@y.test}', subj, body, 100 "
            "FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "AS u(r, k, subj, snd, body)",
            [list(column) for column in zip(*rows, strict=True)],
        )


@dataclass(frozen=True)
class Mailboxes:
    a: uuid.UUID
    b: uuid.UUID


@pytest.fixture(scope="module")
def app(data_tier: DataTier, pat_database: Target) -> Iterator[Conn]:
    with app_connection(data_tier, pat_database) as conn:
        yield conn


@pytest.fixture(scope="module")
def mailboxes(pat_database: Target, app: Conn) -> Mailboxes:
    with connect(pat_database) as owner:
        ids = []
        for slug in ("search-a", "search-b"):
            name = f"{slug}-{uuid.uuid4().hex[:8]}"
            cursor = owner.execute("INSERT INTO pat.tenants (slug, name) VALUES (%s, 'S') RETURNING id", (name,))
            ids.append(uuid.UUID(str(cursor.fetchall()[0][0])))
    insert_mail(app, ids[0], 6000, seed=1)  # more than the search rule's largest sample (V010): both paths occur
    insert_mail(app, ids[1], 400, seed=2, extra="globexonly")
    with connect(pat_database) as owner:
        owner.execute("ANALYZE pat.email_search")
    return Mailboxes(a=ids[0], b=ids[1])


def search(conn: Conn, tenant: uuid.UUID | None, query: str, limit: int = 20, *, candidates: int = 1000) -> list:
    with conn.transaction():
        if tenant is not None:
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        return conn.execute(
            "SELECT email_id, received_at, rank FROM pat.search_email_ids(%s, %s, 0, %s)", (query, limit, candidates)
        ).fetchall()


def reference(conn: Conn, tenant: uuid.UUID, query: str, limit: int = 20, *, candidates: int = 1000) -> list:
    with conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        return conn.execute(plain_query(limit, candidates), {"q": query}).fetchall()


@pytest.mark.parametrize("query", QUERIES)
def test_fast_path_returns_the_same_top_20_as_the_plain_query(app: Conn, mailboxes: Mailboxes, query: str) -> None:
    expected = reference(app, mailboxes.a, query)
    assert expected, f"the pinned query {query!r} matches nothing: the comparison would prove nothing"
    assert search(app, mailboxes.a, query) == expected
    # Full-mailbox ranking (every match a candidate) agrees too.
    assert search(app, mailboxes.a, query, candidates=100000) == reference(app, mailboxes.a, query, candidates=100000)


def test_the_pinned_set_takes_both_search_paths(pat_database: Target, mailboxes: Mailboxes) -> None:
    """So the comparison above covers the date walk and the GIN path alike (V010), and the function uses the rule."""
    with connect(pat_database) as owner:
        paths = {
            query: owner.execute(
                "SELECT path FROM pat.email_search_path(%s, websearch_to_tsquery('simple', %s), 1000)",
                (mailboxes.a, query),
            ).fetchall()[0][0]
            for query in QUERIES
        }
        source = owner.execute("SELECT prosrc FROM pg_proc WHERE proname = 'search_email_ids'").fetchall()[0][0]
    assert set(paths.values()) == {"walk", "index"}, paths
    assert "pat.email_search_path(tenant, q, candidates)" in source


@pytest.mark.parametrize("query", ["", "!!! ---", "-"])
def test_a_query_without_words_finds_nothing(app: Conn, mailboxes: Mailboxes, query: str) -> None:
    """No lexeme: the sample finds no match in a mailbox larger than the sample, so the GIN path runs with an empty
    tsquery; it must answer like the plain query (nothing), not fail."""
    assert search(app, mailboxes.a, query) == reference(app, mailboxes.a, query) == []


def test_the_pinned_set_has_common_and_rare_terms(app: Conn, mailboxes: Mailboxes) -> None:
    counts = {q: len(reference(app, mailboxes.a, q, limit=100000, candidates=100000)) for q in ("w0", "w150")}
    assert counts["w0"] > 1000  # more matches than candidates: the candidate window matters
    assert 0 < counts["w150"] < 1000  # fewer matches than candidates: every one of them is ranked


def test_a_tenant_never_finds_another_tenants_mail(app: Conn, mailboxes: Mailboxes) -> None:
    assert search(app, mailboxes.b, "globexonly", limit=1000)  # B finds its own
    assert search(app, mailboxes.a, "globexonly", limit=1000) == []  # A does not, even with B's word
    with app.transaction():
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(mailboxes.a),))
        ids_a = {row[0] for row in app.execute("SELECT id FROM pat.emails").fetchall()}
    for query in ("w0", "w1", "alice@example.com"):
        found = {row[0] for row in search(app, mailboxes.a, query, limit=10000, candidates=100000)}
        assert found
        assert found <= ids_a


def test_without_a_tenant_the_function_raises(app: Conn, mailboxes: Mailboxes) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no tenant is set"):
        search(app, None, "w0")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        search(app, mailboxes.a, "w0", limit=-1)


@pytest.mark.parametrize("role", ["pat_app", "pat_readonly"])
def test_app_roles_cannot_read_the_index_directly(data_tier: DataTier, pat_database: Target, role: str) -> None:
    with connect(pat_database) as owner:
        partition = owner.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'pat.email_search'::regclass LIMIT 1"
        ).fetchone()
    assert partition is not None
    with app_connection(data_tier, pat_database, role) as conn:
        for relation in ("email_search", partition[0].removeprefix("pat.")):
            table = sql.Identifier("pat", relation)
            for statement in (sql.SQL("SELECT count(*) FROM {}"), sql.SQL("DELETE FROM {}")):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(statement.format(table))


def test_only_pat_app_may_execute_the_search_function(pat_database: Target) -> None:
    with connect(pat_database) as owner:
        grantees = owner.execute(
            "SELECT coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC') FROM pg_proc p, aclexplode(p.proacl) a "
            "WHERE p.oid = 'pat.search_email_ids(text, integer, integer, integer)'::regprocedure "
            "AND a.privilege_type = 'EXECUTE' ORDER BY 1"
        ).fetchall()
        triggers = owner.execute(
            "SELECT p.proname, has_function_privilege('pat_app', p.oid, 'EXECUTE') "
            "FROM pg_proc p WHERE p.proname LIKE 'email\\_search\\_on\\_%' ORDER BY 1"
        ).fetchall()
    assert grantees == [("pat_app",), ("pat_owner",)]
    assert triggers == [(f"email_search_on_{op}", False) for op in ("delete", "insert", "update")]


def test_pat_app_cannot_make_the_index_forget_another_tenants_mail(app: Conn, mailboxes: Mailboxes) -> None:
    """The attack: pat_app, in tenant A's context, calls the owner-only pat.email_search_forget (V013, SECURITY
    DEFINER, it deletes by key with no tenant check of its own) with tenant B's email; B's mail stays searchable."""
    marker = f"f{uuid.uuid4().hex[:12]}"
    insert_mail(app, mailboxes.b, 1, seed=41, extra=marker)
    [(email_id, received_at, _)] = search(app, mailboxes.b, marker)
    with app.transaction(force_rollback=True):
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(mailboxes.a),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
            app.execute(
                "SELECT pat.email_search_forget(ARRAY[%s]::uuid[], ARRAY[%s]::uuid[], ARRAY[%s]::timestamptz[])",
                (mailboxes.b, email_id, received_at),
            )
    assert [row[0] for row in search(app, mailboxes.b, marker)] == [email_id]


def test_security_definer_functions_pin_search_path_and_custom_plans(pat_database: Target) -> None:
    with connect(pat_database) as owner:
        rows = dict(
            owner.execute(
                "SELECT proname, proconfig FROM pg_proc WHERE pronamespace = 'pat'::regnamespace "
                "AND proname IN ('search_email_ids', 'email_search_on_insert', 'email_search_on_update', "
                "'email_search_on_delete') AND prosecdef AND proowner = 'pat_owner'::regrole"
            ).fetchall()
        )
    assert rows["search_email_ids"] == [
        "search_path=pg_catalog, pat",
        "plan_cache_mode=force_custom_plan",
        "jit=off",
        # Restores them after the call: the function turns some off transaction-locally to pick its path.
        "enable_seqscan=on",
        "enable_bitmapscan=on",
        "enable_indexscan=on",
        "enable_sort=on",
    ]
    for trigger in ("email_search_on_insert", "email_search_on_update", "email_search_on_delete"):
        assert rows[trigger] == ["search_path=pg_catalog, pat"]


def test_deleted_and_edited_mail_leaves_and_reenters_the_index(app: Conn, mailboxes: Mailboxes) -> None:
    marker = f"m{uuid.uuid4().hex[:12]}"
    insert_mail(app, mailboxes.a, 3, seed=3, extra=marker)
    found = search(app, mailboxes.a, marker)
    assert len(found) == 3
    victim, moved = found[0][0], found[1][0]
    with app.transaction():
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(mailboxes.a),))
        app.execute("UPDATE pat.emails SET deleted_at = now() WHERE id = %s", (victim,))
        # Moves to another partition (received_at is the partition key) and changes its words in one UPDATE.
        app.execute(
            "UPDATE pat.emails SET received_at = received_at - interval '400 days', subject = %s WHERE id = %s",
            (f"{marker} edited", moved),
        )
        app.execute("UPDATE pat.emails SET status = 'read'")  # touches every row of A: indexes nothing new
    after = search(app, mailboxes.a, marker)
    assert victim not in {row[0] for row in after}
    assert len(after) == 2
    assert search(app, mailboxes.a, "edited") == [row for row in after if row[0] == moved]
    assert search(app, mailboxes.a, marker) == reference(app, mailboxes.a, marker)
    with app.transaction():  # restored mail is searchable again
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(mailboxes.a),))
        app.execute("UPDATE pat.emails SET deleted_at = NULL WHERE id = %s", (victim,))
    assert len(search(app, mailboxes.a, marker)) == 3
    with app.transaction():  # a hard delete (retention, cascades) removes it as well
        app.execute("SELECT set_config('app.tenant_id', %s, true)", (str(mailboxes.a),))
        app.execute("DELETE FROM pat.emails WHERE id = %s", (victim,))
    assert victim not in {row[0] for row in search(app, mailboxes.a, marker)}


def explain(owner: Conn, function_sql: str, values: dict[str, object]) -> dict:
    cursor = ClientCursor(owner)  # values inlined as literals, as force_custom_plan plans them
    cursor.execute(f"EXPLAIN (FORMAT JSON) {function_sql}", values)
    row = cursor.fetchone()
    assert row is not None
    document = row[0]
    assert isinstance(document, list)
    return dict(document[0]["Plan"])


def nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_the_function_takes_the_gin_index_for_rare_words_and_the_date_walk_for_common_ones(
    pat_database: Target,
) -> None:
    """V010: the path comes from a sample of the tenant's newest mail (pat.email_search_path), and each path's plan
    (the function's own query, read from pg_proc, planned with the setting the function sets) has the shape chosen:
    the GIN index with both the tenant and the match as index conditions, or the date-ordered index walked newest
    first with the match as a filter. Under forced RLS on pat.emails `@@` is only ever a Filter.

    The index rows are written by the owner straight into pat.email_search: 30K mail-sized rows for each of two
    tenants, one word in every row, one in every thousandth; and a third tenant with 500 rows.
    """
    tenant, other, small = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with connect(pat_database) as owner:
        owner.execute(
            "INSERT INTO pat.email_search (tenant_id, email_id, received_at, search) "
            "SELECT t, gen_random_uuid(), now() - interval '90 days' - g * interval '1 minute', "
            "to_tsvector('simple', (SELECT string_agg('f' || (g * k) %% 3001, ' ') FROM generate_series(1, 40) k) "
            "|| ' everyword' || CASE WHEN g %% 1000 = 0 THEN ' rareword' ELSE '' END) "
            "FROM unnest(%s::uuid[]) t, generate_series(1, CASE WHEN t = %s THEN 500 ELSE 30000 END) g",
            ([tenant, other, small], small),
        )
        owner.execute("ANALYZE pat.email_search")

        def path(who: uuid.UUID, words: str) -> str:
            row = owner.execute(
                "SELECT path FROM pat.email_search_path(%s, websearch_to_tsquery('simple', %s), 1000)", (who, words)
            ).fetchone()
            assert row is not None
            return str(row[0])

        assert path(tenant, "rareword") == "index"  # 30 matches: no walk meets 1000 of them
        assert path(tenant, "everyword") == "walk"  # the newest 1000 rows are the answer
        assert path(tenant, "everyword rareword") == "index"
        assert path(small, "rareword") == "all"  # the sample read the whole mailbox: the walk is complete
        source = owner.execute("SELECT prosrc FROM pg_proc WHERE proname = 'search_email_ids'").fetchone()
        assert source is not None
        body = re.search(r".*RETURN QUERY\s+(.*?);\s*END\s*$", str(source[0]), re.S)  # the last one: the GIN path
        assert body is not None
        walk_body = re.search(r"SELECT array_agg\(.*?INTO ids, dates, ranks\s+(FROM .*?);", str(source[0]), re.S)
        assert walk_body is not None

        def with_parameters(function_sql: str) -> str:
            """The function's variables as query parameters, its tsquery as the expression that made it."""
            named = re.sub(r"\b(tenant|query|candidates|max_results|skip|walk_from)\b", r"%(\1)s", function_sql)
            return re.sub(r"\bq\b", "websearch_to_tsquery('simple', %(query)s)", named)

        query = with_parameters(body[1])
        walk_query = with_parameters("SELECT w.email_id " + walk_body[1])
        plans = {}
        for setting, words, text in (
            ("enable_indexscan", "rareword", query),
            ("enable_bitmapscan", "everyword", walk_query),
        ):
            values = {
                "tenant": tenant,
                "query": words,
                "candidates": 1000,
                "max_results": 20,
                "skip": 0,
                "walk_from": datetime.now(UTC) - timedelta(days=120),
            }
            with owner.transaction():
                owner.execute(
                    "SELECT set_config('enable_seqscan', 'off', true), set_config(%s, 'off', true)", (setting,)
                )
                plans[setting] = list(nodes(explain(owner, text, values)))
        owner.execute("DELETE FROM pat.email_search WHERE tenant_id = ANY(%s)", ([tenant, other, small],))

    def scans(plan: list[dict]) -> list[dict]:
        return [n for n in plan if "email_search_default" in n.get("Relation Name", "") + n.get("Index Name", "")]

    index_path = scans(plans["enable_indexscan"])  # the function's 'index' path
    conditions = [n["Index Cond"] for n in index_path if "Index Cond" in n]
    assert any("tenant_id =" in cond and "@@" in cond for cond in conditions), index_path
    assert not any("Filter" in n for n in index_path), index_path
    walk = scans(plans["enable_bitmapscan"])  # the function's 'walk' path
    assert [n["Node Type"] for n in walk] == ["Index Scan"], walk
    assert walk[0]["Index Name"].endswith("tenant_id_received_at_email_id_idx"), walk
    assert walk[0]["Scan Direction"] == "Forward", walk
    assert "tenant_id =" in walk[0]["Index Cond"], walk
    assert "received_at >=" in walk[0]["Index Cond"], walk  # the window (V012): a bound of the scan itself ...
    assert "@@" in walk[0]["Filter"], walk  # ... and the match tested in the scan, on the heap row


# Index use in the current transaction (pg_stat_get_xact_*: counted per backend, flushed only after the transaction):
# scans of the GIN index, and entries read from the date-ordered index, over every partition.
INDEX_USE = (
    "SELECT coalesce(sum(pg_stat_get_xact_numscans(i.inhrelid)) FILTER (WHERE i.inhparent = %(gin)s::regclass), 0), "
    "coalesce(sum(pg_stat_get_xact_tuples_returned(i.inhrelid)) FILTER (WHERE i.inhparent = %(date)s::regclass), 0) "
    "FROM pg_inherits i WHERE i.inhparent IN (%(gin)s::regclass, %(date)s::regclass)"
)
INDEXES = {"gin": "pat.email_search_tenant_search_idx", "date": "pat.email_search_tenant_received_idx"}
CALLER = {  # what the function sets inside (set_config ... 'off') or in its SET clauses, the other way round
    "enable_seqscan": "on",
    "enable_bitmapscan": "on",
    "enable_indexscan": "on",
    "enable_sort": "on",
    "jit": "on",
    "plan_cache_mode": "force_generic_plan",
}


def observed_search(conn: Conn, tenant: uuid.UUID, query: str, limit: int = 20) -> tuple[list, int, int, dict]:
    """The function's answer, the GIN scans and date-index entries it took, and the caller's settings after it."""
    with conn.transaction():
        conn.execute("SELECT pat.set_request_context(%s, 'test')", (str(tenant),))
        for name, value in CALLER.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        before = conn.execute(INDEX_USE, INDEXES).fetchone()
        found = conn.execute(
            "SELECT email_id, received_at, rank FROM pat.search_email_ids(%s, %s, 0, 1000)", (query, limit)
        ).fetchall()
        after = conn.execute(INDEX_USE, INDEXES).fetchone()
        settings = conn.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(CALLER)), list(CALLER)).fetchone()
    assert before is not None
    assert after is not None
    assert settings is not None
    gin_scans, date_entries = (int(str(a)) - int(str(b)) for a, b in zip(after, before, strict=True))
    return found, gin_scans, date_entries, dict(zip(CALLER, settings, strict=True))


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("w0", "walk"),  # in most mail: 1000 matches within the newest rows
        ("w150", "walk, all of it"),  # frequent enough to walk, fewer than 1000 in the whole (6 000-email) mailbox
        ("subjectword", "index"),  # ~1 % of mail: under the rule's 1.6 %
    ],
)
def test_each_call_takes_its_path_and_leaves_the_callers_settings_alone(
    app: Conn, mailboxes: Mailboxes, query: str, path: str
) -> None:
    """Through the pooler as pat_app: the answer is the plain query's, the indexes read are the path's, and the
    settings the function changes inside are the caller's again after it, whatever the caller had set
    transaction-locally (the function's own SET clauses restore them).

    A swapped rule fails here: w0 would not walk (it would read no fewer date-index entries than the mailbox holds),
    subjectword would not read the GIN index. On the 'index' path the planner still picks per partition: for a
    partition where the tenant has a handful of rows a bitmap over the date index can be cheaper than the GIN index,
    so that path is asserted by its use of the GIN index at all."""
    expected = reference(app, mailboxes.a, query)
    found, gin_scans, date_entries, settings = observed_search(app, mailboxes.a, query)
    assert found == expected
    assert settings == CALLER
    if path == "walk":
        assert gin_scans == 0
        assert date_entries < 4000  # the 2 000-row sample and the walk to the 1 000th match, of 6 000 rows
    elif path == "index":
        assert gin_scans > 0
    else:
        # The sample, then the whole mailbox walked: its window reached back past the oldest mail, so what it found
        # is the answer and the GIN index is not read (V012 falls back to it only when older mail exists).
        assert gin_scans == 0
        assert date_entries >= 2000 + 6000


def test_a_burst_of_recent_mail_does_not_walk_the_whole_mailbox(pat_database: Target) -> None:
    """V012: a word in much of the newest mail and little before (a burst) passes the sample's test for the walk, but
    fewer than 1000 matches exist: the walk stops at its window (the time in which 120 000 emails arrive at the
    sample's rate: here one every 10 s, so ~120 000 rows) and the GIN index finds the rest.
    125 000 index rows (one word each), the burst word in the newest 300 and in 200 of the oldest."""
    tenant = uuid.uuid4()
    with connect(pat_database) as owner:
        owner.execute(
            "INSERT INTO pat.email_search (tenant_id, email_id, received_at, search) "
            "SELECT %s, gen_random_uuid(), now() - interval '1 day' - g * interval '10 seconds', "
            "to_tsvector('simple', CASE WHEN g <= 300 OR g %% 25 = 0 AND g > 120000 THEN 'burstword' "
            "ELSE 'filler' END) FROM generate_series(1, 125000) g",
            (tenant,),
        )
        owner.execute("ANALYZE pat.email_search")
        try:
            found, gin_scans, date_entries, _ = observed_search(owner, tenant, "burstword", limit=1000)
            expected = owner.execute(
                "SELECT email_id FROM pat.email_search WHERE tenant_id = %s AND search @@ 'burstword'::tsquery",
                (tenant,),
            ).fetchall()
        finally:
            owner.execute("DELETE FROM pat.email_search WHERE tenant_id = %s", (tenant,))
    assert len(expected) == 500
    assert {row[0] for row in found} == {row[0] for row in expected}
    assert date_entries >= 119000  # the walk ran ...
    assert gin_scans > 0  # ... and stopped at its window: V010's walk would have read on and found all 500 itself


def test_the_search_path_rule_is_not_callable_by_the_app_roles(pat_database: Target) -> None:
    with connect(pat_database) as owner:
        rows = owner.execute(
            "SELECT r.rolname, has_function_privilege(r.oid, 'pat.email_search_path(uuid, tsquery, integer)', "
            "'EXECUTE') FROM pg_roles r WHERE r.rolname IN ('pat_app', 'pat_readonly')"
        ).fetchall()
    assert dict(rows) == {"pat_app": False, "pat_readonly": False}


def test_the_migration_backfills_existing_mail_under_forced_rls(
    data_tier: DataTier, new_database: Callable[[], Target]
) -> None:
    """V008 on a database that already holds mail (as the owner-like non-superuser, RLS forced on pat.emails)."""
    owner_target = new_database()
    files = discover(MIGRATIONS)
    Migrator(owner_target, [f for f in files if f.script < "V008"]).migrate()
    with connect(owner_target) as owner:
        for table in ("emails", "audit_log"):
            owner.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(
                    sql.Identifier("pat", f"{table}_default"), sql.Identifier("pat", table)
                )
            )
        row = owner.execute("INSERT INTO pat.tenants (slug, name) VALUES ('backfill', 'B') RETURNING id").fetchone()
    assert row is not None
    tenant = uuid.UUID(str(row[0]))
    with app_connection(data_tier, owner_target) as conn:
        insert_mail(conn, tenant, 30, seed=4, extra="backfilled")
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            conn.execute("UPDATE pat.emails SET deleted_at = now() WHERE idempotency_key = 'k-4-0'")
    Migrator(owner_target, files).migrate()
    with connect(owner_target) as owner:
        forced = owner.execute("SELECT relforcerowsecurity FROM pg_class WHERE oid = 'pat.emails'::regclass").fetchone()
        indexed = owner.execute("SELECT count(*) FROM pat.email_search_default").fetchone()
    assert forced == (True,)
    assert indexed == (29,)
    with app_connection(data_tier, owner_target) as conn:
        assert len(search(conn, tenant, "backfilled", limit=100)) == 29
        assert search(conn, tenant, "w0 backfilled") == reference(conn, tenant, "w0 backfilled")


def test_repository_search_reads_rows_under_rls_in_the_functions_order(
    data_tier: DataTier, pat_database: Target, app: Conn, mailboxes: Mailboxes
) -> None:
    _, bouncer = data_tier
    app_pool: ConnectionPool = pool(
        target_from_dsn(bouncer.dsn("pat_app", pat_database.dbname), pooled=True), min_size=1, max_size=2
    )
    try:
        repo = EmailRepository(Database(app_pool))
        results = repo.search(mailboxes.a, "w0 w5")
        assert [(r["id"], r["received_at"], r["rank"]) for r in results] == reference(app, mailboxes.a, "w0 w5")
        assert set(results[0]) == {"id", "received_at", "subject", "sender", "rank"}
        assert repo.search(mailboxes.a, "globexonly") == []
        assert repo.search(mailboxes.a, "nosuchwordanywhere") == []
    finally:
        app_pool.close()
