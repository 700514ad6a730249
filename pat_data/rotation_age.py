"""How long ago each rotated database secret last rotated, published as a CloudWatch metric.

Secrets Manager publishes no rotation metric (its namespace holds only ResourceCount), so a rotation that fails or
never runs is silent. A scheduled Lambda reads DescribeSecret's `LastRotatedDate` (falling back to `CreatedDate` for
a secret that never rotated) and publishes `DaysSinceLastRotation`; one alarm per secret fires once the age exceeds
the rotation schedule plus a grace (the cdk-monitoring-constructs approach, written out here). The names below are
the contract between the construct, the handler, the runbook and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:  # boto3-stubs: types only, nothing extra in the Lambda bundle
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef
    from mypy_boto3_secretsmanager import SecretsManagerClient

NAMESPACE = "Pat/Secrets"
METRIC_NAME = "DaysSinceLastRotation"
ROLE_DIMENSION = "Secret"
ENVIRONMENT_DIMENSION = "Environment"
# Days past the schedule before the alarm fires: Secrets Manager starts a due rotation at some time during the day
# it falls due, and a failed attempt is retried on the next scheduled window, so one spare day plus one for the
# retry keeps a late-but-working rotation quiet while a broken one still pages within two days.
DEFAULT_GRACE_DAYS = 2
# The scheduled event's input (the rule carries the secrets, so the function needs no environment variables).
EVENT_ENVIRONMENT = "environment"
EVENT_SECRETS = "secrets"
SECONDS_PER_DAY = 86_400

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SecretAge:
    """One secret's age: `rotated` is False when it never rotated and the age counts from its creation."""

    role: str
    secret_id: str
    since: datetime
    days: float
    rotated: bool


class RotationAgeError(RuntimeError):
    """Some secrets could not be read; the others were published. Raised so the invocation fails visibly."""

    def __init__(self, failures: Mapping[str, str], published: Sequence[SecretAge]) -> None:
        self.failures = dict(failures)
        self.published = list(published)
        detail = "; ".join(f"{role}: {error}" for role, error in sorted(self.failures.items()))
        super().__init__(
            f"could not read {len(self.failures)} secret(s), published {len(self.published)}: {detail}. "
            "Their DaysSinceLastRotation is missing, so their alarms go to ALARM (missing data is breaching)."
        )


@dataclass(frozen=True, kw_only=True)
class RotationAgeRequest:
    """What the scheduled rule sends: the environment and the secrets to watch, by role name."""

    environment: str
    secrets: Mapping[str, str]

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> RotationAgeRequest:
        environment = event.get(EVENT_ENVIRONMENT)
        secrets = event.get(EVENT_SECRETS)
        if not isinstance(environment, str) or not environment:
            raise ValueError(f"event needs {EVENT_ENVIRONMENT!r} (a non-empty string), got {environment!r}")
        if (
            not isinstance(secrets, Mapping)
            or not secrets
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in secrets.items())
        ):
            raise ValueError(f"event needs {EVENT_SECRETS!r} (a non-empty mapping role -> secret ARN), got {secrets!r}")
        return cls(environment=environment, secrets=dict(secrets))


def secret_age(role: str, secret_id: str, description: Mapping[str, object], now: datetime) -> SecretAge:
    """Age from DescribeSecret's answer: LastRotatedDate, else CreatedDate (a secret that never rotated)."""
    last_rotated = description.get("LastRotatedDate")
    since = last_rotated if isinstance(last_rotated, datetime) else description.get("CreatedDate")
    if not isinstance(since, datetime):
        raise ValueError(f"{role} ({secret_id}): DescribeSecret returned neither LastRotatedDate nor CreatedDate")
    days = max(0.0, (now - since).total_seconds() / SECONDS_PER_DAY)
    return SecretAge(
        role=role, secret_id=secret_id, since=since, days=round(days, 2), rotated=isinstance(last_rotated, datetime)
    )


def metric_datum(environment: str, age: SecretAge, now: datetime) -> MetricDatumTypeDef:
    return {
        "MetricName": METRIC_NAME,
        "Dimensions": [
            {"Name": ROLE_DIMENSION, "Value": age.role},
            {"Name": ENVIRONMENT_DIMENSION, "Value": environment},
        ],
        "Timestamp": now,
        "Value": age.days,
        "Unit": "Count",
    }


def publish_rotation_ages(
    request: RotationAgeRequest,
    *,
    secrets_client: SecretsManagerClient,
    metrics_client: CloudWatchClient,
    now: datetime | None = None,
) -> list[SecretAge]:
    """Describe every secret, publish the ages it could read, then raise RotationAgeError if any failed."""
    now = now or datetime.now(UTC)
    ages: list[SecretAge] = []
    failures: dict[str, str] = {}
    for role, secret_id in sorted(request.secrets.items()):
        try:
            ages.append(secret_age(role, secret_id, secrets_client.describe_secret(SecretId=secret_id), now))
        except (ClientError, BotoCoreError, ValueError) as error:
            logger.error("rotation age of %s (%s) not read: %s", role, secret_id, error)
            failures[role] = str(error)
    if ages:
        # Three secrets: far below PutMetricData's 1000 data points per call.
        metrics_client.put_metric_data(
            Namespace=NAMESPACE, MetricData=[metric_datum(request.environment, age, now) for age in ages]
        )
    for age in ages:
        logger.info(
            "rotation age",
            extra={"secret": age.role, "days": age.days, "since": age.since.isoformat(), "rotated": age.rotated},
        )
    if failures:
        raise RotationAgeError(failures, ages)
    return ages
