"""Pat-<env>-BackupDr: the backup copy vault in the disaster-recovery region (deployed before Ops copies to it)."""

from __future__ import annotations

from constructs import Construct

from pat_constructs.backup import DrBackupVault
from stacks.base import PatStack
from stacks.config import EnvironmentConfig


class BackupDrStack(PatStack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, region: str) -> None:
        super().__init__(
            scope, config=config, part="BackupDr", description=f"backup copy vault in {region}", region=region
        )
        self.vault = DrBackupVault(
            self,
            "DrVault",
            env_name=config.name,
            settings=config.backup,
        )
