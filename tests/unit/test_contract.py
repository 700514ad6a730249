"""Both sides of every contract in pat_data.contract, read from what each side really does.

SSM discovery: every key a consumer reads is published, and every published key names its consumer (patops reads
exactly the keys naming it; the application's keys are listed in docs/architecture.md). Physical names: every fixed
`pat-<env>...` name in a template is one PhysicalNames derives, and each resource patops finds by name carries it.
Packs: the packs registered are the contract's list, and the synth summary names all of them.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import aws_cdk as cdk
import pytest

from pat_constructs.compliance import compliance_packs
from pat_data import contract
from pat_data.contract import DISCOVERY_KEYS, Consumer, DiscoveryKey, PhysicalNames
from scripts import synth_summary
from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parents[2]
# scripts/patops.py and the modules it is split into (scripts/patops_*.py), and the operations it calls.
PATOPS_SOURCES = (
    *sorted((ROOT / "scripts").glob("patops*.py")),
    *sorted((ROOT / "pat_data" / "operations").glob("*.py")),
)
BY_NAME = {name: value for name, value in vars(contract).items() if isinstance(value, DiscoveryKey)}


def published_parameters(synthesized: Synthesized, env_name: str) -> set[str]:
    names: set[str] = set()
    for stack in synthesized.assembly.stacks:
        if stack.stack_name.startswith(f"Pat-{env_name}-"):
            for resource in stack.template.get("Resources", {}).values():
                if resource["Type"] == "AWS::SSM::Parameter":
                    names.add(resource["Properties"]["Name"])
    return names


def test_every_published_parameter_is_a_contract_key_and_every_key_is_published(
    synthesized: Synthesized, env_name: str
) -> None:
    names = PhysicalNames(env_name)
    assert published_parameters(synthesized, env_name) == {names.parameter(key) for key in DISCOVERY_KEYS}


def test_every_key_names_a_consumer_once() -> None:
    assert all(key.consumers and len(set(key.consumers)) == len(key.consumers) for key in DISCOVERY_KEYS)
    assert len({key.key for key in DISCOVERY_KEYS}) == len(DISCOVERY_KEYS)
    assert set(BY_NAME.values()) == set(DISCOVERY_KEYS), "every DiscoveryKey constant belongs in DISCOVERY_KEYS"


def keys_read_by_patops() -> set[DiscoveryKey]:
    """The discovery keys patops' code names: `contract.X` (or an imported X) whose value is a key, and the keys of
    the contract's key tables it uses (DB_SECRET_ARNS)."""
    read: set[DiscoveryKey] = set()
    for path in PATOPS_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            value = getattr(contract, name, None) if name else None
            if isinstance(value, DiscoveryKey):
                read.add(value)
            elif isinstance(value, dict) and value and all(isinstance(v, DiscoveryKey) for v in value.values()):
                read.update(value.values())
    return read


def test_patops_reads_exactly_the_keys_that_name_it() -> None:
    assert keys_read_by_patops() == {key for key in DISCOVERY_KEYS if Consumer.PATOPS in key.consumers}


def test_patops_spells_no_discovery_key_or_fixed_name_as_a_literal() -> None:
    """A literal is a second copy of the contract: the proxy-name defect hid behind one (`pat-<env>`)."""
    spelled = {key.key for key in DISCOVERY_KEYS}
    for path in PATOPS_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in spelled, f"{path.name}:{node.lineno}: use pat_data.contract for {node.value}"
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                assert not text.startswith(("pat-", "/pat/")), f"{path.name}:{node.lineno}: use PhysicalNames"


def documented_discovery_keys() -> dict[str, set[str]]:
    """The discovery table of docs/architecture.md: `| `key` | consumers | ... |`."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([a-z]+/[a-z-]+)` \| ([a-z, ]+) \|", text, re.M)
    return {key: {c.strip() for c in consumers.split(",")} for key, consumers in rows}


def test_docs_list_every_key_with_its_consumers() -> None:
    assert documented_discovery_keys() == {key.key: {str(c) for c in key.consumers} for key in DISCOVERY_KEYS}


def test_the_runbook_names_every_key_it_is_the_consumer_of() -> None:
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    named = [key for key in DISCOVERY_KEYS if Consumer.RUNBOOK in key.consumers]
    missing = [key.key for key in named if f"/pat/<env>/{key.key}" not in runbooks]
    assert not missing, f"docs/runbooks.md never names {missing}: say where on-call uses it, or drop the consumer"


# Template property -> the PhysicalNames value it must carry (the resources something outside a template finds).
FIXED_NAMES = {
    ("AWS::RDS::DBCluster", "DBClusterIdentifier"): lambda n: n.db_cluster,
    ("AWS::RDS::DBProxy", "DBProxyName"): lambda n: n.db_proxy,
    ("AWS::RDS::DBProxyEndpoint", "DBProxyEndpointName"): lambda n: n.db_proxy_read_only_endpoint,
    ("AWS::ECS::Cluster", "ClusterName"): lambda n: n.pooler_cluster,
    ("AWS::ServiceDiscovery::PrivateDnsNamespace", "Name"): lambda n: n.pooler_namespace,
    ("AWS::ElastiCache::ReplicationGroup", "ReplicationGroupId"): lambda n: n.cache_replication_group,
    ("AWS::SNS::Topic", "TopicName"): lambda n: n.on_call_topic,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): lambda n: n.dashboard,
    ("AWS::Backup::BackupPlan", "BackupPlan.BackupPlanName"): lambda n: n.backup_plan,
}


def resources(synthesized: Synthesized, env_name: str) -> Iterator[tuple[str, dict]]:
    for stack in synthesized.assembly.stacks:
        if stack.stack_name.startswith(f"Pat-{env_name}-"):
            for resource in stack.template.get("Resources", {}).values():
                yield resource["Type"], resource.get("Properties", {})


def prop(properties: dict, path: str) -> object:
    for part in path.split("."):
        properties = properties.get(part, {}) if isinstance(properties, dict) else {}
    return properties


def test_fixed_names_in_templates_are_the_contract_names(synthesized: Synthesized, env_name: str) -> None:
    names = PhysicalNames(env_name)
    seen = set()
    for resource_type, properties in resources(synthesized, env_name):
        for (type_, path), expected in FIXED_NAMES.items():
            if resource_type == type_:
                assert prop(properties, path) == expected(names), (type_, path)
                seen.add((type_, path))
        if resource_type == "AWS::CloudWatch::Alarm":
            assert properties["AlarmName"].startswith(names.alarm_prefix)
        if resource_type == "AWS::Lambda::Function" and "FunctionName" in properties:
            assert properties["FunctionName"] == names.migrator_function
        if resource_type == "AWS::Backup::BackupVault":
            assert properties["BackupVaultName"] in (names.backup_vault, names.backup_dr_vault)
        if resource_type == "AWS::KMS::Alias":
            assert properties["AliasName"].startswith(names.key_alias(""))
    pooler = {("AWS::RDS::DBProxy", "DBProxyName"), ("AWS::ECS::Cluster", "ClusterName")}
    per_pooler = {
        ("AWS::RDS::DBProxyEndpoint", "DBProxyEndpointName"),
        ("AWS::ServiceDiscovery::PrivateDnsNamespace", "Name"),
    }
    assert set(FIXED_NAMES) - seen <= pooler | per_pooler
    assert seen & pooler, "one of the poolers is configured in every environment"


def test_every_pat_name_in_a_template_is_derived_by_the_contract(synthesized: Synthesized, env_name: str) -> None:
    """No construct spells a `pat-<env>` name of its own: every such string is a PhysicalNames value."""
    names = PhysicalNames(env_name)
    derived = {
        value
        for attribute in dir(PhysicalNames)
        if isinstance(getattr(PhysicalNames, attribute), property)
        and isinstance(value := getattr(names, attribute), str)
    }
    cache_node = re.compile(rf"^{re.escape(names.cache_replication_group)}-\d{{4}}-\d{{3}}$")
    bucket_prefixes = (names.attachment_bucket("", "")[:-2], names.attachment_replica_bucket("", "")[:-2])
    text = "\n".join(
        json.dumps(stack.template) for stack in synthesized.assembly.stacks if f"Pat-{env_name}-" in stack.stack_name
    )
    # Names are tokens of [A-Za-z0-9._/-] (inside plain values and inside JSON-in-JSON such as a dashboard body).
    found = re.findall(rf"(?<![\w/-])((?:pat-{env_name}|/pat/{env_name}/|alias/pat/{env_name}/)[\w./-]*)", text)
    for value in set(found):
        assert (
            value in derived
            or value.startswith((names.alarm_prefix, names.discovery_prefix, names.key_alias("")))
            or cache_node.match(value)
            or value.rstrip("-") in {p.rstrip("-") for p in bucket_prefixes}
            or "@" in value  # alarm e-mail subscriptions come from config
        ), value


def test_registered_packs_are_the_contract_list() -> None:
    app = cdk.App()
    assert tuple(pack.read_pack_name for pack in compliance_packs(app)) == contract.NAG_PACKS


def test_synth_summary_names_every_registered_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"artifacts": {"Pat-dev-X": {"type": "aws:cloudformation:stack", "properties": {
            "templateFile": "x.json"}}}})
    )  # fmt: skip
    (tmp_path / "x.json").write_text('{"Resources": {}}')
    (tmp_path / "validation-report.json").write_text('{"pluginReports": []}')
    assert synth_summary.main([str(tmp_path)]) == 0
    summary = capsys.readouterr().out
    assert all(pack in summary for pack in contract.NAG_PACKS), summary


def test_schema_alarms_watch_only_metrics_the_migrator_publishes(synthesized: Synthesized, env_name: str) -> None:
    """The migrator emits contract.SchemaMetric names (tests/lambdas read them back from its EMF lines)."""
    watched = set()
    for resource_type, properties in resources(synthesized, env_name):
        if (
            resource_type == "AWS::CloudWatch::Alarm"
            and properties.get("Namespace") == contract.SCHEMA_METRICS_NAMESPACE
        ):
            watched.add(properties["MetricName"])
            assert [d["Name"] for d in properties["Dimensions"]] == [contract.SCHEMA_METRICS_DIMENSION]
    published = {metric.value for metric in contract.SchemaMetric}
    assert watched
    assert watched <= published
