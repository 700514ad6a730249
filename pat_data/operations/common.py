"""Dry-run plans, SSM discovery, and waiting with progress (errors and their exit codes: `errors`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pat_data.contract import DiscoveryKey, PhysicalNames
from pat_data.operations.errors import CheckFailedError, PreconditionError

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


# Any: a generic helper over any client and operation name; boto3-stubs types paginators per literal operation, so
# typed code calls `client.get_paginator("<operation>")` itself (patops does) and gets typed pages and items.
def all_pages(client: Any, operation: str, key: str, **parameters: Any) -> list[Any]:
    """Every item of a list/describe call that can return pages: its first page alone silently drops the rest."""
    return [item for page in client.get_paginator(operation).paginate(**parameters) for item in page.get(key, [])]


@dataclass
class Plan:
    """What a mutation will do (dry run) or did (`applied`)."""

    action: str
    steps: list[str] = field(default_factory=list)
    applied: bool = False
    result: Mapping[str, object] = field(default_factory=dict)


class Discovery:
    """Reads `/pat/<env>/...` SSM parameters published by the stacks: nobody types an ARN at 3 a.m."""

    def __init__(self, ssm: SSMClient, env: str) -> None:
        self.ssm, self.env = ssm, env
        self.names = PhysicalNames(env)
        self._cache: dict[str, str] | None = None

    def all(self) -> dict[str, str]:
        """Every published value under the environment's prefix, by discovery key (read once per command)."""
        if self._cache is None:
            prefix = self.names.discovery_prefix
            values: dict[str, str] = {}
            for page in self.ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=True):
                for parameter in page["Parameters"]:
                    values[parameter["Name"].removeprefix(prefix)] = parameter["Value"]
            self._cache = values
        return self._cache

    def get(self, key: DiscoveryKey) -> str:
        values = self.all()
        if key.key not in values:
            if not values:
                raise PreconditionError(
                    f"no SSM parameters under {self.names.discovery_prefix}: is '{self.env}' deployed in this "
                    "account/region? (check --profile/--region)"
                )
            stack = key.key.split("/", 1)[0]
            raise PreconditionError(
                f"SSM parameter {self.names.parameter(key)} is missing: deploy the stack that publishes {stack}/* "
                f"(make deploy ENV={self.env})"
            )
        return values[key.key]


def wait_until(
    check: Callable[[], tuple[bool, str]],
    *,
    timeout_seconds: float,
    interval_seconds: float = 15,
    progress: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] | None = None,
    what: str,
) -> None:
    """Poll `check` (returns done, status text) until done; reports each status; Ctrl-C stops waiting only."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        done, status = check()
        progress(status)
        if done:
            return
        if time.monotonic() >= deadline:
            raise CheckFailedError(f"{what}: still '{status}' after {timeout_seconds:.0f}s; nothing was rolled back")
        (sleep or time.sleep)(interval_seconds)
