"""The one place tags are applied, as one Aspect, so every taggable resource gets them (including resources added
later and the raw CfnResources CDK's own custom-resource providers create, which CDK's Tag aspect skips)."""

from __future__ import annotations

from collections.abc import Mapping

import jsii
from aws_cdk import Aspects, CfnResource, IAspect, Tag, TagManager
from constructs import IConstruct

# Types whose L1 offers a TagManager although CloudFormation rejects Tags on them (deploy would fail).
_UNTAGGABLE_TYPES = ["AWS::RDS::DBProxyTargetGroup"]
# Types that CDK framework code emits as plain CfnResource (no TagManager) although CloudFormation can tag them.
_RAW_TAGGABLE_TYPES = frozenset({"AWS::IAM::Role", "AWS::Lambda::Function"})


@jsii.implements(IAspect)
class TaggingAspect:
    def __init__(self, tags: Mapping[str, str]) -> None:
        self._tags = dict(tags)
        self._cdk_tags = [
            Tag(key, value, exclude_resource_types=_UNTAGGABLE_TYPES) for key, value in self._tags.items()
        ]

    def visit(self, node: IConstruct) -> None:
        if TagManager.is_taggable(node) or TagManager.is_taggable_v2(node):
            for tag in self._cdk_tags:
                tag.visit(node)
        elif isinstance(node, CfnResource) and node.cfn_resource_type in _RAW_TAGGABLE_TYPES:
            node.add_property_override("Tags", [{"Key": k, "Value": v} for k, v in sorted(self._tags.items())])


def apply_tags(scope: IConstruct, tags: Mapping[str, str]) -> None:
    """Tag every taggable resource below `scope`."""
    Aspects.of(scope).add(TaggingAspect(tags))
