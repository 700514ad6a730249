"""Synthesizes every environment and compares its templates with a saved baseline, ignoring only asset hashes.

Refactors that must not change what is deployed ("The seams") run `save` before and `check` after: any other
difference is printed as a unified diff per template. Asset hashes (Lambda code, nested assets) and the migrator's
`EngineHash` follow the code and are expected to move; everything else must be byte-identical.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
from pathlib import Path

from stacks import config
from tests.conftest import build_app  # the tests' own app builder: same context, no bundling

_ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def _normalize(text: str) -> str:
    document = json.loads(text)
    for resource in document.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if "EngineHash" in properties:
            properties["EngineHash"] = "<engine-hash>"
    return _ASSET_HASH.sub("<asset-hash>", json.dumps(document, indent=1, sort_keys=True))


def synthesize(outdir: Path) -> dict[str, str]:
    app, _ = build_app(config.resolve("all"), outdir)
    app.synth()
    return {path.name: _normalize(path.read_text()) for path in sorted(outdir.glob("*.template.json"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("save", "check"))
    parser.add_argument("--baseline", type=Path, default=Path(".template-baseline.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        templates = synthesize(Path(tmp))
    if args.action == "save":
        args.baseline.write_text(json.dumps(templates))
        print(f"saved {len(templates)} templates to {args.baseline}")
        return 0
    baseline: dict[str, str] = json.loads(args.baseline.read_text())
    changed = 0
    for name in sorted(set(baseline) | set(templates)):
        before, after = baseline.get(name, ""), templates.get(name, "")
        if before != after:
            changed += 1
            sys.stdout.writelines(
                difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"before/{name}", f"after/{name}")
            )
    print(f"{len(templates)} templates, {changed} differ from {args.baseline}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
