"""Print what `make synth` produced: stacks, resource counts and the compliance result, read from cdk.out."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from pat_data.contract import NAG_PACK_PREFIXES, NAG_PACKS


def acknowledgments(metadata: dict[str, list[dict[str, object]]]) -> list[str]:
    found: list[str] = []
    for entries in metadata.values():
        for entry in entries:
            data = entry.get("data")
            if entry.get("type") == "aws:cdk:acknowledged-rules" and isinstance(data, dict):
                ids = (key.split("::", 1)[-1] for key in data)
                found.extend(i for i in ids if i.startswith(NAG_PACK_PREFIXES))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("outdir", type=Path, nargs="?", default=Path("cdk.out"))
    args = parser.parse_args(argv)
    manifest = json.loads((args.outdir / "manifest.json").read_text())
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    if not stacks:
        print(f"no stacks in {args.outdir}", file=sys.stderr)
        return 1
    total_acks: Counter[str] = Counter()
    print(f"{'stack':<28} {'resources':>9} {'acknowledged':>12}")
    for name, artifact in stacks.items():
        template = json.loads((args.outdir / artifact["properties"]["templateFile"]).read_text())
        metadata_file = args.outdir / f"{name}.metadata.json"
        acks = acknowledgments(json.loads(metadata_file.read_text())) if metadata_file.exists() else []
        total_acks.update(a.split("-", 1)[0] for a in acks)
        print(f"{name:<28} {len(template.get('Resources', {})):>9} {len(acks):>12}")
    report = json.loads((args.outdir / "validation-report.json").read_text())
    unacknowledged = sum(len(r.get("violations", [])) for r in report.get("pluginReports", []))
    per_pack = ", ".join(f"{pack} {count}" for pack, count in sorted(total_acks.items())) or "none"
    print(
        f"compliance: {', '.join(NAG_PACKS)} -> {unacknowledged} unacknowledged "
        f"findings; {sum(total_acks.values())} acknowledgments ({per_pack})"
    )
    return 1 if unacknowledged else 0


if __name__ == "__main__":
    sys.exit(main())
