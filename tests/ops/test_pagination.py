"""Every AWS list/describe call that can return pages reads all pages.

Derived, not hand-listed: the services are the ones the code creates clients for (`.client("<service>")` in the
scanned source), the operations are those botocore's paginator models (paginators-1) say can return pages, and every
direct call of such an operation fails the test; reading through `get_paginator(...)` (or `all_pages`) is the fix.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("scripts", "pat_data", "lambdas")
# Known offenders in files this test's owner may not edit, each with who fixes it. An entry that no longer occurs
# fails the test, so the list can only shrink.
PENDING: dict[tuple[str, str], str] = {}


def sources() -> Iterator[tuple[str, ast.Module]]:
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text(), filename=str(path))


def calls(tree: ast.Module) -> Iterator[ast.Call]:
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def services_used() -> set[str]:
    """Service names passed as a literal to any `.client(...)` (boto3, a session, patops' Context)."""
    found: set[str] = set()
    for _, tree in sources():
        for call in calls(tree):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "client" and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    return found


@cache
def pageable_operations() -> dict[str, frozenset[str]]:
    """snake_case operation -> the services (of those used) whose paginator model lists it."""
    session = botocore.session.get_session()
    operations: dict[str, set[str]] = {}
    for service in sorted(services_used()):
        client = session.create_client(
            service, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        for name in client.meta.service_model.operation_names:
            if client.can_paginate(xform_name(name)):
                operations.setdefault(xform_name(name), set()).add(service)
    return {name: frozenset(services) for name, services in operations.items()}


def direct_calls() -> dict[tuple[str, str], list[int]]:
    """(file, operation) -> lines where a pageable operation is called directly (`client.describe_x(...)`)."""
    pageable = pageable_operations()
    found: dict[tuple[str, str], list[int]] = {}
    for path, tree in sources():
        for call in calls(tree):
            if isinstance(call.func, ast.Attribute) and call.func.attr in pageable:
                found.setdefault((path, call.func.attr), []).append(call.lineno)
    return found


def test_the_derivation_sees_the_services_and_operations_patops_uses() -> None:
    """Guards the scanner itself: an empty derivation would pass everything."""
    assert {"ssm", "rds", "elasticache", "backup", "cloudwatch", "ecs", "secretsmanager", "lambda"} <= services_used()
    pageable = pageable_operations()
    assert {"describe_db_clusters", "describe_alarms", "list_recovery_points_by_resource"} <= set(pageable)
    assert "describe_services" not in pageable  # ECS: a bounded list of names, no pages
    tree = ast.parse("rds.describe_db_clusters(DBClusterIdentifier='x')\nrds.get_paginator('describe_db_clusters')")
    assert [call.func.attr for call in calls(tree) if isinstance(call.func, ast.Attribute)] == [
        "describe_db_clusters",
        "get_paginator",
    ]


def test_no_direct_call_of_an_operation_that_returns_pages() -> None:
    found = direct_calls()
    offenders = {key: lines for key, lines in found.items() if key not in PENDING}
    assert not offenders, "read every page (get_paginator / pat_data.operations.all_pages):\n" + "\n".join(
        f"  {path}:{','.join(map(str, sorted(lines)))} {name} ({', '.join(sorted(pageable_operations()[name]))})"
        for (path, name), lines in sorted(offenders.items())
    )
    stale = sorted(set(PENDING) - set(found))
    assert not stale, f"fixed, remove from PENDING: {stale}"


def test_every_paginated_read_names_an_operation_that_has_pages() -> None:
    """`get_paginator("x")` / `all_pages(client, "x", ...)` for an operation without pages fails only at run time."""
    pageable = pageable_operations()
    named = []
    for path, tree in sources():
        for call in calls(tree):
            function = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
            position = {"get_paginator": 0, "all_pages": 1}.get(str(function))
            if position is not None and len(call.args) > position:
                argument = call.args[position]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    named.append((f"{path}:{call.lineno}", argument.value))
    assert named  # the scanner sees them
    assert [f"{where} {operation}" for where, operation in named if operation not in pageable] == []
