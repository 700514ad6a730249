"""AUTH token rotation: Secrets Manager in moto, ElastiCache through botocore's Stubber (moto has no
AuthTokenUpdateStrategy). Checks the exact API calls, the staging labels, and resuming an interrupted rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from pat_data.cache_auth import CURRENT, PENDING, CacheAuthRotation, RotationError

GROUP = "pat-dev-cache"


def group(status: str) -> dict[str, Any]:
    return {"ReplicationGroups": [{"ReplicationGroupId": GROUP, "Status": status}]}


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any, Stubber, str]]:
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = secrets.create_secret(
            Name="pat/dev/cache-auth", SecretString=json.dumps({"username": "default", "token": "old-token-" * 4})
        )["ARN"]
        elasticache = boto3.client("elasticache", region_name="eu-west-1")
        with Stubber(elasticache) as stub:
            yield secrets, elasticache, stub, arn
            stub.assert_no_pending_responses()


def stages(secrets: Any, arn: str) -> dict[str, list[str]]:
    return dict(secrets.describe_secret(SecretId=arn)["VersionIdsToStages"])


def token(secrets: Any, arn: str, stage: str) -> str:
    return str(json.loads(secrets.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"])["token"])


def expect_modify(stub: Stubber, strategy: str, auth_token: object = ANY) -> None:
    stub.add_response(
        "modify_replication_group",
        {"ReplicationGroup": {"ReplicationGroupId": GROUP, "Status": "modifying"}},
        {
            "ReplicationGroupId": GROUP,
            "AuthToken": auth_token,
            "AuthTokenUpdateStrategy": strategy,
            "ApplyImmediately": True,
        },
    )


def test_full_rotation_rotate_promote_set(aws: tuple[Any, Any, Stubber, str]) -> None:
    secrets, elasticache, stub, arn = aws
    sleeps: list[float] = []
    rotation = CacheAuthRotation(elasticache, secrets, GROUP, arn, sleep=sleeps.append)

    stub.add_response("describe_replication_groups", group("available"))
    expect_modify(stub, "ROTATE")
    stub.add_response("describe_replication_groups", group("modifying"))
    stub.add_response("describe_replication_groups", group("available"))
    pending = rotation.begin()
    new_token = token(secrets, arn, PENDING)
    assert new_token != token(secrets, arn, CURRENT)
    assert len(new_token) == 64
    assert new_token.isalnum()  # ElastiCache allows only a few symbols; we use none
    assert stages(secrets, arn)[pending] == [PENDING]
    assert sleeps == [15]

    stub.add_response("describe_replication_groups", group("available"))
    assert rotation.promote() == pending
    assert token(secrets, arn, CURRENT) == new_token

    stub.add_response("describe_replication_groups", group("available"))
    expect_modify(stub, "SET", new_token)
    stub.add_response("describe_replication_groups", group("available"))
    rotation.finish()
    assert stages(secrets, arn)[pending] == [CURRENT]
    assert all(PENDING not in labels for labels in stages(secrets, arn).values())


def test_steps_refuse_the_wrong_order_and_an_interrupted_begin_resumes(aws: tuple[Any, Any, Stubber, str]) -> None:
    secrets, elasticache, stub, arn = aws
    rotation = CacheAuthRotation(elasticache, secrets, GROUP, arn, sleep=lambda _: None)
    stub.add_response("describe_replication_groups", group("available"))
    with pytest.raises(RotationError, match="nothing to promote: run `begin` first"):
        rotation.promote()
    stub.add_response("describe_replication_groups", group("available"))
    with pytest.raises(RotationError, match="`finish` follows `promote`"):
        rotation.finish()

    stub.add_response("describe_replication_groups", group("modifying"))
    with pytest.raises(RotationError, match="is 'modifying': wait until it is available"):
        rotation.begin()

    # The pending version exists but ModifyReplicationGroup never ran (interrupted): begin again reuses it.
    pending = secrets.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "default", "token": "n" * 64}), VersionStages=[PENDING]
    )["VersionId"]
    stub.add_response("describe_replication_groups", group("available"))
    expect_modify(stub, "ROTATE", "n" * 64)
    stub.add_response("describe_replication_groups", group("available"))
    assert rotation.begin() == pending
