"""A PostgreSQL of their own for the Lambda tests: the handler sets login passwords, which are cluster-wide."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pat_data.local import LocalPostgres


@pytest.fixture(scope="session")
def lambda_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    root = tmp_path_factory.mktemp("lambda-postgres")
    postgres = LocalPostgres(root / "postgres").start()
    try:
        yield postgres
    finally:
        postgres.stop()
