"""`patops backup verify` logic with botocore's Stubber (moto has no list_recovery_points_by_resource)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from pat_data.operations import CheckFailedError
from pat_data.operations.aws import verify_backups

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
CLUSTER = "arn:aws:rds:eu-west-1:123456789012:cluster:pat-prod"
BUCKET = "arn:aws:s3:::pat-prod-attachments-123456789012-eu-west-1"


def points(*ages_and_status: tuple[float, str]) -> dict[str, object]:
    return {
        "RecoveryPoints": [
            {"RecoveryPointArn": f"arn:aws:backup:eu-west-1:123456789012:recovery-point:{i}",
             "CreationDate": NOW - timedelta(hours=age), "Status": status}
            for i, (age, status) in enumerate(ages_and_status)
        ]
    }  # fmt: skip


def test_fresh_recovery_points_pass_and_stale_ones_fail_naming_the_resource() -> None:
    client = boto3.client("backup", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_response(
            "list_recovery_points_by_resource", points((3, "COMPLETED"), (27, "COMPLETED")), {"ResourceArn": CLUSTER}
        )
        stub.add_response("list_recovery_points_by_resource", points((5, "COMPLETED")), {"ResourceArn": BUCKET})
        stub.add_response("list_restore_testing_plans", {"RestoreTestingPlans": []}, {})
        report = verify_backups(client, resource_arns=[CLUSTER, BUCKET], max_age_hours=26, now=NOW)
        assert [r["age_hours"] for r in report["resources"]] == [3.0, 5.0]

        # The newest cluster point failed; the last completed one is 30 h old: the check fails and names it.
        stub.add_response(
            "list_recovery_points_by_resource", points((1, "FAILED"), (30, "COMPLETED")), {"ResourceArn": CLUSTER}
        )
        stub.add_response("list_recovery_points_by_resource", points((5, "COMPLETED")), {"ResourceArn": BUCKET})
        stub.add_response("list_restore_testing_plans", {"RestoreTestingPlans": []}, {})
        with pytest.raises(
            CheckFailedError, match=r"in the last 26 h for: arn:aws:rds:.*:cluster:pat-prod$"
        ) as failure:
            verify_backups(client, resource_arns=[CLUSTER, BUCKET], max_age_hours=26, now=NOW)
        seen = failure.value.report
        assert isinstance(seen, dict)
        assert [r["ok"] for r in seen["resources"]] == [False, True]
        stub.assert_no_pending_responses()
