"""Stateful resources keep their logical IDs (stateful-manifest.json), and prod keeps every one of them safe."""

from __future__ import annotations

import json
from typing import Any

from scripts.stateful_manifest import MANIFEST, stateful_resources
from tests.conftest import Synthesized

HOW_TO_FIX = (
    "A changed logical ID makes CloudFormation create a NEW resource and DELETE the old one (the database, the "
    "cache, the attachments...). Keep the construct path (same scope and id), or pin the old ID with "
    "`cfn_resource.override_logical_id('<old id>')`. Only if the replacement is intended (never in prod by accident): "
    "run `make pin-stateful`, review the printed diff, and commit stateful-manifest.json with the change."
)


def test_every_pinned_stateful_resource_keeps_its_logical_id(synthesized: Synthesized) -> None:
    pinned: dict[str, dict[str, str]] = json.loads(MANIFEST.read_text())
    current = stateful_resources(synthesized.assembly)
    problems = []
    for stack, resources in pinned.items():
        for logical_id, resource_type in resources.items():
            now = current.get(stack, {}).get(logical_id)
            if now is None:
                problems.append(f"{stack}/{logical_id} ({resource_type}) is gone")
            elif now != resource_type:
                problems.append(f"{stack}/{logical_id} changed type {resource_type} -> {now}")
    assert not problems, "\n".join(problems) + "\n\n" + HOW_TO_FIX
    unpinned = [
        f"{s}/{lid} ({t})" for s, res in current.items() for lid, t in res.items() if lid not in pinned.get(s, {})
    ]
    assert not unpinned, "new stateful resources are not pinned yet: run `make pin-stateful`:\n" + "\n".join(unpinned)


def prod_stateful(synthesized: Synthesized) -> list[tuple[str, str, dict[str, Any]]]:
    stateful_types = {t for res in stateful_resources(synthesized.assembly).values() for t in res.values()}
    found = []
    for stack in synthesized.assembly.stacks:
        if stack.stack_name.startswith("Pat-prod-"):
            for logical_id, resource in stack.template["Resources"].items():
                if resource["Type"] in stateful_types:
                    found.append((stack.stack_name, logical_id, resource))
    return found


# S3 server access logs can only be delivered to SSE-S3 buckets (docs/architecture.md, pat_constructs/storage.py).
SSE_S3_BY_NECESSITY = "AccessLogsBucket"


def test_prod_invariants_for_every_stateful_resource(synthesized: Synthesized) -> None:
    resources = prod_stateful(synthesized)
    assert len(resources) >= 25  # cluster + 3 instances, secrets, keys, cache, buckets, vaults, log groups
    for stack, logical_id, resource in resources:
        where, kind, props = f"{stack}/{logical_id}", resource["Type"], resource.get("Properties", {})
        expected = "Snapshot" if kind in {"AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup"} else "Retain"
        assert resource.get("DeletionPolicy") == expected, where
        assert resource.get("UpdateReplacePolicy") == expected, where
        if kind == "AWS::RDS::DBCluster":
            assert props["DeletionProtection"] is True, where
            assert props["StorageEncrypted"] is True, where
            assert "KmsKeyId" in props, where
            assert props["BackupRetentionPeriod"] >= 7, where
        elif kind == "AWS::Logs::LogGroup":
            assert props.get("DeletionProtectionEnabled") is True, where
            assert "KmsKeyId" in props, where
        elif kind == "AWS::ElastiCache::ReplicationGroup":
            assert "KmsKeyId" in props, where
            assert props["AtRestEncryptionEnabled"] is True, where
            assert props["SnapshotRetentionLimit"] >= 15, where
        elif kind == "AWS::SecretsManager::Secret":
            assert "KmsKeyId" in props, where
        elif kind == "AWS::Backup::BackupVault":
            assert "EncryptionKeyArn" in props, where
            assert "LockConfiguration" in props, where
        elif kind == "AWS::S3::Bucket":
            (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            algorithm = rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            assert algorithm == "aws:kms" or SSE_S3_BY_NECESSITY in logical_id, where
            assert props["VersioningConfiguration"] == {"Status": "Enabled"}, where
        elif kind == "AWS::KMS::Key":
            assert props["EnableKeyRotation"] is True, where
