"""The connection helper against a real PostgreSQL and PgBouncer in transaction mode."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from pat_data import connect as pat_connect
from pat_data.local import LocalPgBouncer, LocalPostgres

CONCURRENT_CLIENTS = 200


@pytest.fixture(scope="module")
def scratch_table(data_tier: tuple[LocalPostgres, LocalPgBouncer]) -> str:
    postgres, _ = data_tier
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pooled_probe (id bigserial PRIMARY KEY, worker int, note text)")
        conn.execute("GRANT SELECT, INSERT ON pooled_probe TO pat_app")
        conn.execute("GRANT USAGE ON SEQUENCE pooled_probe_id_seq TO pat_app")
    return "pooled_probe"


def mixed_work(conn: psycopg.Connection, worker: int) -> int:
    """Repeats the same statements > 5 times per connection, so psycopg's auto-prepare would kick in."""
    done = 0
    for step in range(12):
        with conn.transaction():
            conn.execute("INSERT INTO pooled_probe (worker, note) VALUES (%s, %s)", (worker, f"step {step}"))
            row = conn.execute("SELECT count(*) FROM pooled_probe WHERE worker = %s", (worker,)).fetchone()
            assert row is not None
            conn.execute("SELECT pg_sleep(%s)", (random.random() / 500,))
            done += 1
    return done


def test_pooled_connections_survive_200_concurrent_mixed_clients(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], scratch_table: str
) -> None:
    _, bouncer = data_tier
    target = pat_connect.target_from_dsn(bouncer.dsn("pat_app"), pooled=True)
    assert target.connect_kwargs() == {"prepare_threshold": None}
    pool = pat_connect.pool(target, min_size=20, max_size=60)
    errors: list[BaseException] = []

    def client(worker: int) -> int:
        try:
            with pool.connection() as conn:
                return mixed_work(conn, worker)
        except BaseException as exc:  # collect, assert below
            errors.append(exc)
            return 0

    try:
        with ThreadPoolExecutor(max_workers=CONCURRENT_CLIENTS) as executor:
            results = list(executor.map(client, range(CONCURRENT_CLIENTS)))
    finally:
        pool.close()
    assert errors == []
    assert sum(results) == CONCURRENT_CLIENTS * 12


def test_naive_prepare_threshold_breaks_through_transaction_pooling(
    data_tier: tuple[LocalPostgres, LocalPgBouncer], scratch_table: str
) -> None:
    """Why the helper sets prepare_threshold=None: psycopg's default prepares after 5 runs on one server
    connection, and PgBouncer 1.18 in transaction mode hands the next transaction to another one."""
    _, bouncer = data_tier
    dsn = bouncer.dsn("pat_app")
    holders = [psycopg.connect(dsn, autocommit=True) for _ in range(4)]
    failures: list[str] = []
    try:
        conns = [psycopg.connect(dsn, autocommit=True, prepare_threshold=1) for _ in range(8)]
        for round_ in range(10):
            for index, conn in enumerate(conns):
                try:
                    conn.execute("SELECT count(*) FROM pooled_probe WHERE worker = %s", (index + round_,)).fetchone()
                except psycopg.Error as exc:
                    failures.append(type(exc).__name__ + ": " + str(exc).splitlines()[0])
        for conn in conns:
            conn.close()
    finally:
        for holder in holders:
            holder.close()
    assert failures, "expected prepared-statement errors through transaction pooling"
    assert any("prepared statement" in failure for failure in failures), failures


def test_direct_targets_keep_prepared_statements(data_tier: tuple[LocalPostgres, LocalPgBouncer]) -> None:
    postgres, _ = data_tier
    target = pat_connect.target_from_dsn(postgres.dsn())
    assert target.pooled is False
    with pat_connect.connect(target) as conn:
        for _ in range(7):
            conn.execute("SELECT 1").fetchone()
        assert conn.prepare_threshold == 5


def test_secret_json_builds_a_verify_full_target_without_leaking_the_password() -> None:
    secret = json.dumps(
        {"host": "pat-prod.cluster-x.eu-west-1.rds.amazonaws.com", "port": 5432, "username": "pat_app",
         "password": "s3cret-pw", "dbname": "pat", "engine": "postgres"}
    )  # fmt: skip
    target = pat_connect.target_from_secret(secret, pooled=True, sslrootcert="/opt/rds-ca.pem")
    info = psycopg.conninfo.conninfo_to_dict(target.conninfo())
    assert info["sslmode"] == "verify-full"
    assert info["sslrootcert"] == "/opt/rds-ca.pem"
    assert info["application_name"] == "pat"
    assert info["connect_timeout"] == "5"
    assert "s3cret-pw" not in repr(target)
    with pytest.raises(pat_connect.SecretFormatError, match="missing host"):
        pat_connect.target_from_secret({"username": "u", "password": "p"})


def test_target_from_secrets_manager_reads_the_rds_secret() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = client.create_secret(
            Name="pat/dev/app",
            SecretString=json.dumps({"host": "h", "port": 6432, "username": "pat_app", "password": "p"}),
        )["ARN"]
        target = pat_connect.target_from_secrets_manager(arn, client=client, pooled=True)
    assert (target.host, target.port, target.user, target.pooled) == ("h", 6432, "pat_app", True)
