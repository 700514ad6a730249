"""What no scanner checks for us, asserted over every synthesized template of every environment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from tests.conftest import Synthesized


def resources(synthesized: Synthesized, resource_type: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for stack in synthesized.assembly.stacks:
        for logical_id, resource in stack.template.get("Resources", {}).items():
            if resource_type is None or resource["Type"] == resource_type:
                yield stack.stack_name, logical_id, resource.get("Properties", {})


def test_postgres_tls_is_forced_in_the_cluster_parameter_group(synthesized: Synthesized) -> None:
    groups = list(resources(synthesized, "AWS::RDS::DBClusterParameterGroup"))
    assert len(groups) == 3
    for where, _, props in groups:
        assert props["Parameters"]["rds.force_ssl"] == "1", where


def test_poolers_and_cache_require_tls(synthesized: Synthesized, synthesized_flipped: Synthesized) -> None:
    proxies = [*resources(synthesized, "AWS::RDS::DBProxy"), *resources(synthesized_flipped, "AWS::RDS::DBProxy")]
    assert len(proxies) == 3
    assert all(props["RequireTLS"] is True for _, _, props in proxies)
    for where, _, props in resources(synthesized, "AWS::ElastiCache::ReplicationGroup"):
        assert props["TransitEncryptionEnabled"] is True, where
        assert props["TransitEncryptionMode"] == "required", where


def test_every_alarm_notifies_and_every_topic_is_encrypted(synthesized: Synthesized) -> None:
    for where, logical_id, props in resources(synthesized, "AWS::CloudWatch::Alarm"):
        assert props.get("AlarmActions"), f"{where}/{logical_id}"
    topics = list(resources(synthesized, "AWS::SNS::Topic"))
    assert topics
    assert all("KmsMasterKeyId" in props for _, _, props in topics)


def test_no_security_group_admits_the_internet(synthesized: Synthesized, synthesized_flipped: Synthesized) -> None:
    for app in (synthesized, synthesized_flipped):
        for where, logical_id, props in resources(app):
            rules = props.get("SecurityGroupIngress", [])
            if "CidrIp" in props and "GroupId" in props and "IpProtocol" in props and "FromPort" in props:
                rules = [props]  # a standalone AWS::EC2::SecurityGroupIngress
            for rule in rules:
                assert rule.get("CidrIp") != "0.0.0.0/0", f"{where}/{logical_id}"
                assert rule.get("CidrIpv6") != "::/0", f"{where}/{logical_id}"


def test_data_stores_live_in_isolated_subnets_only(synthesized: Synthesized) -> None:
    kinds = ("AWS::RDS::DBSubnetGroup", "AWS::ElastiCache::SubnetGroup")
    groups = [r for kind in kinds for r in resources(synthesized, kind)]
    assert len(groups) == 6
    for where, logical_id, props in groups:
        subnets = json.dumps(props["SubnetIds"])
        assert "Isolated" in subnets, f"{where}/{logical_id}"
        assert "Private" not in subnets, f"{where}/{logical_id}"
        assert "Public" not in subnets, f"{where}/{logical_id}"


SECRET_KEY = re.compile(r"(password|passwd|secret|token|auth_?token)", re.IGNORECASE)


def test_no_secret_value_in_any_template_or_lambda_environment(synthesized: Synthesized) -> None:
    for where, logical_id, props in resources(synthesized, "AWS::Lambda::Function"):
        for name in props.get("Environment", {}).get("Variables", {}):
            if SECRET_KEY.search(name):
                assert name.endswith(("_ARN", "_ARNS")), f"{where}/{logical_id}: {name} looks like a secret value"
    for where, logical_id, props in resources(synthesized, "AWS::SecretsManager::Secret"):
        assert "SecretString" not in props, f"{where}/{logical_id}: generated secrets only"
    for where, logical_id, props in resources(synthesized, "AWS::ElastiCache::ReplicationGroup"):
        assert "{{resolve:secretsmanager:" in json.dumps(props["AuthToken"]), f"{where}/{logical_id}"
    for stack in synthesized.assembly.stacks:
        text = json.dumps(stack.template)
        for match in re.finditer(r'"(MasterUserPassword|Password|AuthToken)":\s*"([^"{]+)"', text):
            raise AssertionError(f"{stack.stack_name}: literal {match.group(1)} in the template")
