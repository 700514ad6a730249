"""Settings of `pat_constructs.aurora.AuroraCluster`."""

from __future__ import annotations

from dataclasses import dataclass

# cfn-lint flags deprecated engine versions (W3690); 17.9 is current for Aurora PostgreSQL Serverless v2.
AURORA_ENGINE_VERSIONS = ("16.9", "17.9")
PERFORMANCE_INSIGHTS_RETENTION_DAYS = (7, 31, 93, 186, 372, 731)


@dataclass(frozen=True, kw_only=True)
class ReaderSpec:
    """An Aurora reader: tier 0-1 scale with the writer (failover targets), tier 2-15 scale on their own."""

    # One of the VPC's zones. Required.
    availability_zone: str
    # 0-15; 1 = a failover target that scales with the writer.
    promotion_tier: int = 1


@dataclass(frozen=True, kw_only=True)
class AuroraSettings:
    """Aurora PostgreSQL Serverless v2: engine, capacity, readers, backups and the logging an operator needs."""

    # One of AURORA_ENGINE_VERSIONS (the local test server runs the same, tests/data/test_engine_version.py).
    engine_version: str = "17.9"
    # Serverless v2 capacity in ACU (0-256 in 0.5 steps). Required.
    min_capacity: float
    max_capacity: float
    # Readers besides the writer; none by default.
    readers: tuple[ReaderSpec, ...] = ()
    # Continuous backup / point-in-time restore window, 1-35 days. Required.
    backup_retention_days: int
    # One of PERFORMANCE_INSIGHTS_RETENTION_DAYS; 7 is the free tier.
    performance_insights_retention_days: int = 7
    # auto_explain logs the plan of statements slower than this.
    log_min_duration_statement_ms: int = 500
    # A session idle inside a transaction for longer is ended (it holds locks and a pooled connection).
    idle_in_transaction_timeout_ms: int = 60_000
