"""Settings of `pat_constructs.backup`: the plan's rules, the vault lock and the disaster-recovery copy."""

from __future__ import annotations

from dataclasses import dataclass

VAULT_LOCK_MODES = ("none", "governance", "compliance")


@dataclass(frozen=True, kw_only=True)
class BackupSettings:
    """AWS Backup of the Aurora cluster and the attachment bucket."""

    # Daily recovery points kept this many days (1-35). Required.
    daily_retention_days: int
    # Weekly and monthly recovery points; None = no such rule.
    weekly_retention_days: int | None = None
    monthly_retention_days: int | None = None
    # "none", "governance" (removable by privileged users) or "compliance" (immutable once the grace time passed).
    vault_lock: str = "none"
    # The lock's retention bounds (both vaults). A backup or copy job whose retention falls outside them FAILS, and
    # in compliance mode the bounds can never be changed after the grace time: min is a floor against short-lived
    # recovery points (7 days: the shortest retention anyone should want in a locked vault), max leaves room for
    # longer legal or audit rules later (10 years) instead of the longest rule of today.
    lock_min_retention_days: int = 7
    lock_max_retention_days: int = 3650
    # Copy every recovery point to a vault in this region (disaster recovery); None = no copy.
    copy_region: str | None = None
    # Copies are kept this many days.
    copy_retention_days: int = 35
