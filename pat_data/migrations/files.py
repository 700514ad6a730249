"""Migration files on disk: Flyway's file-name grammar, version equality, checksums, header directives and statement
splitting.

Checksums are Flyway's (CRC32 over the UTF-8 bytes of each line without its line ending, BOM stripped, as a signed
32-bit int), so a team could point Flyway at the same history table and directory and it would agree. Versions
compare as Flyway's: numerically, part by part, trailing zero parts ignored (`6` == `6.0` == `006`, `1.10` > `1.9`);
https://documentation.red-gate.com/fd/versioned-migrations-273973333.html ("Each versioned migration must be assigned
a unique version ... Versions are sorted numerically"), and org.flywaydb.core.api.MigrationVersion, whose parser drops
trailing zero parts and whose equals() is compareTo() == 0: two files `V6.0__x.sql` and `V006__y.sql` are one version
to Flyway, which refuses the directory ("Found more than one migration with version 6").
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = re.compile(r"^V(?P<version>\d+(?:[._]\d+)*)__(?P<description>[A-Za-z0-9][A-Za-z0-9_]*)\.sql$")
FILE_NAME_HELP = "V<version>__<description>.sql, e.g. V007__add_email_labels.sql (version digits, '.' or '_' between)"
DIRECTIVE = re.compile(r"^--\s*pat:(?P<key>[a-z_]+)\s*=\s*(?P<value>\S+)\s*$")
DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>ms|s|min|h)$")
DIRECTIVES = {"transactional", "lock_timeout", "statement_timeout"}
IGNORED_FILES = {"README.md"}
DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
BOM = "\ufeff"

DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_STATEMENT_TIMEOUT = "15min"


class MigrationFileError(ValueError):
    """A migration file (or the directory) breaks the rules; the message names the file and the fix."""


Version = tuple[int, ...]


def parse_version(text: str) -> Version:
    """Flyway's version: numeric parts split on '.' or '_', trailing zero parts dropped (at least one part kept), so
    equal versions are equal tuples and tuple order is Flyway's order (`(1, 10) > (1, 9)`, `(1,) < (1, 0, 1)`)."""
    parts = [int(part) for part in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def format_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def flyway_checksum(text: str) -> int:
    crc = 0
    for line in text.removeprefix(BOM).splitlines():
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc


@dataclass(frozen=True)
class MigrationFile:
    """One versioned migration as read from disk."""

    version: Version
    version_text: str  # as written in the file name ('_' as '.'), which is what Flyway stores
    description: str
    script: str
    sql: str  # the text that runs: as on disk, without a leading UTF-8 byte-order mark
    checksum: int
    transactional: bool
    lock_timeout: str  # default: 5s in a transaction; "0" (only statement_timeout bounds it) outside one
    statement_timeout: str


def _directives(script: str, sql: str) -> dict[str, str]:
    """`-- pat:key=value` lines at the top of the file (before the first statement)."""
    found: dict[str, str] = {}
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = DIRECTIVE.match(stripped)
        if match is None:
            if "pat:" in stripped:
                raise MigrationFileError(f"{script}: malformed directive {stripped!r}: write '-- pat:key=value'")
            continue
        key, value = match["key"], match["value"]
        if key not in DIRECTIVES:
            allowed = ", ".join(sorted(DIRECTIVES))
            raise MigrationFileError(f"{script}: unknown directive pat:{key}: allowed are {allowed}")
        if key == "transactional" and value not in ("true", "false"):
            raise MigrationFileError(f"{script}: pat:transactional must be true or false, not {value!r}")
        if key.endswith("_timeout") and DURATION.match(value) is None:
            raise MigrationFileError(f"{script}: pat:{key}={value} is not a duration: use e.g. 500ms, 5s, 15min, 1h")
        found[key] = value
    return found


def read_migration(path: Path) -> MigrationFile:
    match = FILE_NAME.match(path.name)
    if match is None:
        raise MigrationFileError(f"{path.name}: not a valid migration file name: expected {FILE_NAME_HELP}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path.name}: not UTF-8 ({exc}): save the file as UTF-8") from exc
    # Editors on Windows save "UTF-8 with BOM". Flyway strips the mark before parsing and checksumming; so must we,
    # before the directives are read (a BOM-prefixed `-- pat:transactional=false` is a directive) and before the SQL
    # is sent (PostgreSQL reads the mark as part of the first token). The checksum never covered it.
    sql = text.removeprefix(BOM)
    if not split_statements(sql):
        raise MigrationFileError(f"{path.name}: contains no SQL statement")
    directives = _directives(path.name, sql)
    transactional = directives.get("transactional", "true") == "true"
    # Outside a transaction (CREATE INDEX CONCURRENTLY) lock waits do not block traffic, so only the statement
    # timeout bounds them unless the file says otherwise.
    default_lock_timeout = DEFAULT_LOCK_TIMEOUT if transactional else "0"
    return MigrationFile(
        version=parse_version(match["version"]),
        version_text=match["version"].replace("_", "."),
        description=match["description"].replace("_", " "),
        script=path.name,
        sql=sql,
        checksum=flyway_checksum(sql),
        transactional=transactional,
        lock_timeout=directives.get("lock_timeout", default_lock_timeout),
        statement_timeout=directives.get("statement_timeout", DEFAULT_STATEMENT_TIMEOUT),
    )


def discover(directory: Path) -> list[MigrationFile]:
    """Every migration in `directory`, ordered by version; refuses bad names and duplicate versions (gaps are fine)."""
    if not directory.is_dir():
        raise MigrationFileError(f"{directory}: migrations directory not found")
    by_version: dict[Version, list[MigrationFile]] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name in IGNORED_FILES or path.is_dir():
            continue
        migration = read_migration(path)
        by_version.setdefault(migration.version, []).append(migration)
    clashes = [files for files in by_version.values() if len(files) > 1]
    if clashes:
        raise MigrationFileError(
            f"{directory}: {'; '.join(_clash(files) for files in clashes)} (versions compare numerically with trailing "
            "zero parts ignored, 6 = 6.0 = 006, and Flyway refuses such a directory too): renumber all but one of "
            "each above the newest version, keeping the name of any that is already applied"
        )
    return [by_version[version][0] for version in sorted(by_version)]


def _clash(files: list[MigrationFile]) -> str:
    names = [f.script for f in files]
    both = "both" if len(names) == 2 else "all"
    return f"{', '.join(names[:-1])} and {names[-1]} are {both} version {format_version(files[0].version)}"


@dataclass(frozen=True)
class Statement:
    sql: str
    offset: int  # character offset of the statement in the file, to turn error positions into line numbers


def _skip_token(sql: str, index: int) -> int | None:
    """End of the comment, quoted string/identifier or dollar-quoted body starting at `index`, else None."""
    if sql.startswith("--", index):
        end = sql.find("\n", index)
        return len(sql) if end == -1 else end + 1
    if sql.startswith("/*", index):
        depth, index = 1, index + 2
        while index < len(sql) and depth:
            step = 2 if sql.startswith(("/*", "*/"), index) else 1
            depth += 1 if sql.startswith("/*", index) else -1 if sql.startswith("*/", index) else 0
            index += step
        return index
    char = sql[index]
    if char in ("'", '"'):
        index += 1
        while index < len(sql):
            if sql[index] == char:
                if sql.startswith(char * 2, index):
                    index += 2
                    continue
                return index + 1
            index += 1
        return index
    if char == "$":
        match = DOLLAR_TAG.match(sql, index)
        if match:
            end = sql.find(match.group(0), match.end())
            return len(sql) if end == -1 else end + len(match.group(0))
    return None


def split_statements(sql: str) -> list[Statement]:
    """Split on top-level semicolons, respecting quotes, dollar quotes and comments (for non-transactional files,
    whose statements such as CREATE INDEX CONCURRENTLY must each be sent on their own)."""
    statements: list[Statement] = []
    start = index = 0
    has_code = False
    while index < len(sql):
        skipped = _skip_token(sql, index)
        if skipped is not None:
            has_code = has_code or not sql.startswith(("--", "/*"), index)
            index = skipped
            continue
        if sql[index] == ";":
            if has_code:
                statements.append(_statement(sql, start, index))
            start, has_code = index + 1, False
        elif not sql[index].isspace():
            has_code = True
        index += 1
    if has_code:
        statements.append(_statement(sql, start, len(sql)))
    return statements


def _statement(sql: str, start: int, end: int) -> Statement:
    raw = sql[start:end]
    return Statement(sql=raw.strip(), offset=start + len(raw) - len(raw.lstrip()))


def line_of(sql: str, offset: int) -> int:
    return sql.count("\n", 0, max(0, min(offset, len(sql)))) + 1
