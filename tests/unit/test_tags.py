"""One tagging Aspect: every taggable resource carries the five cost/ownership tags."""

from __future__ import annotations

from stacks import config
from tests.conftest import Synthesized

TAG_KEYS = {"Project", "Environment", "Owner", "CostCenter", "DataClassification"}
# Types we create that CloudFormation can tag; each must be tagged (guards against a resource escaping the Aspect).
EXPECTED_TAGGED = {
    "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::NatGateway", "AWS::EC2::EIP",
    "AWS::EC2::InternetGateway", "AWS::EC2::SecurityGroup", "AWS::EC2::FlowLog", "AWS::Logs::LogGroup",
    "AWS::KMS::Key", "AWS::IAM::Role", "AWS::EC2::VPCEndpoint", "AWS::Lambda::Function",
}  # fmt: skip


def test_every_taggable_resource_has_the_tags(synthesized: Synthesized, env_name: str) -> None:
    env = config.ENVIRONMENTS[env_name]
    seen_types = set()
    for part in ("Keys", "Network", "Data", "Access"):
        for lid, resource in synthesized.template_json(env_name, part)["Resources"].items():
            tags = resource.get("Properties", {}).get("Tags")
            if tags is None:
                assert resource["Type"] not in EXPECTED_TAGGED, f"{lid} ({resource['Type']}) is not tagged"
                continue
            seen_types.add(resource["Type"])
            values = {t["Key"]: t["Value"] for t in tags} if isinstance(tags, list) else dict(tags)
            assert set(values) >= TAG_KEYS, lid
            assert values["Environment"] == env_name
            assert values["DataClassification"] == env.tagging.data_classification
    assert seen_types >= EXPECTED_TAGGED
