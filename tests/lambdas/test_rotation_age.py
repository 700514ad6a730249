"""The rotation-age publisher against moto: what it publishes for rotated, never-rotated and missing secrets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.rotation_age import handler as rotation_handler
from pat_data import rotation_age
from pat_data.rotation_age import RotationAgeError, RotationAgeRequest, publish_rotation_ages

REGION = "eu-west-1"
ROTATION_DAYS = 30
THRESHOLD = ROTATION_DAYS + rotation_age.DEFAULT_GRACE_DAYS


class MotoClock:
    """moto stamps CreatedDate and LastRotatedDate with its secretsmanager module's `time.time()`; this replaces
    that one reference (not the process clock), so a secret can be created or rotated "40 days ago"."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = datetime.now(UTC)
        monkeypatch.setattr("moto.secretsmanager.models.time", SimpleNamespace(time=self.time))

    def time(self) -> float:
        return self.now.timestamp()

    def days_ago(self, days: float) -> None:
        self.now = datetime.now(UTC) - timedelta(days=days)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoClock]:
    for key, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fake credentials
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield MotoClock(monkeypatch)


def make_secret(name: str, clock: MotoClock, *, created_days_ago: float, rotated_days_ago: float | None) -> str:
    client = boto3.client("secretsmanager", region_name=REGION)
    clock.days_ago(created_days_ago)
    arn = client.create_secret(Name=name, SecretString='{"username": "u", "password": "p"}')["ARN"]
    if rotated_days_ago is not None:
        clock.days_ago(rotated_days_ago)
        client.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": ROTATION_DAYS})
    return arn


def published(environment: str, role: str) -> list[float]:
    """Every DaysSinceLastRotation datapoint CloudWatch holds for one secret (last hour)."""
    now = datetime.now(UTC)
    answer = boto3.client("cloudwatch", region_name=REGION).get_metric_statistics(
        Namespace=rotation_age.NAMESPACE,
        MetricName=rotation_age.METRIC_NAME,
        Dimensions=[
            {"Name": rotation_age.ROLE_DIMENSION, "Value": role},
            {"Name": rotation_age.ENVIRONMENT_DIMENSION, "Value": environment},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Maximum"],
    )
    return [point["Maximum"] for point in answer["Datapoints"]]


def publish(secrets: dict[str, str]) -> list[rotation_age.SecretAge]:
    return publish_rotation_ages(
        RotationAgeRequest(environment="dev", secrets=secrets),
        secrets_client=boto3.client("secretsmanager", region_name=REGION),
        metrics_client=boto3.client("cloudwatch", region_name=REGION),
    )


def test_a_stale_rotation_crosses_the_threshold_and_a_fresh_one_does_not(aws: MotoClock) -> None:
    stale = make_secret("owner", aws, created_days_ago=90, rotated_days_ago=40)
    fresh = make_secret("app", aws, created_days_ago=90, rotated_days_ago=1)
    ages = {age.role: age for age in publish({"owner": stale, "app": fresh})}
    assert ages["owner"].rotated
    assert ages["owner"].days == pytest.approx(40, abs=0.02)
    assert ages["app"].days == pytest.approx(1, abs=0.02)
    (owner,) = published("dev", "owner")
    (app,) = published("dev", "app")
    assert owner > THRESHOLD, "40 days after the last rotation the owner's alarm must fire"
    assert app < THRESHOLD
    assert published("staging", "owner") == [], "the Environment dimension separates environments"


def test_a_secret_that_never_rotated_counts_from_its_creation(aws: MotoClock) -> None:
    arn = make_secret("readonly", aws, created_days_ago=35, rotated_days_ago=None)
    (age,) = publish({"readonly": arn})
    assert not age.rotated
    assert age.days == pytest.approx(35, abs=0.02)
    assert published("dev", "readonly") == [pytest.approx(35, abs=0.02)]


def test_a_missing_secret_fails_the_run_after_the_others_are_published(aws: MotoClock) -> None:
    arn = make_secret("owner", aws, created_days_ago=5, rotated_days_ago=2)
    missing = arn.replace(":secret:owner", ":secret:gone")
    with pytest.raises(RotationAgeError) as raised:
        publish({"owner": arn, "app": missing})
    assert set(raised.value.failures) == {"app"}
    assert "ResourceNotFoundException" in raised.value.failures["app"]
    assert [age.role for age in raised.value.published] == ["owner"]
    assert "app" in str(raised.value)
    assert published("dev", "owner") == [pytest.approx(2, abs=0.02)]
    assert published("dev", "app") == [], "no value for the missing secret: its alarm breaches on missing data"


def test_nothing_readable_publishes_nothing_and_fails(aws: MotoClock) -> None:
    gone = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    with pytest.raises(RotationAgeError):
        publish({"owner": gone})
    assert (
        boto3.client("cloudwatch", region_name=REGION).list_metrics(Namespace=rotation_age.NAMESPACE)["Metrics"] == []
    )


def test_the_handler_reads_the_rules_input_and_reports_the_ages(aws: MotoClock) -> None:
    arn = make_secret("app", aws, created_days_ago=10, rotated_days_ago=3)
    event: dict[str, Any] = {rotation_age.EVENT_ENVIRONMENT: "dev", rotation_age.EVENT_SECRETS: {"app": arn}}
    result = rotation_handler.handler(event, None)
    assert result["environment"] == "dev"
    assert result["days_since_last_rotation"] == {"app": pytest.approx(3, abs=0.02)}
    assert published("dev", "app") == [pytest.approx(3, abs=0.02)]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {rotation_age.EVENT_ENVIRONMENT: "dev"},
        {rotation_age.EVENT_ENVIRONMENT: "dev", rotation_age.EVENT_SECRETS: {}},
        {rotation_age.EVENT_ENVIRONMENT: "", rotation_age.EVENT_SECRETS: {"app": "arn"}},
        {rotation_age.EVENT_ENVIRONMENT: "dev", rotation_age.EVENT_SECRETS: ["arn"]},
    ],
)
def test_a_malformed_event_is_refused_with_the_field_named(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="event needs"):
        RotationAgeRequest.from_event(event)
