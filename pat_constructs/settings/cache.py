"""Settings of `pat_constructs.cache.CacheCluster`."""

from __future__ import annotations

from dataclasses import dataclass

# ElastiCache engines and the versions we run (parameter group family follows the major version).
CACHE_ENGINE_VERSIONS = {"redis": ("7.1",), "valkey": ("7.2", "8.0")}
CACHE_EVICTION_POLICIES = ("allkeys-lru", "allkeys-lfu", "volatile-lru", "volatile-lfu", "volatile-ttl")


@dataclass(frozen=True, kw_only=True)
class CacheSettings:
    """ElastiCache in cluster mode: shards x (1 primary + replicas), Multi-AZ with automatic failover."""

    # A key of CACHE_ENGINE_VERSIONS, and one of its versions.
    engine: str = "redis"
    engine_version: str = "7.1"
    # An ElastiCache node type such as 'cache.r7g.large'. Required.
    node_type: str
    # Node groups (1-500) and replicas in each (1-5: automatic failover needs one). Required.
    shards: int
    replicas_per_shard: int
    # Not 6379: scanners and default client configs try the default port first.
    port: int = 6380
    # One of CACHE_EVICTION_POLICIES; a pure cache may evict any key.
    eviction_policy: str = "allkeys-lru"
    # Daily snapshots kept this many days (1-35; prod at least 15). Required.
    snapshot_retention_days: int
    # UTC windows for the daily snapshot and for maintenance.
    snapshot_window: str = "02:00-03:00"
    maintenance_window: str = "sun:04:00-sun:05:00"
