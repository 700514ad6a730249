"""Pooler, secrets, CDN and backup operations over boto3 clients."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypedDict

from pat_data.operations.common import Plan, wait_until
from pat_data.operations.errors import CheckFailedError, PreconditionError

if TYPE_CHECKING:
    from mypy_boto3_backup import BackupClient
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

Progress = Callable[[str], None]


def proxy_targets(rds: RDSClient, proxy_name: str) -> list[dict[str, object]]:
    pages = rds.get_paginator("describe_db_proxy_targets").paginate(DBProxyName=proxy_name)
    targets = [target for page in pages for target in page.get("Targets", [])]
    return [
        {
            "target": t.get("RdsResourceId"),
            "role": t.get("Role"),
            "state": t.get("TargetHealth", {}).get("State"),
            "reason": t.get("TargetHealth", {}).get("Description"),
        }
        for t in targets
    ]


def pgbouncer_service(ecs: ECSClient, cluster: str, service: str) -> dict[str, object]:
    services = ecs.describe_services(cluster=cluster, services=[service])["services"]
    if not services:
        raise PreconditionError(f"ECS service {cluster}/{service} not found: is this env using PgBouncer?")
    svc = services[0]
    return {
        "service": f"{cluster}/{service}",
        "desired": svc.get("desiredCount"),
        "running": svc.get("runningCount"),
        "pending": svc.get("pendingCount"),
        "deployments": [
            {"status": d.get("status"), "rollout": d.get("rolloutState")} for d in svc.get("deployments", [])
        ],
    }


def restart_pgbouncer(ecs: ECSClient, cluster: str, service: str, *, apply: bool) -> Plan:
    current = pgbouncer_service(ecs, cluster, service)
    plan = Plan(
        action="pooler restart",
        steps=[
            f"force a new deployment of {cluster}/{service} ({current['running']} running): tasks are replaced "
            "one by one (min healthy 100%), re-reading the login secrets",
        ],
    )
    if apply:
        ecs.update_service(cluster=cluster, service=service, forceNewDeployment=True)
        plan.applied = True
    return plan


def rotate_secret(
    secrets: SecretsManagerClient,
    secret_id: str,
    *,
    apply: bool,
    verify_login: Callable[[Mapping[str, object]], None] | None,
    progress: Progress = lambda _: None,
    sleep: Callable[[float], None] | None = None,
    timeout_seconds: float = 600,
) -> Plan:
    """Start the secret's rotation, wait until AWSCURRENT moved, then log in with the new version.

    `verify_login` gets the new secret value; it raises when that does not log in (patops asks the migrator Lambda,
    inside the VPC, to log in with the role's current password).
    """
    described = secrets.describe_secret(SecretId=secret_id)
    if not described.get("RotationEnabled"):
        raise PreconditionError(
            f"{described['Name']} has no rotation configured: it is rotated by its own runbook step"
        )
    before = next(v for v, stages in described["VersionIdsToStages"].items() if "AWSCURRENT" in stages)
    plan = Plan(
        action="secrets rotate",
        steps=[
            f"rotate {described['Name']} now (current version {before[:8]}...)",
            "wait until the new version is current, then log in with it"
            + (" (login check skipped)" if verify_login is None else ""),
        ],
    )
    if not apply:
        return plan
    secrets.rotate_secret(SecretId=secret_id, RotateImmediately=True)

    def rotated() -> tuple[bool, str]:
        stages = secrets.describe_secret(SecretId=secret_id)["VersionIdsToStages"]
        current = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        pending = any("AWSPENDING" in labels for labels in stages.values())
        return current != before and not pending, f"current {current[:8]}..., pending {pending}"

    wait_until(rotated, timeout_seconds=timeout_seconds, progress=progress, what="rotation", sleep=sleep)
    if verify_login is not None:
        value = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
        try:
            verify_login(value)
        except Exception as exc:
            raise CheckFailedError(f"rotated, but the new password does not log in: {exc}") from exc
    plan.applied, plan.result = True, {"previous_version": before}
    return plan


def invalidate(
    cloudfront: CloudFrontClient, distribution_id: str, paths: Sequence[str], *, apply: bool, now: datetime
) -> Plan:
    bad = [p for p in paths if not p.startswith("/")]
    if not paths or bad:
        raise PreconditionError(f"paths must start with '/', e.g. /tenants/<id>/* (got {', '.join(bad) or 'none'})")
    plan = Plan(
        action="cdn invalidate", steps=[f"invalidate {len(paths)} path(s) on {distribution_id}: {' '.join(paths)}"]
    )
    if apply:
        response = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": len(paths), "Items": list(paths)},
                "CallerReference": f"patops-{now:%Y%m%dT%H%M%S%f}",
            },
        )
        plan.applied, plan.result = True, {"invalidation": response["Invalidation"]["Id"]}
    return plan


class ResourceBackup(TypedDict):
    resource: str
    latest: str | None
    age_hours: float | None
    ok: bool


class BackupReport(TypedDict):
    max_age_hours: int
    resources: list[ResourceBackup]
    restore_testing_plans: list[dict[str, str | None]]


def verify_backups(
    backup: BackupClient, *, resource_arns: Sequence[str], max_age_hours: int, now: datetime | None = None
) -> BackupReport:
    """The newest completed recovery point per resource must be younger than `max_age_hours`."""
    now = now or datetime.now(UTC)
    results: list[ResourceBackup] = []
    for arn in resource_arns:
        pages = backup.get_paginator("list_recovery_points_by_resource").paginate(ResourceArn=arn)
        points = [point for page in pages for point in page.get("RecoveryPoints", [])]
        done = [p for p in points if p.get("Status") == "COMPLETED"]
        newest = max((p["CreationDate"] for p in done), default=None)
        age = (now - newest) if newest else None
        results.append(
            {
                "resource": arn,
                "latest": newest.isoformat() if newest else None,
                "age_hours": round(age / timedelta(hours=1), 1) if age is not None else None,
                "ok": age is not None and age <= timedelta(hours=max_age_hours),
            }
        )
    plans = [
        plan
        for page in backup.get_paginator("list_restore_testing_plans").paginate()
        for plan in page["RestoreTestingPlans"]
    ]
    report: BackupReport = {
        "max_age_hours": max_age_hours,
        "resources": results,
        "restore_testing_plans": [
            {"name": p.get("RestoreTestingPlanName"), "last_run": str(p.get("LastExecutionTime"))} for p in plans
        ],
    }
    stale = [r["resource"] for r in results if not r["ok"]]
    if stale:
        raise CheckFailedError(
            f"no completed recovery point in the last {max_age_hours} h for: {', '.join(stale)}", report
        )
    return report
