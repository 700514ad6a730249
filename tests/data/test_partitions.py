"""Partition maintenance against a real PostgreSQL, travelling in time through the injectable clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pat_data.connect import Target, connect
from pat_data.local import LocalPgBouncer, LocalPostgres
from pat_data.migrations import Migrator
from pat_data.partitions import PartitionConfigError, PartitionMaintainer, load_config
from tests.data.conftest import MIGRATIONS, PARTITIONS, app_connection

START = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
DataTier = tuple[LocalPostgres, LocalPgBouncer]
PARTITIONED = ("emails", "attachments", "email_tags", "email_search", "workflow_runs", "audit_log")


def partitions(owner: Target, table: str) -> list[str]:
    with connect(owner) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            (f"pat.{table}",),
        ).fetchall()
    return [str(r[0]) for r in rows]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@pytest.fixture
def schema(new_database: Callable[[], Target]) -> Target:
    owner = new_database()
    Migrator(owner, MIGRATIONS).migrate()
    return owner


def test_maintenance_satisfies_premake_keeps_a_default_and_is_idempotent(schema: Target) -> None:
    maintainer = PartitionMaintainer(schema, load_config(PARTITIONS, "prod"), now=at(START))
    report = maintainer.run()
    assert report.min_future_partitions == 12
    assert report.future_partitions == dict.fromkeys(PARTITIONED, 12)
    assert report.default_rows == dict.fromkeys(PARTITIONED, 0)
    for table in PARTITIONED:
        names = partitions(schema, table)
        assert f"{table}_default" in names
        assert f"{table}_p202610" in names  # last month: mail stamped just before midnight on the 1st
        assert f"{table}_p202711" in names  # 12 months ahead
    again = maintainer.run()
    assert (again.created, again.dropped, again.detached) == ([], [], [])


def test_thirty_months_later_retention_drops_or_detaches(schema: Target) -> None:
    config = load_config(PARTITIONS, "prod")
    PartitionMaintainer(schema, config, now=at(START)).run()
    # Travel 30 months: 2029-05 with prod retention (emails 24 months, workflow runs 6, audit log 84).
    later = datetime(2029, 5, 15, tzinfo=UTC)
    report = PartitionMaintainer(schema, config, now=at(later)).run()

    assert {"emails_p202610", "emails_p202704"} <= set(report.dropped)
    assert "emails_p202705" not in report.dropped  # 2029-05 minus 24 months is kept
    assert {"attachments_p202610", "email_tags_p202610"} <= set(report.dropped)
    assert report.dropped.index("attachments_p202610") < report.dropped.index("emails_p202610")  # children first
    assert "workflow_runs_p202711" in report.dropped  # every run partition made in 2026 is past 6 months
    assert "workflow_runs_p202904" in partitions(schema, "workflow_runs")
    assert report.detached == []  # audit_log keeps 84 months
    assert report.min_future_partitions == 12
    assert "emails_p203005" in partitions(schema, "emails")
    with connect(schema) as conn:
        assert conn.execute("SELECT to_regclass('pat.emails_p202610')").fetchone() == (None,)

    # Audit retention in dev is 3 months and detach-only: the tables stay, no longer attached.
    dev = PartitionMaintainer(schema, load_config(PARTITIONS, "dev"), now=at(later)).run()
    assert "audit_log_p202711" in dev.detached
    assert "audit_log_p202711" not in partitions(schema, "audit_log")
    with connect(schema) as conn:
        assert conn.execute("SELECT to_regclass('pat.audit_log_p202711')").fetchone() is not None
    assert PartitionMaintainer(schema, load_config(PARTITIONS, "dev"), now=at(later)).run().detached == []


def new_tenant(owner: Target, slug: str) -> str:
    with connect(owner) as conn:
        row = conn.execute("INSERT INTO pat.tenants (slug, name) VALUES (%s, %s) RETURNING id", (slug, slug)).fetchone()
    assert row is not None
    return str(row[0])


def test_expired_months_with_data_are_dropped_child_first(schema: Target, data_tier: DataTier) -> None:
    config = load_config(PARTITIONS, "dev")  # emails kept 3 months in dev
    PartitionMaintainer(schema, config, now=at(START)).run()
    tenant = [new_tenant(schema, "t1")]
    with app_connection(data_tier, schema) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant[0],))
        email = conn.execute(
            "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, "
            "size_bytes) VALUES (%s, '2026-11-05', '<m@x>', 'k1', 'a@x.test', '{b@x.test}', 10) RETURNING id",
            (tenant[0],),
        ).fetchone()
        assert email is not None
        conn.execute(
            "INSERT INTO pat.attachments (tenant_id, email_id, email_received_at, filename, content_type, size_bytes, "
            "sha256, s3_key) VALUES (%s, %s, '2026-11-05', 'a.pdf', 'application/pdf', 10, %s, %s)",
            (tenant[0], email[0], b"\x00" * 32, f"tenants/{tenant[0]}/{'0' * 64}"),
        )
    report = PartitionMaintainer(schema, config, now=at(datetime(2027, 4, 2, tzinfo=UTC))).run()
    assert {"attachments_p202611", "emails_p202611"} <= set(report.dropped)
    assert report.purged_rows == {"email_idempotency_keys": 1}
    with connect(schema) as conn:
        assert conn.execute("SELECT count(*) FROM pat.email_idempotency_keys").fetchone() == (0,)


def test_rows_in_the_default_partition_are_reported_and_block_that_month(schema: Target, data_tier: DataTier) -> None:
    config = load_config(PARTITIONS, "prod")
    PartitionMaintainer(schema, config, now=at(START)).run()
    tenant = [new_tenant(schema, "skew")]
    # A wrong clock upstream: mail dated 2028-03, beyond the premade months, lands in DEFAULT.
    with app_connection(data_tier, schema) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant[0],))
        conn.execute(
            "INSERT INTO pat.emails (tenant_id, received_at, message_id, idempotency_key, sender, recipients, "
            "size_bytes) VALUES (%s, '2028-03-10', '<m@x>', %s, 'a@x.test', '{b@x.test}', 10)",
            (tenant[0], str(uuid.uuid4())),
        )
    status = PartitionMaintainer(schema, config, now=at(START)).status()
    assert status.default_rows["emails"] == 1
    assert any("emails_default holds 1 row" in w for w in status.warnings)

    report = PartitionMaintainer(schema, config, now=at(datetime(2027, 4, 1, tzinfo=UTC))).run()
    assert "emails_p202803" not in report.created
    assert any(
        w.startswith("emails_p202803 not created: 1 row(s) for 2028-03 are in emails_default") for w in report.warnings
    )
    assert report.future_partitions["emails"] == 10  # 2027-05 .. 2028-02, then the blocked month
    assert report.min_future_partitions == 10


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[tables.emails]\ncolumn = "received_at"\non_expiry = "drop"\nretention = { dev = 3 }\n',
         r"\[tables.emails\] retention has no value for environment 'prod'"),
        ('[tables.emails]\ncolumn = "received_at"\non_expiry = "shred"\nretention = { prod = 3 }\n',
         r"\[tables.emails\] on_expiry = 'shred': must be one of drop, detach"),
        ('[tables.emails]\ncolumn = "received_at"\non_expiry = "drop"\nretention = { prod = 3 }\n'
         '[tables.attachments]\ncolumn = "email_received_at"\nfollows = "mails"\n',
         r"\[tables.attachments\] follows = 'mails'"),
        ('[tables.emails]\ncolumn = "received_at"\ninterval = "week"\n', r"interval = 'week': only 'month'"),
        ('[tables.emails]\ncolumn = "received_at"\non_expiry = "drop"\nretention = { prod = 3 }\npremake = 0\n',
         r"premake = 0: must be between 1 and 60"),
        ("[tables.emails\n", r"not valid TOML"),
    ],
)  # fmt: skip
def test_invalid_partition_config_names_file_table_and_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "partitions.toml"
    path.write_text(content)
    with pytest.raises(PartitionConfigError, match=message):
        load_config(path, "prod")


def test_the_shipped_config_is_valid_for_every_environment() -> None:
    for env in ("dev", "staging", "prod"):
        config = load_config(PARTITIONS, env)
        assert {t.table for t in config.tables} == set(PARTITIONED)
