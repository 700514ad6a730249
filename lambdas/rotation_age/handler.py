"""Rotation-age publisher: run hourly by an EventBridge rule whose input names the secrets to watch.

Thin on purpose: parse the event, build the clients, call pat_data.rotation_age. A secret it cannot read fails the
invocation after the others are published, so Lambda's retries and the dead-letter queue see it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import boto3

from pat_data.rotation_age import RotationAgeRequest, publish_rotation_ages

logger = logging.getLogger()
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))


def handler(event: Mapping[str, object], _context: object) -> dict[str, object]:
    request = RotationAgeRequest.from_event(event)
    ages = publish_rotation_ages(
        request, secrets_client=boto3.client("secretsmanager"), metrics_client=boto3.client("cloudwatch")
    )
    return {"environment": request.environment, "days_since_last_rotation": {age.role: age.days for age in ages}}
