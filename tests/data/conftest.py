"""A private PostgreSQL 15 + PgBouncer (transaction mode) for the data tests, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pat_data.local import LocalPgBouncer, LocalPostgres, postgres_with_pgbouncer

APP_USERS = {"pat_app": "local-app-password", "pat_readonly": "local-readonly-password"}


@pytest.fixture(scope="session")
def data_tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPostgres, LocalPgBouncer]]:
    root = tmp_path_factory.mktemp("data-tier")
    root.chmod(0o755)
    root.parent.chmod(0o755)
    root.parent.parent.chmod(0o755)
    with postgres_with_pgbouncer(root, APP_USERS) as servers:
        yield servers
