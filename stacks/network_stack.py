"""Pat-<env>-Network: VPC, subnets, NAT, flow logs and endpoints. Stateless apart from its flow-log group."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs.network import PatNetwork
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


class NetworkStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, logs_key: kms.IKey) -> None:
        super().__init__(scope, config=config, part="Network", description="VPC, subnets, NAT, flow logs, endpoints")
        self.network = PatNetwork(
            self,
            "Network",
            settings=config.network,
            flow_log_key=logs_key,
            log_retention_days=config.log_retention_days,
        )
        self.vpc = self.network.vpc
