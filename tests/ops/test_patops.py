"""patops against moto (`mock_aws`): discovery, dry runs that change nothing, and the mutations with --yes.

The migrator Lambda is moto's Docker-free Lambda: it returns what a test queues, and every Invoke patops sends is
recorded with the configuration of the client that sent it.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from scripts import patops, patops_commands

REGION = "eu-west-1"
MIGRATOR = "pat-prod-schema-migrator"
ROTATED_PASSWORD = "rotated-password-1"
# The migrator's timeout as deployed (pat_constructs/schema_migrator.py: Duration.minutes(15), Lambda's maximum).
FUNCTION_TIMEOUT_SECONDS = 900


@dataclass
class Invocation:
    payload: dict[str, Any]
    config: dict[str, Any]  # the sending client's timeouts and retries
    current_app_secret_version: str | None = None


@dataclass
class Invocations:
    """What patops asked the migrator Lambda, and the client configuration it used for it.

    It also stands in for the app secret's rotation function, which moto does not run: when patops starts a
    rotation, the new password is written as the AWSCURRENT version, as the hosted function's finishSecret leaves it.
    """

    sent: list[Invocation] = field(default_factory=list)
    rotated_versions: list[str] = field(default_factory=list)

    def record(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if params.get("FunctionName") != MIGRATOR:
            return
        stages = boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId="pat/prod/app")
        current = next(v for v, labels in stages["VersionIdsToStages"].items() if "AWSCURRENT" in labels)
        config = context["client_config"]
        options = {
            name: getattr(config, name) for name in ("read_timeout", "connect_timeout", "retries", "tcp_keepalive")
        }
        self.sent.append(Invocation(json.loads(params["Payload"]), options, current))

    def rotation_function(self, parsed: dict[str, Any], **_: Any) -> None:
        written = boto3.client("secretsmanager", region_name=REGION).put_secret_value(
            SecretId=parsed["ARN"],
            SecretString=json.dumps({"username": "pat_app", "password": ROTATED_PASSWORD}),
            VersionStages=["AWSCURRENT"],
        )
        self.rotated_versions.append(written["VersionId"])

    def session_factory(self, **_: Any) -> boto3.Session:
        session = boto3.Session(region_name=REGION)
        session.events.register("provide-client-params.lambda.Invoke", self.record)
        session.events.register("after-call.secrets-manager.RotateSecret", self.rotation_function)
        return session


def session_factory(**_: Any) -> boto3.Session:
    return boto3.Session(region_name=REGION)


def run(capsys: pytest.CaptureFixture[str], *argv: str, invocations: Invocations | None = None) -> tuple[int, str, str]:
    code = patops.main(list(argv), session_factory=invocations.session_factory if invocations else session_factory)
    out, err = capsys.readouterr()
    return code, out, err


def migrator_returns(*results: dict[str, Any]) -> None:
    """Queue what moto's Docker-free Lambda answers to the next invocations (moto's documented API)."""
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response",
        json={"results": [json.dumps(result) for result in results], "region": REGION},
        timeout=5,
    )


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"lambda": {"use_docker": False}}):
        rds = boto3.client("rds", region_name=REGION)
        rds.create_db_cluster(
            DBClusterIdentifier="pat-prod", Engine="aurora-postgresql", EngineVersion="17.9",
            MasterUsername="pat_owner", MasterUserPassword="not-a-real-password-1",
            ServerlessV2ScalingConfiguration={"MinCapacity": 2, "MaxCapacity": 64},
        )  # fmt: skip
        for name, tier in (("pat-prod-writer", 0), ("pat-prod-reader2", 2), ("pat-prod-reader1", 1)):
            rds.create_db_instance(
                DBInstanceIdentifier=name, DBClusterIdentifier="pat-prod", Engine="aurora-postgresql",
                DBInstanceClass="db.serverless", PromotionTier=tier,
            )  # fmt: skip
        ssm = boto3.client("ssm", region_name=REGION)
        values = {
            "db/cluster-identifier": "pat-prod",
            "pooler/kind": "pgbouncer",
            "storage/distribution-id": "PLACEHOLDER",
            "storage/bucket-name": "pat-prod-attachments-123456789012-eu-west-1",
        }
        ecs = boto3.client("ecs", region_name=REGION)
        ecs.create_cluster(clusterName="pat-prod-pooler")
        ecs.register_task_definition(
            family="pgbouncer", containerDefinitions=[{"name": "pgbouncer", "image": "pgbouncer", "memory": 512}]
        )
        ecs.create_service(
            cluster="pat-prod-pooler", serviceName="pgbouncer", taskDefinition="pgbouncer", desiredCount=2
        )
        cloudfront = boto3.client("cloudfront", region_name="us-east-1")
        distribution = cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": "pat-prod", "Comment": "", "Enabled": True,
                "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": "b.s3.amazonaws.com",
                                                      "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
                "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "https-only",
                                         "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
            }
        )["Distribution"]  # fmt: skip
        values["storage/distribution-id"] = distribution["Id"]
        secrets = boto3.client("secretsmanager", region_name=REGION)
        arn = secrets.create_secret(Name="pat/prod/app", SecretString='{"username": "pat_app", "password": "p1"}')[
            "ARN"
        ]
        values["db/app-secret-arn"] = arn
        role = boto3.client("iam", region_name=REGION).create_role(
            RoleName="migrator", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        boto3.client("lambda", region_name=REGION).create_function(
            FunctionName=MIGRATOR, Runtime="python3.12", Role=role, Handler="handler.handler",
            Code={"ZipFile": function_zip()}, Timeout=FUNCTION_TIMEOUT_SECONDS,
        )  # fmt: skip
        values["schema/migrator-function-name"] = MIGRATOR
        for key, value in values.items():
            ssm.put_parameter(Name=f"/pat/prod/{key}", Value=value, Type="String")
        yield {"rds": rds, "ecs": ecs, "cloudfront": cloudfront, "secrets": secrets, "distribution": distribution["Id"]}


def writer(rds: Any) -> str:
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier="pat-prod")["DBClusters"]
    return str(next(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]))


def test_failover_is_a_dry_run_without_yes_and_promotes_the_lowest_tier_with_it(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--env", "prod", "db", "failover")
    assert code == 0
    assert "DRY RUN (nothing changed" in out
    assert "pat-prod-writer -> pat-prod-reader1 (promotion tier 1)" in out
    assert writer(aws["rds"]) == "pat-prod-writer"

    code, out, _ = run(capsys, "--env", "prod", "db", "failover", "--yes")
    assert code == 0, out
    assert "db failover: DONE" in out
    assert writer(aws["rds"]) == "pat-prod-reader1"
    code, _, err = run(capsys, "--env", "prod", "db", "failover", "--target", "nope")
    assert code == 2
    assert "--target nope is not a reader of pat-prod" in err


def test_scale_snapshot_and_restore(aws: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    rds = aws["rds"]
    code, out, _ = run(capsys, "--env", "prod", "db", "scale", "--min", "8", "--max", "128")
    assert code == 0
    assert "revert: patops db scale --min 2" in out
    assert rds.describe_db_clusters(DBClusterIdentifier="pat-prod")["DBClusters"][0][
        "ServerlessV2ScalingConfiguration"
    ] == {"MinCapacity": 2, "MaxCapacity": 64}
    assert run(capsys, "--env", "prod", "db", "scale", "--min", "8", "--max", "128", "--yes")[0] == 0
    scaling = rds.describe_db_clusters(DBClusterIdentifier="pat-prod")["DBClusters"][0][
        "ServerlessV2ScalingConfiguration"
    ]
    assert (scaling["MinCapacity"], scaling["MaxCapacity"]) == (8, 128)
    assert run(capsys, "--env", "prod", "db", "scale", "--min", "9", "--max", "8.3")[0] == 2

    assert run(capsys, "--env", "prod", "db", "snapshot", "--reason", "before risky migration")[0] == 0
    assert (
        rds.describe_db_cluster_snapshots(DBClusterIdentifier="pat-prod", SnapshotType="manual")["DBClusterSnapshots"]
        == []
    )
    assert run(capsys, "--env", "prod", "db", "snapshot", "--reason", "before risky migration", "--yes")[0] == 0
    (snap,) = rds.describe_db_cluster_snapshots(DBClusterIdentifier="pat-prod", SnapshotType="manual")[
        "DBClusterSnapshots"
    ]
    assert snap["DBClusterSnapshotIdentifier"].startswith("pat-prod-manual-")

    (source,) = rds.describe_db_clusters(DBClusterIdentifier="pat-prod")["DBClusters"]
    to_time = source["LatestRestorableTime"].isoformat()
    args = ("--env", "prod", "db", "restore", "--to-time", to_time, "--new-cluster", "pat-prod-pitr")
    code, _, err = run(capsys, "--env", "prod", "db", "restore", "--to-time", "2001-01-01T00:00:00Z")
    assert code == 2
    assert "outside the restorable window" in err
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "a restored cluster has no instances" in out
    assert len(rds.describe_db_clusters()["DBClusters"]) == 1
    code, out, _ = run(capsys, *args, "--yes")
    assert code == 0, out
    (restored,) = rds.describe_db_clusters(DBClusterIdentifier="pat-prod-pitr")["DBClusters"]
    assert [m["DBInstanceIdentifier"] for m in restored["DBClusterMembers"]] == ["pat-prod-pitr-writer"]
    assert "repoint" in out
    assert run(capsys, *args, "--yes")[0] == 2  # the new cluster exists now: refused, nothing changed
    assert run(capsys, "--env", "prod", "db", "restore", "--to-time", "yesterday")[0] == 2


def test_pooler_restart_cdn_invalidate_and_secret_rotation(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = aws["ecs"]
    code, out, _ = run(capsys, "--env", "prod", "pooler", "restart")
    assert code == 0
    assert "force a new deployment of pat-prod-pooler/pgbouncer" in out
    code, out, _ = run(capsys, "--env", "prod", "pooler", "restart", "--yes")
    assert code == 0
    assert "pooler restart: DONE" in out
    assert ecs.describe_services(cluster="pat-prod-pooler", services=["pgbouncer"])["services"][0]["desiredCount"] == 2

    cloudfront = aws["cloudfront"]
    assert run(capsys, "--env", "prod", "cdn", "invalidate", "/tenants/a/*")[0] == 0
    assert cloudfront.list_invalidations(DistributionId=aws["distribution"])["InvalidationList"]["Quantity"] == 0
    assert run(capsys, "--env", "prod", "cdn", "invalidate", "tenants/a")[0] == 2
    assert run(capsys, "--env", "prod", "cdn", "invalidate", "/tenants/a/*", "--yes")[0] == 0
    assert cloudfront.list_invalidations(DistributionId=aws["distribution"])["InvalidationList"]["Quantity"] == 1

    secrets = aws["secrets"]
    code, _, err = run(capsys, "--env", "prod", "secrets", "rotate", "app")
    assert code == 2
    assert "has no rotation configured" in err
    secrets.rotate_secret(SecretId="pat/prod/app", RotationRules={"AutomaticallyAfterDays": 30})
    before = secrets.describe_secret(SecretId="pat/prod/app")["VersionIdsToStages"]
    assert run(capsys, "--env", "prod", "secrets", "rotate", "app")[0] == 0
    assert secrets.describe_secret(SecretId="pat/prod/app")["VersionIdsToStages"] == before
    code, out, _ = run(capsys, "--env", "prod", "--json", "secrets", "rotate", "app", "--yes", "--skip-login-check")
    assert code == 0, out
    assert secrets.describe_secret(SecretId="pat/prod/app")["VersionIdsToStages"] != before


def test_missing_discovery_and_status_degrade_to_clear_messages(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--env", "prod", "cache", "rotate-auth", "--step", "begin")
    assert code == 2
    assert "/pat/prod/cache/replication-group-id is missing: deploy the stack" in err
    code, _, err = run(capsys, "--env", "staging", "db", "status")
    assert code == 2
    assert "no SSM parameters under /pat/staging/" in err
    code, out, _ = run(capsys, "--env", "prod", "--json", "status")
    assert code == 0
    assert '"status": "available"' in out
    assert '"unavailable"' in out  # sections moto cannot serve say so instead of crashing the screen


def assert_sent_once_and_waits_for_the_function(invocation: Invocation) -> None:
    """A synchronous invoke must outwait the function (900 s) and never be sent again by the SDK."""
    config = invocation.config
    assert config["read_timeout"] > FUNCTION_TIMEOUT_SECONDS
    assert patops_commands.MIGRATOR_TIMEOUT_SECONDS == FUNCTION_TIMEOUT_SECONDS
    assert config["connect_timeout"] <= 10
    assert config["retries"]["total_max_attempts"] == 1
    assert config["tcp_keepalive"] is True


def test_db_connections_is_asked_of_the_migrator_inside_the_vpc(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """No direct connection from the laptop: the fixture publishes no owner secret, and none is needed."""
    summary = {
        "connections": [
            {"user": "pat_app", "application": "pat", "state": "idle", "count": 7, "longest_in_state": "00:00:03"}
        ],
        "total": 7,
        "max_connections": 5000,
    }
    migrator_returns(summary)
    invocations = Invocations()
    code, out, err = run(capsys, "--env", "prod", "--json", "db", "connections", invocations=invocations)
    assert code == 0, err
    assert json.loads(out) == summary
    (sent,) = invocations.sent
    assert sent.payload == {"action": "operate", "operation": "connections", "arguments": {}}
    assert_sent_once_and_waits_for_the_function(sent)


def test_long_schema_operations_are_invoked_with_a_client_that_outwaits_the_function(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    migrator_returns(
        {"min_future_partitions": 0, "default_rows": {}},
        {"created": ["pat.emails_p203001"], "min_future_partitions": 12},
    )
    invocations = Invocations()
    code, out, err = run(capsys, "--env", "prod", "partitions", "maintain", "--yes", invocations=invocations)
    assert code == 0, err
    assert "partitions maintain: DONE" in out
    assert [i.payload["operation"] for i in invocations.sent] == ["partitions-status", "partitions-maintain"]
    for invocation in invocations.sent:
        assert_sent_once_and_waits_for_the_function(invocation)
    assert "may run up to 15 minutes" in err  # the operator is told why nothing prints for a while


def test_an_invocation_whose_answer_is_lost_is_not_sent_again(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a read timeout does to a 15-minute `partitions maintain`: the SDK must not invoke the function again.

    A local endpoint takes each request and drops the connection without an answer, as a timed-out read ends.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                received.append(connection.recv(65536))

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        code, _, err = run(capsys, "--env", "prod", "partitions", "maintain", "--yes")
    finally:
        listener.close()
    assert code == 1
    assert "AWS refused" in err
    assert len(received) == 1, f"the SDK sent the invocation {len(received)} times"


def test_secret_rotation_checks_the_new_password_through_the_migrator(
    aws: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    aws["secrets"].rotate_secret(SecretId="pat/prod/app", RotationRules={"AutomaticallyAfterDays": 30})
    migrator_returns({"role": "pat_app", "ok": True, "error": None})
    invocations = Invocations()
    code, out, err = run(capsys, "--env", "prod", "secrets", "rotate", "app", "--yes", invocations=invocations)
    assert code == 0, err
    assert "secrets rotate: DONE" in out
    (sent,) = invocations.sent
    assert sent.payload == {"action": "operate", "operation": "check-login", "arguments": {"role": "pat_app"}}
    # Asked only once the rotation had moved AWSCURRENT: the migrator reads the new password.
    assert sent.current_app_secret_version == invocations.rotated_versions[0]
    assert_sent_once_and_waits_for_the_function(sent)

    error = 'connection failed: FATAL: password authentication failed for user "pat_app"'
    migrator_returns({"role": "pat_app", "ok": False, "error": error})
    code, out, err = run(capsys, "--env", "prod", "secrets", "rotate", "app", "--yes", invocations=invocations)
    assert code == 1
    assert f"rotated, but the new password does not log in: pat_app: {error}" in err
    assert ROTATED_PASSWORD not in out + err
    assert ROTATED_PASSWORD not in json.dumps([i.payload for i in invocations.sent])  # the password stays in AWS
