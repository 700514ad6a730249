"""Versioned SQL migrations with Flyway semantics (see engine.py) and the files they are read from (files.py)."""

from pat_data.migrations.engine import (
    ENGINE_VERSION,
    InfoRow,
    LockTimeoutError,
    MigrateResult,
    MigrationError,
    MigrationFailedError,
    MigrationValidationError,
    Migrator,
    RepairAction,
    State,
    Validation,
)
from pat_data.migrations.files import MigrationFile, MigrationFileError, discover, flyway_checksum, split_statements

__all__ = [
    "ENGINE_VERSION",
    "InfoRow",
    "LockTimeoutError",
    "MigrateResult",
    "MigrationError",
    "MigrationFailedError",
    "MigrationFile",
    "MigrationFileError",
    "MigrationValidationError",
    "Migrator",
    "RepairAction",
    "State",
    "Validation",
    "discover",
    "flyway_checksum",
    "split_statements",
]
