"""What can go wrong in an operation, as one family of errors that each carry the exit code patops ends with.

Exit codes (docs/runbooks.md): 1 a check failed or a service refused the request, 2 usage or a precondition (nothing
was changed). Errors raised by the libraries underneath (botocore, psycopg, redis) are
translated into this family once, here, so the operator gets one line that names the fix instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import psycopg
import redis.exceptions
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class PatopsError(Exception):
    """An operation could not do what was asked; `exit_code` says why, `report` carries what a check saw."""

    exit_code: ClassVar[int] = EXIT_CHECK_FAILED
    prefix: ClassVar[str] = ""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        self.report = report

    def line(self) -> str:
        """The one line printed on stderr (library messages can span lines; an operator reads one)."""
        return " ".join(f"patops: {self.prefix}{self}".split())


class PreconditionError(PatopsError):
    """Bad input, a missing setting, or a precondition not met: nothing was changed. The message names the fix."""

    exit_code = EXIT_USAGE


class CheckFailedError(PatopsError):
    """A check ran and found a problem."""

    prefix = "check failed: "


class RefusedError(PatopsError):
    """A service (AWS, the database, the cache) refused or failed a request patops sent."""


_LOCAL_HINT = "(--env local: is `make local` running?)"


def _postgres(error: BaseException) -> PatopsError:
    """A connection that failed carries no SQLSTATE; a lock or statement timeout (also OperationalError) does."""
    if isinstance(error, psycopg.OperationalError) and error.sqlstate is None:
        return PreconditionError(f"PostgreSQL is unreachable: {error} {_LOCAL_HINT}")
    return RefusedError(f"PostgreSQL refused: {error}")


# What each library error means, first match wins (subclasses before their bases): no credentials, region or profile
# means patops could not start; an unreachable database or cache is a precondition; any other refusal is exit 1.
# The cluster client raises RedisClusterException (not a RedisError) when no startup node answers.
_TRANSLATIONS: tuple[tuple[tuple[type[BaseException], ...], Callable[[BaseException], PatopsError]], ...] = (
    (
        (NoCredentialsError, NoRegionError, ProfileNotFound),
        lambda error: PreconditionError(f"{error}: set --profile/--region or AWS credentials"),
    ),
    ((ClientError, BotoCoreError), lambda error: RefusedError(f"AWS refused: {error}")),
    ((psycopg.Error,), _postgres),
    (
        (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.RedisClusterException),
        lambda error: PreconditionError(f"the cache is unreachable: {error} {_LOCAL_HINT}"),
    ),
    ((redis.exceptions.RedisError,), lambda error: RefusedError(f"the cache refused: {error}")),
)


def translate(error: BaseException) -> PatopsError | None:
    """The PatopsError an exception from the libraries underneath means, or None for a defect (let it show)."""
    if isinstance(error, PatopsError):
        return error
    for kinds, meaning in _TRANSLATIONS:
        if isinstance(error, kinds):
            return meaning(error)
    return None
