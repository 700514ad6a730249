"""The data-tier benchmark (`make bench`, `make bench QUICK=1`): measures, side by side in one run, what the seeds
only claimed and what issue 14 targets, and writes docs/benchmarks.md + docs/benchmarks.json. Not a test:
`make test` only runs it as a smoke (tiny sizes, temporary output) to prove it completes and its report parses.

Rules the figures follow (issue 14, amendments "Search, ingest and pooled reads"):
- every figure is the median of `repeats` (>= 3) runs of its measurement phase over the same data, with the spread
  (min, max, each run) in `spread`;
- full-text search runs a pinned query set (common and rare terms of the generated vocabulary, fixed seed, listed in
  the JSON) through `EmailRepository.search` via the pooler: ranked, limit 20, full mailbox (no date bound);
- ingest counts the rows committed in `pat.emails` and its rate is sustained: until every email is searchable;
- read by id goes through the pooler without the cache and without prepared statements; the pooled read cost is
  split into planning (EXPLAIN ANALYZE's planning time) and round trips (`SELECT 1` through the pooler);
- the bench sets its own statement timeouts and creates its data in batches;
- after the main figures the local server is restarted with fsync on and the same figures are measured again
  (`fsync_on`), then it is restarted as it was.

Runs against the local environment (`.local/env.json`, written by `make local`) or any settings file with the same
keys (e.g. a deployed environment's endpoints; there the fsync phase is skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from pat_data.cache import Cache, CacheSettings, cluster_client
from pat_data.connect import pool, target_from_dsn
from pat_data.local import LocalPostgres, local_env_settings
from pat_data.repositories import Conn, Database, EmailRepository, NewEmail

ROOT = Path(__file__).resolve().parents[1]
Report = dict[str, Any]  # a JSON object of the report
WORDS = [
    "invoice",
    "meeting",
    "quarterly",
    "report",
    "shipment",
    "contract",
    "renewal",
    "welcome",
    "security",
    "update",
    "payment",
    "reminder",
    "project",
    "roadmap",
    "feedback",
    "offer",
    "delivery",
    "account",
    "password",
    "travel",
    "booking",
    "receipt",
    "newsletter",
    "hiring",
    "budget",
    "review",
]
BODY_WORDS = 80
# The FTS corpus: words w0..w4999 drawn as floor(random() ^ 2 * 5000) (a skewed frequency, like real mail: a few words
# are everywhere, most are rare), 5 in the subject and 60-61 in the body, received over the last FTS_SPAN_DAYS days
# (inside the dev partitions' 3-month retention, so no row lands in the DEFAULT partition).
FTS_VOCABULARY, FTS_WORDS_PER_EMAIL, FTS_SPAN_DAYS = 5_000, 65, 55
FTS_BATCH = 50_000  # rows per INSERT statement and transaction: far below any statement timeout
QUERY_SEED = 14  # the pinned query set: same seed, same queries, every run
COMMON_TERMS = range(0, 10)  # each in ~14-60 % of emails
RARE_TERMS = range(3_000, 5_000)  # each in ~0.65-0.84 % of emails
# A burst: a word in the one tenant's newest BURST_EMAILS emails and in none before (a campaign, an incident). The
# search rule's sample sees it in a quarter of the newest mail, yet the mailbox holds fewer than 1 000 matches: the
# case V012 bounds (its walk reads a window, then the GIN index). Not in the pinned set or the targets: its own row.
BURST_WORD, BURST_EMAILS, BURST_QUERIES = "wburst", 500, 20
# statement_timeout of every session the bench opens itself (set explicitly, never inherited from the role:
# pat_app's 30 s stopped the 1M-row set-up midway on a busy 2-core machine). Measured repository calls run as the
# application runs them; `statement_timeouts` in the JSON records what they ran under.
BENCH_STATEMENT_TIMEOUT = "0"
FSYNC_ON = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
# "Searchable": the row is in the search index, pat.email_search (V008), which only its owner reads; it is filled
# by statement-level triggers on pat.emails in the inserting transaction. If indexing moves or is deferred, this
# query (and `search_is_deferred`) must follow it.
SEARCHABLE_SQL = "SELECT count(*) FROM pat.email_search WHERE tenant_id = %s AND search @@ to_tsquery('simple', %s)"
SEARCH_TRIGGER = "emails_search_insert"
GET_TAKES_RECEIVED_AT = "received_at" in inspect.signature(EmailRepository.get).parameters


@dataclass(frozen=True)
class Sizes:
    ingest_emails: int
    ingest_streams: int
    ingest_batch: int
    reads: int
    list_calls: int
    fts_rows: int
    fts_tenants: int
    fts_queries_per_class: int
    zipf_keys: int
    zipf_requests: int
    redis_requests: int
    repeats: int
    fsync_ingest_emails: int  # the fsync-on phase ingests a smaller sample (documented in the report)

    @classmethod
    def of(cls, mode: str) -> Sizes:
        return {
            "full": cls(200_000, 4, 5_000, 2_000, 300, 1_000_000, 100, 25, 20_000, 50_000, 100_000, 3, 50_000),
            "quick": cls(20_000, 4, 2_500, 500, 100, 50_000, 100, 5, 2_000, 5_000, 10_000, 3, 10_000),
            "smoke": cls(1_000, 2, 250, 50, 10, 2_000, 100, 2, 200, 500, 1_000, 3, 500),
        }[mode]


def seeded(seed: int) -> random.Random:
    """A reproducible generator: the workload and the pinned query set are the same every run."""
    return random.Random(seed)  # noqa: S311 - reproducible workload, not a secret


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def timed(calls: Sequence[Callable[[], object]]) -> list[float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def term_share(index: int) -> float:
    """Expected share of FTS emails containing word w<index> (see FTS_VOCABULARY)."""
    p = math.sqrt((index + 1) / FTS_VOCABULARY) - math.sqrt(index / FTS_VOCABULARY)
    return 1 - (1 - p) ** FTS_WORDS_PER_EMAIL


def pinned_queries(per_class: int, seed: int = QUERY_SEED) -> list[dict[str, str]]:
    """The FTS query set: the same for every run of a mode (fixed seed), four classes of `per_class` queries."""
    rng = seeded(seed)
    common, rare = list(COMMON_TERMS), list(RARE_TERMS)
    queries = []
    for _ in range(per_class):
        c1, c2 = rng.sample(common, 2)
        r1 = rng.choice(rare)
        queries += [
            {"class": "common", "q": f"w{c1}"},
            {"class": "rare", "q": f"w{r1}"},
            {"class": "two_common", "q": f"w{c1} w{c2}"},
            {"class": "common_and_rare", "q": f"w{c2} w{rng.choice(rare)}"},
        ]
    return queries


def make_emails(
    prefix: str, count: int, rng: random.Random, now: datetime, *, marker: str = "", batch: int = 0
) -> list[NewEmail]:
    """`count` emails; with a marker, each subject starts with it and its batch's token (`<marker>b<batch index>`),
    so the bench can count which ones are searchable."""
    return [
        NewEmail(
            idempotency_key=f"{prefix}-{i}",
            received_at=now - timedelta(seconds=rng.randrange(0, 20 * 24 * 3600)),
            message_id=f"<{prefix}-{i}@bench.pat>",
            sender=f"{rng.choice(WORDS)}@example.com",
            recipients=["inbox@tenant.test"],
            subject=" ".join([*((marker, f"{marker}b{i // batch}") if marker else ()), *rng.sample(WORDS, 4)]),
            text_body=" ".join(rng.choices(WORDS, k=BODY_WORDS)),
            size_bytes=rng.randrange(1_000, 100_000),
        )
        for i in range(count)
    ]


def combine(runs: Sequence[Any], path: str, spread: dict[str, Report]) -> Any:
    """The median of each number over the runs (same shape), recording min, max and every run under its path."""
    first = runs[0]
    if isinstance(first, dict):
        return {
            key: combine([run[key] for run in runs], f"{path}.{key}" if path else key, spread)
            for key in first
            if all(key in run for run in runs)
        }
    if isinstance(first, int | float) and not isinstance(first, bool):
        values = [float(run) for run in runs]
        median = statistics.median(values)
        spread[path] = {"min": min(values), "max": max(values), "runs": values}
        return round(median) if all(isinstance(run, int) for run in runs) else round(median, 4)
    return first


class TimeoutDatabase(Database):
    """The repository's own transaction plus an explicit statement_timeout: for ingest, whose batches are long
    statements (one more round trip per batch; the measured reads and searches run the plain Database)."""

    @contextlib.contextmanager
    def tenant(self, tenant_id: uuid.UUID | str, *, actor: str = "app", stale_ok: bool = False) -> Iterator[Conn]:
        with super().tenant(tenant_id, actor=actor, stale_ok=stale_ok) as conn:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (BENCH_STATEMENT_TIMEOUT,))
            yield conn


class Bench:
    def __init__(self, settings: dict[str, str], sizes: Sizes, log: Callable[[str], None]) -> None:
        self.settings, self.sizes, self.log = settings, sizes, log
        self.rng = seeded(7)
        self.now = datetime.now(UTC)
        self.run_id = uuid.uuid4().hex[:8]
        self.pools: dict[str, ConnectionPool] = {}
        self.open_pools()
        host, port, password = settings["PAT_LOCAL_CACHE"].split(":", 2)
        self.cache_settings = (host, int(port), password)
        self.redis = cluster_client(CacheSettings(host=host, port=int(port), password=password, tls=False))
        self.queries = pinned_queries(sizes.fts_queries_per_class)
        self.read_tenant: uuid.UUID | None = None
        self.read_ids: list[tuple[uuid.UUID, datetime]] = []

    def open_pools(self) -> None:
        self.pools = {
            "pgbouncer": pool(target_from_dsn(self.settings["PAT_LOCAL_APP_DSN"], pooled=True), min_size=2, max_size=8),
            "direct": pool(target_from_dsn(self.settings["PAT_LOCAL_APP_DIRECT_DSN"]), min_size=2, max_size=8),
        }

    def close_pools(self) -> None:
        for created in self.pools.values():
            created.close()
        self.pools = {}

    def close(self) -> None:
        self.close_pools()
        self.redis.close()

    # -- sessions the bench opens itself: explicit statement_timeout ------------------------------------------------

    @contextlib.contextmanager
    def owner(self) -> Iterator[psycopg.Connection[TupleRow]]:
        with psycopg.connect(self.settings["PAT_LOCAL_DSN"], autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {BENCH_STATEMENT_TIMEOUT}")
            yield conn

    @contextlib.contextmanager
    def app_direct(self, tenant: uuid.UUID) -> Iterator[psycopg.Connection[TupleRow]]:
        """pat_app, direct, autocommit, tenant set for the session (RLS needs it): counts and the FTS set-up."""
        with psycopg.connect(self.settings["PAT_LOCAL_APP_DIRECT_DSN"], autocommit=True) as conn:
            conn.execute(f"SET statement_timeout = {BENCH_STATEMENT_TIMEOUT}")
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
            yield conn

    def tenants(self, labels: Sequence[str]) -> list[uuid.UUID]:
        ids = []
        with self.owner() as conn:
            for label in labels:
                row = (
                    conn.execute(
                        "INSERT INTO pat.tenants (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
                        (label, label),
                    ).fetchone()
                    or conn.execute("SELECT id FROM pat.tenants WHERE slug = %s", (label,)).fetchone()
                )
                assert row is not None
                ids.append(uuid.UUID(str(row[0])))
        return ids

    def tenant(self, label: str) -> uuid.UUID:
        return self.tenants([label])[0]

    def count(self, tenant: uuid.UUID, marker: str | None = None) -> int:
        """Rows of `tenant` committed in pat.emails (seen from a separate session); with a marker, those searchable."""
        if marker is None:
            with self.app_direct(tenant) as conn:
                row = conn.execute("SELECT count(*) FROM pat.emails WHERE tenant_id = pat.current_tenant_id()")
                (value,) = row.fetchone() or (0,)
        else:
            with self.owner() as conn:
                (value,) = conn.execute(SEARCHABLE_SQL, (tenant, marker)).fetchone() or (0,)
        return int(value)

    def search_is_deferred(self) -> bool:
        """True unless the insert trigger that fills pat.email_search in the inserting transaction is in place."""
        with self.owner() as conn:
            row = conn.execute(
                "SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'pat.emails'::regclass AND tgname = %s",
                (SEARCH_TRIGGER,),
            ).fetchone()
        return row is None or row[0] == "D"

    def server_settings(self) -> dict[str, str]:
        with self.owner() as conn:
            return {
                name: str((conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone() or ("?",))[0])
                for name in ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
            }

    def statement_timeouts(self) -> dict[str, str]:
        with psycopg.connect(self.settings["PAT_LOCAL_APP_DSN"], prepare_threshold=None, autocommit=True) as conn:
            (pooled,) = conn.execute("SHOW statement_timeout").fetchone() or ("?",)
        return {"bench_sessions": BENCH_STATEMENT_TIMEOUT, "pooled_repository_calls": str(pooled)}

    # -- ingest -------------------------------------------------------------------------------------------------------

    def ingest(self, phase: str, rep: int, count: int) -> Report:
        """`count` emails via the pooler over `ingest_streams` streams; the rate counts rows committed in pat.emails
        and lasts until every one of them is searchable (sustained). If search indexing is deferred, also the rate
        at which the ingest calls complete (burst) and each batch's lag until it is searchable."""
        sizes = self.sizes
        tenant = self.tenant(f"bench-ingest-{self.run_id}-{phase.replace('_', '-')}-{rep}")
        marker = f"m{self.run_id}{phase.replace('_', '')}r{rep}"
        batch = min(sizes.ingest_batch, count)
        emails = make_emails(f"ing-{self.run_id}-{phase}-{rep}", count, self.rng, self.now, marker=marker, batch=batch)
        repo = EmailRepository(TimeoutDatabase(self.pools["pgbouncer"]))
        chunks = [emails[i : i + batch] for i in range(0, len(emails), batch)]
        deferred = self.search_is_deferred()
        committed: dict[int, float] = {}
        lags: dict[int, float] = {}
        finished = threading.Event()
        errors: list[BaseException] = []

        def stream(mine: list[int]) -> None:
            try:
                for index in mine:
                    repo.ingest(tenant, chunks[index])
                    committed[index] = time.perf_counter()
            except BaseException as exc:  # re-raised below, after every thread is joined
                errors.append(exc)

        def watch_lag() -> None:  # only when indexing is deferred: the search lag of each batch
            with self.owner() as conn:
                while len(lags) < len(chunks) and not errors:
                    for index in [i for i in list(committed) if i not in lags]:
                        (found,) = conn.execute(SEARCHABLE_SQL, (tenant, f"{marker}b{index}")).fetchone() or (0,)
                        if int(found) >= len(chunks[index]):
                            lags[index] = time.perf_counter() - committed[index]
                    if finished.is_set() and time.perf_counter() - done > 600:
                        raise RuntimeError("search lag: batches still not searchable after 600 s")
                    time.sleep(0.05)

        self.log(f"ingest [{phase} #{rep}]: {count} emails, {sizes.ingest_streams} streams, batches of {batch}")
        threads = [
            threading.Thread(target=stream, args=(list(range(s, len(chunks), sizes.ingest_streams)),))
            for s in range(sizes.ingest_streams)
        ]
        watcher = threading.Thread(target=watch_lag) if deferred else None
        done = math.inf
        started = time.perf_counter()
        for thread in [*threads, *([watcher] if watcher else [])]:
            thread.start()
        for thread in threads:
            thread.join()
        done = time.perf_counter()
        finished.set()
        if errors:
            raise errors[0]
        result = self.sustained(
            tenant=tenant,
            marker=marker,
            emails=emails,
            batch=batch,
            started=started,
            done=done,
            lags=lags if deferred else None,
        )
        if watcher is not None:
            watcher.join()
        if self.read_tenant is None:
            self.read_tenant = tenant
        return result

    def sustained(
        self,
        *,
        tenant: uuid.UUID,
        marker: str,
        emails: list[NewEmail],
        batch: int,
        started: float,
        done: float,
        lags: dict[int, float] | None,
    ) -> Report:
        """The ingest figures once the calls are done: rows committed in pat.emails, the time until every one is
        searchable (at commit unless indexing is deferred: `lags` holds each batch's search lag then)."""
        count = len(emails)
        durable = self.count(tenant)
        if durable != count:
            raise RuntimeError(f"ingest: {durable} rows committed in pat.emails, {count} sent")
        if lags is not None:
            while self.count(tenant, marker) < durable:  # sustained: until every email is searchable
                if time.perf_counter() - done > 600:
                    raise RuntimeError("ingest: emails still not searchable 600 s after the last ingest call")
                time.sleep(0.05)
            sustained_end = time.perf_counter()
        else:
            searchable = self.count(tenant, marker)
            if searchable != durable:
                raise RuntimeError(f"search is not deferred, yet only {searchable} of {durable} rows are searchable")
            sustained_end = done
        raw_rate = self.raw_copy(emails, tenant)
        rate = durable / (sustained_end - started)
        result: Report = {
            "ingest": {
                "emails": durable,
                "streams": self.sizes.ingest_streams,
                "batch": batch,
                "seconds": round(sustained_end - started, 2),
                "emails_per_s": round(rate),
                "raw_copy_per_s": round(raw_rate),
                "ratio": round(rate / raw_rate, 3),
            }
        }
        if lags is not None:
            burst = durable / (done - started)
            result["ingest_burst"] = {
                "emails_per_s": round(burst),
                "ratio": round(burst / raw_rate, 3),
                "search_lag_p99_s": round(percentiles(list(lags.values()))["p99"] / 1000, 3),
            }
        return result

    def raw_copy(self, emails: list[NewEmail], tenant: uuid.UUID) -> float:
        """The practical ceiling: COPY of the same rows into an UNLOGGED copy without indexes, triggers or RLS."""
        table = f"bench_raw_{self.run_id}"
        with self.owner() as conn:
            conn.execute(f"CREATE UNLOGGED TABLE public.{table} (LIKE pat.emails INCLUDING DEFAULTS)")
            try:
                started = time.perf_counter()
                with conn.cursor().copy(
                    f"COPY public.{table} (id, tenant_id, received_at, message_id, idempotency_key, sender, "
                    "recipients, subject, text_body, size_bytes) FROM STDIN"
                ) as copy:
                    for e in emails:
                        copy.write_row(
                            (
                                uuid.uuid4(),
                                tenant,
                                e.received_at,
                                e.message_id,
                                e.idempotency_key,
                                e.sender,
                                list(e.recipients),
                                e.subject,
                                e.text_body,
                                e.size_bytes,
                            )
                        )
                elapsed = time.perf_counter() - started
            finally:
                conn.execute(f"DROP TABLE public.{table}")
        return len(emails) / elapsed

    # -- reads --------------------------------------------------------------------------------------------------------

    def prepare_reads(self) -> None:
        assert self.read_tenant is not None, "ingest runs first: reads use its first tenant"
        with self.app_direct(self.read_tenant) as conn:
            rows = conn.execute(
                "SELECT id, received_at FROM pat.emails WHERE tenant_id = pat.current_tenant_id() "
                "ORDER BY md5(id::text) LIMIT %s",
                (self.sizes.reads,),
            ).fetchall()
        self.read_ids = [(row[0], row[1]) for row in rows]

    def getter(self, repo: EmailRepository, email_id: uuid.UUID, received_at: datetime) -> Callable[[], object]:
        """`repo.get` for one email, passing `received_at` when the repository takes it (plan-time pruning)."""
        assert self.read_tenant is not None
        get: Callable[..., object] = repo.get  # before and after `get` takes received_at (checked once, above)
        if GET_TAKES_RECEIVED_AT:
            return partial(get, self.read_tenant, email_id, received_at=received_at)
        return partial(get, self.read_tenant, email_id)

    def reads(self, *, with_cache: bool = True) -> Report:
        tenant = self.read_tenant
        assert tenant is not None
        with self.pools["pgbouncer"].connection() as conn:
            if conn.prepare_threshold is not None:
                raise RuntimeError("pooled connections must not use prepared statements")
        repos = {
            "direct": EmailRepository(Database(self.pools["direct"])),
            "pgbouncer": EmailRepository(Database(self.pools["pgbouncer"])),  # no cache: every read reaches PG
        }
        if with_cache:
            cache = Cache(self.redis, namespace=f"bench{self.run_id}")
            repos["cache"] = EmailRepository(Database(self.pools["pgbouncer"]), cache=cache)
            for email_id, received_at in self.read_ids:  # warm: every later cached read is a hit
                self.getter(repos["cache"], email_id, received_at)()
            cache.stats.hits = cache.stats.misses = 0
        results = {
            name: percentiles(timed([self.getter(repo, i, r) for i, r in self.read_ids]))
            for name, repo in repos.items()
        }
        if with_cache and cache.stats.misses:
            raise RuntimeError(f"cached reads missed {cache.stats.misses} times after warming")
        bounced = repos["pgbouncer"]
        page = bounced.page(tenant, limit=100)
        cursors = [page.next_cursor]
        for _ in range(20):
            if cursors[-1] is None:
                break
            cursors.append(bounced.page(tenant, limit=100, after=cursors[-1]).next_cursor)
        starts: list[tuple[datetime, uuid.UUID] | None] = [c for c in cursors if c is not None] or [None]
        calls = [
            partial(bounced.page, tenant, limit=100, after=self.rng.choice(starts))
            for _ in range(self.sizes.list_calls)
        ]
        listed = percentiles(timed(calls))
        return {
            "read_by_id_ms": results,
            "list_keyset_p99_ms": listed["p99"],
            "list_keyset_ms": listed,
            "read_split": self.read_split(starts),
        }

    def read_split(self, starts: Sequence[tuple[datetime, uuid.UUID] | None]) -> Report:
        """Where a pooled read's time goes: planning and execution of its statements (EXPLAIN ANALYZE, through the
        pooler, prepared statements off: every call is planned), the round trips one call makes (ReadyForQuery
        messages in a libpq trace: the pool's check, BEGIN, the tenant scope, the query, COMMIT...), and what one round
        trip through the pooler costs (`SELECT 1`)."""
        tenant = self.read_tenant
        assert tenant is not None
        email_id, received_at = self.read_ids[0]
        operations: dict[str, Callable[[EmailRepository], object]] = {
            "get": lambda repo: self.getter(repo, email_id, received_at)(),
            "page": lambda repo: repo.page(tenant, limit=100, after=starts[len(starts) // 2]),
        }
        samples = min(50, self.sizes.reads)
        split: Report = {}
        for name, operation in operations.items():
            statements, round_trips = self.trace(operation)
            planning, execution = [], []
            db = Database(self.pools["pgbouncer"])
            for _ in range(samples):
                with db.tenant(tenant) as conn:
                    plan_ms = exec_ms = 0.0
                    for query, params in statements:
                        explain = sql.Composed([sql.SQL("EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) "), query])
                        (plan,) = conn.execute(explain, params).fetchone() or ([{}],)
                        plan_ms += float(plan[0]["Planning Time"])
                        exec_ms += float(plan[0]["Execution Time"])
                    planning.append(plan_ms / 1000)
                    execution.append(exec_ms / 1000)
            split[name] = {
                "statements": len(statements),
                "round_trips": round_trips,
                "planning_ms": percentiles(planning),
                "execution_ms": percentiles(execution),
            }
        with psycopg.connect(self.settings["PAT_LOCAL_APP_DSN"], prepare_threshold=None, autocommit=True) as conn:
            rtt = percentiles(timed([partial(conn.execute, "SELECT 1") for _ in range(max(samples, 200))]))
        split["select1_round_trip_ms"] = rtt
        for name in operations:
            split[name]["round_trips_ms_p50"] = round(split[name]["round_trips"] * rtt["p50"], 3)
        return split

    def trace(
        self, operation: Callable[[EmailRepository], object]
    ) -> tuple[list[tuple[sql.Composable, Params | None]], float]:
        """The statements one call of `operation` executes through the pooler, and the round trips it makes."""
        recorded: list[tuple[sql.Composable, Params | None]] = []

        class Recording(psycopg.Cursor[TupleRow]):
            """Records what the repository executes (the tenant scope and the pool's empty check aside)."""

            def execute(self, *args: Any, **kwargs: Any) -> Recording:
                query, params = args[0], args[1] if len(args) > 1 else kwargs.get("params")
                if isinstance(query, str | sql.Composable):
                    statement = query if isinstance(query, sql.Composable) else sql.SQL(query)
                    text = statement.as_string(self.connection).strip()
                    if text and not text.startswith("SELECT pat.set_request_context("):
                        recorded.append((statement, params))
                super().execute(*args, **kwargs)
                return self

        class RecordingDatabase(Database):
            """Records the query of each one-message read (Database.read sends `<tenant scope>; <query>` itself)."""

            def read(
                self, tenant_id: uuid.UUID | str, query: sql.Composable, params: Sequence[object] = (), **options: Any
            ) -> list[dict[str, Any]]:
                recorded.append((query, list(params)))
                return super().read(tenant_id, query, params, **options)

        calls = 10
        with tempfile.TemporaryFile("w+") as log:
            target = target_from_dsn(self.settings["PAT_LOCAL_APP_DSN"], pooled=True)
            traced = pool(target, min_size=1, max_size=1, cursor_factory=Recording)
            try:
                operation(EmailRepository(RecordingDatabase(traced)))  # warm, recorded once
                statements = list(recorded)
                with traced.connection() as conn:
                    conn.pgconn.trace(log.fileno())
                for _ in range(calls):
                    operation(EmailRepository(RecordingDatabase(traced)))
                with traced.connection() as conn:  # its check is traced too: one more round trip
                    conn.pgconn.untrace()
            finally:
                traced.close()
            log.seek(0)
            ready = sum(1 for line in log if "\tB\t" in line and "\tReadyForQuery\t" in line)
        return statements, round((ready - 1) / calls, 2)

    # -- full-text search ---------------------------------------------------------------------------------------------

    def fts_setup(self) -> Report:
        """One tenant with fts_rows emails, and fts_tenants tenants sharing another fts_rows: created if missing, in
        batches of FTS_BATCH rows per statement and transaction, deterministic (setseed per batch)."""
        sizes = self.sizes
        one = self.tenant(f"bench-fts-v3-{sizes.fts_rows}")
        per_tenant = sizes.fts_rows // sizes.fts_tenants
        many = self.tenants([f"bench-fts-v3-{sizes.fts_rows}-t{i}" for i in range(sizes.fts_tenants)])
        started, created = time.perf_counter(), 0
        for tenant, rows in [(one, sizes.fts_rows), *((t, per_tenant) for t in many)]:
            created += self.fts_rows(tenant, rows)
        if created:
            # The owner: pat_app cannot vacuum the search index it cannot read. VACUUM, not only ANALYZE: the phases
            # measure a steady state, not autovacuum catching up with the 2M rows just loaded (the first full run
            # after a `make local-reset` measured ingest ~10-20 % below runs on the same data loaded earlier).
            self.log("fts: VACUUM (ANALYZE) of the loaded corpus")
            with self.owner() as conn:
                conn.execute("VACUUM (ANALYZE) pat.emails")
                conn.execute("VACUUM (ANALYZE) pat.email_search")
        self.fts_one, self.fts_many = one, many
        return {
            "fts_rows": sizes.fts_rows,
            "fts_tenants": sizes.fts_tenants,
            "fts_create_seconds": round(time.perf_counter() - started, 1) if created else 0.0,
        }

    def fts_rows(self, tenant: uuid.UUID, rows: int) -> int:
        with self.app_direct(tenant) as conn:
            (existing,) = conn.execute(
                "SELECT count(*) FROM pat.emails WHERE tenant_id = pat.current_tenant_id()"
            ).fetchone() or (0,)
            missing = rows - int(existing)
            if missing > 0 and rows >= FTS_BATCH:
                self.log(f"fts: creating {missing} emails for tenant {tenant} in batches of {FTS_BATCH}")
            for offset in range(int(existing), rows, FTS_BATCH):
                end = min(rows, offset + FTS_BATCH) - 1
                with conn.transaction():
                    conn.execute("SELECT setseed(%s)", ((zlib.crc32(f"{tenant}:{offset}".encode()) % 2000) / 1000 - 1,))
                    # Both sub-selects reference g, so they run per row (an uncorrelated one would be an InitPlan
                    # run once: the same subject for every email).
                    conn.execute(
                        "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, "
                        "recipients, subject, text_body, size_bytes) "
                        "SELECT pat.current_tenant_id(), now() - (g %% %s) * interval '1 second', "
                        "'<fts-' || g || '@bench>', 'fts-' || g, 'bench@example.com', '{a@b.test}', "
                        "(SELECT string_agg('w' || floor(random() ^ 2 * %s)::int, ' ') "
                        " FROM generate_series(1, 5 + 0 * g)), "
                        "(SELECT string_agg('w' || floor(random() ^ 2 * %s)::int, ' ') "
                        " FROM generate_series(1, 60 + g %% 2)), 5000 "
                        "FROM generate_series(%s::int, %s::int) g",
                        (FTS_SPAN_DAYS * 86_400, FTS_VOCABULARY, FTS_VOCABULARY, offset, end),
                    )
        return max(0, missing)

    def fts(self) -> Report:
        """The pinned query set through EmailRepository.search via the pooler (ranked, limit 20, full mailbox):
        against the one 1M-email tenant, then against the 100 tenants (round robin, fixed seed)."""
        repo = EmailRepository(Database(self.pools["pgbouncer"]))
        picker = seeded(QUERY_SEED)  # reproducible tenant choice
        cases = {
            "one_tenant": [(self.fts_one, q) for q in self.queries],
            "100_tenants": [(picker.choice(self.fts_many), q) for q in self.queries],
        }
        result: Report = {}
        for case, calls in cases.items():
            samples = timed([partial(repo.search, tenant, q["q"], limit=20) for tenant, q in calls])
            by_class: dict[str, list[float]] = {}
            for (_, q), sample in zip(calls, samples, strict=True):
                by_class.setdefault(q["class"], []).append(sample)
            result[case] = {"all": percentiles(samples), **{k: percentiles(v) for k, v in by_class.items()}}
        result["one_tenant_burst"] = {"burst": self.fts_burst(repo)}
        return {
            "fts_p99_ms": result["one_tenant"]["all"]["p99"],
            "fts_ms": result["one_tenant"]["all"],
            "fts_100_tenants_p99_ms": result["100_tenants"]["all"]["p99"],
            "fts_100_tenants_ms": result["100_tenants"]["all"],
            "fts_cases_ms": result,
        }

    def fts_burst(self, repo: EmailRepository) -> dict[str, float]:
        """BURST_WORD searched BURST_QUERIES times in the one tenant after adding it to the subjects of its newest
        BURST_EMAILS emails (the trigger re-indexes them); the subjects are restored afterwards, so the corpus stays
        the pinned set's."""
        tenant = self.fts_one
        suffix = f" {BURST_WORD}"
        with self.app_direct(tenant) as conn:
            changed = conn.execute(
                "UPDATE pat.emails SET subject = subject || %s WHERE tenant_id = pat.current_tenant_id() AND id IN "
                "(SELECT id FROM pat.emails WHERE tenant_id = pat.current_tenant_id() "
                " ORDER BY received_at DESC, id DESC LIMIT %s) RETURNING id",
                (suffix, BURST_EMAILS),
            ).fetchall()
            try:
                repo.search(tenant, BURST_WORD, limit=20)  # unmeasured: the first call reads the just-updated pages in
                samples = timed([partial(repo.search, tenant, BURST_WORD, limit=20)] * BURST_QUERIES)
            finally:
                conn.execute(
                    "UPDATE pat.emails SET subject = left(subject, -%s) "
                    "WHERE tenant_id = pat.current_tenant_id() AND id = ANY(%s) AND right(subject, %s) = %s",
                    (len(suffix), [row[0] for row in changed], len(suffix), suffix),
                )
        # The two updates queued ~1 000 documents in the GIN indexes' pending lists (fastupdate), which every GIN
        # search scans until autovacuum merges them: merged now, so the next run's pinned set reads what it did before.
        with self.owner() as owner:
            owner.execute(
                "SELECT gin_clean_pending_list(i.inhrelid::regclass) FROM pg_inherits i "
                "WHERE i.inhparent = 'pat.email_search_tenant_search_idx'::regclass"
            )
        return percentiles(samples)

    # -- cache --------------------------------------------------------------------------------------------------------

    def cache_workload(self) -> Report:
        """Zipf(1.1)-distributed reads over zipf_keys emails through the repository, after a warming pass."""
        tenant = self.read_tenant
        assert tenant is not None
        with self.app_direct(tenant) as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    "SELECT id FROM pat.emails WHERE tenant_id = pat.current_tenant_id() ORDER BY random() LIMIT %s",
                    (self.sizes.zipf_keys,),
                )
            ]
        weights = [1 / (rank**1.1) for rank in range(1, len(ids) + 1)]
        cache = Cache(self.redis, namespace=f"zipf{uuid.uuid4().hex[:8]}", ttls={"email": 600})
        repo = EmailRepository(Database(self.pools["pgbouncer"]), cache=cache)
        for email_id in self.rng.choices(ids, weights, k=self.sizes.zipf_requests):  # warming
            repo.get(tenant, email_id)
        cache.stats.hits = cache.stats.misses = 0
        for email_id in self.rng.choices(ids, weights, k=self.sizes.zipf_requests):
            repo.get(tenant, email_id)
        return {"cache_hit_rate": round(cache.stats.hit_rate, 4)}

    def redis_benchmark(self) -> Report:
        binary = shutil.which("redis-benchmark")
        if binary is None:
            return {"skipped": "redis-benchmark not installed"}
        host, port, password = self.cache_settings
        result = subprocess.run(  # noqa: S603 - fixed binary, no shell
            [
                binary,
                "-h",
                host,
                "-p",
                str(port),
                "-a",
                password,
                "--cluster",
                "-t",
                "get",
                "-n",
                str(self.sizes.redis_requests),
                "-c",
                "10",
                "--csv",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith('"GET"')]
        values = [float(v.strip('"')) for v in lines[-1].split(",")[1:]]
        return {"rps": values[0], "p50_ms": values[3], "p99_ms": values[5]}

    # -- phases -------------------------------------------------------------------------------------------------------

    def phase(self, name: str, *, ingest_emails: int, with_cache: bool) -> Report:
        """Every measured figure `repeats` times over the same data (ingest adds a fresh tenant each run), then the
        median of each, its spread under `spread`."""
        runs: list[Report] = []
        for rep in range(self.sizes.repeats):
            run: Report = self.ingest(name, rep, ingest_emails)
            self.log(f"[{name} #{rep}] ingest: {run['ingest']} {run.get('ingest_burst', '')}")
            if not self.read_ids:
                self.prepare_reads()
            run.update(self.reads(with_cache=with_cache))
            self.log(
                f"[{name} #{rep}] reads: {run['read_by_id_ms']}, list p99 {run['list_keyset_p99_ms']} ms, "
                f"split {run['read_split']}"
            )
            run.update(self.fts())
            self.log(
                f"[{name} #{rep}] fts p99: one tenant {run['fts_p99_ms']} ms, "
                f"100 tenants {run['fts_100_tenants_p99_ms']} ms"
            )
            if with_cache:
                run.update(self.cache_workload())
                self.log(f"[{name} #{rep}] cache hit rate {run['cache_hit_rate']}")
            runs.append(run)
        spread: dict[str, Report] = {}
        combined: Report = combine(runs, "", spread)
        combined["spread"] = spread
        combined["repeats"] = len(runs)
        combined["server_settings"] = self.server_settings()
        return combined


def local_postgres(settings: dict[str, str]) -> LocalPostgres | None:
    """The `make local` server behind these settings, if this machine runs it (its port and data directory)."""
    port = target_from_dsn(settings["PAT_LOCAL_APP_DIRECT_DSN"]).port
    candidate = LocalPostgres(ROOT / ".local" / "postgres", port=port, settings=local_env_settings())
    return candidate if candidate.is_running() else None


def restart_postgres(bench: Bench, postgres: LocalPostgres, settings: dict[str, str]) -> None:
    bench.close_pools()
    postgres.restart(settings)
    deadline = time.monotonic() + 60
    while True:  # the pooler reconnects on demand; wait until a pooled query succeeds
        try:
            with psycopg.connect(bench.settings["PAT_LOCAL_APP_DSN"], prepare_threshold=None) as conn:
                conn.execute("SELECT 1")
            break
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    bench.open_pools()


def machine(settings: dict[str, str]) -> Report:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total = re.search(r"MemTotal:\s+(\d+)", meminfo)
    with psycopg.connect(settings["PAT_LOCAL_DSN"]) as conn:
        (postgres,) = conn.execute("SHOW server_version").fetchone() or ("unknown",)

    def version(command: list[str]) -> str:
        binary = shutil.which(command[0]) or command[0]
        try:
            # A fixed binary with a fixed flag, no shell.
            result = subprocess.run([binary, *command[1:]], capture_output=True, text=True, check=False)  # noqa: S603
        except OSError:
            return "unknown"
        return (result.stdout.strip() or result.stderr.strip() or "unknown").splitlines()[0]

    return {
        "cores": os.cpu_count(),
        "memory_gb": round(int(total.group(1)) / 2**20, 1) if total else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": postgres,
        "pgbouncer": version(["/usr/sbin/pgbouncer", "--version"]).splitlines()[0]
        if os.path.exists("/usr/sbin/pgbouncer")
        else "unknown",
        "redis": version(["redis-server", "--version"]),
    }


CRITERIA = [
    # (source, criterion, key, comparison, target); issue 14's targets are in TARGETS
    ("seed", "writes/s (batched)", "ingest.emails_per_s", ">=", 10_000),
    ("seed", "read p99 (ms, via PgBouncer)", "read_by_id_ms.pgbouncer.p99", "<", 10),
    ("seed", "cache hit rate", "cache_hit_rate", ">", 0.80),
    ("target", "cache hit p99 (ms)", "read_by_id_ms.cache.p99", "<=", 0.5),
    ("target", "cache hit rate (Zipf)", "cache_hit_rate", ">=", 0.90),
]


@dataclass(frozen=True)
class Target:
    """One row of issue 14's targets table: TARGET when `target` holds, PASS when `floor` does, else MISS."""

    metric: str
    key: str
    unit: str
    today: str
    target: Callable[[Report], bool]
    target_text: str
    floor: Callable[[Report], bool]
    floor_text: str


def _at_most(key: str, limit: float) -> Callable[[Report], bool]:
    return lambda report: lookup(report, key) <= limit


def _at_least(key: str, limit: float) -> Callable[[Report], bool]:
    return lambda report: lookup(report, key) >= limit


TARGETS = [
    Target(
        "FTS p99, 1M emails in ONE tenant, ranked, limit 20, via the pooler",
        "fts_p99_ms",
        "ms",
        "1 363 ms",
        _at_most("fts_p99_ms", 50),
        "≤ 50 ms",
        _at_most("fts_p99_ms", 100),
        "≤ 100 ms",
    ),
    Target(
        "FTS p99, same 1M rows spread over 100 tenants",
        "fts_100_tenants_p99_ms",
        "ms",
        "-",
        _at_most("fts_100_tenants_p99_ms", 20),
        "≤ 20 ms",
        _at_most("fts_100_tenants_p99_ms", 50),
        "≤ 50 ms",
    ),
    Target(
        "ingest, sustained: 200K emails via the pooler (4 streams) until all are searchable",
        "ingest.emails_per_s",
        "/s",
        "~9.3K/s",
        _at_least("ingest.emails_per_s", 15_000),
        "≥ 15K/s",
        _at_least("ingest.emails_per_s", 10_000),
        "10K/s",
    ),
    Target(
        "ingest, burst: rate at which ingest calls complete, search indexing deferred",
        "ingest_burst.emails_per_s",
        "/s",
        "-",
        lambda r: lookup(r, "ingest_burst.emails_per_s") >= 30_000 and lookup(r, "ingest_burst.ratio") >= 0.5,
        "≥ 30K/s and ≥ 50 % of raw COPY",
        lambda r: lookup(r, "ingest_burst.emails_per_s") >= 15_000 and "search_lag_p99_s" in r["ingest_burst"],
        "15K/s, with the search lag reported",
    ),
    Target(
        "read by id p99 via the pooler, prepared statements OFF, cache bypassed",
        "read_by_id_ms.pgbouncer.p99",
        "ms",
        "4.4 ms",
        _at_most("read_by_id_ms.pgbouncer.p99", 2),
        "≤ 2 ms",
        _at_most("read_by_id_ms.pgbouncer.p99", 3),
        "3 ms",
    ),
    Target(
        "list 100 (keyset) p99 via the pooler",
        "list_keyset_p99_ms",
        "ms",
        "6.3 ms",
        _at_most("list_keyset_p99_ms", 5),
        "≤ 5 ms",
        _at_most("list_keyset_p99_ms", 5),
        "5 ms",
    ),
]


def lookup(report: Report, dotted: str) -> float:
    value: Any = report
    for part in dotted.split("."):
        value = value[part]
    return float(value)


def has(report: Report, dotted: str) -> bool:
    try:
        lookup(report, dotted)
    except (KeyError, TypeError, ValueError):
        return False
    return True


def verdicts(report: Report) -> list[Report]:
    checks = {">=": float.__ge__, "<=": float.__le__, ">": float.__gt__, "<": float.__lt__}
    return [
        {
            "source": source,
            "criterion": name,
            "measured": lookup(report, key),
            "target": f"{op} {target:g}",
            "pass": checks[op](lookup(report, key), float(target)),
        }
        for source, name, key, op, target in CRITERIA
    ]


def target_results(report: Report) -> list[Report]:
    """Issue 14's table: TARGET / PASS / MISS per figure, fsync off (the measured column) and fsync on."""

    def result(figures: Report, target: Target) -> str | None:
        if not has(figures, target.key):
            return None
        return "TARGET" if target.target(figures) else "PASS" if target.floor(figures) else "MISS"

    fsync_on = report.get("fsync_on", {})
    return [
        {
            "metric": t.metric,
            "key": t.key,
            "today": t.today,
            "target": t.target_text,
            "not_done_below": t.floor_text,
            "measured": lookup(report, t.key) if has(report, t.key) else None,
            "measured_fsync_on": lookup(fsync_on, t.key) if has(fsync_on, t.key) else None,
            "result": result(report, t),
            "result_fsync_on": result(fsync_on, t),
        }
        for t in TARGETS
    ]


def shown(report: Report, key: str, unit: str = "") -> str:
    """`median unit (min-max)` for a figure of `report`, `-` when it was not measured."""
    if not has(report, key):
        return "-"
    value, spread = lookup(report, key), report.get("spread", {}).get(key)
    text = f"{value:g}{' ' + unit if unit == 'ms' else unit}"
    if spread and spread["min"] != spread["max"]:
        text += f" ({spread['min']:g}-{spread['max']:g})"
    return text


def markdown(report: Report) -> str:
    m, ing, reads = report["machine"], report["ingest"], report["read_by_id_ms"]
    fsync_on = report.get("fsync_on", {})
    deferred = "ingest_burst" in report
    split = report["read_split"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {report['measured_at']} by `make bench{' QUICK=1' if report['mode'] != 'full' else ''}` "
        f"(mode {report['mode']}) against the local environment: {m['cores']} cores, {m['memory_gb']} GB, "
        f"PostgreSQL {m['postgresql']}, {m['pgbouncer']}, {m['redis']}. Every figure is the median of "
        f"{report['repeats']} runs of its measurement phase over the same data in this one bench run (min-max in "
        "brackets; each run in `docs/benchmarks.json` under `spread`). The main figures run with the local server's "
        f"settings ({', '.join(f'{k}={v}' for k, v in report['server_settings'].items())}); the *fsync on* column "
        "restarts the server with fsync, synchronous_commit and full_page_writes on (production storage is durable) "
        + (
            f"and ingests {fsync_on.get('ingest', {}).get('emails', '?')} emails per run instead of "
            f"{ing['emails']} (a smaller sample); reads and searches are the same."
            if "ingest" in fsync_on
            else f"— not measured here: {fsync_on.get('skipped', 'no local server')}."
        ),
        "",
        "## Issue 14 targets",
        "",
        "| metric | today | target | not done below | measured | measured fsync on | result |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, target in zip(report["targets"], TARGETS, strict=True):
        if row["measured"] is None and target.key.startswith("ingest_burst"):
            lines.append(
                f"| {row['metric']} | {row['today']} | {row['target']} | {row['not_done_below']} | "
                "not deferred | not deferred | n/a |"
            )
            continue
        verdict = row["result"] or "-"
        if row["result_fsync_on"] and row["result_fsync_on"] != row["result"]:
            verdict += f" (fsync on: {row['result_fsync_on']})"
        lines.append(
            f"| {row['metric']} | {row['today']} | {row['target']} | {row['not_done_below']} | "
            f"{shown(report, target.key, target.unit)} | {shown(fsync_on, target.key, target.unit)} | {verdict} |"
        )
    lines += [
        "",
        'TARGET: the target is met; PASS: the "not done below" figure is met, not the target; MISS: neither.',
        "",
        "## Ingest",
        "",
        f"{ing['emails']} emails with ~{BODY_WORDS}-word bodies in batches of {ing['batch']} over {ing['streams']} "
        f"concurrent streams through PgBouncer, a fresh tenant per run. The rate counts the rows committed in "
        f"`pat.emails` (counted from another session afterwards) and runs until every one is searchable: "
        f"**{shown(report, 'ingest.emails_per_s', '/s')}** (fsync on: {shown(fsync_on, 'ingest.emails_per_s', '/s')}). "
        f"Raw COPY of the same rows into an UNLOGGED copy without indexes, triggers or RLS: "
        f"{shown(report, 'ingest.raw_copy_per_s', '/s')}; ratio **{shown(report, 'ingest.ratio')}** "
        f"(fsync on: {shown(fsync_on, 'ingest.ratio')}).",
        "",
        (
            "Search indexing is deferred: the ingest calls complete at "
            f"{shown(report, 'ingest_burst.emails_per_s', '/s')} ({shown(report, 'ingest_burst.ratio')} of raw COPY), "
            "each batch becomes searchable within "
            f"{shown(report, 'ingest_burst.search_lag_p99_s', ' s')} at p99."
            if deferred
            else "Search indexing is not deferred (statement-level triggers on pat.emails write pat.email_search and "
            "its GIN index in the ingest transaction: an email is searchable at commit), so the burst rate is the "
            "sustained rate and the `ingest_burst` keys are left out of the JSON."
        ),
        "",
        "## Reads (via the pooler unless named direct)",
        "",
        f"Read by id without the cache (`EmailRepository.get`"
        f"{' with received_at' if GET_TAKES_RECEIVED_AT else ''}, prepared statements off on every pooled path):",
        "",
        "| path | p50 ms | p95 ms | p99 ms | p99 ms fsync on |",
        "|---|---|---|---|---|",
        *(
            f"| {path} | {v['p50']} | {v['p95']} | {shown(report, f'read_by_id_ms.{path}.p99', 'ms')} | "
            f"{shown(fsync_on, f'read_by_id_ms.{path}.p99', 'ms')} |"
            for path, v in reads.items()
        ),
        "",
        f"List 100 (keyset) p99: {shown(report, 'list_keyset_p99_ms', 'ms')} "
        f"(fsync on: {shown(fsync_on, 'list_keyset_p99_ms', 'ms')}).",
        "",
        "Where a pooled call's time goes: planning and execution of its statements (EXPLAIN (ANALYZE, SUMMARY) "
        "through the pooler in the same kind of transaction), the round trips one call makes (ReadyForQuery messages "
        "in a libpq trace: pool check, BEGIN, the tenant scope, the query, COMMIT) and one `SELECT 1` round trip "
        f"through the pooler: p50 {shown(report, 'read_split.select1_round_trip_ms.p50', 'ms')}.",
        "",
        "| call | p50 ms | statements | round trips | round trips x SELECT 1 p50 (ms) | planning p50 ms | "
        "execution p50 ms |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {shown(report, key, 'ms')} | {split[name]['statements']} | {split[name]['round_trips']} | "
            f"{split[name]['round_trips_ms_p50']} | {shown(report, f'read_split.{name}.planning_ms.p50', 'ms')} | "
            f"{shown(report, f'read_split.{name}.execution_ms.p50', 'ms')} |"
            for name, key in (("get", "read_by_id_ms.pgbouncer.p50"), ("page", "list_keyset_ms.p50"))
        ),
        "",
        "## Full-text search",
        "",
        f"`EmailRepository.search(tenant, text, limit=20)` through the pooler: ranked, limit 20, the full mailbox "
        f"(no date bound from the bench). Corpus: {report['fts_rows']} emails in one tenant and another "
        f"{report['fts_rows']} spread over {report['fts_tenants']} tenants, words w0..w{FTS_VOCABULARY - 1} with a "
        f"skewed frequency, received over {FTS_SPAN_DAYS} days"
        + (f" (created in {report['fts_create_seconds']} s in this run)." if report["fts_create_seconds"] else ".")
        + f" Pinned query set (seed {QUERY_SEED}, {len(report['fts_queries'])} queries, listed in the JSON): common "
        f"terms w{COMMON_TERMS.start}..w{COMMON_TERMS.stop - 1} (each in {term_share(COMMON_TERMS.stop - 1):.0%}-"
        f"{term_share(COMMON_TERMS.start):.0%} of emails), rare terms w{RARE_TERMS.start}..w{RARE_TERMS.stop - 1} "
        f"(each in {term_share(RARE_TERMS.stop - 1):.2%}-{term_share(RARE_TERMS.start):.2%}), two common terms, "
        "a common and a rare term. The `one_tenant_burst` row is not in the pinned set or the targets: "
        f"`{BURST_WORD}` added to the subjects of the one tenant's newest {BURST_EMAILS} emails only (a burst: the "
        "search rule's sample sees it in a quarter of the newest mail, the mailbox holds fewer than 1 000 matches), "
        f"searched {BURST_QUERIES} times per run, subjects restored after it.",
        "",
        "| case | query class | p50 ms | p99 ms | p99 ms fsync on |",
        "|---|---|---|---|---|",
        *(
            f"| {case} | {cls} | {shown(report, f'fts_cases_ms.{case}.{cls}.p50', 'ms')} | "
            f"{shown(report, f'fts_cases_ms.{case}.{cls}.p99', 'ms')} | "
            f"{shown(fsync_on, f'fts_cases_ms.{case}.{cls}.p99', 'ms')} |"
            for case, classes in report["fts_cases_ms"].items()
            for cls in classes
        ),
        "",
        "## Cache",
        "",
        f"Hit rate on a Zipf(1.1) workload after a warming pass: **{shown(report, 'cache_hit_rate')}**. "
        f"`redis-benchmark` GET on the same cluster (the latency ceiling, one run): {report['redis_benchmark_get']}. "
        "The cache is not measured again with fsync on (it does not touch PostgreSQL's disk).",
        "",
        "## Seed criteria",
        "",
        "| source | criterion | measured | target | result |",
        "|---|---|---|---|---|",
        *(
            f"| {v['source']} | {v['criterion']} | {v['measured']:g} | {v['target']} | "
            f"{'PASS' if v['pass'] else 'MISS'} |"
            for v in report["criteria"]
        ),
        "",
        f"Statement timeouts: the bench's own sessions run with statement_timeout="
        f"{report['statement_timeouts']['bench_sessions']} (none) and create the FTS rows {FTS_BATCH} per statement; "
        f"ingest batches set it per transaction; the measured reads and searches run as the application does "
        f"(statement_timeout {report['statement_timeouts']['pooled_repository_calls']} for pat_app).",
        "",
        "Where the time goes for every MISS, with the experiments behind it: "
        "[docs/benchmark-analysis.md](benchmark-analysis.md).",
        "",
    ]
    return "\n".join(lines)


def run(
    settings: dict[str, str],
    *,
    mode: str,
    out: Path,
    log: Callable[[str], None] = print,
    postgres: LocalPostgres | None = None,
    fsync_on: bool = True,
) -> Report:
    """The whole bench; `postgres` is the local server to restart with fsync on (None: the `make local` one, if
    this machine runs it; otherwise the fsync-on figures are skipped and the report says why)."""
    sizes = Sizes.of(mode)
    bench = Bench(settings, sizes, log)
    started = time.perf_counter()
    try:
        report: Report = {"mode": mode, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        report["machine"] = machine(settings)
        report["statement_timeouts"] = bench.statement_timeouts()
        report["search_indexing_deferred"] = bench.search_is_deferred()
        report["get_takes_received_at"] = GET_TAKES_RECEIVED_AT
        report.update(bench.fts_setup())
        report["fts_queries"] = bench.queries
        report.update(bench.phase("main", ingest_emails=sizes.ingest_emails, with_cache=True))
        report["redis_benchmark_get"] = bench.redis_benchmark()
        server = postgres or local_postgres(settings)
        if not fsync_on:
            report["fsync_on"] = {"skipped": "--no-fsync-on"}
        elif server is None:
            report["fsync_on"] = {"skipped": "not the local server: nothing to restart"}
        else:
            before = dict(server.settings)
            log(f"fsync on: restarting PostgreSQL with {FSYNC_ON}")
            restart_postgres(bench, server, {**before, **FSYNC_ON})
            try:
                report["fsync_on"] = bench.phase("fsync_on", ingest_emails=sizes.fsync_ingest_emails, with_cache=False)
            finally:
                log(f"restarting PostgreSQL as it was ({before})")
                restart_postgres(bench, server, before)
    finally:
        bench.close()
    report["criteria"] = verdicts(report)
    report["targets"] = target_results(report)
    report["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "benchmarks.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every phase")
    parser.add_argument("--settings", type=Path, default=ROOT / ".local" / "env.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--no-fsync-on", action="store_true", help="skip the restart with fsync on and its figures")
    args = parser.parse_args(argv)
    if not args.settings.exists():
        print(f"bench: {args.settings} not found: run `make local` first", file=sys.stderr)
        return 2
    report = run(
        json.loads(args.settings.read_text()),
        mode="quick" if args.quick else "full",
        out=args.out,
        fsync_on=not args.no_fsync_on,
    )
    print(f"bench: done in {report['elapsed_seconds']} s -> {args.out / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
