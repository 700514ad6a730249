"""Pat-<env>-Data: every rotated secret has a rotation-age alarm, a RotationFailed page, and a scoped publisher."""

from __future__ import annotations

import json
import re
from typing import Any

from pat_constructs.rotation_monitor import RUNBOOK_SECTION
from pat_data import rotation_age
from tests.conftest import ROOT, Synthesized
from tests.unit.test_ops_stack import anchors

TOPIC_SUFFIX = "-oncall"


def resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def schedule_days(rules: dict[str, Any]) -> int:
    """A rotation schedule's period in days: AutomaticallyAfterDays, or `rate(N days)` (what CDK writes)."""
    if "AutomaticallyAfterDays" in rules:
        return int(rules["AutomaticallyAfterDays"])
    match = re.fullmatch(r"rate\((\d+) days?\)", rules.get("ScheduleExpression", ""))
    assert match, f"cannot derive a rotation period from {rules}: teach the alarm threshold this schedule"
    return int(match.group(1))


def rotated_secrets(template: dict[str, Any]) -> dict[str, int]:
    """Logical id of each secret (or attachment) with a rotation schedule -> its period in days."""
    schedules = resources(template, "AWS::SecretsManager::RotationSchedule")
    assert schedules, "the Data stack rotates its database secrets"
    return {
        s["Properties"]["SecretId"]["Ref"]: schedule_days(s["Properties"]["RotationRules"]) for s in schedules.values()
    }


def hourly_input(template: dict[str, Any]) -> dict[str, Any]:
    """The hourly rule's input (what the publisher is told), with each secret ARN token as its logical id."""
    rules = [
        r
        for lid, r in resources(template, "AWS::Events::Rule").items()
        if "RotationMonitor" in lid and "ScheduleExpression" in r["Properties"]
    ]
    assert len(rules) == 1
    (target,) = rules[0]["Properties"]["Targets"]
    parts = target["Input"]["Fn::Join"][1]
    return dict(json.loads("".join(part if isinstance(part, str) else part["Ref"] for part in parts)))


def watched_secrets(template: dict[str, Any]) -> dict[str, str]:
    """Role name -> logical id of the secret the publisher reads."""
    return dict(hourly_input(template)[rotation_age.EVENT_SECRETS])


def rotation_alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Role name -> alarm properties, for the alarms on DaysSinceLastRotation."""
    found = {}
    for alarm in resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == rotation_age.METRIC_NAME:
            assert props["Namespace"] == rotation_age.NAMESPACE
            dimensions = {d["Name"]: d["Value"] for d in props["Dimensions"]}
            found[dimensions[rotation_age.ROLE_DIMENSION]] = props
    return found


def is_topic(reference: Any, env: str) -> bool:
    return f":pat-{env}{TOPIC_SUFFIX}" in json.dumps(reference)


def test_one_alarm_per_rotated_secret_at_schedule_plus_grace(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template_json(env_name, "Data")
    rotated = rotated_secrets(template)
    watched = watched_secrets(template)
    assert sorted(watched.values()) == sorted(rotated), "the publisher reads exactly the rotated secrets"
    alarms = rotation_alarms(template)
    assert set(alarms) == set(watched)
    for role, secret in watched.items():
        alarm = alarms[role]
        assert alarm["Threshold"] == rotated[secret] + rotation_age.DEFAULT_GRACE_DAYS, role
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "breaching", "a dead publisher must page too"
        assert alarm["Statistic"] == "Maximum"
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]}[rotation_age.ENVIRONMENT_DIMENSION] == env_name
        # The rule runs hourly: every alarm period must see at least one datapoint from a live publisher.
        assert alarm["Period"] == 3600
        assert alarm["AlarmName"] == f"pat-{env_name}-secret-rotation-age-{role}"


def test_alarms_page_on_alarm_and_ok_and_link_the_runbook_section(synthesized: Synthesized, env_name: str) -> None:
    sections = anchors((ROOT / "docs" / "runbooks.md").read_text())
    assert RUNBOOK_SECTION in sections
    for role, alarm in rotation_alarms(synthesized.template_json(env_name, "Data")).items():
        (action,) = alarm["AlarmActions"]
        assert is_topic(action, env_name), role
        assert alarm["OKActions"] == alarm["AlarmActions"]
        match = re.search(r"Runbook: docs/runbooks\.md#([a-z0-9-]+)$", alarm["AlarmDescription"])
        assert match, alarm["AlarmDescription"]
        assert match.group(1) == RUNBOOK_SECTION


def test_the_scheduled_publisher_exists_and_covers_the_alarms(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template_json(env_name, "Data")
    (function,) = [
        r["Properties"] for lid, r in resources(template, "AWS::Lambda::Function").items() if "RotationMonitor" in lid
    ]
    assert function["Handler"] == "lambdas.rotation_age.handler.handler"
    assert function["Runtime"] == "python3.14"
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["LoggingConfig"]["LogFormat"] == "JSON"
    assert "DeadLetterConfig" in function
    # Deploy blockers (see the amendments): no reservation, no customer key on an environment.
    assert "ReservedConcurrentExecutions" not in function
    assert "KmsKeyArn" not in function
    assert "Environment" not in function
    (rule,) = [
        r["Properties"]
        for lid, r in resources(template, "AWS::Events::Rule").items()
        if "RotationMonitor" in lid and "ScheduleExpression" in r["Properties"]
    ]
    assert rule["ScheduleExpression"].startswith("cron(23 * * * ")  # hourly
    assert hourly_input(template)[rotation_age.EVENT_ENVIRONMENT] == env_name


def test_the_publisher_may_only_describe_the_rotated_secrets_and_put_its_namespace(
    synthesized: Synthesized, env_name: str
) -> None:
    template = synthesized.template_json(env_name, "Data")
    rotated = set(rotated_secrets(template))
    roles = [
        r
        for lid, r in resources(template, "AWS::IAM::Role").items()
        if "RotationMonitor" in lid
        and r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "lambda.amazonaws.com"}
    ]
    assert len(roles) == 1
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for lid, r in resources(template, "AWS::IAM::ManagedPolicy").items()
        if lid.startswith("RotationMonitorPolicy")
    ]
    assert not [r for lid, r in resources(template, "AWS::IAM::Policy").items() if "RotationMonitor" in lid]
    by_action: dict[str, list[dict[str, Any]]] = {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            by_action.setdefault(action, []).append(statement)
    (describe,) = by_action.pop("secretsmanager:DescribeSecret")
    assert {ref["Ref"] for ref in describe["Resource"]} == rotated
    (put,) = by_action.pop("cloudwatch:PutMetricData")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": rotation_age.NAMESPACE}}
    assert not any(action.startswith("secretsmanager:") for action in by_action), "no GetSecretValue, no wildcard"
    for action, statements in by_action.items():
        for statement in statements:
            if statement["Resource"] == "*":
                assert action.startswith("xray:"), f"{action} on '*'"
    assert not any(action.startswith("ec2:") for action in by_action), "outside the VPC: no ENI actions"


def test_rotation_failed_pages_the_topic_through_its_own_role(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template_json(env_name, "Data")
    rotated = set(rotated_secrets(template))
    (rule,) = [
        r["Properties"]
        for lid, r in resources(template, "AWS::Events::Rule").items()
        if "RotationMonitor" in lid and "EventPattern" in r["Properties"]
    ]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.secretsmanager"]
    # RotationFailed is a CloudTrail *service* event, not an API call.
    assert pattern["detail-type"] == ["AWS Service Event via CloudTrail"]
    assert pattern["detail"]["eventName"] == ["RotationFailed"]
    assert {ref["Ref"] for ref in pattern["detail"]["additionalEventData"]["SecretId"]} == rotated
    (target,) = rule["Targets"]
    assert is_topic(target["Arn"], env_name)
    assert "DeadLetterConfig" in target
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    (policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in resources(template, "AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    publish = [s for s in policy["Statement"] if s["Action"] == "sns:Publish"]
    assert len(publish) == 1
    assert is_topic(publish[0]["Resource"], env_name)
    kms = [s for s in policy["Statement"] if s["Action"] != "sns:Publish"]
    assert kms
    assert all(set(s["Action"]) <= {"kms:GenerateDataKey", "kms:Decrypt"} for s in kms)
    assert all(s["Resource"] != "*" for s in policy["Statement"])
