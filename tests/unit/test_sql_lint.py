"""squawk lints every migration (config and justification in .squawk.toml; per-line ignores carry their reason in
the comment above them). Transactional files are linted as the engine runs them: inside a transaction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pat_data.migrations import MigrationFile, discover
from tests.conftest import ROOT

SQUAWK = Path(sys.executable).with_name("squawk")
MIGRATIONS = discover(ROOT / "schema" / "migrations")


def squawk(path: Path, *, in_transaction: bool) -> subprocess.CompletedProcess[str]:
    flags = ["--assume-in-transaction"] if in_transaction else ["--no-assume-in-transaction"]
    return subprocess.run(
        [str(SQUAWK), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc", *flags, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: m.script)
def test_migration_passes_squawk(migration: MigrationFile) -> None:
    path = ROOT / "schema" / "migrations" / migration.script
    result = squawk(path, in_transaction=migration.transactional)
    assert result.returncode == 0, result.stdout + result.stderr


def test_squawk_catches_a_blocking_index_build(tmp_path: Path) -> None:
    bad = tmp_path / "V099__blocking_index.sql"
    bad.write_text("CREATE INDEX emails_subject_idx ON pat.emails (subject);\n")
    result = squawk(bad, in_transaction=True)
    assert result.returncode != 0
    assert "require-concurrent-index-creation" in result.stdout
