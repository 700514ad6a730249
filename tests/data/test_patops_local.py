"""patops --env local against the real local services: schema operations, partitions, cache, pooler, connections,
and the login check the migrator Lambda runs after a secret rotation (the same `run_operation`)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pat_data.connect import Target, connect
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster
from pat_data.migrations import Migrator
from pat_data.schema_deploy import HIDDEN_STATE, run_operation
from scripts import patops
from tests.data.conftest import APP_USERS, MIGRATIONS, PARTITIONS


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
    postgres, bouncer = data_tier
    monkeypatch.setenv("PAT_LOCAL_PGBOUNCER_CONSOLE", bouncer.dsn("pat_app", "pgbouncer"))
    monkeypatch.setenv("PAT_LOCAL_DSN", owner_dsn(pat_database))
    code, pools, _ = run(capsys, "pooler", "pools")
    assert code == 0
    assert pools["kind"] == "pgbouncer"
    assert {"database", "user", "cl_active", "sv_idle"} <= set(pools["pools"][0])
    app_dsn = postgres.dsn("pat_app", APP_USERS["pat_app"], pat_database.dbname)
    with psycopg.connect(app_dsn, application_name="connections-test"):
        code, summary, _ = run(capsys, "db", "connections")
    assert code == 0
    assert any(row["user"] == "pat_owner" for row in summary["connections"])
    # Another role's session counts even where the owner may not read its state (the local owner lacks
    # pg_read_all_stats; Aurora's master user has it).
    (app,) = [row for row in summary["connections"] if row["application"] == "connections-test"]
    assert (app["user"], app["count"]) == ("pat_app", 1)
    assert app["state"] in ("idle", HIDDEN_STATE)
    assert summary["total"] == sum(row["count"] for row in summary["connections"])
    assert summary["max_connections"] >= summary["total"]
    assert run(capsys, "db", "failover")[0] == 2  # needs AWS: a clear usage error, nothing done


def check_login(owner: Target, role: str, logins: dict[str, str]) -> dict[str, Any]:
    """The operation the migrator Lambda runs for `patops secrets rotate` (and --env local would run)."""
    return run_operation(
        owner,
        "check-login",
        {"role": role},
        migrations_dir=MIGRATIONS,
        partitions_file=PARTITIONS,
        env="dev",
        logins=logins,
    )


def test_check_login_logs_in_with_the_current_password_and_never_returns_one(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], new_database: Callable[[], Target]
) -> None:
    owner = new_database()
    role = f"pat_login_check_{owner.dbname}"
    with connect(owner, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'before-rotation'").format(sql.Identifier(role)))
    try:
        assert check_login(owner, role, {role: "before-rotation"}) == {"role": role, "ok": True, "error": None}
        with connect(owner, autocommit=True) as conn:  # what a single-user rotation's setSecret does
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD 'after-rotation'").format(sql.Identifier(role)))
        # Rotation finished: AWSCURRENT is the new password, so that is what the check must be given and accept.
        assert check_login(owner, role, {role: "after-rotation"})["ok"] is True
        stale = check_login(owner, role, {role: "before-rotation"})
        assert stale["ok"] is False
        assert f'password authentication failed for user "{role}"' in stale["error"]
        assert "before-rotation" not in json.dumps(stale)
    finally:
        with connect(owner, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))

    assert check_login(owner, owner.user, {})["ok"] is True  # the owner logs in with the owner target itself
    with pytest.raises(ValueError, match="no secret for role 'pat_nobody' here: allowed are pat_owner"):
        check_login(owner, "pat_nobody", {})


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SECRET = "local-secret-1"
DOWN = {
    "PAT_LOCAL_DSN": (f"postgresql://pat_owner:{SECRET}@127.0.0.1:{{port}}/pat", "migrations info", "PostgreSQL"),
    "PAT_LOCAL_PGBOUNCER_CONSOLE": (
        f"postgresql://p:{SECRET}@127.0.0.1:{{port}}/pgbouncer",
        "pooler pools",
        "PostgreSQL",
    ),
    "PAT_LOCAL_CACHE": (f"127.0.0.1:{{port}}:{SECRET}", "cache stats", "the cache"),
}


@pytest.mark.parametrize("setting", sorted(DOWN))
def test_a_local_service_that_is_down_is_one_line_and_exit_2(
    setting: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make local` not running: the operator reads what is unreachable and what to start, not a traceback."""
    value, command, service = DOWN[setting]
    monkeypatch.setenv(setting, value.format(port=closed_port()))
    code, out, err = run(capsys, *command.split())
    assert (code, out) == (2, None)
    assert err.startswith(f"patops: {service} is unreachable: ")
    assert err.endswith("(--env local: is `make local` running?)\n")
    assert err.count("\n") == 1, err
    assert SECRET not in err
