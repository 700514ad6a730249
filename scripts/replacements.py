"""`make replacements BASE=<git ref>`: what would a deploy of the working tree replace or delete, compared to BASE?

Synthesizes BASE (in a temporary git worktree) and the working tree, then compares every stack's resources: a
logical ID that disappears is a DELETE, a changed type or a changed replacement-forcing property is a REPLACE.
Exits 1 when a stateful resource (database, cache, bucket, key, secret, vault, log group) would be hit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pat_constructs.removal_policy import STATEFUL_TYPES

ROOT = Path(__file__).resolve().parents[1]
# Properties whose change makes CloudFormation replace the resource (CloudFormation resource reference, "Update
# requires: Replacement"), for the resource types this app uses where a replacement loses data.
REPLACING_PROPERTIES: dict[str, tuple[str, ...]] = {
    "AWS::RDS::DBCluster": (
        "DBClusterIdentifier",
        "Engine",
        "DatabaseName",
        "KmsKeyId",
        "StorageEncrypted",
        "DBSubnetGroupName",
        "MasterUsername",
        "SnapshotIdentifier",
        "EngineMode",
    ),
    "AWS::RDS::DBInstance": ("DBInstanceIdentifier", "DBClusterIdentifier", "Engine", "AvailabilityZone", "KmsKeyId"),
    "AWS::ElastiCache::ReplicationGroup": (
        "ReplicationGroupId",
        "Engine",
        "Port",
        "AtRestEncryptionEnabled",
        "KmsKeyId",
        "CacheSubnetGroupName",
        "NodeGroupConfiguration",
    ),
    "AWS::S3::Bucket": ("BucketName", "ObjectLockEnabled"),
    "AWS::KMS::Key": ("KeySpec", "KeyUsage", "MultiRegion"),
    "AWS::SecretsManager::Secret": ("Name",),
    "AWS::Backup::BackupVault": ("BackupVaultName", "EncryptionKeyArn"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::EC2::SecurityGroup": ("GroupDescription", "GroupName", "VpcId"),
    "AWS::EC2::Subnet": ("AvailabilityZone", "CidrBlock", "VpcId"),
    "AWS::EC2::VPC": ("CidrBlock",),
}
# Not stateful, but their replacement disrupts: a new writer instance (a failover-like outage; instances are
# DESTROYed with their cluster, see removal_policy.py), and the network identities other stacks hold by reference
# (a replaced security group or subnet changes a value consumers read from another stack).
DISRUPTIVE_TYPES = frozenset({"AWS::RDS::DBInstance", "AWS::EC2::SecurityGroup", "AWS::EC2::Subnet", "AWS::EC2::VPC"})


@dataclass(frozen=True)
class Change:
    stack: str
    logical_id: str
    resource_type: str
    action: str  # DELETE or REPLACE
    reason: str

    @property
    def stateful(self) -> bool:
        return self.resource_type in STATEFUL_TYPES

    @property
    def disruptive(self) -> bool:
        return self.resource_type in DISRUPTIVE_TYPES


def compare(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]) -> list[Change]:
    """`base`/`head`: {stack name: template}. Stacks removed entirely count as deletes of all their resources."""
    changes = []
    for stack, template in base.items():
        after = head.get(stack, {}).get("Resources", {})
        for logical_id, resource in template.get("Resources", {}).items():
            kind = resource["Type"]
            new = after.get(logical_id)
            if new is None:
                reason = "stack removed" if stack not in head else "logical ID gone (moved or renamed construct?)"
                changes.append(Change(stack, logical_id, kind, "DELETE", reason))
            elif new["Type"] != kind:
                changes.append(Change(stack, logical_id, kind, "REPLACE", f"type {kind} -> {new['Type']}"))
            else:
                before_props, after_props = resource.get("Properties", {}), new.get("Properties", {})
                for prop in REPLACING_PROPERTIES.get(kind, ()):
                    if json.dumps(before_props.get(prop), sort_keys=True) != json.dumps(
                        after_props.get(prop), sort_keys=True
                    ):
                        changes.append(Change(stack, logical_id, kind, "REPLACE", f"{prop} changed"))
    return changes


def synthesize(source: Path, outdir: Path) -> dict[str, dict[str, Any]]:
    """Run `source`/app.py with cdk.json's context (what the CLI would pass), without Lambda bundling."""
    context = json.loads((source / "cdk.json").read_text())["context"]
    environment = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps({**context, "env": "all", "aws:cdk:bundling-stacks": []}),
        "PYTHONPATH": str(source),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    subprocess.run([sys.executable, "app.py"], cwd=source, env=environment, check=True, capture_output=True)
    return {p.name.removesuffix(".template.json"): json.loads(p.read_text()) for p in outdir.glob("*.template.json")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="replacements", description=__doc__)
    parser.add_argument("--base", required=True, help="git ref to compare with, e.g. origin/main")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pat-replacements-") as temp:
        worktree = Path(temp) / "base"
        added = subprocess.run(  # noqa: S603
            ["git", "worktree", "add", "--detach", str(worktree), args.base],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            print(f"replacements: cannot check out {args.base}: {added.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            base = synthesize(worktree, Path(temp) / "base.out")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)  # noqa: S603,S607
        head = synthesize(ROOT, Path(temp) / "head.out")
    changes = compare(base, head)
    for change in changes:
        mark = "STATEFUL" if change.stateful else "DISRUPTS" if change.disruptive else "        "
        print(f"{mark} {change.action:7} {change.stack}/{change.logical_id} ({change.resource_type}): {change.reason}")
    hit = [c for c in changes if c.stateful]
    disrupting = [c for c in changes if c.disruptive]
    print(
        f"{len(changes)} replacement(s)/deletion(s) vs {args.base}: {len(hit)} stateful, {len(disrupting)} disruptive"
    )
    if hit or disrupting:
        print(
            "a stateful or disruptive resource would be replaced or deleted: see "
            "tests/unit/test_stateful_manifest.py (stateful) and docs/deploy.md (writer, network)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
