"""Pin the logical IDs of every stateful resource (`make pin-stateful`) into stateful-manifest.json.

CloudFormation identifies a resource by its logical ID: a refactor that moves a construct (or renames it) gives the
database, the cache or the attachments bucket a new ID, and the deploy would create a new one and DELETE the old.
tests/unit/test_stateful_manifest.py compares every synthesis with this committed file. Re-pin only deliberately,
after reading the diff it prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aws_cdk as cdk

from pat_constructs.removal_policy import STATEFUL_TYPES
from stacks import config
from stacks.pat_app import build_environment

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "stateful-manifest.json"


def synthesize(outdir: Path | None = None) -> cdk.cx_api.CloudAssembly:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(outdir) if outdir else None)
    for env in config.ENVIRONMENTS.values():
        build_environment(app, env)
    return app.synth()


def stateful_resources(assembly: cdk.cx_api.CloudAssembly) -> dict[str, dict[str, str]]:
    """{stack name: {logical id: resource type}} for every stateful resource type."""
    found: dict[str, dict[str, str]] = {}
    for stack in assembly.stacks:
        resources = {
            logical_id: resource["Type"]
            for logical_id, resource in stack.template.get("Resources", {}).items()
            if resource["Type"] in STATEFUL_TYPES
        }
        if resources:
            found[stack.stack_name] = dict(sorted(resources.items()))
    return dict(sorted(found.items()))


def main() -> int:
    current = stateful_resources(synthesize())
    previous = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    MANIFEST.write_text(json.dumps(current, indent=2) + "\n")
    for stack in sorted(set(previous) | set(current)):
        before, after = previous.get(stack, {}), current.get(stack, {})
        for logical_id in sorted(set(before) - set(after)):
            print(f"- {stack}/{logical_id} ({before[logical_id]})  <- REMOVED from the pin: would be deleted")
        for logical_id in sorted(set(after) - set(before)):
            print(f"+ {stack}/{logical_id} ({after[logical_id]})")
    print(f"pinned {sum(len(v) for v in current.values())} stateful resources in {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
