"""patops --env local against the real local services: schema operations, partitions, cache, pooler, connections."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pat_data.connect import Target, connect
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster
from pat_data.migrations import Migrator
from scripts import patops
from tests.data.conftest import MIGRATIONS


def owner_dsn(target: Target) -> str:
    return f"postgresql://{target.user}:{target.password}@{target.host}:{target.port}/{target.dbname}?sslmode=disable"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = patops.main(["--env", "local", "--json", *argv])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def partition_count(target: Target) -> int:
    with connect(target) as conn:
        row = conn.execute("SELECT count(*) FROM pg_inherits").fetchone()
    return int(row[0]) if row else 0


def test_migrations_and_partitions(
    new_database: Callable[[], Target], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = new_database()
    monkeypatch.setenv("PAT_LOCAL_DSN", owner_dsn(owner))
    code, plan, _ = run(capsys, "migrations", "plan")
    assert code == 0
    assert plan["pending"] == [m.script for m in Migrator(owner, MIGRATIONS).files]
    Migrator(owner, MIGRATIONS).migrate()
    code, info, _ = run(capsys, "migrations", "info")
    assert {row["state"] for row in info["migrations"]} == {"success"}
    assert run(capsys, "migrations", "validate")[0] == 0
    code, repair, _ = run(capsys, "migrations", "repair")
    assert (code, repair["steps"], repair["applied"]) == (0, ["nothing to repair"], False)

    code, status, _ = run(capsys, "partitions", "status")
    assert status["min_future_partitions"] == 0
    code, dry, _ = run(capsys, "partitions", "maintain")
    assert (code, dry["applied"]) == (0, False)
    assert partition_count(owner) == 0  # the dry run changed nothing
    code, done, _ = run(capsys, "partitions", "maintain", "--yes")
    assert done["applied"] is True
    assert done["result"]["min_future_partitions"] == 12
    assert partition_count(owner) > 0


def test_migrations_validate_fails_with_exit_1_and_names_the_problem(
    new_database: Callable[[], Target], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    with connect(owner) as conn:
        conn.execute("UPDATE public.flyway_schema_history SET checksum = 42 WHERE version = '002'")
    monkeypatch.setenv("PAT_LOCAL_DSN", owner_dsn(owner))
    code, report, err = run(capsys, "migrations", "validate")
    assert code == 1
    assert "V002__tenants_and_users.sql: changed after it was applied" in err
    assert report["valid"] is False
    code, repair, _ = run(capsys, "migrations", "repair", "--yes")
    assert repair["applied"] is True
    assert run(capsys, "migrations", "validate")[0] == 0


def test_cache_stats_and_flush(
    redis_cluster: LocalRedisCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pat_data.cache import Cache, CacheSettings, cluster_client

    monkeypatch.setenv("PAT_LOCAL_CACHE", f"127.0.0.1:{redis_cluster.ports[0]}:{redis_cluster.password}")
    client = cluster_client(
        CacheSettings(host="127.0.0.1", port=redis_cluster.ports[0], password=redis_cluster.password, tls=False)
    )
    cache = Cache(client)
    for index in range(20):
        cache.set("email", f"f{index}", {"i": index}, tags=["tenant:flush-me"])
    code, stats, _ = run(capsys, "cache", "stats")
    assert code == 0
    assert stats["cluster_state"] == "ok"
    assert len(stats["shards"]) == 3
    code, dry, _ = run(capsys, "cache", "flush", "--tag", "tenant:flush-me")
    assert dry["steps"] == ["delete 20 value(s) tagged 'tenant:flush-me' and the tag set"]
    assert client.exists(cache.key("email", "f0")) == 1
    code, done, _ = run(capsys, "cache", "flush", "--tag", "tenant:flush-me", "--yes")
    assert done["result"] == {"deleted": 20}
    assert run(capsys, "cache", "flush")[0] == 2  # neither --tag nor --all
    client.close()


def test_pooler_pools_and_db_connections(
    data_tier: tuple[LocalPostgres, LocalPgBouncer],
    pat_database: Target,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, bouncer = data_tier
    monkeypatch.setenv("PAT_LOCAL_PGBOUNCER_CONSOLE", bouncer.dsn("pat_app", "pgbouncer"))
    monkeypatch.setenv("PAT_LOCAL_DSN", owner_dsn(pat_database))
    code, pools, _ = run(capsys, "pooler", "pools")
    assert code == 0
    assert pools["kind"] == "pgbouncer"
    assert {"database", "user", "cl_active", "sv_idle"} <= set(pools["pools"][0])
    code, connections, _ = run(capsys, "db", "connections")
    assert code == 0
    assert any(row["user"] == "pat_owner" for row in connections["connections"])
    assert run(capsys, "db", "failover")[0] == 2  # needs AWS: a clear usage error, nothing done
