"""patops against moto (`mock_aws`): discovery, dry runs that change nothing, and the mutations with --yes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import patops

REGION = "eu-west-1"


def session_factory(**_: Any) -> boto3.Session:
    return boto3.Session(region_name=REGION)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = patops.main(list(argv), session_factory=session_factory)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
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
