"""AWS Backup for the data that cannot be rebuilt: the Aurora cluster and the attachment bucket.

Resources are selected by ARN: `BackupResource.fromConstruct` silently skips Aurora clusters (aws-cdk#16457). In
environments that ask for it the vault is locked (governance or compliance mode) and every recovery point is copied
to a vault in the disaster-recovery region, encrypted there with that region's own key.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs import controls
from pat_constructs.compliance import acknowledge
from pat_constructs.keys import DataClass, data_key
from pat_constructs.settings.backup import BackupSettings
from pat_data.contract import PhysicalNames, managed_policy

BACKUP_REPLICA = DataClass(
    name="backup-replica", description="AWS Backup copies (disaster recovery)", via_services=("backup",)
)


BACKUP_ROLE_POLICIES = (
    "AWSBackupServiceRolePolicyForBackup",
    "AWSBackupServiceRolePolicyForRestores",
    "AWSBackupServiceRolePolicyForS3Backup",
    "AWSBackupServiceRolePolicyForS3Restore",
)


def vault_name(env_name: str) -> str:
    return PhysicalNames(env_name).backup_vault


def dr_vault_name(env_name: str) -> str:
    return PhysicalNames(env_name).backup_dr_vault


def lock_configuration(
    mode: str, *, min_retention_days: int, max_retention_days: int
) -> backup.LockConfiguration | None:
    """The vault lock: jobs with a retention outside [min, max] fail (config validates every rule against both).

    Compliance mode becomes immutable after the grace period (3 days, the minimum, to notice a mistake), bounds
    included; governance mode never does. See docs/deploy.md before changing either bound in prod.
    """
    if mode == "none":
        return None
    return backup.LockConfiguration(
        min_retention=Duration.days(min_retention_days),
        max_retention=Duration.days(max_retention_days),
        changeable_for=Duration.days(3) if mode == "compliance" else None,
    )


class DataBackup(Construct):
    """Vault (backup CMK, optional lock) + plan (daily, optionally weekly/monthly, optional DR copy) + selection."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        backup_key: kms.IKey,
        resource_arns: Sequence[str],
        settings: BackupSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=vault_name(env_name),
            encryption_key=backup_key,
            lock_configuration=lock_configuration(
                settings.vault_lock,
                min_retention_days=settings.lock_min_retention_days,
                max_retention_days=settings.lock_max_retention_days,
            ),
        )
        copy_to: list[backup.BackupPlanCopyActionProps] = []
        if settings.copy_region is not None:
            destination = backup.BackupVault.from_backup_vault_arn(
                self,
                "DrVault",
                f"arn:{Aws.PARTITION}:backup:{settings.copy_region}:{Aws.ACCOUNT_ID}:backup-vault:{dr_vault_name(env_name)}",
            )
            copy_to.append(
                backup.BackupPlanCopyActionProps(
                    destination_backup_vault=destination, delete_after=Duration.days(settings.copy_retention_days)
                )
            )
        # (name, schedule, completion window, retention): weekly and monthly only where config keeps them.
        schedules = (
            ("daily", events.Schedule.cron(minute="0", hour="1"), 6, settings.daily_retention_days),
            ("weekly", events.Schedule.cron(minute="0", hour="2", week_day="SUN"), 8, settings.weekly_retention_days),
            ("monthly", events.Schedule.cron(minute="0", hour="3", day="1"), 12, settings.monthly_retention_days),
        )
        rules = [
            backup.BackupPlanRule(
                rule_name=name,
                schedule_expression=schedule,
                start_window=Duration.hours(1),
                completion_window=Duration.hours(completion_hours),
                delete_after=Duration.days(retention),
                copy_actions=copy_to,
            )
            for name, schedule, completion_hours, retention in schedules
            if retention
        ]
        self.plan = backup.BackupPlan(
            self,
            "Plan",
            backup_plan_name=PhysicalNames(env_name).backup_plan,
            backup_vault=self.vault,
            backup_plan_rules=rules,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(managed_policy(name).arn_suffix)
                for name in BACKUP_ROLE_POLICIES
            ],
        )
        acknowledge(
            role,
            controls.AWS_MANAGED_SERVICE_ROLE,
            applies_to=[
                f"Policy::arn:<AWS::Partition>:iam::aws:policy/{managed_policy(name).arn_suffix}"
                for name in BACKUP_ROLE_POLICIES
            ],
        )
        self.plan.add_selection(
            "Selection",
            # By ARN: fromConstruct ignores Aurora clusters (aws-cdk#16457).
            resources=[backup.BackupResource.from_arn(arn) for arn in resource_arns],
            role=role,
            allow_restores=False,
        )


class DrBackupVault(Construct):
    """The copy destination in the disaster-recovery region, with its own key (same lock as the source)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        settings: BackupSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = data_key(self, "Key", env_name=env_name, data_class=BACKUP_REPLICA)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=dr_vault_name(env_name),
            encryption_key=self.key,
            lock_configuration=lock_configuration(
                settings.vault_lock,
                min_retention_days=settings.lock_min_retention_days,
                max_retention_days=settings.lock_max_retention_days,
            ),
        )
