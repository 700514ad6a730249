"""The data-tier benchmark (`make bench`, `make bench QUICK=1`): measures, side by side in one run, what the seeds
only claimed, and writes docs/benchmarks.md + docs/benchmarks.json. Not a test: `make test` only runs it as a
smoke (tiny sizes, temporary output) to prove it completes and its report parses.

Runs against the local environment (`.local/env.json`, written by `make local`) or any settings file with the same
keys (e.g. a deployed environment's endpoints).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from pat_data.cache import Cache, CacheSettings, cluster_client
from pat_data.connect import pool, target_from_dsn
from pat_data.repositories import Database, EmailRepository, NewEmail

ROOT = Path(__file__).resolve().parents[1]
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


@dataclass(frozen=True)
class Sizes:
    ingest_emails: int
    ingest_streams: int
    reads: int
    fts_rows: int
    fts_queries: int
    zipf_keys: int
    zipf_requests: int
    redis_requests: int

    @classmethod
    def of(cls, mode: str) -> Sizes:
        return {
            "full": cls(200_000, 4, 5_000, 1_000_000, 300, 20_000, 50_000, 100_000),
            "quick": cls(20_000, 2, 1_000, 50_000, 100, 5_000, 10_000, 20_000),
            "smoke": cls(2_000, 2, 200, 3_000, 20, 500, 1_000, 2_000),
        }[mode]


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


def make_emails(prefix: str, count: int, rng: random.Random, now: datetime) -> list[NewEmail]:
    return [
        NewEmail(
            idempotency_key=f"{prefix}-{i}",
            received_at=now - timedelta(seconds=rng.randrange(0, 20 * 24 * 3600)),
            message_id=f"<{prefix}-{i}@bench.pat>",
            sender=f"{rng.choice(WORDS)}@example.com",
            recipients=["inbox@tenant.test"],
            subject=" ".join(rng.sample(WORDS, 4)),
            text_body=" ".join(rng.choices(WORDS, k=BODY_WORDS)),
            size_bytes=rng.randrange(1_000, 100_000),
        )
        for i in range(count)
    ]


class Bench:
    def __init__(self, settings: dict[str, str], sizes: Sizes, log: Callable[[str], None]) -> None:
        self.settings, self.sizes, self.log = settings, sizes, log
        self.owner = target_from_dsn(settings["PAT_LOCAL_DSN"])
        self.rng = random.Random(7)  # noqa: S311 - reproducible workload
        self.now = datetime.now(UTC)
        self.run_id = uuid.uuid4().hex[:8]
        self.pools = {
            "pgbouncer": pool(target_from_dsn(settings["PAT_LOCAL_APP_DSN"], pooled=True), min_size=2, max_size=8),
            "direct": pool(target_from_dsn(settings["PAT_LOCAL_APP_DIRECT_DSN"]), min_size=2, max_size=8),
        }
        host, port, password = settings["PAT_LOCAL_CACHE"].split(":", 2)
        self.cache_settings = (host, int(port), password)
        self.redis = cluster_client(CacheSettings(host=host, port=int(port), password=password, tls=False))

    def close(self) -> None:
        for created in self.pools.values():
            created.close()
        self.redis.close()

    def tenant(self, label: str) -> uuid.UUID:
        with psycopg.connect(self.settings["PAT_LOCAL_DSN"], autocommit=True) as conn:
            row = (
                conn.execute(
                    "INSERT INTO pat.tenants (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING id",
                    (label, label),
                ).fetchone()
                or conn.execute("SELECT id FROM pat.tenants WHERE slug = %s", (label,)).fetchone()
            )
        assert row is not None
        return uuid.UUID(str(row[0]))

    def ingest(self) -> dict[str, Any]:
        sizes, tenant = self.sizes, self.tenant(f"bench-ingest-{self.run_id}")
        emails = make_emails(f"ing-{self.run_id}", sizes.ingest_emails, self.rng, self.now)
        repo = EmailRepository(Database(self.pools["pgbouncer"]))
        batch = 5_000
        chunks = [emails[i : i + batch] for i in range(0, len(emails), batch)]
        inserted = [0]
        lock = threading.Lock()

        def stream(mine: list[list[NewEmail]]) -> None:
            for chunk in mine:
                done = repo.ingest(tenant, chunk).inserted
                with lock:
                    inserted[0] += done

        self.log(f"ingest: {len(emails)} emails, {sizes.ingest_streams} streams, batches of {batch} via PgBouncer")
        threads = [
            threading.Thread(target=stream, args=(chunks[s :: sizes.ingest_streams],))
            for s in range(sizes.ingest_streams)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if inserted[0] != len(emails):
            raise RuntimeError(f"ingest inserted {inserted[0]} of {len(emails)}")
        raw_rate = self.raw_copy(emails, tenant)
        rate = len(emails) / elapsed
        return {
            "emails": len(emails),
            "streams": sizes.ingest_streams,
            "batch": batch,
            "seconds": round(elapsed, 2),
            "emails_per_s": round(rate),
            "raw_copy_per_s": round(raw_rate),
            "ratio": round(rate / raw_rate, 3),
        }

    def raw_copy(self, emails: list[NewEmail], tenant: uuid.UUID) -> float:
        """The practical ceiling: COPY of the same rows into an UNLOGGED copy without indexes, triggers or RLS."""
        table = f"bench_raw_{self.run_id}"
        with psycopg.connect(self.settings["PAT_LOCAL_DSN"], autocommit=True) as conn:
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

    def reads(self) -> dict[str, Any]:
        tenant = self.tenant(f"bench-ingest-{self.run_id}")
        ids = self.ids(tenant, self.sizes.reads)
        direct = EmailRepository(Database(self.pools["direct"]))
        bounced = EmailRepository(Database(self.pools["pgbouncer"]))
        cache = Cache(self.redis, namespace=f"bench{self.run_id}")
        cached = EmailRepository(Database(self.pools["pgbouncer"]), cache=cache)
        for email_id in ids:  # warm: every later cached read is a hit
            cached.get(tenant, email_id)
        cache.stats.hits = cache.stats.misses = 0
        results = {}
        for name, repo in (("direct", direct), ("pgbouncer", bounced), ("cache", cached)):
            results[name] = percentiles(timed([partial(repo.get, tenant, i) for i in ids]))
        if cache.stats.misses:
            raise RuntimeError(f"cached reads missed {cache.stats.misses} times after warming")
        page = bounced.page(tenant, limit=100)
        cursors = [page.next_cursor]
        for _ in range(20):
            if cursors[-1] is None:
                break
            cursors.append(bounced.page(tenant, limit=100, after=cursors[-1]).next_cursor)
        starts: list[tuple[datetime, uuid.UUID] | None] = [c for c in cursors if c is not None] or [None]
        calls = [
            partial(bounced.page, tenant, limit=100, after=self.rng.choice(starts))
            for _ in range(min(300, self.sizes.reads))
        ]
        list_samples = timed(calls)
        return {"read_by_id_ms": results, "list_keyset_p99_ms": percentiles(list_samples)["p99"]}

    def ids(self, tenant: uuid.UUID, count: int) -> list[uuid.UUID]:
        with psycopg.connect(self.settings["PAT_LOCAL_APP_DIRECT_DSN"]) as conn:  # as pat_app: RLS needs the tenant
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
            rows = conn.execute(
                "SELECT id FROM pat.emails WHERE tenant_id = %s ORDER BY random() LIMIT %s", (tenant, count)
            ).fetchall()
        return [row[0] for row in rows]

    def fts(self) -> dict[str, Any]:
        """FTS over >= fts_rows emails of one tenant; creates them with set-based SQL if missing (timed)."""
        tenant = self.tenant(f"bench-fts-v2-{self.sizes.fts_rows}")
        with psycopg.connect(self.settings["PAT_LOCAL_APP_DIRECT_DSN"]) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
            (existing,) = conn.execute("SELECT count(*) FROM pat.emails").fetchone() or (0,)
            created_seconds = 0.0
            missing = self.sizes.fts_rows - int(existing)
            if missing > 0:
                self.log(f"fts: creating {missing} emails (set-based INSERT as pat_app)")
                started = time.perf_counter()
                for offset in range(0, missing, 100_000):
                    n = min(100_000, missing - offset)
                    # A 5 000-word vocabulary with a skewed (squared-uniform) word frequency, like real mail:
                    # a few words are everywhere, most are rare, so a query matches a realistic share of mail.
                    conn.execute(
                        "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, "
                        "recipients, subject, text_body, size_bytes) "
                        "SELECT pat.current_tenant_id(), now() - (g %% 1728000) * interval '1 second', "
                        "'<fts-' || g || '@bench>', 'fts-' || %s || '-' || g, 'bench@example.com', '{a@b.test}', "
                        "(SELECT string_agg('w' || (floor(random() ^ 2 * 5000))::int, ' ') "
                        " FROM generate_series(1, 5)), "
                        "(SELECT string_agg('w' || (floor(random() ^ 2 * 5000))::int, ' ') "
                        " FROM generate_series(1, 60 + g %% 2)), 5000 "
                        "FROM generate_series(%s::int, %s::int) g",
                        (str(existing), offset, offset + n - 1),
                    )
                    conn.commit()
                    conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant),))
                created_seconds = time.perf_counter() - started
                conn.execute("ANALYZE pat.emails")
                conn.commit()
        repo = EmailRepository(Database(self.pools["pgbouncer"]))
        # One or two words drawn with the corpus' own skew: common and rare terms alike.
        queries = [
            " ".join(f"w{int(self.rng.random() ** 2 * 5000)}" for _ in range(self.rng.choice((1, 2))))
            for _ in range(self.sizes.fts_queries)
        ]
        samples = timed([partial(repo.search, tenant, q, limit=20) for q in queries])
        return {
            "fts_rows": max(int(existing), self.sizes.fts_rows),
            "fts_create_seconds": round(created_seconds, 1),
            "fts_p99_ms": percentiles(samples)["p99"],
            "fts_ms": percentiles(samples),
        }

    def cache_workload(self) -> dict[str, Any]:
        """Zipf(1.1)-distributed reads over zipf_keys emails through the repository, after a warming pass."""
        tenant = self.tenant(f"bench-ingest-{self.run_id}")
        ids = self.ids(tenant, self.sizes.zipf_keys)
        weights = [1 / (rank**1.1) for rank in range(1, len(ids) + 1)]
        cache = Cache(self.redis, namespace=f"zipf{self.run_id}", ttls={"email": 600})
        repo = EmailRepository(Database(self.pools["pgbouncer"]), cache=cache)
        for email_id in self.rng.choices(ids, weights, k=self.sizes.zipf_requests):  # warming
            repo.get(tenant, email_id)
        cache.stats.hits = cache.stats.misses = 0
        for email_id in self.rng.choices(ids, weights, k=self.sizes.zipf_requests):
            repo.get(tenant, email_id)
        return {
            "cache_hit_rate": round(cache.stats.hit_rate, 4),
            "zipf": {"s": 1.1, "keys": len(ids), "requests": self.sizes.zipf_requests},
            "redis_benchmark_get": self.redis_benchmark(),
        }

    def redis_benchmark(self) -> dict[str, Any]:
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


def machine(settings: dict[str, str]) -> dict[str, Any]:
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
    # (source, criterion, key, comparison, target)
    ("seed", "writes/s (batched)", "ingest.emails_per_s", ">=", 10_000),
    ("seed", "read p99 (ms, via PgBouncer)", "read_by_id_ms.pgbouncer.p99", "<", 10),
    ("seed", "cache hit rate", "cache_hit_rate", ">", 0.80),
    ("target", "ingest emails/s", "ingest.emails_per_s", ">=", 30_000),
    ("target", "ingest / raw COPY", "ingest.ratio", ">=", 0.50),
    ("target", "read by id p99 via PgBouncer (ms)", "read_by_id_ms.pgbouncer.p99", "<=", 2),
    ("target", "cache hit p99 (ms)", "read_by_id_ms.cache.p99", "<=", 0.5),
    ("target", "cache hit rate (Zipf)", "cache_hit_rate", ">=", 0.90),
    ("target", "list 100 keyset p99 (ms)", "list_keyset_p99_ms", "<=", 5),
    ("target", "FTS p99 (ms)", "fts_p99_ms", "<=", 50),
]


def lookup(report: dict[str, Any], dotted: str) -> float:
    value: Any = report
    for part in dotted.split("."):
        value = value[part]
    return float(value)


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
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


def markdown(report: dict[str, Any]) -> str:
    m, ing, reads = report["machine"], report["ingest"], report["read_by_id_ms"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured {report['measured_at']} by `make bench{' QUICK=1' if report['mode'] != 'full' else ''}` "
        f"(mode {report['mode']}) against the local environment: {m['cores']} cores, {m['memory_gb']} GB, "
        f"PostgreSQL {m['postgresql']} (fsync off: the local server trades durability for speed), {m['pgbouncer']}, "
        f"{m['redis']}. Numbers are from one run; `docs/benchmarks.json` has them all.",
        "",
        "## Seed criteria and targets",
        "",
        "| source | criterion | measured | target | result |",
        "|---|---|---|---|---|",
        *(
            f"| {v['source']} | {v['criterion']} | {v['measured']:g} | {v['target']} | "
            f"{'PASS' if v['pass'] else 'MISS'} |"
            for v in report["criteria"]
        ),
        "",
        "## Ingest",
        "",
        f"{ing['emails']} emails with ~{BODY_WORDS}-word bodies in batches of {ing['batch']} over {ing['streams']} "
        f"concurrent streams through PgBouncer (COPY into a staging table, idempotency keys claimed, then INSERT into "
        f"the partitioned, indexed, RLS-protected table with its triggers): **{ing['emails_per_s']} emails/s**. "
        f"Raw COPY of the same rows into an UNLOGGED copy without indexes, triggers or RLS: "
        f"{ing['raw_copy_per_s']} rows/s. "
        f"Ratio **{ing['ratio']:.0%}**.",
        "",
        "## Reads",
        "",
        "| path | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|",
        *(f"| {path} | {v['p50']} | {v['p95']} | {v['p99']} |" for path, v in reads.items()),
        "",
        f"List 100 (keyset) p99: {report['list_keyset_p99_ms']} ms. Full-text search over {report['fts_rows']} emails "
        f"(one tenant, ranked, limit 20): p99 {report['fts_p99_ms']} ms"
        + (f" (rows created in {report['fts_create_seconds']} s)." if report["fts_create_seconds"] else "."),
        "",
        "## Cache",
        "",
        f"Hit rate on a Zipf(1.1) workload after a warming pass: **{report['cache_hit_rate']:.1%}**. "
        f"`redis-benchmark` GET on the same cluster (the latency ceiling): {report['redis_benchmark_get']}.",
        "",
        "Where the time goes for every MISS, with the experiments behind it: "
        "[docs/benchmark-analysis.md](benchmark-analysis.md).",
        "",
    ]
    return "\n".join(lines)


def run(settings: dict[str, str], *, mode: str, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    bench = Bench(settings, Sizes.of(mode), log)
    started = time.perf_counter()
    try:
        report: dict[str, Any] = {"mode": mode, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
        report["machine"] = machine(settings)
        report["ingest"] = bench.ingest()
        log(f"ingest: {report['ingest']}")
        report.update(bench.reads())
        log(f"reads: {report['read_by_id_ms']}, list p99 {report['list_keyset_p99_ms']} ms")
        report.update(bench.fts())
        log(f"fts: p99 {report['fts_p99_ms']} ms over {report['fts_rows']} rows")
        report.update(bench.cache_workload())
        log(f"cache: hit rate {report['cache_hit_rate']}")
    finally:
        bench.close()
    report["criteria"] = verdicts(report)
    report["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "benchmarks.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in under a minute")
    parser.add_argument("--settings", type=Path, default=ROOT / ".local" / "env.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args(argv)
    if not args.settings.exists():
        print(f"bench: {args.settings} not found: run `make local` first", file=sys.stderr)
        return 2
    report = run(json.loads(args.settings.read_text()), mode="quick" if args.quick else "full", out=args.out)
    print(f"bench: done in {report['elapsed_seconds']} s -> {args.out / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
