"""checkov skips, carried as CloudFormation resource metadata (`Metadata.checkov.skip`) and added by ONE Aspect from
the rules below, never by hand per resource. Each rule matches only the resources whose situation its reason
describes (checked on the resolved template values, not on names where that can be avoided), and its reason is the
compensating control of pat_constructs/controls.py that the rule relies on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import CfnResource, IAspect, Stack
from constructs import IConstruct

from pat_constructs import controls
from pat_constructs.controls import Control
from pat_constructs.lambda_permissions import ENI_ACTIONS, XRAY_ACTIONS

CDN_FACTS = "pat:cdn"
NO_RESOURCE_LEVEL_ACTIONS = {*ENI_ACTIONS, *XRAY_ACTIONS}


def _resolved(resource: CfnResource, attribute: str) -> Any:
    return Stack.of(resource).resolve(getattr(resource, attribute, None))


def _star_statements_only_need_star(resource: CfnResource) -> bool:
    document = _resolved(resource, "policy_document") or {}
    for statement in document.get("Statement", []):
        if statement.get("Resource") == "*" or statement.get("Resource") == ["*"]:
            actions = statement.get("Action")
            actions = [actions] if isinstance(actions, str) else actions
            if not set(actions) <= NO_RESOURCE_LEVEL_ACTIONS:
                return False
    return True


def _cdk_provider_function(resource: CfnResource) -> bool:
    path = resource.node.path
    return "CustomResourceProvider" in path or "/framework-onEvent/" in path


def _has_failure_destination(resource: CfnResource) -> bool:
    return any("EventInvokeConfig" in child.node.id for child in resource.node.scope.node.children)  # type: ignore[union-attr]


# Our own functions that reserve no concurrency on purpose (see pat_constructs/schema_migrator.py): a reservation
# must leave the account's unreserved floor, and one slot throttles synchronous invokes.
_UNRESERVED_BY_DESIGN = ("/Migrator/Function/", "/RotationHook/Function/", "/RotationMonitor/")


def _unreserved_by_design(resource: CfnResource) -> bool:
    return any(marker in resource.node.path for marker in _UNRESERVED_BY_DESIGN)


def _environment_holds_names_only(resource: CfnResource) -> bool:
    """Our functions whose environment holds only names and ARNs (set in their constructs), and CDK's provider."""
    return _unreserved_by_design(resource) or _cdk_provider_function(resource)


def _cdn_facts(resource: CfnResource) -> dict[str, Any]:
    """What AttachmentStorage recorded on the distribution (its config is lazy and cannot be resolved this early)."""
    scope = resource.node.scope
    entries = [e.data for e in scope.node.metadata if e.type == CDN_FACTS] if scope is not None else []
    return dict(entries[0]) if entries else {}


@dataclass(frozen=True, kw_only=True)
class SkipRule:
    """Skip `check_id` on resources of `resource_type` for which `applies` holds, because of `control`."""

    check_id: str
    resource_type: str
    applies: Callable[[CfnResource], bool]
    control: Control

    def __post_init__(self) -> None:
        if self.control not in controls.CATALOG or self.check_id not in self.control.checkov:
            raise ValueError(f"skip {self.check_id}: {self.control.id} must be a catalog control answering it")

    @property
    def reason(self) -> str:
        return self.control.checkov_comment(self.check_id)


_FUNCTION, _POLICY = "AWS::Lambda::Function", "AWS::IAM::ManagedPolicy"
RULES = (
    SkipRule(
        check_id="CKV_AWS_111",
        resource_type=_POLICY,
        applies=_star_statements_only_need_star,
        control=controls.LAMBDA_NETWORKING_AND_TRACING,
    ),
    *(
        SkipRule(
            check_id=check,
            resource_type=_FUNCTION,
            applies=_cdk_provider_function,
            control=controls.CDK_PROVIDER_FRAMEWORK,
        )
        for check in controls.CDK_PROVIDER_FRAMEWORK.checkov
    ),
    SkipRule(
        check_id="CKV_AWS_115",
        resource_type=_FUNCTION,
        applies=_unreserved_by_design,
        control=controls.UNRESERVED_BY_DESIGN,
    ),
    SkipRule(
        check_id="CKV_AWS_173",
        resource_type=_FUNCTION,
        applies=_environment_holds_names_only,
        control=controls.ENVIRONMENT_NAMES_ONLY,
    ),
    SkipRule(
        check_id="CKV_AWS_117",
        resource_type=_FUNCTION,
        applies=lambda r: "/RotationMonitor/" in r.node.path,
        control=controls.PUBLISHER_OUTSIDE_VPC,
    ),
    SkipRule(
        check_id="CKV_AWS_116",
        resource_type=_FUNCTION,
        applies=_has_failure_destination,
        control=controls.ON_FAILURE_DESTINATION,
    ),
    SkipRule(
        check_id="CKV_AWS_18",
        resource_type="AWS::S3::Bucket",
        applies=lambda r: "AccessLogs" in r.node.path,
        control=controls.ACCESS_LOG_BUCKET,
    ),
    SkipRule(
        check_id="CKV_AWS_68",
        resource_type="AWS::CloudFront::Distribution",
        applies=lambda r: _cdn_facts(r).get("web_acl") is False,
        control=controls.NO_WEB_ACL,
    ),
    SkipRule(
        check_id="CKV_AWS_174",
        resource_type="AWS::CloudFront::Distribution",
        applies=lambda r: _cdn_facts(r).get("certificate") is False,
        control=controls.DEFAULT_CDN_CERTIFICATE,
    ),
    SkipRule(
        check_id="CKV_AWS_91",
        resource_type="AWS::ElasticLoadBalancingV2::LoadBalancer",
        applies=lambda r: "PgBouncer" in r.node.path,
        control=controls.NLB_FLOW_LOGS,
    ),
)


@jsii.implements(IAspect)
class CheckovSkipRule:
    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource):
            return
        skips = [
            {"id": rule.check_id, "comment": rule.reason}
            for rule in RULES
            if rule.resource_type == node.cfn_resource_type and rule.applies(node)
        ]
        if skips:
            existing = node.get_metadata("checkov") or {}
            node.add_metadata("checkov", {"skip": [*existing.get("skip", []), *skips]})
