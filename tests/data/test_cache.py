"""The cache layer against a real local Redis cluster (3 masters): hits and misses, TTLs, tags and pipelines
across slots, warming from a query, and failing open when a master dies mid-test."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import cast

import psycopg
import pytest
from redis.cluster import RedisCluster

from pat_data.cache import Cache, CacheSettings, cluster_client, settings_from_secret
from pat_data.local import LocalPgBouncer, LocalPostgres, LocalRedisCluster


def client_for(cluster: LocalRedisCluster) -> RedisCluster:
    return cluster_client(CacheSettings(host="127.0.0.1", port=cluster.ports[0], password=cluster.password, tls=False))


@pytest.fixture
def cache(redis_cluster: LocalRedisCluster) -> Iterator[Cache]:
    """A fresh namespace per test, so tests never see each other's keys."""
    client = client_for(redis_cluster)
    yield Cache(client, namespace=f"t{uuid.uuid4().hex[:8]}", ttls={"email": 120, "user": 30})
    client.close()


def ttl_of(cache: Cache, key: str) -> int:
    """Seconds to live (redis-py types sync and async clients alike, hence the cast)."""
    return cast(int, cache.client.ttl(key))


def nodes_of(cache: Cache, keys: list[str]) -> set[str]:
    return {cache.client.get_node_from_key(key).name for key in keys}


def from_source(item_id: str) -> dict[str, str]:
    return {"id": item_id, "from": "source"}


class Source:
    """The source of truth, counting how often the cache had to ask it."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def one(self, item_id: str) -> dict[str, str]:
        self.calls.append(item_id)
        return {"id": item_id, "subject": f"subject {item_id}"}

    def many(self, ids: list[str]) -> dict[str, dict[str, str]]:
        self.calls.append(list(ids))
        return {item_id: {"id": item_id} for item_id in ids}


def test_miss_then_hit_counts_and_the_loader_runs_once(cache: Cache) -> None:
    source = Source()
    first = cache.get_or_load("email", "e1", lambda: source.one("e1"))
    second = cache.get_or_load("email", "e1", lambda: source.one("e1"))
    assert first == second == {"id": "e1", "subject": "subject e1"}
    assert source.calls == ["e1"]
    assert (cache.stats.hits, cache.stats.misses, cache.stats.errors) == (1, 1, 0)
    assert cache.stats.hit_rate == 0.5


def test_ttls_follow_the_kind_and_none_is_not_cached(cache: Cache) -> None:
    cache.get_or_load("email", "e2", lambda: {"id": "e2"})
    cache.get_or_load("user", "u1", lambda: {"id": "u1"})
    assert 110 < ttl_of(cache, cache.key("email", "e2")) <= 120
    assert 20 < ttl_of(cache, cache.key("user", "u1")) <= 30
    assert cache.get_or_load("email", "gone", lambda: None) is None
    assert cache.client.exists(cache.key("email", "gone")) == 0


def test_schema_version_is_part_of_the_key(redis_cluster: LocalRedisCluster, cache: Cache) -> None:
    cache.set("email", "e3", {"shape": "v1"})
    newer = Cache(cache.client, namespace=cache.prefix.split(":")[0], schema_version=3)
    assert newer.get_or_load("email", "e3", lambda: {"shape": "v2"}) == {"shape": "v2"}
    assert cache.get_or_load("email", "e3", lambda: {"shape": "reloaded"}) == {"shape": "v1"}


def test_tag_invalidation_reaches_keys_in_every_slot_and_only_them(cache: Cache) -> None:
    tagged = [f"a{i}" for i in range(60)]
    for item_id in tagged:
        cache.set("email", item_id, {"id": item_id}, tags=["tenant:A"])
    cache.set("email", "b1", {"id": "b1"}, tags=["tenant:B"])
    keys = [cache.key("email", item_id) for item_id in tagged]
    assert len(nodes_of(cache, keys)) == 3  # the members live on all three masters
    assert ttl_of(cache, cache.tag_key("tenant:A")) >= 120  # the set outlives its members

    assert cache.invalidate_tag("tenant:A") == 60
    assert cache.client.mget_nonatomic(keys) == [None] * 60
    assert cache.client.exists(cache.tag_key("tenant:A")) == 0
    assert cache.get_or_load("email", "b1", lambda: {"id": "reloaded"}) == {"id": "b1"}
    assert cache.invalidate_tag("tenant:nobody") == 0


def test_get_many_pipelines_across_slots_and_loads_only_the_missing(cache: Cache) -> None:
    ids = [f"m{i}" for i in range(100)]
    for item_id in ids[::2]:
        cache.set("email", item_id, {"id": item_id, "cached": True})
    source = Source()
    found = cache.get_many("email", ids, source.many)
    assert set(found) == set(ids)
    assert source.calls == [ids[1::2]]
    assert len(nodes_of(cache, [cache.key("email", i) for i in ids])) == 3
    again = Source()
    cache.get_many("email", ids, again.many)
    assert again.calls == []  # the loaded half was cached by the first call
    cache.invalidate("email", *ids[:10])
    assert cache.client.mget_nonatomic([cache.key("email", i) for i in ids[:10]]) == [None] * 10


def test_warm_from_a_query(cache: Cache, data_tier: tuple[LocalPostgres, LocalPgBouncer]) -> None:
    postgres, _ = data_tier
    with psycopg.connect(postgres.dsn()) as conn:
        warmed = cache.warm_from_query(
            "user",
            conn,
            "SELECT g AS id, 'user ' || g AS name, g % 3 AS team FROM generate_series(1, 1200) AS g",
            tags_of=lambda row: [f"team:{row['team']}"],
        )
    assert warmed == 1200
    assert cache.get_or_load("user", 7, lambda: None) == {"id": 7, "name": "user 7", "team": 1}
    assert cache.invalidate_tag("team:1") == 400


def test_settings_from_the_secret_never_print_the_token() -> None:
    settings = settings_from_secret(
        '{"username": "default", "token": "s3cr3t-token-value"}', host="cfg.pat.cache.amazonaws.com", port=6380
    )
    assert settings.tls is True
    assert settings.password == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(settings)
    with pytest.raises(ValueError, match="no 'token'"):
        settings_from_secret({"username": "default"}, host="h", port=6380)


def test_fail_open_when_a_master_dies_mid_test(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cluster = LocalRedisCluster(tmp_path / "doomed").start()
    try:
        client = client_for(cluster)
        cache = Cache(client, cooldown_seconds=0.2)
        ids = [f"k{i}" for i in range(30)]
        for item_id in ids:
            cache.set("email", item_id, {"id": item_id, "from": "cache"})
        assert len(nodes_of(cache, [cache.key("email", i) for i in ids])) == 3

        cluster.kill(1)
        source = Source()
        caplog.set_level(logging.WARNING, logger="pat_data.cache")
        results: dict[str, dict[str, str]] = {}
        for item_id in ids:
            value = cache.get_or_load("email", item_id, partial(from_source, item_id))
            assert value is not None
            results[item_id] = value
        many = cache.get_many("email", ids, source.many)
        cache.set("email", "after", {"id": "after"})
        cache.invalidate_tag("anything")

        assert set(results) == set(ids)
        assert all(value["id"] == item_id for item_id, value in results.items())
        assert any(value["from"] == "source" for value in results.values())  # the dead master's keys
        assert set(many) == set(ids)
        assert cache.stats.errors >= 1
        assert any("cache unavailable" in record.getMessage() for record in caplog.records)
        client.close()
    finally:
        cluster.stop()
