"""patops finds fixed-name resources by the names the constructs give them (pat_data.contract.PhysicalNames).

The defect this pins: patops passed the discovered cluster identifier where RDS Proxy's name belongs, which worked
only while both happened to be `pat-<env>`. Here they differ (a cluster restored under a new identifier and
re-published), and patops must still ask for the proxy the Access stack created.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from pat_data import contract
from scripts import patops

REGION = "eu-west-1"
NAMES = contract.PhysicalNames("prod")


@pytest.fixture
def requested() -> dict[str, list[dict[str, Any]]]:
    return {}


def run(capsys: pytest.CaptureFixture[str], requested: dict[str, list[dict[str, Any]]], *argv: str) -> int:
    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        requested.setdefault(model.name, []).append(dict(params))

    def session_factory(**_: Any) -> boto3.Session:
        session = boto3.Session(region_name=REGION)
        session.events.register("provide-client-params.*.*", record)
        return session

    code = patops.main(list(argv), session_factory=session_factory)
    capsys.readouterr()
    return code


def publish(values: dict[contract.DiscoveryKey, str]) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    for key, value in values.items():
        ssm.put_parameter(Name=NAMES.parameter(key), Value=value, Type="String")


@mock_aws
def test_pooler_pools_asks_rds_proxy_by_the_proxy_name_not_the_cluster_id(
    capsys: pytest.CaptureFixture[str], requested: dict[str, list[dict[str, Any]]]
) -> None:
    publish({contract.DB_CLUSTER_IDENTIFIER: "pat-prod-restored-20261201", contract.POOLER_KIND: "rds_proxy"})
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]
        for i, zone in enumerate("ab")
    ]
    boto3.client("rds", region_name=REGION).create_db_proxy(
        DBProxyName=NAMES.db_proxy,
        EngineFamily="POSTGRESQL",
        RoleArn="arn:aws:iam::123456789012:role/proxy",
        Auth=[{"SecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pat-app"}],
        VpcSubnetIds=[subnet["SubnetId"] for subnet in subnets],
    )
    run(capsys, requested, "--env", "prod", "pooler", "pools")
    assert [call["DBProxyName"] for call in requested["DescribeDBProxyTargets"]] == [NAMES.db_proxy]


@mock_aws
def test_pooler_commands_address_pgbouncer_by_its_ecs_names(
    capsys: pytest.CaptureFixture[str], requested: dict[str, list[dict[str, Any]]]
) -> None:
    publish({contract.POOLER_KIND: "pgbouncer"})
    run(capsys, requested, "--env", "prod", "pooler", "pools")
    (call,) = requested["DescribeServices"]
    assert (call["cluster"], call["services"]) == (NAMES.pooler_cluster, [contract.POOLER_SERVICE])


@mock_aws
def test_alarm_listing_uses_the_alarm_prefix_the_alarms_are_named_with(
    capsys: pytest.CaptureFixture[str], requested: dict[str, list[dict[str, Any]]]
) -> None:
    publish({contract.DB_CLUSTER_IDENTIFIER: NAMES.db_cluster})
    run(capsys, requested, "--env", "prod", "status")
    assert {call["AlarmNamePrefix"] for call in requested["DescribeAlarms"]} == {NAMES.alarm_prefix}
