"""Service limits that decide whether a template deploys (or a job runs), checked in config before synth.

Sources (looked up, quoted in docs/aws-facts-data-ops.md):
- ELASTICACHE-NODE-LIMIT: https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Shards.html (90 nodes per cluster
  by default, at most 500 after a quota increase).
- BACKUP-VAULT-LOCK: https://docs.aws.amazon.com/aws-backup/latest/devguide/vault-lock.html (a job whose retention is
  outside [MinRetentionDays, MaxRetentionDays] fails; a compliance lock is immutable after its grace time).
- CW-METRIC-MATH-LIMIT: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-limits.html (a metric
  math alarm references at most 10 metrics, a hard limit).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from stacks import config
from stacks.config import ConfigError
from tests.conftest import Synthesized, build_app

PROD = config.ENVIRONMENTS["prod"]
MAX_METRICS_PER_MATH_ALARM = 10


def with_cache(**changes: Any) -> config.EnvironmentConfig:
    return dataclasses.replace(PROD, cache=dataclasses.replace(PROD.cache, **changes))


def with_backup(**changes: Any) -> config.EnvironmentConfig:
    return dataclasses.replace(PROD, backup=dataclasses.replace(PROD.backup, **changes))


@pytest.mark.parametrize(
    ("env", "field", "fragment"),
    [
        (with_cache(shards=31, replicas_per_shard=2), "cache.shards", "93 nodes exceeds the nodes-per-cluster quota"),
        (with_cache(shards=90, replicas_per_shard=5, nodes_per_cluster_quota=500), "cache.shards", "540 nodes"),
        (with_cache(nodes_per_cluster_quota=501), "cache.nodes_per_cluster_quota", "at most 500"),
        (with_backup(lock_max_retention_days=300), "backup.monthly_retention_days", "vault lock's bounds 7-300 days"),
        (with_backup(daily_retention_days=5), "backup.daily_retention_days", "within the vault lock's bounds 7-3650"),
        (with_backup(copy_retention_days=4000), "backup.copy_retention_days", "cannot be widened"),
        (with_backup(lock_min_retention_days=40), "backup.daily_retention_days", "bounds 40-3650"),
        (with_backup(lock_min_retention_days=400, lock_max_retention_days=300), "backup.lock_min_retention_days",
         "1 to lock_max_retention_days (300)"),
        (with_backup(lock_max_retention_days=40000), "backup.lock_max_retention_days", "at most 36500"),
    ],
)  # fmt: skip
def test_limits_fail_in_config_with_the_field_and_the_fix(
    env: config.EnvironmentConfig, field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config.validate(env)
    assert caught.value.field_name == field
    assert fragment in str(caught.value)


def test_a_quota_raised_to_500_admits_the_largest_cluster() -> None:
    config.validate(with_cache(shards=83, replicas_per_shard=5, nodes_per_cluster_quota=500))


def math_alarm_metric_counts(template: dict[str, Any]) -> dict[str, int]:
    """Per metric-math alarm: how many entries fetch a metric (MetricStat). Derived from the template alone."""
    return {
        lid: sum("MetricStat" in query for query in resource["Properties"]["Metrics"])
        for lid, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and "Metrics" in resource["Properties"]
    }


def test_no_metric_math_alarm_references_more_than_ten_metrics(synthesized: Synthesized) -> None:
    counted = 0
    for stack in synthesized.assembly.stacks:
        for lid, count in math_alarm_metric_counts(stack.template).items():
            counted += 1
            assert count <= MAX_METRICS_PER_MATH_ALARM, f"{stack.stack_name}/{lid}: {count} metrics"
    assert counted  # the cache alarms are metric math: the test must see them


@pytest.fixture(scope="module")
def large_cache_ops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """prod with a 24-shard x 2-replica cache (72 nodes, within the default quota): the alarms must still deploy."""
    big = dataclasses.replace(with_cache(shards=24, replicas_per_shard=2), name="prod")
    app, _ = build_app([big], tmp_path_factory.mktemp("large-cache"))
    template: dict[str, Any] = app.synth().get_stack_by_name("Pat-prod-Ops").template
    return template


def test_a_large_cache_splits_its_alarms_so_every_node_is_watched(large_cache_ops: dict[str, Any]) -> None:
    counts = math_alarm_metric_counts(large_cache_ops)
    assert max(counts.values()) <= MAX_METRICS_PER_MATH_ALARM
    alarms = large_cache_ops["Resources"]
    watched = {
        query["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        for lid in counts
        if "CacheEngineCpu" in lid
        for query in alarms[lid]["Properties"]["Metrics"]
        if "MetricStat" in query
    }
    assert len(watched) == 72
    assert all(re.fullmatch(r"pat-prod-cache-\d{4}-\d{3}", node) for node in watched)
