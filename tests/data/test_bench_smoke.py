"""`make bench` as a smoke test: tiny sizes against the test harness's services, into a temporary directory.
It checks that the benchmark completes (its fsync-on phase restarts the harness's PostgreSQL and restores it) and that
its report has the documented keys — never any timing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg

from pat_data.connect import Target
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster
from pat_data.migrations import Migrator
from pat_data.partitions import PartitionMaintainer, load_config
from scripts import bench
from tests.data.conftest import APP_USERS, MIGRATIONS, PARTITIONS


def test_bench_completes_and_its_report_parses(
    data_tier: tuple[LocalPostgres, LocalPgBouncer],
    new_database: Callable[[], Target],
    redis_cluster: LocalRedisCluster,
    tmp_path: Path,
) -> None:
    postgres, bouncer = data_tier
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    PartitionMaintainer(owner, load_config(PARTITIONS, "dev")).run()
    settings = {
        "PAT_LOCAL_DSN": f"postgresql://{owner.user}:{owner.password}@{owner.host}:{owner.port}/{owner.dbname}"
        "?sslmode=disable",
        "PAT_LOCAL_APP_DSN": bouncer.dsn("pat_app", owner.dbname),
        "PAT_LOCAL_APP_DIRECT_DSN": postgres.dsn("pat_app", APP_USERS["pat_app"], owner.dbname),
        "PAT_LOCAL_CACHE": f"127.0.0.1:{redis_cluster.ports[0]}:{redis_cluster.password}",
    }
    bench.run(settings, mode="smoke", out=tmp_path, log=lambda _: None, postgres=postgres)
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    figures = ("ingest.emails_per_s", "ingest.raw_copy_per_s", "ingest.ratio", "read_by_id_ms.direct.p99",
               "read_by_id_ms.pgbouncer.p50", "read_by_id_ms.pgbouncer.p99", "list_keyset_p99_ms", "fts_p99_ms",
               "fts_100_tenants_p99_ms", "read_split.get.planning_ms.p50", "read_split.get.round_trips",
               "read_split.page.planning_ms.p50", "read_split.select1_round_trip_ms.p50")  # fmt: skip
    for key in figures:  # medians of >= 3 runs, measured again with fsync on
        assert isinstance(bench.lookup(report, key), float), key
        assert isinstance(bench.lookup(report["fsync_on"], key), float), f"fsync_on.{key}"
        assert len(report["spread"][key]["runs"]) >= 3, key
    for key in ("read_by_id_ms.cache.p95", "cache_hit_rate", "fts_rows"):  # once, with fsync off
        assert isinstance(bench.lookup(report, key), float), key
    assert report["fsync_on"]["server_settings"]["fsync"] == "on"
    assert report["server_settings"]["fsync"] == "off"
    with psycopg.connect(postgres.dsn()) as conn:  # restored for the tests that follow
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
    if report["search_indexing_deferred"]:
        for key in ("ingest_burst.emails_per_s", "ingest_burst.ratio", "ingest_burst.search_lag_p99_s"):
            assert isinstance(bench.lookup(report, key), float), key
    else:
        assert "ingest_burst" not in report
        assert "ingest_burst" not in report["fsync_on"]
    assert {q["class"] for q in report["fts_queries"]} == {"common", "rare", "two_common", "common_and_rare"}
    assert isinstance(bench.lookup(report, "fts_cases_ms.one_tenant_burst.burst.p99"), float)
    with psycopg.connect(settings["PAT_LOCAL_DSN"]) as conn:  # the burst word was removed again (owner: no RLS here)
        assert conn.execute(
            "SELECT count(*) FROM pat.email_search WHERE search @@ to_tsquery('simple', %s)", (bench.BURST_WORD,)
        ).fetchone() == (0,)
    assert report["fts_queries"] == bench.pinned_queries(bench.Sizes.of("smoke").fts_queries_per_class)
    assert {"cores", "memory_gb", "postgresql", "pgbouncer", "redis"} <= set(report["machine"])
    assert report["measured_at"]
    assert len(report["criteria"]) == len(bench.CRITERIA)
    assert [row["metric"] for row in report["targets"]] == [t.metric for t in bench.TARGETS]
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert "| seed | writes/s (batched) |" in markdown
    assert "| metric | today | target | not done below | measured | measured fsync on | result |" in markdown
