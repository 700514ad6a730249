"""KMS key use: every key reference resolves (across stacks) to a key whose policy admits everyone who must use it.

The table of who must use a key lives in `pat_data.contract` (KEY_CONSUMERS: the resource holding the key;
KEY_WRITERS: the services and roles writing into or reading from that resource, e.g. EventBridge into a
dead-letter queue, CloudWatch alarms into a topic). Consumers are derived from the templates: a key-named property
no row covers fails, and a key reference that cannot be resolved fails (it is never skipped).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pat_data.contract import (
    ALARMS_TO_TOPIC,
    EVENTS_TO_QUEUE,
    KEY_CONSUMERS,
    KEY_WRITERS,
    KMS_UNCONDITIONED_FORBIDDEN,
    KeyUser,
    KeyWriter,
)
from tests.unit.template_graph import ResourceRef, TemplateGraph, UnresolvedReferenceError, at_path

KEY_TYPE = "AWS::KMS::Key"
GRANT_OPERATIONS = {"kms:creategrant", "kms:listgrants", "kms:revokegrant"}
# A property that names a key, wherever it sits (KmsKeyId, KmsMasterKeyId, KMSMasterKeyID, ReplicaKmsKeyID,
# PerformanceInsightsKMSKeyId, KmsKeyArn, EncryptionKeyArn, ...).
KEY_PROPERTY = re.compile(r"(?i)kms\w*key|encryptionkey")
NOT_KEY_HOLDERS = {"AWS::KMS::Key", "AWS::KMS::Alias", "AWS::IAM::Policy", "AWS::IAM::Role", "AWS::IAM::ManagedPolicy"}


def in_env(ref: ResourceRef, env: str) -> bool:
    return ref.stack.startswith(f"Pat-{env}-")


# ---- who must use which key ----


@dataclass(frozen=True)
class Requirement:
    """`user` must be able to use `key` because of `source` (property `path` of the consumer or writer)."""

    source: ResourceRef
    path: str
    holder: ResourceRef  # the encrypted resource (the source itself, or what the source writes into)
    key: ResourceRef
    user: KeyUser

    def __str__(self) -> str:
        via = "" if self.holder == self.source else f" -> {self.holder}"
        return f"{self.source}.{self.path}{via} needs {self.user.label} on {self.key} ({self.user.fact})"


def resolve_key(graph: TemplateGraph, stack: str, value: Any, where: str) -> ResourceRef:
    try:
        key = graph.resolve(stack, value)
    except UnresolvedReferenceError as error:
        raise AssertionError(f"{where}: key reference does not resolve: {error}") from None
    assert graph.type_of(key) == KEY_TYPE, f"{where}: key reference resolves to {key} ({graph.type_of(key)})"
    return key


def own_keys(graph: TemplateGraph, holder: ResourceRef) -> list[tuple[str, ResourceRef]]:
    """The keys a resource's own data is encrypted with (none: AWS owned or managed encryption, nothing to admit)."""
    resource = graph.resource(holder)
    keys = []
    for row in KEY_CONSUMERS:
        if row.resource_type == resource["Type"] and row.own_key:
            for value in at_path(resource.get("Properties", {}), row.key_path):
                keys.append((row.key_path, resolve_key(graph, holder.stack, value, f"{holder}.{row.key_path}")))
    return keys


_REQUIREMENTS: dict[int, list[Requirement]] = {}


def requirements(graph: TemplateGraph) -> list[Requirement]:
    """Every requirement of the assembly (computed once per graph)."""
    if id(graph) not in _REQUIREMENTS:
        _REQUIREMENTS[id(graph)] = list(_requirements(graph))
    return _REQUIREMENTS[id(graph)]


def _requirements(graph: TemplateGraph) -> Iterator[Requirement]:
    yield from _consumer_requirements(graph)
    yield from _writer_requirements(graph)


def _consumer_requirements(graph: TemplateGraph) -> Iterator[Requirement]:
    for row in KEY_CONSUMERS:
        for ref, resource in graph.resources(row.resource_type):
            for value in at_path(resource.get("Properties", {}), row.key_path):
                key = resolve_key(graph, ref.stack, value, f"{ref}.{row.key_path}")
                for user in row.users:
                    yield Requirement(source=ref, path=row.key_path, holder=ref, key=key, user=user)


def writer_targets(graph: TemplateGraph, ref: ResourceRef, rule: KeyWriter) -> Iterator[ResourceRef]:
    """The resources of the rule's target type that `ref` writes into (or reads from) through the rule's path."""
    properties = graph.resource(ref).get("Properties", {})
    if any(properties.get(name) != expected for name, expected in rule.when):
        return
    for value in at_path(properties, rule.target_path):
        service = graph.literal_service(ref.stack, value)
        if service is not None and service != rule.target_service:
            continue  # a literal of another service (an EC2 alarm action, an e-mail endpoint)
        try:
            targets = graph.references(ref.stack, value)
        except UnresolvedReferenceError as error:
            raise AssertionError(f"{ref}.{rule.target_path}: does not resolve: {error}") from None
        yield from (target for target in targets if graph.type_of(target) == rule.target_type)


def _writer_requirements(graph: TemplateGraph) -> Iterator[Requirement]:
    for rule in KEY_WRITERS:
        for ref, _ in graph.resources(rule.resource_type):
            for target in writer_targets(graph, ref, rule):
                for _, key in own_keys(graph, target):
                    for user in rule.users:
                        yield Requirement(source=ref, path=rule.target_path, holder=target, key=key, user=user)


# ---- what a key policy admits ----


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def covers(patterns: list[str], action: str) -> bool:
    """Whether policy action patterns (IAM wildcards, case-insensitive) allow `action`."""
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


def is_account_root(principal: str, account: str) -> bool:
    return re.fullmatch(rf"arn:[^:]+:iam::{re.escape(account)}:root", principal) is not None or principal in {
        account,
        "*",
    }


def condition_satisfied(
    operator: str, key: str, values: list[str], *, user: KeyUser, region: str, account: str
) -> bool:
    """Whether a request `user` makes carries a context that meets this condition (unknown keys: no).

    kms:ViaService and kms:CallerAccount are what a principal of the account acting through a service sends;
    aws:SourceAccount, aws:SourceArn and an encryption context are what a service principal sends about this
    account's resource; kms:GrantIsForAWSResource restricts the statement to grant operations (admitted_actions)."""
    key = key.lower()
    operator = operator.removesuffix("IfExists")
    if key == "kms:viaservice" and user.via_service is not None:
        wanted = user.principal(region)
        return (operator == "StringEquals" and wanted in values) or (
            operator == "StringLike" and any(fnmatch.fnmatchcase(wanted, v) for v in values)
        )
    if key == "kms:calleraccount":
        return user.via_service is not None and account in values
    service_keys = key in {"aws:sourceaccount", "aws:sourcearn"} or key.startswith("kms:encryptioncontext:")
    return key == "kms:grantisforawsresource" or (service_keys and user.service_principal is not None)


def render_condition_value(graph: TemplateGraph, stack: str, value: Any) -> str:
    """A condition value as text; one holding a resource reference (a distribution's ARN) is kept as its JSON."""
    try:
        return graph.render(stack, value)
    except UnresolvedReferenceError:
        return json.dumps(value, sort_keys=True)


def admitted_actions(graph: TemplateGraph, key: ResourceRef, policy: dict[str, Any], user: KeyUser) -> list[str]:
    """Action patterns of every Allow statement of `policy` that admits `user` for a key in `key`'s stack."""
    stack = graph.stack(key.stack)
    region = stack.region or "${AWS::Region}"
    account = stack.account or "${AWS::AccountId}"
    admitted: list[str] = []
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotPrincipal" in statement:
            continue
        principal = statement.get("Principal", {})
        if principal == "*":
            principal = {"AWS": "*"}
        aws = [graph.render(key.stack, p) for p in as_list(principal.get("AWS", []))]
        services = [graph.render(key.stack, p) for p in as_list(principal.get("Service", []))]
        if user.via_service is not None and not any(is_account_root(p, account) for p in aws):
            continue
        if user.service_principal is not None and user.principal(region) not in services:
            continue
        conditions = statement.get("Condition", {})
        rendered = {
            (operator, name): [render_condition_value(graph, key.stack, v) for v in as_list(values)]
            for operator, block in conditions.items()
            for name, values in block.items()
        }
        if not all(
            condition_satisfied(op, name, values, user=user, region=region, account=account)
            for (op, name), values in rendered.items()
        ):
            continue
        actions = [str(a) for a in as_list(statement["Action"])]
        if any(name.lower() == "kms:grantisforawsresource" for _, name in rendered):
            actions = [a for a in actions if a.lower() in GRANT_OPERATIONS]
        admitted.extend(actions)
    return admitted


def missing_actions(graph: TemplateGraph, requirement: Requirement, policy: dict[str, Any] | None = None) -> list[str]:
    """The required actions the key policy (or `policy` instead of it) does not give the requirement's user."""
    if policy is None:
        policy = graph.resource(requirement.key)["Properties"]["KeyPolicy"]
    admitted = admitted_actions(graph, requirement.key, policy, requirement.user)
    return [action for action in requirement.user.actions if not covers(admitted, action)]


def unconditioned_forbidden(statement: dict[str, Any]) -> list[str]:
    """The forbidden operations an Allow statement without a Condition gives (wildcards and NotAction included)."""
    if statement.get("Effect") != "Allow" or statement.get("Condition"):
        return []
    if "NotAction" in statement:
        excluded = [str(a) for a in as_list(statement["NotAction"])]
        return [op for op in KMS_UNCONDITIONED_FORBIDDEN if not covers(excluded, op)]
    actions = [str(a) for a in as_list(statement["Action"])]
    return [op for op in KMS_UNCONDITIONED_FORBIDDEN if covers(actions, op)]


# ---- tests ----


def test_every_key_property_is_a_consumer_row(any_graph: TemplateGraph) -> None:
    """Derived from the templates: a property naming a key that KEY_CONSUMERS does not list fails."""
    rows = {(row.resource_type, row.key_path) for row in KEY_CONSUMERS}
    unlisted = set()

    def is_value(item: Any) -> bool:
        """A string or an intrinsic function (not a nested block of settings, not a flag)."""
        return isinstance(item, str) or (
            isinstance(item, dict) and len(item) == 1 and next(iter(item)).startswith(("Fn::", "Ref"))
        )

    def walk(value: Any, path: list[str], resource_type: str) -> None:
        if isinstance(value, dict) and not is_value(value):
            for name, item in value.items():
                if KEY_PROPERTY.search(name) and is_value(item):
                    if (resource_type, ".".join([*path, name])) not in rows:
                        unlisted.add((resource_type, ".".join([*path, name])))
                else:
                    walk(item, [*path, name], resource_type)
        elif isinstance(value, list):
            for item in value:
                walk(item, [*path, "*"], resource_type)

    for _, resource in any_graph.resources():
        if resource["Type"] not in NOT_KEY_HOLDERS:
            walk(resource.get("Properties", {}), [], resource["Type"])
    assert not unlisted, f"key properties with no row in pat_data.contract.KEY_CONSUMERS: {sorted(unlisted)}"


def test_key_policies_admit_every_consumer_and_writer(any_graph: TemplateGraph, env_name: str) -> None:
    found = [r for r in requirements(any_graph) if in_env(r.source, env_name)]
    assert found, f"no key consumers found for {env_name}"
    failures = []
    for requirement in found:
        missing = missing_actions(any_graph, requirement)
        if missing:
            failures.append(f"{requirement}: key policy lacks {missing}")
    assert not failures, "\n".join(sorted(set(failures)))


def test_writer_rules_find_the_writers(graph: TemplateGraph, env_name: str) -> None:
    """The rules see what the app wires: alarms into the on-call topic, EventBridge and SNS into dead-letter queues,
    the migrator's failure destination (a rule that stopped matching would pass every policy vacuously)."""
    facts = {r.user.fact for r in requirements(graph) if in_env(r.source, env_name)}
    expected = {
        "KMS-CONSUMERS-e-CLOUDWATCH-ALARMS-TO-SNS",
        "KMS-CONSUMERS-b-EVENTBRIDGE-TO-SQS",
        "KMS-CONSUMERS-d-LAMBDA-DESTINATION-DLQ",
        "KMS-CONSUMERS-a-LOGS",
        "KMS-CONSUMERS-f-SECRETS-MANAGER",
    }
    if env_name != "dev":
        expected.add("KMS-CONSUMERS-c-SNS-TO-SQS")  # dev's on-call topic has no subscriptions
    assert expected <= facts, expected - facts


def test_literal_alarm_actions_resolve_by_topic_name(graph: TemplateGraph) -> None:
    """An alarm naming the on-call topic by a literal ARN reaches the topic (and its key) in the alarm's region."""
    alarms = [
        r
        for r in requirements(graph)
        if r.user == ALARMS_TO_TOPIC and r.source.stack.endswith("-Access") and r.holder.stack != r.source.stack
    ]
    assert alarms, "no cross-stack alarm action found"
    assert all(graph.stack(r.holder.stack).region == graph.stack(r.source.stack).region for r in alarms)


def test_no_unconditioned_grant_key_policy_or_decrypt(graph: TemplateGraph, env_name: str) -> None:
    failures = []
    for ref, resource in graph.resources(KEY_TYPE):
        if not in_env(ref, env_name):
            continue
        for statement in resource["Properties"]["KeyPolicy"]["Statement"]:
            forbidden = unconditioned_forbidden(statement)
            if forbidden:
                failures.append(f"{ref} statement {statement.get('Sid', '<no Sid>')}: {forbidden} without a Condition")
    assert not failures, "\n".join(failures)


# ---- the checker can fail ----


def requirement_for(graph: TemplateGraph, user: KeyUser, holder_type: str) -> Requirement:
    for requirement in requirements(graph):
        if requirement.user == user and graph.type_of(requirement.holder) == holder_type:
            return requirement
    raise AssertionError(f"no requirement for {user.label} on a {holder_type}")


def without_service(policy: dict[str, Any], service: str) -> dict[str, Any]:
    stripped = copy.deepcopy(policy)
    stripped["Statement"] = [
        s for s in stripped["Statement"] if service not in json.dumps(s.get("Principal", {}).get("Service", ""))
    ]
    assert len(stripped["Statement"]) < len(policy["Statement"]), f"no {service} statement to drop"
    return stripped


@pytest.mark.parametrize(
    ("user", "holder_type", "service"),
    [
        (EVENTS_TO_QUEUE, "AWS::SQS::Queue", "events.amazonaws.com"),
        (ALARMS_TO_TOPIC, "AWS::SNS::Topic", "cloudwatch.amazonaws.com"),
    ],
)
def test_checker_reports_a_dropped_writer_statement(
    graph: TemplateGraph, user: KeyUser, holder_type: str, service: str
) -> None:
    requirement = requirement_for(graph, user, holder_type)
    policy = graph.resource(requirement.key)["Properties"]["KeyPolicy"]
    assert missing_actions(graph, requirement, policy) == []
    assert missing_actions(graph, requirement, without_service(policy, service)) == list(user.actions)


def test_checker_rejects_an_unrelated_condition(graph: TemplateGraph) -> None:
    """A statement bound to one role (aws:PrincipalArn) does not admit a service writer."""
    requirement = requirement_for(graph, EVENTS_TO_QUEUE, "AWS::SQS::Queue")
    policy = without_service(graph.resource(requirement.key)["Properties"]["KeyPolicy"], "events.amazonaws.com")
    policy["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/x"}},
        }
    )
    assert missing_actions(graph, requirement, policy) == list(EVENTS_TO_QUEUE.actions)


@pytest.mark.parametrize(
    ("actions", "flagged"),
    [
        (["kms:Create*"], ["kms:CreateGrant"]),
        (["kms:Put*", "kms:Decrypt*"], ["kms:PutKeyPolicy", "kms:Decrypt"]),
        ("kms:*", list(KMS_UNCONDITIONED_FORBIDDEN)),
        (["kms:CreateAlias", "kms:DescribeKey"], []),
    ],
)
def test_unconditioned_check_sees_wildcards(actions: Any, flagged: list[str]) -> None:
    statement = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": actions}
    assert unconditioned_forbidden(statement) == flagged
    assert unconditioned_forbidden({**statement, "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}) == []


def test_an_unresolvable_key_reference_fails(graph: TemplateGraph) -> None:
    stack = next(name for name in graph.stacks if name.endswith("-Data"))
    literal_key = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":kms:eu-west-1:111122223333:key/1234"]]}
    with pytest.raises(AssertionError, match="does not resolve"):
        resolve_key(graph, stack, literal_key, "test")
    with pytest.raises(AssertionError, match="does not resolve"):
        resolve_key(graph, stack, "alias/pat/nowhere/logs", "test")
