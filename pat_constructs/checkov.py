"""checkov skips, carried as CloudFormation resource metadata (`Metadata.checkov.skip`) and added by ONE Aspect from
the rules below, never by hand per resource. Each rule matches only the resources whose situation its reason
describes (checked on the resolved template values, not on names where that can be avoided)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import CfnResource, IAspect, Stack
from constructs import IConstruct

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


@dataclass(frozen=True)
class SkipRule:
    check_id: str
    resource_type: str
    applies: Callable[[CfnResource], bool]
    reason: str


RULES = (
    SkipRule("CKV_AWS_111", "AWS::IAM::ManagedPolicy", _star_statements_only_need_star,
             "Only Lambda VPC networking (EC2 network interfaces) and X-Ray actions use Resource '*': they have no "
             "resource-level permissions; every other statement names its resource."),
    SkipRule("CKV_AWS_115", "AWS::Lambda::Function", _cdk_provider_function,
             "CDK-generated custom-resource provider: runs only during CloudFormation operations of this stack."),
    SkipRule("CKV_AWS_116", "AWS::Lambda::Function", _cdk_provider_function,
             "CDK-generated custom-resource provider: invoked synchronously by CloudFormation, which reports "
             "failures."),
    SkipRule("CKV_AWS_117", "AWS::Lambda::Function", _cdk_provider_function,
             "CDK-generated custom-resource provider: calls only AWS APIs during deploys, no data-plane access."),
    SkipRule("CKV_AWS_115", "AWS::Lambda::Function", _unreserved_by_design,
             "No reserved concurrency on purpose: a reservation must leave the account's unreserved floor and a "
             "single slot throttles synchronous invokes; advisory locks or idempotent actions bound the effect."),
    SkipRule("CKV_AWS_173", "AWS::Lambda::Function", _environment_holds_names_only,
             "The environment holds only names and ARNs (no secret), encrypted at rest with Lambda's own key; a "
             "customer key would have to admit Lambda in its key policy."),
    SkipRule("CKV_AWS_117", "AWS::Lambda::Function", lambda r: "/RotationMonitor/" in r.node.path,
             "The rotation-age publisher calls only Secrets Manager DescribeSecret and CloudWatch PutMetricData and "
             "reaches nothing in the VPC; its role allows nothing else."),
    SkipRule("CKV_AWS_116", "AWS::Lambda::Function", _has_failure_destination,
             "Asynchronous failures go to an on-failure destination (EventInvokeConfig), which keeps the request "
             "and the error; checkov only recognises the older dead-letter-queue setting."),
    SkipRule("CKV_AWS_18", "AWS::S3::Bucket", lambda r: "AccessLogs" in r.node.path,
             "This is the access-log bucket: S3 server access logs and CloudFront logs are written here."),
    SkipRule("CKV_AWS_68", "AWS::CloudFront::Distribution", lambda r: _cdn_facts(r).get("web_acl") is False,
             "No web ACL configured for this environment (storage.web_acl_arn); GET/HEAD of unguessable keys only."),
    SkipRule("CKV_AWS_174", "AWS::CloudFront::Distribution",
             lambda r: _cdn_facts(r).get("certificate") is False,
             "Default *.cloudfront.net certificate (fixed policy); storage.cdn_certificate_arn enables TLSv1.2_2021."),
    SkipRule("CKV_AWS_91", "AWS::ElasticLoadBalancingV2::LoadBalancer", lambda r: "PgBouncer" in r.node.path,
             "NLB access logs exist only for TLS listeners; this TCP NLB carries PostgreSQL, whose TLS is end to "
             "end, and VPC flow logs record every flow."),
)  # fmt: skip


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
