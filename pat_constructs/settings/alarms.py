"""Alarm thresholds of the on-call alarms (the Ops stack's and the pooler's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class AlarmThresholds:
    """Alarm thresholds; each alarm's description names its runbook section in docs/runbooks.md."""

    aurora_cpu_percent: float = 80
    aurora_acu_utilization_percent: float = 90
    aurora_capacity_at_max_minutes: int = 15
    aurora_connections: int = 1000
    aurora_freeable_memory_mib: int = 512
    aurora_replica_lag_ms: int = 2000
    aurora_deadlocks_per_minute: float = 1
    aurora_write_latency_ms: float = 25
    aurora_read_latency_ms: float = 25
    proxy_connection_errors: int = 10
    proxy_pinned_sessions: int = 50
    pgbouncer_cpu_percent: float = 75
    cache_cpu_percent: float = 70
    cache_memory_percent: float = 80
    cache_evictions_per_5min: int = 10_000
    cache_replication_lag_seconds: float = 5
    cache_connections: int = 10_000
    cdn_5xx_error_rate_percent: float = 5
    migrator_errors: int = 1
    min_future_partitions: int = 3
    default_partition_rows: int = 1
