"""The base every Pat stack derives from: naming, environment, tags and the removal-policy rule in one place."""

from __future__ import annotations

import jsii
from aws_cdk import Aspects, CfnResource, Environment, IAspect, ReferenceStrength, Stack
from constructs import Construct, IConstruct

from pat_constructs.checkov import CheckovSkipRule
from pat_constructs.removal_policy import DataProtection, RemovalPolicyRule
from pat_constructs.tagging import apply_tags
from stacks.config import EnvironmentConfig, availability_zone_context

# Identities that other stacks hold by reference and that must never change under them unnoticed: keys, secrets,
# security groups, the network and the database cluster. The app's default (cdk.json) is a weak reference
# (Fn::GetStackOutput): no export lock, and a consumer whose template did not change is not redeployed when the
# producer's value changes. These
# are produced as strong references (Export/ImportValue): CloudFormation refuses to replace or delete one while a
# consumer imports it, so a replacement fails the producer's deploy instead of stranding its consumers.
STRONG_REFERENCE_TYPES = frozenset(
    {
        "AWS::KMS::Key",
        "AWS::SecretsManager::Secret",
        "AWS::SecretsManager::SecretTargetAttachment",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::Subnet",
        "AWS::EC2::VPC",
        "AWS::RDS::DBCluster",
    }
)


@jsii.implements(IAspect)
class StrongIdentityReferences:
    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource) and node.cfn_resource_type in STRONG_REFERENCE_TYPES:
            node.apply_cross_stack_reference_strength(ReferenceStrength.STRONG)


class PatStack(Stack):
    """A `Pat-<env>-<Part>` stack with the environment's tags, data protection and pinned availability zones."""

    def __init__(
        self,
        scope: Construct,
        *,
        config: EnvironmentConfig,
        part: str,
        description: str,
        region: str | None = None,
        cross_region_references: bool = False,
    ) -> None:
        """`region` overrides the environment's region (DR and us-east-1 stacks); `cross_region_references` lets
        a value flow between regions (CDK writes it to SSM in the consumer's region with a custom resource)."""
        super().__init__(
            scope,
            config.stack_id(part),
            env=Environment(account=config.account, region=region or config.region),
            description=f"Pat data platform ({config.name}): {description}",
            termination_protection=config.retain_data,
            cross_region_references=cross_region_references,
        )
        # Answer the AZ lookup from config so synth with an explicit account needs no credentials.
        for key, value in availability_zone_context(config).items():
            self.node.set_context(key, value)
        self.config = config
        apply_tags(
            self,
            {
                "Project": "Pat",
                "Environment": config.name,
                "Owner": config.tagging.owner,
                "CostCenter": config.tagging.cost_center,
                "DataClassification": config.tagging.data_classification,
            },
        )
        protection = DataProtection.for_env(retain_data=config.retain_data, allow_destroy=config.allow_destroy)
        Aspects.of(self).add(RemovalPolicyRule(protection))
        Aspects.of(self).add(CheckovSkipRule())
        Aspects.of(self).add(StrongIdentityReferences())
