"""The migration engine against a real PostgreSQL: apply, re-apply, concurrency, failures and refusals."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pat_data.connect import Target, connect
from pat_data.migrations import (
    LockTimeoutError,
    MigrationError,
    MigrationFailedError,
    MigrationFileError,
    MigrationValidationError,
    Migrator,
    State,
    discover,
    flyway_checksum,
    split_statements,
)
from pat_data.migrations.files import parse_version
from tests.data.conftest import MIGRATIONS, ROOT

ALL_VERSIONS = [m.version_text for m in discover(MIGRATIONS)]
NEXT = "900"  # a version after every real migration: tests add their own "next" file with it


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A private copy of schema/migrations that a test may add to, edit or delete from."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    return target


def history(owner: Target) -> list[tuple[str, str, bool]]:
    with connect(owner) as conn:
        rows = conn.execute(
            "SELECT version, script, success FROM public.flyway_schema_history ORDER BY installed_rank"
        ).fetchall()
    return [(str(v), str(s), bool(ok)) for v, s, ok in rows]


def test_empty_database_gets_every_migration_then_nothing(new_database: Callable[[], Target]) -> None:
    owner = new_database()
    migrator = Migrator(owner, MIGRATIONS)
    assert [m.script for m in migrator.plan()] == [m.script for m in discover(MIGRATIONS)]

    first = migrator.migrate()
    assert first.applied == ALL_VERSIONS
    assert first.current_version == ALL_VERSIONS[-1]
    second = migrator.migrate()
    assert second.applied == []
    assert migrator.plan() == []
    assert {row.state for row in migrator.info()} == {State.SUCCESS}
    with connect(owner) as conn:
        comment = conn.execute("SELECT obj_description('public.flyway_schema_history'::regclass)").fetchone()
        columns = conn.execute(
            "SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_name = 'flyway_schema_history'"
        ).fetchone()
        owners = conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'pat'").fetchall()
    assert comment == ("pat_data.migrations history format 1",)
    assert columns is not None
    assert columns[0] == [
        "installed_rank", "version", "description", "type", "script", "checksum", "installed_by", "installed_on",
        "execution_time", "success",
    ]  # fmt: skip
    assert owners == [("pat_owner",)]


MIGRATE_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from pat_data.connect import target_from_dsn
from pat_data.migrations import Migrator
result = Migrator(target_from_dsn(sys.argv[1]), Path(sys.argv[2]), lock_wait_seconds=120).migrate()
print(json.dumps(result.applied))
"""


def test_five_concurrent_processes_apply_each_version_exactly_once(new_database: Callable[[], Target]) -> None:
    owner = new_database()
    dsn = f"postgresql://{owner.user}:{owner.password}@{owner.host}:{owner.port}/{owner.dbname}?sslmode=disable"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_IN_A_PROCESS, dsn, str(MIGRATIONS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for _ in range(5)
    ]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [p.returncode for p in processes] == [0] * 5, [err for _, err in outputs]
    applied = [json.loads(out) for out, _ in outputs]
    assert sorted(v for versions in applied for v in versions) == sorted(ALL_VERSIONS)
    assert sum(1 for versions in applied if versions) == 1  # one winner applied everything, in order
    rows = history(owner)
    assert [v for v, _, _ in rows] == ALL_VERSIONS
    assert all(ok for _, _, ok in rows)
    with connect(owner) as conn:
        index = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'pat.users_tenant_last_seen_idx'::regclass"
        ).fetchone()
    assert index == (True,)  # the non-transactional CONCURRENTLY file ran once and left a valid index


def test_failing_migration_rolls_back_names_the_file_and_line_and_the_next_run_resumes(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    owner = new_database()
    broken = migrations / f"V{NEXT}__add_email_labels.sql"
    broken.write_text(
        "CREATE TABLE pat.email_labels (id bigint PRIMARY KEY);\n"
        "\n"
        "ALTER TABLE pat.email_labels ADD COLUMN name text;\n"
        "INSERT INTO pat.email_labels (id, nmae) VALUES (1, 'typo');\n"
    )
    migrator = Migrator(owner, migrations)
    with pytest.raises(MigrationFailedError) as failure:
        migrator.migrate()
    message = str(failure.value)
    assert message.startswith(f"V{NEXT}__add_email_labels.sql line 4: 42703")
    assert 'column "nmae" of relation "email_labels" does not exist' in message
    assert failure.value.line == 4
    assert [v for v, _, _ in history(owner)] == ALL_VERSIONS  # earlier files stay applied
    with connect(owner) as conn:
        assert conn.execute("SELECT to_regclass('pat.email_labels')").fetchone() == (None,)  # rolled back

    broken.write_text(broken.read_text().replace("nmae", "name"))
    result = Migrator(owner, migrations).migrate()
    assert result.applied == [NEXT]


def test_edited_applied_file_is_refused_and_repair_realigns_it(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    owner = new_database()
    Migrator(owner, migrations).migrate()
    edited = migrations / "V002__tenants_and_users.sql"
    edited.write_text(edited.read_text() + "\n-- reviewed\n")
    with pytest.raises(MigrationValidationError, match=r"V002__tenants_and_users\.sql: changed after it was applied"):
        Migrator(owner, migrations).migrate()
    dry = Migrator(owner, migrations).repair(dry_run=True)
    assert [(a.script, a.action.split()[0]) for a in dry] == [("V002__tenants_and_users.sql", "realign")]
    with pytest.raises(MigrationValidationError):
        Migrator(owner, migrations).validate().raise_if_invalid()  # dry run changed nothing
    Migrator(owner, migrations).repair()
    assert Migrator(owner, migrations).validate().problems == []


def test_applied_file_missing_on_disk_is_refused(new_database: Callable[[], Target], migrations: Path) -> None:
    owner = new_database()
    Migrator(owner, migrations).migrate()
    (migrations / "V003__emails_attachments_tags.sql").unlink()
    with pytest.raises(
        MigrationValidationError, match=r"V003__emails_attachments_tags\.sql: applied .* missing on disk"
    ):
        Migrator(owner, migrations).migrate()


def test_out_of_order_pending_version_is_refused_unless_allowed(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    owner = new_database()
    (migrations / "V990__later.sql").write_text("CREATE TABLE pat.later (id int PRIMARY KEY);\n")
    Migrator(owner, migrations).migrate()
    (migrations / "V980__forgotten.sql").write_text("CREATE TABLE pat.forgotten (id int PRIMARY KEY);\n")
    with pytest.raises(MigrationValidationError, match=r"V980__forgotten\.sql: version 980 is older than .* 990"):
        Migrator(owner, migrations).migrate()
    assert [r.state for r in Migrator(owner, migrations).info() if r.version == "980"] == [State.OUT_OF_ORDER]
    assert Migrator(owner, migrations, out_of_order=True).migrate().applied == ["980"]


def test_database_ahead_of_the_files_is_a_no_op_not_a_downgrade(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    """What a CloudFormation rollback does: the previous code, with fewer files, runs against the newer schema."""
    owner = new_database()
    Migrator(owner, migrations).migrate()
    newer = discover(migrations)[-2:]
    for migration in newer:
        (migrations / migration.script).unlink()
    result = Migrator(owner, migrations).migrate()
    assert result.applied == []
    assert result.future == [m.version_text for m in newer]
    assert [v for v, _, _ in history(owner)] == ALL_VERSIONS


def test_failed_non_transactional_migration_blocks_until_repair(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    owner = new_database()
    Migrator(owner, migrations).migrate()
    concurrent = migrations / f"V{NEXT}__emails_subject_index.sql"
    concurrent.write_text(
        "-- pat:transactional=false\n"
        "CREATE INDEX CONCURRENTLY tags_color_idx ON pat.tags (color);\n"
        "CREATE INDEX CONCURRENTLY users_display_name_idx ON pat.userz (display_name);\n"
    )
    with pytest.raises(
        MigrationFailedError, match=rf"V{NEXT}__emails_subject_index\.sql line 3: 42P01 .*not transactional"
    ):
        Migrator(owner, migrations).migrate()
    assert history(owner)[-1] == (NEXT, f"V{NEXT}__emails_subject_index.sql", False)
    concurrent.write_text(
        concurrent.read_text()
        .replace("userz", "users")
        .replace("INDEX CONCURRENTLY tags", "INDEX CONCURRENTLY IF NOT EXISTS tags")
    )
    with pytest.raises(MigrationValidationError, match=r"failed on .* run `repair`"):
        Migrator(owner, migrations).migrate()
    assert [a.action for a in Migrator(owner, migrations).repair()] == ["remove failed row"]
    assert Migrator(owner, migrations).migrate().applied == [NEXT]


def test_lock_wait_is_bounded_and_names_the_holder(new_database: Callable[[], Target]) -> None:
    owner = new_database()
    migrator = Migrator(owner, MIGRATIONS, lock_wait_seconds=1)
    with psycopg.connect(owner.conninfo() + " application_name=stuck-deploy-42", autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrator.lock_key,))
        pid = holder.info.backend_pid
        with pytest.raises(LockTimeoutError) as timeout:
            migrator.migrate()
    message = str(timeout.value)
    assert f"held by pid {pid}" in message
    assert "application_name=stuck-deploy-42" in message
    assert f"pg_terminate_backend({pid})" in message


def test_ddl_lock_timeout_is_retried_then_reported(new_database: Callable[[], Target], migrations: Path) -> None:
    owner = new_database()
    Migrator(owner, migrations).migrate()
    (migrations / f"V{NEXT}__tags_description.sql").write_text(
        "-- pat:lock_timeout=200ms\nALTER TABLE pat.tags ADD COLUMN description text;\n"
    )
    with psycopg.connect(owner.conninfo()) as blocker:
        blocker.execute("LOCK TABLE pat.tags IN ACCESS SHARE MODE")  # a long reader: ALTER must wait, not queue forever
        with pytest.raises(MigrationFailedError, match="lock not granted after 2 attempts"):
            Migrator(owner, migrations, lock_retries=2, retry_backoff_seconds=0.05).migrate()
        blocker.rollback()

    with psycopg.connect(owner.conninfo()) as blocker:
        blocker.execute("LOCK TABLE pat.tags IN ACCESS SHARE MODE")
        release = threading.Timer(0.5, blocker.rollback)
        release.start()
        result = Migrator(owner, migrations, lock_retries=10, retry_backoff_seconds=0.2).migrate()
        release.join()
    assert result.applied == [NEXT]


def test_pooled_targets_are_refused(new_database: Callable[[], Target]) -> None:
    owner = new_database()
    with pytest.raises(MigrationError, match="pooled endpoint: migrations need the writer endpoint directly"):
        Migrator(owner.with_host(owner.host, pooled=True), MIGRATIONS)


@pytest.mark.parametrize(
    "name",
    ["V1_missing_underscore.sql", "v001__lowercase_v.sql", "V001__.sql", "V1.x__bad_version.sql", "001__no_prefix.sql",
     "V002__has-dash.sql", "notes.txt"],
)  # fmt: skip
def test_bad_file_names_are_refused_with_the_grammar(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("SELECT 1;\n")
    expected = re.escape(f"{name}: not a valid migration file name: expected V<version>__<description>.sql")
    with pytest.raises(MigrationFileError, match=f"^{expected}"):
        discover(tmp_path)


def test_bad_directives_are_refused(tmp_path: Path) -> None:
    (tmp_path / "V001__again.sql").write_text("-- pat:transactional=maybe\nSELECT 1;\n")
    with pytest.raises(MigrationFileError, match="pat:transactional must be true or false"):
        discover(tmp_path)
    (tmp_path / "V001__again.sql").write_text("-- pat:lock_timout=5s\nSELECT 1;\n")
    with pytest.raises(MigrationFileError, match="unknown directive pat:lock_timout"):
        discover(tmp_path)


def test_versions_compare_as_flyways_trailing_zero_parts_ignored() -> None:
    assert parse_version("6") == parse_version("6.0") == parse_version("6.0.0") == parse_version("006") == (6,)
    assert parse_version("1_2") == parse_version("1.2.0") == (1, 2)
    assert parse_version("1.10") > parse_version("1.9") > parse_version("1.0.1") > parse_version("1") > (0,)
    assert parse_version("0.0") == (0,)
    assert parse_version("2013.01.15.11.35.56") == (2013, 1, 15, 11, 35, 56)


CLASHES = {
    "V006__y.sql and V6.0__x.sql are both version 6": ["V6.0__x.sql", "V006__y.sql"],
    "V001__again.sql and V1__first.sql are both version 1": ["V1__first.sql", "V001__again.sql"],
    "V01.2__c.sql, V1.2.0__b.sql and V1_2__a.sql are all version 1.2": ["V1_2__a.sql", "V1.2.0__b.sql", "V01.2__c.sql"],
}


@pytest.mark.parametrize(("clash", "names"), CLASHES.items())
def test_equal_versions_in_one_directory_are_refused_naming_every_file(
    tmp_path: Path, clash: str, names: list[str]
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")
    (tmp_path / "V7__unrelated.sql").write_text("SELECT 1;\n")
    expected = (
        f"{tmp_path}: {clash} (versions compare numerically with trailing zero parts ignored, 6 = 6.0 = 006, and "
        "Flyway refuses such a directory too): renumber all but one of each above the newest version, keeping the "
        "name of any that is already applied"
    )
    with pytest.raises(MigrationFileError) as refused:
        discover(tmp_path)
    assert str(refused.value) == expected


def test_an_applied_version_is_the_same_version_whatever_its_trailing_zeros(
    new_database: Callable[[], Target], tmp_path: Path
) -> None:
    """History rows compare with the files' rule: an applied `6` is the file `V6.0__...`, never a second version."""
    owner = new_database()
    (tmp_path / "V1__first.sql").write_text("CREATE TABLE public.first (id int);\n")
    (tmp_path / "V6__sixth.sql").write_text("CREATE TABLE public.sixth (id int);\n")
    Migrator(owner, tmp_path).migrate()
    (tmp_path / "V6__sixth.sql").rename(tmp_path / "V6.0__sixth.sql")
    (tmp_path / "V6.0.1__patch.sql").write_text("CREATE TABLE public.patch (id int);\n")

    validation = Migrator(owner, tmp_path).validate()
    assert [m.script for m in validation.pending] == ["V6.0.1__patch.sql"]
    assert validation.problems == [
        "V6.0__sixth.sql: version 6 was applied as V6__sixth.sql: rename the file back, or run `repair` to record the "
        "new name"
    ]
    assert [a.script for a in Migrator(owner, tmp_path).repair()] == ["V6.0__sixth.sql"]
    assert Migrator(owner, tmp_path).migrate().applied == ["6.0.1"]
    applied = [(version, script) for version, script, _ in history(owner)]
    assert applied == [("1", "V1__first.sql"), ("6", "V6.0__sixth.sql"), ("6.0.1", "V6.0.1__patch.sql")]
    assert {row.state for row in Migrator(owner, tmp_path).info()} == {State.SUCCESS}


BOM = b"\xef\xbb\xbf"


def test_a_file_saved_with_a_byte_order_mark_runs_and_keeps_its_directives(
    new_database: Callable[[], Target], migrations: Path
) -> None:
    """Before: the mark went to the server (`syntax error at or near "CREATE"` at line 1), and a BOM-prefixed
    `-- pat:transactional=false` was not read as a directive, so CREATE INDEX CONCURRENTLY ran in a transaction."""
    owner = new_database()
    table = "CREATE TABLE pat.bom_probe (id int PRIMARY KEY, name text);\n"
    index = "-- pat:transactional=false\nCREATE INDEX CONCURRENTLY bom_probe_name_idx ON pat.bom_probe (name);\n"
    (migrations / f"V{NEXT}__bom_table.sql").write_bytes(BOM + table.encode())
    (migrations / "V901__bom_concurrent_index.sql").write_bytes(BOM + index.encode())

    files = {m.script: m for m in discover(migrations)}
    with_bom = files["V901__bom_concurrent_index.sql"]
    assert not with_bom.transactional
    assert with_bom.lock_timeout == "0"  # the non-transactional default: the directive was read
    assert with_bom.sql == index
    assert with_bom.checksum == flyway_checksum(index)  # unchanged by the mark, as before and as in Flyway
    assert files[f"V{NEXT}__bom_table.sql"].sql == table

    assert Migrator(owner, migrations).migrate().applied[-2:] == [NEXT, "901"]
    with connect(owner) as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'pat.bom_probe_name_idx'::regclass"
        ).fetchone()
    assert valid == (True,)


def test_checksum_ignores_line_endings_and_bom_like_flyway() -> None:
    text = "CREATE TABLE t (id int);\nSELECT 1;\n"
    assert flyway_checksum(text) == flyway_checksum(text.replace("\n", "\r\n")) == flyway_checksum("\ufeff" + text)
    assert flyway_checksum(text) != flyway_checksum(text.replace("int", "bigint"))
    assert -(2**31) <= flyway_checksum(text) < 2**31


def test_statement_splitter_respects_quotes_dollar_quotes_and_comments() -> None:
    sql = (
        "-- header; not a statement\n"
        "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$ SELECT 'a;b' $body$;\n"
        "/* block; /* nested; */ comment */ INSERT INTO t VALUES ('it''s; fine', \"odd;name\");\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
        "-- trailing comment only\n"
    )
    statements = split_statements(sql)
    assert len(statements) == 3
    assert statements[0].sql.endswith("$body$ SELECT 'a;b' $body$")
    assert "'it''s; fine'" in statements[1].sql
    assert statements[2].sql == "DO $$ BEGIN PERFORM 1; END $$"
