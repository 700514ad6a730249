"""Discovery values under `/pat/<env>/...` in SSM (read by patops and applications) plus a matching stack output."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnOutput
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from pat_data.contract import DiscoveryKey, PhysicalNames


class Discovery(Construct):
    """Publishes each value once as an SSM parameter and a stack output (outputs carry no export: no stack lock)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, env_name: str, values: Mapping[DiscoveryKey, str]
    ) -> None:
        super().__init__(scope, construct_id)
        names = PhysicalNames(env_name)
        self.parameter_names: dict[DiscoveryKey, str] = {}
        for key, value in values.items():
            name = names.parameter(key)
            logical = "".join(part.capitalize() for part in key.key.replace("-", "/").split("/"))
            ssm.StringParameter(self, logical, parameter_name=name, string_value=value, description=f"Pat {key.key}")
            CfnOutput(self, f"{logical}Output", value=value, description=name)
            self.parameter_names[key] = name
