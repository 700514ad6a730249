"""Deploy semantics no scanner checks, each derived from the synthesized templates so the NEXT instance fails too.

Every rule below cites the AWS fact that decides it (docs/aws-facts-*.md hold the quotes):
- managed-policy ARNs: the AWS Managed Policy Reference (MANAGED-POLICY-ARNS);
- deploy order: logins before the pooler that uses them, every instance before a rotation that logs in at once
  (SM-ROTATION-SCHEDULE-IMMEDIATE: RotateImmediatelyOnUpdate defaults to true), producers before consumers;
- removal: RDS refuses to delete a cluster that still has instances (RDS-CLUSTER-INSTANCE-DELETE);
- identities held across stacks are strong references (CFN-EXPORTS-VS-GETSTACKOUTPUT);
- no statement text in the PostgreSQL log (PG-LOG-STATEMENT-LEAK, PG-LOG-MIN-ERROR-STATEMENT, ...);
- hand-written policies grant what the managed policy for the same job grants (MANAGED-POLICY-ACTIONS-*).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pat_data.contract import AWS_MANAGED_POLICIES
from stacks.base import STRONG_REFERENCE_TYPES
from tests.unit.template_graph import ResourceRef, TemplateGraph

MANAGED_ARN = re.compile(r"^arn:(\$\{AWS::Partition\}|aws):iam::aws:policy/(?P<suffix>.+)$")


@pytest.fixture
def graph(any_graph: TemplateGraph) -> TemplateGraph:
    """Both poolers of every environment (tests/unit/conftest.py): each rule must hold for either."""
    return any_graph


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def upstream(graph: TemplateGraph, stack: str) -> set[str]:
    """Every stack `stack` depends on, transitively (what CloudFormation deploys before it)."""
    seen: set[str] = set()
    todo = list(graph.stack(stack).dependencies)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph.stacks:
            continue
        seen.add(name)
        todo.extend(graph.stack(name).dependencies)
    return seen


def depends_on(graph: TemplateGraph, ref: ResourceRef) -> set[str]:
    """Resources `ref` waits for in its own stack: DependsOn plus Ref/GetAtt edges, transitively."""
    resources = graph.stack(ref.stack).resources
    seen: set[str] = set()
    todo = [ref.logical_id]
    while todo:
        resource = resources[todo.pop()]
        edges = resource.get("DependsOn", [])
        edges = [edges] if isinstance(edges, str) else list(edges)
        for node in walk(resource.get("Properties", {})):
            if isinstance(node, dict) and "Ref" in node and node["Ref"] in resources:
                edges.append(node["Ref"])
            if isinstance(node, dict) and "Fn::GetAtt" in node and node["Fn::GetAtt"][0] in resources:
                edges.append(node["Fn::GetAtt"][0])
        for edge in edges:
            if edge not in seen:
                seen.add(edge)
                todo.append(edge)
    return seen


# ---- managed policies ----


def managed_policy_arns(graph: TemplateGraph) -> Iterator[tuple[str, str]]:
    for ref, resource in graph.resources():
        for node in walk(resource.get("Properties", {})):
            if (isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("Fn::Join", "Fn::Sub")) or (
                isinstance(node, str) and node.startswith("arn:")
            ):
                try:
                    text = graph.render(ref.stack, node, concrete=False)
                except LookupError:
                    continue
                match = MANAGED_ARN.match(text)
                if match:
                    yield str(ref), match["suffix"]


def test_every_managed_policy_arn_is_a_pinned_row_and_every_row_is_used(graph: TemplateGraph) -> None:
    """A wrong path (`service-role/AWSBackupServiceRolePolicyForS3Backup`) fails the role at deploy time."""
    pinned = {policy.arn_suffix: policy for policy in AWS_MANAGED_POLICIES.values()}
    used = set()
    for where, suffix in managed_policy_arns(graph):
        name = suffix.rsplit("/", 1)[-1]
        assert name in AWS_MANAGED_POLICIES, f"{where}: {suffix} is not in pat_data.contract.AWS_MANAGED_POLICIES"
        assert suffix in pinned, f"{where}: {suffix}, but {AWS_MANAGED_POLICIES[name].reference} gives the path " \
            f"{AWS_MANAGED_POLICIES[name].path}"  # fmt: skip
        used.add(name)
    assert used == set(AWS_MANAGED_POLICIES), f"rows no template uses: {set(AWS_MANAGED_POLICIES) - used}"


def test_the_table_holds_the_paths_the_reference_gives() -> None:
    """Spot-check of the two classes of path, as the reference pages print the ARN."""
    assert AWS_MANAGED_POLICIES["AWSBackupServiceRolePolicyForS3Backup"].arn_suffix == (
        "AWSBackupServiceRolePolicyForS3Backup"
    )
    assert AWS_MANAGED_POLICIES["AWSBackupServiceRolePolicyForBackup"].arn_suffix == (
        "service-role/AWSBackupServiceRolePolicyForBackup"
    )


# ---- deploy order ----


def login_secrets_created_by_custom_resources(graph: TemplateGraph) -> dict[ResourceRef, ResourceRef]:
    """secret -> the custom resource whose function creates its login (the migrator's LOGIN_SECRET_ARNS)."""
    created: dict[ResourceRef, ResourceRef] = {}
    for ref, resource in graph.resources():
        if not resource["Type"].startswith("Custom::"):
            continue
        stack = graph.stack(ref.stack)
        for function in stack.resources.values():
            if function["Type"] != "AWS::Lambda::Function":
                continue
            variables = function["Properties"].get("Environment", {}).get("Variables", {})
            if "LOGIN_SECRET_ARNS" in variables:
                for secret in graph.references(ref.stack, variables["LOGIN_SECRET_ARNS"]):
                    created[secret] = ref
    return created


def pooler_secrets(graph: TemplateGraph) -> Iterator[tuple[ResourceRef, ResourceRef]]:
    """(pooler resource, secret it authenticates with): RDS Proxy auth and PgBouncer's ECS secrets."""
    for ref, resource in graph.resources("AWS::RDS::DBProxy"):
        for auth in resource["Properties"]["Auth"]:
            yield ref, graph.resolve(ref.stack, auth["SecretArn"])
    for ref, resource in graph.resources("AWS::ECS::TaskDefinition"):
        for container in resource["Properties"]["ContainerDefinitions"]:
            for secret in container.get("Secrets", []):
                for target in graph.references(ref.stack, secret["ValueFrom"]):
                    if graph.type_of(target) == "AWS::SecretsManager::Secret":
                        yield ref, target


def test_a_pooler_deploys_after_the_custom_resource_that_creates_its_logins(graph: TemplateGraph) -> None:
    created = login_secrets_created_by_custom_resources(graph)
    assert created  # the migrator creates pat_app and pat_readonly
    checked = 0
    for pooler, secret in pooler_secrets(graph):
        if secret in created:
            checked += 1
            creator = created[secret]
            assert creator.stack in upstream(graph, pooler.stack), (
                f"{pooler} authenticates with {secret}, whose login {creator} creates: {pooler.stack} must depend "
                f"on {creator.stack}"
            )
    assert checked


def test_a_rotation_that_logs_in_at_once_waits_for_every_instance_of_its_cluster(graph: TemplateGraph) -> None:
    checked = 0
    for ref, resource in graph.resources("AWS::SecretsManager::RotationSchedule"):
        props = resource["Properties"]
        if props.get("RotateImmediatelyOnUpdate", True) is False:
            continue
        attachment = graph.resolve(ref.stack, props["SecretId"], follow=False)
        if graph.type_of(attachment) != "AWS::SecretsManager::SecretTargetAttachment":
            continue
        cluster = graph.resolve(attachment.stack, graph.resource(attachment)["Properties"]["TargetId"])
        instances = {
            r.logical_id
            for r, instance in graph.resources("AWS::RDS::DBInstance")
            if r.stack == cluster.stack
            and instance["Properties"].get("DBClusterIdentifier") == {"Ref": cluster.logical_id}
        }
        assert instances, f"{cluster} has no instances"
        missing = instances - depends_on(graph, ref)
        assert not missing, f"{ref} rotates immediately but does not wait for {sorted(missing)}"
        checked += 1
    assert checked  # the owner secret rotates at once


def test_every_cross_stack_reference_points_upstream(graph: TemplateGraph) -> None:
    """A key, secret or group referenced from another stack is deployed before its consumer."""
    checked = 0
    for stack in graph.stacks.values():
        for node in walk(stack.template.get("Resources", {})):
            if (
                isinstance(node, dict)
                and len(node) == 1
                and next(iter(node)) in ("Fn::ImportValue", "Fn::GetStackOutput")
            ):
                producer = graph.resolve(stack.name, node, follow=False)
                assert producer.stack in upstream(graph, stack.name), f"{stack.name} reads {producer} unordered"
                checked += 1
    assert checked


def test_stateful_identities_cross_stacks_as_strong_references(graph: TemplateGraph) -> None:
    """Fn::GetStackOutput has no export lock and does not redeploy an unchanged consumer when the producer's value
    changes: keys, secrets, groups, subnets, the VPC and the cluster go through Export/ImportValue."""
    weak = []
    for stack in graph.stacks.values():
        for node in walk(stack.template.get("Resources", {})):
            if isinstance(node, dict) and len(node) == 1 and "Fn::GetStackOutput" in node:
                producer = graph.resolve(stack.name, node, follow=False)
                if graph.type_of(producer) in STRONG_REFERENCE_TYPES:
                    weak.append(f"{stack.name} -> {producer} ({graph.type_of(producer)})")
    assert not weak


# ---- removal ----

# Child type -> the property naming the parent it lives in.
MEMBERSHIP = {"AWS::RDS::DBInstance": "DBClusterIdentifier"}


def test_no_retained_child_inside_a_snapshot_parent(graph: TemplateGraph) -> None:
    checked = 0
    for child_type, parent_property in MEMBERSHIP.items():
        for ref, child in graph.resources(child_type):
            parent_value = child["Properties"].get(parent_property)
            if parent_value is None:
                continue
            parent = graph.resource(graph.resolve(ref.stack, parent_value))
            if parent.get("DeletionPolicy") == "Snapshot":
                checked += 1
                assert child.get("DeletionPolicy", "Delete") == "Delete", f"{ref} is kept inside a snapshotted parent"
                assert child.get("UpdateReplacePolicy", "Delete") == "Delete", f"{ref} would be left running"
    assert checked  # prod and staging snapshot their clusters


# ---- secrets in logs ----

# Parameters whose value decides whether a statement's text (ALTER USER ... PASSWORD '<cleartext>') reaches the log:
# name -> (PostgreSQL's default, the values that never echo statement text).
STATEMENT_ECHO = {
    "log_statement": ("none", {"none"}),
    "log_min_error_statement": ("error", {"panic"}),
    "log_min_duration_statement": ("-1", {"-1"}),
    "log_min_duration_sample": ("-1", {"-1"}),
    "log_transaction_sample_rate": ("0", {"0"}),
    "pg_stat_statements.track_utility": ("on", {"0", "off"}),
    "pgaudit.log_parameter": ("off", {"0", "off"}),
    "debug_print_parse": ("off", {"0", "off"}),
    "debug_print_rewritten": ("off", {"0", "off"}),
    "debug_print_plan": ("off", {"0", "off"}),
}


def test_no_parameter_group_writes_statement_text_to_the_log(graph: TemplateGraph) -> None:
    groups = [
        (ref, resource["Properties"].get("Parameters", {}))
        for kind in ("AWS::RDS::DBClusterParameterGroup", "AWS::RDS::DBParameterGroup")
        for ref, resource in graph.resources(kind)
    ]
    assert groups
    for ref, parameters in groups:
        cluster_group = graph.type_of(ref) == "AWS::RDS::DBClusterParameterGroup"
        for name, (default, safe) in STATEMENT_ECHO.items():
            if name == "pg_stat_statements.track_utility" and "pg_stat_statements" not in parameters.get(
                "shared_preload_libraries", ""
            ):
                continue
            # An instance group inherits the cluster's value unless it sets one.
            value = parameters.get(name, default if cluster_group else None)
            assert value is None or str(value) in safe, f"{ref}: {name}={value} can write a password to the log"
        if "pgaudit.log" in parameters:
            assert "role" in parameters["pgaudit.log"].split(","), "pgaudit redacts passwords in its role class"


# ---- hand-written policies vs the managed policy for the same job ----

# job: (the action that identifies the job, every action the managed policy grants for it, the managed policy).
JOBS = {
    "VPC networking of a Lambda function": (
        "ec2:CreateNetworkInterface",
        {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
         "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"},
        "AWSLambdaVPCAccessExecutionRole",
    ),
    "X-Ray tracing": (
        "xray:PutTraceSegments",
        {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
         "xray:GetSamplingStatisticSummaries"},
        "AWSXRayDaemonWriteAccess",
    ),
    # CreateLogGroup is left out on purpose: every function's log group is created (encrypted) by its stack.
    "Lambda logging": (
        "logs:PutLogEvents", {"logs:CreateLogStream", "logs:PutLogEvents"}, "AWSLambdaBasicExecutionRole"
    ),
}  # fmt: skip


def test_hand_written_policies_grant_what_the_managed_policy_for_the_same_job_grants(graph: TemplateGraph) -> None:
    checked = 0
    for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for ref, resource in graph.resources(kind):
            granted: set[str] = set()
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Effect") == "Allow":
                    actions = statement.get("Action", [])
                    granted.update([actions] if isinstance(actions, str) else actions)
            for job, (marker, needed, managed) in JOBS.items():
                if marker in granted:
                    checked += 1
                    missing = needed - granted
                    assert not missing, f"{ref} does '{job}' but lacks {sorted(missing)} (see {managed})"
    assert checked


def test_the_job_table_matches_what_the_constructs_grant() -> None:
    from pat_constructs.lambda_permissions import ENI_ACTIONS, XRAY_ACTIONS

    assert set(ENI_ACTIONS) == JOBS["VPC networking of a Lambda function"][1]
    assert set(XRAY_ACTIONS) == JOBS["X-Ray tracing"][1]


def test_rendered_managed_policy_arns_are_found_at_all(graph: TemplateGraph) -> None:
    """Guards the scanner above: it must see the backup role's four policies in every environment's Ops stack."""
    found = {suffix for where, suffix in managed_policy_arns(graph) if "-Ops/" in where}
    assert "AWSBackupServiceRolePolicyForS3Backup" in found


# ---- redeploying after a delete ----

# Properties that give a resource a fixed physical name: a RETAINed resource with one blocks a redeploy with
# "already exists" until it is adopted (import) or renamed.
NAME_PROPERTIES = (
    "BucketName", "LogGroupName", "BackupVaultName", "DBClusterIdentifier", "ReplicationGroupId", "TopicName",
    "QueueName", "FunctionName", "Name",
)  # fmt: skip
DEPLOY_DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def test_every_retained_resource_with_a_fixed_name_has_an_adoption_path_in_the_deploy_doc(
    graph: TemplateGraph,
) -> None:
    section = DEPLOY_DOC.read_text().split("## 6. Redeploying after a delete", 1)[1]
    undocumented = set()
    for ref, resource in graph.resources():
        if resource.get("DeletionPolicy") not in ("Retain", "Snapshot"):
            continue
        named = any(name in resource.get("Properties", {}) for name in NAME_PROPERTIES)
        if named and f"`{ref.logical_id}`" not in section:
            undocumented.add(f"{ref.logical_id} ({resource['Type']})")
    assert not undocumented, f"add an adoption or rename path to docs/deploy.md section 6 for {sorted(undocumented)}"
