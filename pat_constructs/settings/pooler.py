"""Settings of `pat_constructs.pooler`: RDS Proxy and PgBouncer on Fargate, with the images PgBouncer runs."""

from __future__ import annotations

from dataclasses import dataclass

# A maintained PgBouncer >= 1.25 image (edoburu/pgbouncer, configured by environment variables), pinned by digest.
PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.25.2-p0@sha256:7d7a27d9e90985cab5cf42256f5c13a3120baa4b055b69df37beb272b89b2340"
# Init container that fetches the RDS CA bundle and makes PgBouncer's client TLS key pair, pinned by digest.
TLS_INIT_IMAGE = "alpine:3.22@sha256:14358309a308569c32bdc37e2e0e9694be33a9d99e68afb0f5ff33cc1f695dce"
# The NLB's fixed TCP idle timeout: PgBouncer's keepalive must fire before it.
NLB_IDLE_TIMEOUT_SECONDS = 350


@dataclass(frozen=True, kw_only=True)
class RdsProxySettings:
    """RDS Proxy connection handling."""

    # A client connection idle this long is closed (the proxy's own default).
    idle_client_timeout_seconds: int = 1800
    # How long a client waits for a pooled connection before its request fails.
    borrow_timeout_seconds: int = 30
    # Share of the cluster's max_connections the proxy may open, 1-100.
    max_connections_percent: int = 90
    # Share it keeps open while idle, 0 up to max_connections_percent.
    max_idle_connections_percent: int = 50


@dataclass(frozen=True, kw_only=True)
class PgBouncerSettings:
    """PgBouncer (transaction pooling) on Fargate: images, task size, scaling and pool limits."""

    # The PgBouncer image, pinned by digest.
    image: str = PGBOUNCER_IMAGE
    # The TLS init container's image, pinned by digest.
    tls_init_image: str = TLS_INIT_IMAGE
    # Tasks: the service runs min_tasks and scales on CPU up to max_tasks (prod: at least 2, across zones).
    min_tasks: int = 1
    max_tasks: int = 4
    # Fargate task size (CPU units, memory in MiB).
    cpu: int = 256
    memory_mib: int = 512
    # Server connections per (database, user) pair.
    default_pool_size: int = 40
    # Client connections one task accepts.
    max_client_conn: int = 2000
    # Below the NLB's fixed 350 s idle timeout, so idle pooled flows are kept alive instead of silently dropped.
    tcp_keepidle_seconds: int = 240
    # Target CPU of the scaling policy (PgBouncer is single-threaded: scale out early).
    cpu_target_percent: int = 60
