"""checkov skips come only from pat_constructs/checkov.py's rules, each with its control's reason (controls.py), on
matching resources."""

from __future__ import annotations

from pat_constructs import controls
from pat_constructs.checkov import RULES
from tests.conftest import Synthesized


def test_every_skip_is_a_known_rule_with_a_reason(synthesized: Synthesized) -> None:
    known: dict[tuple[str, str], set[str]] = {}
    for rule in RULES:
        assert rule.control in controls.CATALOG, rule
        known.setdefault((rule.check_id, rule.resource_type), set()).add(rule.control.checkov_comment(rule.check_id))
    seen = set()
    for stack in synthesized.assembly.stacks:
        for logical_id, resource in stack.template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                key = (skip["id"], resource["Type"])
                assert key in known, f"{stack.stack_name}/{logical_id}: skip {skip['id']} is not from a rule"
                assert skip["comment"] in known[key]
                seen.add(key)
    assert ("CKV_AWS_18", "AWS::S3::Bucket") in seen  # the access-log buckets
    assert ("CKV_AWS_111", "AWS::IAM::ManagedPolicy") in seen


def test_attachment_buckets_and_data_policies_are_never_skipped(synthesized: Synthesized) -> None:
    for stack in synthesized.assembly.stacks:
        for logical_id, resource in stack.template["Resources"].items():
            skips = resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
            if resource["Type"] == "AWS::S3::Bucket" and "AccessLogs" not in logical_id:
                assert skips == [], f"{stack.stack_name}/{logical_id}"
            if resource["Type"] in {"AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup", "AWS::KMS::Key"}:
                assert skips == [], f"{stack.stack_name}/{logical_id}"
