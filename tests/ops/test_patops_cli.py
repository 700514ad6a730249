"""The command line itself: the command table drives `--help` and dispatch, and every error patops or a library
underneath raises ends as one line on stderr and the exit code docs/runbooks.md documents."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import psycopg
import pytest
import redis.exceptions
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    ReadTimeoutError,
)
from psycopg import errors as pg_errors

from pat_data.operations import CheckFailedError, PatopsError, PreconditionError, RefusedError
from scripts import patops, patops_commands
from scripts.patops_commands import COMMANDS, Context, Result

ROOT = Path(__file__).resolve().parents[2]


def status_raises(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """`patops status` runs a handler that raises `error` (the table is what main dispatches through)."""

    def handler(_: Context) -> Result:
        raise error

    table = tuple(dataclasses.replace(c, handler=handler) if c.group == "status" else c for c in COMMANDS)
    monkeypatch.setattr(patops, "COMMANDS", table)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = patops.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


REFUSED = ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "DescribeDBClusters")

ERRORS: list[tuple[BaseException, int, str]] = [
    (PreconditionError("cluster x is 'modifying':\n  wait until it is available"), 2, "cluster x is 'modifying': wait"),
    (CheckFailedError("migrations do not validate"), 1, "check failed: migrations do not validate"),
    (RefusedError("AWS refused: throttled"), 1, "AWS refused: throttled"),
    (NoCredentialsError(), 2, "Unable to locate credentials: set --profile/--region"),
    (NoRegionError(), 2, "You must specify a region"),
    (ProfileNotFound(profile="oncall"), 2, "The config profile (oncall) could not be found: set --profile"),
    (REFUSED, 1, "AWS refused: An error occurred (AccessDenied)"),
    (EndpointConnectionError(endpoint_url="https://rds.example"), 1, "AWS refused: Could not connect"),
    (ReadTimeoutError(endpoint_url="https://lambda.example"), 1, "AWS refused: Read timeout"),
    (
        psycopg.OperationalError("connection failed: port 1 failed: Connection refused\n\tIs the server running?"),
        2,
        "PostgreSQL is unreachable: connection failed: port 1 failed: Connection refused Is the server running?",
    ),
    (pg_errors.LockNotAvailable("canceling statement due to lock timeout"), 1, "PostgreSQL refused: canceling"),
    (redis.exceptions.ConnectionError("Error 111 connecting"), 2, "the cache is unreachable: Error 111"),
    (redis.exceptions.RedisClusterException("Redis Cluster cannot be connected"), 2, "the cache is unreachable"),
    (redis.exceptions.ResponseError("OOM command not allowed"), 1, "the cache refused: OOM"),
]


@pytest.mark.parametrize(("error", "code", "line"), ERRORS, ids=[type(error).__name__ for error, _, _ in ERRORS])
def test_every_error_ends_as_one_line_and_its_documented_exit_code(
    error: BaseException, code: int, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status_raises(monkeypatch, error)
    exit_code, out, err = run(capsys, "--env", "dev", "status")
    assert exit_code == code
    assert err.startswith(f"patops: {line}")
    assert err.count("\n") == 1, err
    assert out == ""


def test_exit_codes_come_from_the_error_classes_the_runbook_documents() -> None:
    assert (PreconditionError.exit_code, CheckFailedError.exit_code, RefusedError.exit_code) == (2, 1, 1)
    assert all(issubclass(kind, PatopsError) for kind in (PreconditionError, CheckFailedError, RefusedError))
    runbooks = " ".join((ROOT / "docs" / "runbooks.md").read_text().split())
    assert (
        "Exit codes: 0 ok, 1 check failed / AWS, the database or the cache refused, 2 usage or precondition" in runbooks
    )


def test_a_failed_check_prints_its_report_on_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status_raises(monkeypatch, CheckFailedError("1 stale resource", {"resources": [{"ok": False}]}))
    code, out, err = run(capsys, "--env", "dev", "--json", "status")
    assert (code, err) == (1, "patops: check failed: 1 stale resource\n")
    assert '"ok": false' in out


def test_a_defect_keeps_its_traceback_and_an_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status_raises(monkeypatch, KeyError("a bug in patops"))
    with pytest.raises(KeyError, match="a bug in patops"):
        patops.main(["--env", "dev", "status"])
    status_raises(monkeypatch, KeyboardInterrupt())
    code, _, err = run(capsys, "--env", "dev", "status")
    assert code == 130
    assert "continues in AWS" in err


def test_help_lists_every_command_of_the_table_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        patops.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for command in COMMANDS:
        assert f"{command.words} {command.help}" in text
        assert (f"{command.words} {command.help} [dry run unless --yes]" in text) == command.mutates


def test_the_table_is_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command parses and dispatches to its own handler; a usage error exits 2 before anything runs."""
    parser = patops.parser()
    required = {
        "db scale": ["--min", "1", "--max", "2"],
        "db snapshot": ["--reason", "r"],
        "db restore": ["--to-time", "2026-11-22T02:15:00Z"],
        "migrations baseline": ["--version", "1"],
        "cache rotate-auth": ["--step", "begin"],
        "secrets rotate": ["app"],
        "cdn invalidate": ["/a"],
    }
    for command in COMMANDS:
        args = parser.parse_args(["--env", "dev", *command.words.split(), *required.get(command.words, [])])
        assert args.run is command
    assert len({c.words for c in COMMANDS}) == len(COMMANDS)
    with pytest.raises(SystemExit) as usage:
        patops.main(["db", "status"])
    assert usage.value.code == 2
    assert "--env is required" in capsys.readouterr().err


LOCAL_USAGE = {
    "missing setting": ({}, "migrations info", r"--env local needs PAT_LOCAL_DSN \(owner DSN"),
    "malformed setting": ({"PAT_LOCAL_CACHE": "localhost"}, "cache stats", r"PAT_LOCAL_CACHE: expected host:port:pass"),
    "AWS only": ({}, "db failover", r"this command needs AWS: use --env dev\|staging\|prod"),
}


@pytest.mark.parametrize("case", sorted(LOCAL_USAGE))
def test_local_mode_settings_missing_or_malformed_are_usage_errors(
    case: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, command, line = LOCAL_USAGE[case]
    for name in patops_commands.LOCAL_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, "--env", "local", *command.split())
    assert (code, out) == (2, "")
    assert re.fullmatch(f"patops: {line}.*\n", err), err
