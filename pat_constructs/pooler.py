"""What every pooler gives the stacks: its endpoints and port. The poolers themselves, chosen per environment, are
`pat_constructs.rds_proxy.RdsProxyPooler` and `pat_constructs.pgbouncer.PgBouncerPooler`."""

from __future__ import annotations

from dataclasses import dataclass

POOLER_PORT = 5432


@dataclass(frozen=True)
class PoolerEndpoints:
    """Where applications connect: writer (read/write) and, when readers exist, a read-only endpoint."""

    kind: str
    endpoint: str
    reader_endpoint: str
    port: int
