"""Pat-<env>-Keys: the customer-managed keys. Stateful and first in line, because the network's flow logs are
already encrypted with one of them (keeping keys in the Data stack would make Network and Data depend on each other).
"""

from __future__ import annotations

from constructs import Construct

from pat_constructs.keys import DataKeys
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


class KeysStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, config=config, part="Keys", description="KMS keys per data class")
        self.keys = DataKeys(self, "DataKeys", env_name=config.name)
