"""`make bench` as a smoke test: tiny sizes against the test harness's services, into a temporary directory.
It checks that the benchmark completes and that its report has the documented keys — never any timing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
    bench.run(settings, mode="smoke", out=tmp_path, log=lambda _: None)
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    for key in ("ingest.emails_per_s", "ingest.raw_copy_per_s", "ingest.ratio", "read_by_id_ms.direct.p99",
                "read_by_id_ms.pgbouncer.p50", "read_by_id_ms.cache.p95", "list_keyset_p99_ms", "fts_p99_ms",
                "fts_rows", "cache_hit_rate"):  # fmt: skip
        assert isinstance(bench.lookup(report, key), float), key
    assert {"cores", "memory_gb", "postgresql", "pgbouncer", "redis"} <= set(report["machine"])
    assert report["measured_at"]
    assert len(report["criteria"]) == len(bench.CRITERIA)
    assert "| seed | writes/s (batched) |" in (tmp_path / "benchmarks.md").read_text()
