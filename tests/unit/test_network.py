"""Network stack per environment: subnet tiers, NAT, flow logs, endpoints, no public IPs outside public subnets."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from stacks import config
from tests.conftest import Synthesized

INTERFACE_SERVICES = {"secretsmanager", "kms", "logs", "monitoring", "sts", "ecr.api", "ecr.dkr", "ssm"}


def subnets_by_tier(synthesized: Synthesized, env: str) -> dict[str, int]:
    tiers: dict[str, int] = {}
    for subnet in synthesized.resources(env, "Network", "AWS::EC2::Subnet").values():
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        tiers[tags["aws-cdk:subnet-type"]] = tiers.get(tags["aws-cdk:subnet-type"], 0) + 1
    return tiers


@pytest.mark.parametrize(("env", "azs", "nats"), [("dev", 2, 1), ("staging", 3, 1), ("prod", 3, 3)])
def test_three_subnet_tiers_per_az_and_nat_count(synthesized: Synthesized, env: str, azs: int, nats: int) -> None:
    assert subnets_by_tier(synthesized, env) == {"Public": azs, "Private": azs, "Isolated": azs}
    synthesized.template(env, "Network").resource_count_is("AWS::EC2::NatGateway", nats)


def test_subnets_use_configured_zones_and_never_auto_assign_public_ips(synthesized: Synthesized, env_name: str) -> None:
    subnets = synthesized.resources(env_name, "Network", "AWS::EC2::Subnet").values()
    zones = {s["Properties"]["AvailabilityZone"] for s in subnets}
    assert zones == set(config.ENVIRONMENTS[env_name].network.availability_zones)
    assert all(not s["Properties"].get("MapPublicIpOnLaunch", False) for s in subnets)


def test_isolated_subnets_have_no_route_out(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template_json(env_name, "Network")["Resources"]
    isolated_tables = {
        lid for lid, r in template.items() if r["Type"] == "AWS::EC2::RouteTable" and "IsolatedSubnet" in lid
    }
    assert isolated_tables
    routes = [r for r in template.values() if r["Type"] == "AWS::EC2::Route"]
    assert not [r for r in routes if r["Properties"]["RouteTableId"].get("Ref") in isolated_tables]


def test_flow_logs_go_to_a_cmk_encrypted_group_with_env_retention(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template(env_name, "Network")
    template.has_resource_properties(
        "AWS::EC2::FlowLog",
        {"ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"},
    )
    template.has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "KmsKeyId": Match.any_value(),
            "RetentionInDays": config.ENVIRONMENTS[env_name].log_retention_days,
        },
    )


def test_endpoints_cover_every_aws_api_isolated_workloads_use(synthesized: Synthesized, env_name: str) -> None:
    endpoints = synthesized.resources(env_name, "Network", "AWS::EC2::VPCEndpoint").values()
    gateway = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Gateway"]
    interface = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert len(gateway) == 1
    assert "s3" in str(gateway[0]["Properties"]["ServiceName"])
    prefix = f"com.amazonaws.{config.ENVIRONMENTS[env_name].region}."
    assert all(e["Properties"]["PrivateDnsEnabled"] is True for e in interface)
    names = {e["Properties"]["ServiceName"].removeprefix(prefix) for e in interface}
    assert names == INTERFACE_SERVICES


def test_endpoint_security_group_allows_https_from_the_vpc_only(synthesized: Synthesized, env_name: str) -> None:
    groups = synthesized.resources(env_name, "Network", "AWS::EC2::SecurityGroup").values()
    (endpoint_group,) = [g for g in groups if "interface endpoints" in g["Properties"]["GroupDescription"]]
    (rule,) = endpoint_group["Properties"]["SecurityGroupIngress"]
    assert rule == {
        "CidrIp": config.ENVIRONMENTS[env_name].network.vpc_cidr,
        "Description": "HTTPS from the VPC",
        "FromPort": 443,
        "IpProtocol": "tcp",
        "ToPort": 443,
    }


def test_default_security_group_is_restricted(synthesized: Synthesized, env_name: str) -> None:
    synthesized.template(env_name, "Network").resource_count_is("Custom::VpcRestrictDefaultSG", 1)
