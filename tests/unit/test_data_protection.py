"""The one removal-policy rule: prod keeps everything, dev may destroy, stacks carry termination protection in prod."""

from __future__ import annotations

import pytest

from pat_constructs.removal_policy import STATEFUL_TYPES
from tests.conftest import Synthesized

SNAPSHOT_TYPES = {"AWS::RDS::DBCluster", "AWS::ElastiCache::ReplicationGroup"}


def stateful(synthesized: Synthesized, env: str) -> list[tuple[str, dict]]:
    found = []
    for part in ("Keys", "Network", "Data", "Access"):
        for lid, resource in synthesized.template_json(env, part)["Resources"].items():
            if resource["Type"] in STATEFUL_TYPES:
                found.append((lid, resource))
    return found


@pytest.mark.parametrize(("env", "policy"), [("prod", "Retain"), ("staging", "Retain"), ("dev", "Delete")])
def test_stateful_resources_follow_the_environment_rule(synthesized: Synthesized, env: str, policy: str) -> None:
    resources = stateful(synthesized, env)
    assert {r["Type"] for _, r in resources} >= {"AWS::KMS::Key", "AWS::Logs::LogGroup"}
    for lid, resource in resources:
        expected = "Snapshot" if policy == "Retain" and resource["Type"] in SNAPSHOT_TYPES else policy
        assert resource["DeletionPolicy"] == expected, lid
        assert resource["UpdateReplacePolicy"] == expected, lid


def test_prod_cluster_has_deletion_protection(synthesized: Synthesized) -> None:
    (prod,) = synthesized.resources("prod", "Data", "AWS::RDS::DBCluster").values()
    assert prod["Properties"]["DeletionProtection"] is True
    (dev,) = synthesized.resources("dev", "Data", "AWS::RDS::DBCluster").values()
    assert not dev["Properties"].get("DeletionProtection", False)


def test_prod_log_groups_have_deletion_protection(synthesized: Synthesized) -> None:
    groups = synthesized.resources("prod", "Network", "AWS::Logs::LogGroup").values()
    assert groups
    assert all(g["Properties"]["DeletionProtectionEnabled"] is True for g in groups)
    dev_groups = synthesized.resources("dev", "Network", "AWS::Logs::LogGroup").values()
    assert all("DeletionProtectionEnabled" not in g["Properties"] for g in dev_groups)


def test_prod_stateful_stacks_have_termination_protection(synthesized: Synthesized) -> None:
    assert synthesized.envs["prod"].keys.termination_protection is True
    assert synthesized.envs["dev"].keys.termination_protection is False
