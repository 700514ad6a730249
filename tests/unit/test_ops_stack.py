"""Pat-<env>-Ops (+ EdgeMonitoring, BackupDr): alarms, actions, runbook links, backup plan, vault lock, copies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pat_constructs.monitoring import RUNBOOK as RUNBOOK_PATH
from pat_data.contract import PhysicalNames
from stacks import config
from stacks.alarms import environment_alarms
from tests.conftest import ROOT, Synthesized

RUNBOOK = (ROOT / "docs" / "runbooks.md").read_text() if (ROOT / "docs" / "runbooks.md").exists() else ""


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 -]", "", title).replace(" ", "-"))
    return found


def all_alarms(synthesized: Synthesized, env: str) -> list[dict[str, Any]]:
    alarms = []
    for stack in synthesized.assembly.stacks:
        if stack.stack_name.startswith(f"Pat-{env}-"):
            alarms += [
                r["Properties"] for r in stack.template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
            ]
    return alarms


@pytest.fixture(params=["configured", "flipped_pooler"])
def any_synthesized(request: pytest.FixtureRequest) -> Synthesized:
    """Both assemblies: every environment with its configured pooler, and with the other one."""
    synthesized: Synthesized = request.getfixturevalue(
        "synthesized" if request.param == "configured" else "synthesized_flipped"
    )
    return synthesized


def test_the_catalog_lists_the_alarms_each_stack_creates(any_synthesized: Synthesized, env_name: str) -> None:
    """The listing without synthesis (cost, docs) is the deployed set: names, thresholds, descriptions, per stack."""
    env = any_synthesized.envs[env_name].config
    names = PhysicalNames(env_name)
    listed = environment_alarms(env)
    for part, specs in listed.items():
        expected = sorted(
            (names.alarm(spec.slug), spec.threshold, f"{spec.summary} Runbook: {RUNBOOK_PATH}#{spec.runbook}")
            for spec in specs
        )
        alarms = any_synthesized.resources(env_name, part, "AWS::CloudWatch::Alarm").values()
        created = sorted(
            (a["Properties"]["AlarmName"], a["Properties"]["Threshold"], a["Properties"]["AlarmDescription"])
            for a in alarms
        )
        assert created == expected, part
    every = [spec for specs in listed.values() for spec in specs]
    assert len(all_alarms(any_synthesized, env_name)) == len(every)  # no stack outside the listing has alarms
    assert len({spec.slug for spec in every}) == len(every)  # alarm names are unique per account and region


def test_every_alarm_pages_on_alarm_and_ok_and_links_a_real_runbook_section(
    synthesized: Synthesized, env_name: str
) -> None:
    alarms = all_alarms(synthesized, env_name)
    assert len(alarms) >= 20
    sections = anchors(RUNBOOK)
    for alarm in alarms:
        assert alarm["AlarmActions"], alarm["AlarmName"]
        assert alarm["OKActions"] == alarm["AlarmActions"], alarm["AlarmName"]
        match = re.search(r"Runbook: docs/runbooks\.md#([a-z0-9-]+)$", alarm["AlarmDescription"])
        assert match, alarm["AlarmDescription"]
        assert match.group(1) in sections, f"{alarm['AlarmName']}: no section #{match.group(1)} in docs/runbooks.md"
        assert alarm["AlarmName"].startswith(f"pat-{env_name}-")


def test_thresholds_come_from_config_and_the_pooler_decides_the_pooler_alarms(
    synthesized: Synthesized, env_name: str
) -> None:
    env = config.ENVIRONMENTS[env_name]
    by_name = {a["AlarmName"]: a for a in all_alarms(synthesized, env_name)}
    assert by_name[f"pat-{env_name}-aurora-connections"]["Threshold"] == env.ops.thresholds.aurora_connections
    capacity = by_name[f"pat-{env_name}-aurora-capacity-at-max"]
    assert capacity["Threshold"] == env.database.max_capacity
    assert capacity["EvaluationPeriods"] == env.ops.thresholds.aurora_capacity_at_max_minutes
    assert (f"pat-{env_name}-aurora-replica-lag" in by_name) == bool(env.database.readers)
    proxy = {f"pat-{env_name}-proxy-connection-errors", f"pat-{env_name}-proxy-pinned-sessions"}
    bouncer = {f"pat-{env_name}-pg-bouncer-tasks", f"pat-{env_name}-pg-bouncer-unhealthy-targets"}
    if env.database.pooler == "rds_proxy":
        assert proxy <= set(by_name)
        assert not bouncer & set(by_name)
    else:
        assert bouncer <= set(by_name)
        assert not proxy & set(by_name)
    partitions = by_name[f"pat-{env_name}-future-partitions"]
    assert partitions["Threshold"] == env.ops.thresholds.min_future_partitions
    assert partitions["TreatMissingData"] == "breaching"
    cache_cpu = by_name[f"pat-{env_name}-cache-engine-cpu"]
    nodes = env.cache.shards * (env.cache.replicas_per_shard + 1)
    assert len([m for m in cache_cpu.get("Metrics", []) if "MetricStat" in m]) in (0, nodes)
    cdn = by_name[f"pat-{env_name}-cdn5xx-error-rate"]
    assert "Fn::GetStackOutput" in json.dumps(cdn["Dimensions"])  # the distribution id, across regions


def test_on_call_topic_is_encrypted_tls_only_with_configured_subscriptions(
    synthesized: Synthesized, env_name: str
) -> None:
    env = config.ENVIRONMENTS[env_name]
    (topic,) = synthesized.resources(env_name, "Ops", "AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    assert topic["Properties"]["TopicName"] == f"pat-{env_name}-oncall"
    subscriptions = [s["Properties"] for s in synthesized.resources(env_name, "Ops", "AWS::SNS::Subscription").values()]
    assert sorted(s["Endpoint"] for s in subscriptions) == sorted(
        [*env.ops.alarm_emails, *env.ops.alarm_https_endpoints]
    )
    policies = json.dumps(
        [p["Properties"] for p in synthesized.resources(env_name, "Ops", "AWS::SNS::TopicPolicy").values()]
    )
    assert '"aws:SecureTransport": "false"' in policies


def test_backup_plan_vault_lock_and_copies_per_env(synthesized: Synthesized, env_name: str) -> None:
    env = config.ENVIRONMENTS[env_name]
    (vault,) = synthesized.resources(env_name, "Ops", "AWS::Backup::BackupVault").values()
    assert "EncryptionKeyArn" in vault["Properties"]
    lock = vault["Properties"].get("LockConfiguration")
    if env.backup.vault_lock == "none":
        assert lock is None
    else:
        assert lock["MinRetentionDays"] == env.backup.lock_min_retention_days
        assert lock["MaxRetentionDays"] == env.backup.lock_max_retention_days
        # Every rule lands inside the lock's bounds, or its jobs fail (docs/aws-facts-data-ops.md BACKUP-VAULT-LOCK).
        (plan,) = synthesized.resources(env_name, "Ops", "AWS::Backup::BackupPlan").values()
        for rule in plan["Properties"]["BackupPlan"]["BackupPlanRule"]:
            days = [rule["Lifecycle"]["DeleteAfterDays"]]
            days += [c["Lifecycle"]["DeleteAfterDays"] for c in rule.get("CopyActions", [])]
            assert all(lock["MinRetentionDays"] <= d <= lock["MaxRetentionDays"] for d in days), rule["RuleName"]
        assert ("ChangeableForDays" in lock) == (env.backup.vault_lock == "compliance")
    (plan,) = synthesized.resources(env_name, "Ops", "AWS::Backup::BackupPlan").values()
    rules = {r["RuleName"]: r for r in plan["Properties"]["BackupPlan"]["BackupPlanRule"]}
    expected = {"daily"}
    if env.backup.weekly_retention_days:
        expected.add("weekly")
    if env.backup.monthly_retention_days:
        expected.add("monthly")
    assert set(rules) == expected
    assert rules["daily"]["Lifecycle"]["DeleteAfterDays"] == env.backup.daily_retention_days
    for rule in rules.values():
        copies = rule.get("CopyActions", [])
        assert bool(copies) == (env.backup.copy_region is not None)
        for copy in copies:
            assert f":backup:{env.backup.copy_region}:" in json.dumps(copy["DestinationBackupVaultArn"])
    (selection,) = synthesized.resources(env_name, "Ops", "AWS::Backup::BackupSelection").values()
    resources = json.dumps(selection["Properties"]["BackupSelection"]["Resources"])
    assert f":cluster:pat-{env_name}" in resources  # Aurora by ARN (fromConstruct ignores it)
    assert f"pat-{env_name}-attachments-" in resources
    if env.backup.copy_region:
        dr = synthesized.assembly.get_stack_by_name(f"Pat-{env_name}-BackupDr")
        assert dr.environment.region == env.backup.copy_region
        vaults = [r for r in dr.template["Resources"].values() if r["Type"] == "AWS::Backup::BackupVault"]
        assert vaults[0]["Properties"]["BackupVaultName"] == f"pat-{env_name}-dr"
        assert "LockConfiguration" in vaults[0]["Properties"]


def test_dashboard_and_discovery(synthesized: Synthesized, env_name: str) -> None:
    (dashboard,) = synthesized.resources(env_name, "Ops", "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"pat-{env_name}-data"
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for tier in ("Database", "Cache", "Schema", "Backup"):
        assert f"## {tier}" in body
    names = {p["Properties"]["Name"] for p in synthesized.resources(env_name, "Ops", "AWS::SSM::Parameter").values()}
    assert f"/pat/{env_name}/ops/topic-arn" in names
