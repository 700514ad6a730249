"""Aurora operations: status, failover, temporary scaling, manual snapshots, point-in-time restore, pooler pools.

Who is connected (`patops db connections`) is asked inside the VPC: `pat_data.schema_deploy.connection_summary`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from pat_data.operations.common import Plan, wait_until
from pat_data.operations.errors import PreconditionError

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_rds.type_defs import DBClusterTypeDef, DBInstanceTypeDef

Progress = Callable[[str], None]


def clusters(rds: RDSClient, cluster_id: str) -> list[DBClusterTypeDef]:
    pages = rds.get_paginator("describe_db_clusters").paginate(DBClusterIdentifier=cluster_id)
    return [cluster for page in pages for cluster in page.get("DBClusters", [])]


def describe(rds: RDSClient, cluster_id: str) -> DBClusterTypeDef:
    try:
        (cluster,) = clusters(rds, cluster_id)
    except rds.exceptions.DBClusterNotFoundFault as exc:
        raise PreconditionError(f"cluster {cluster_id} not found: check --env, --profile and --region") from exc
    return cluster


def instance(rds: RDSClient, instance_id: str) -> DBInstanceTypeDef:
    pages = rds.get_paginator("describe_db_instances").paginate(DBInstanceIdentifier=instance_id)
    (found,) = [item for page in pages for item in page.get("DBInstances", [])]
    return found


def status(rds: RDSClient, cluster_id: str) -> dict[str, object]:
    cluster = describe(rds, cluster_id)
    instances = []
    for member in cluster.get("DBClusterMembers", []):
        described = instance(rds, member["DBInstanceIdentifier"])
        instances.append(
            {
                "id": member["DBInstanceIdentifier"],
                "role": "writer" if member["IsClusterWriter"] else "reader",
                "promotion_tier": member.get("PromotionTier"),
                "status": described["DBInstanceStatus"],
                "az": described.get("AvailabilityZone"),
            }
        )
    scaling = cluster.get("ServerlessV2ScalingConfiguration", {})
    return {
        "cluster": cluster_id,
        "status": cluster["Status"],
        "engine_version": cluster.get("EngineVersion"),
        "min_acu": scaling.get("MinCapacity"),
        "max_acu": scaling.get("MaxCapacity"),
        "writer_endpoint": cluster.get("Endpoint"),
        "reader_endpoint": cluster.get("ReaderEndpoint"),
        "instances": instances,
    }


def _require_available(cluster: DBClusterTypeDef) -> None:
    if cluster["Status"] != "available":
        raise PreconditionError(
            f"cluster {cluster['DBClusterIdentifier']} is '{cluster['Status']}': wait until it is available"
        )


def failover(
    rds: RDSClient,
    cluster_id: str,
    *,
    target: str | None,
    apply: bool,
    progress: Progress = lambda _: None,
    sleep: Callable[[float], None] | None = None,
    timeout_seconds: float = 900,
) -> Plan:
    """Promote a reader. Without --target: the reader Aurora itself would promote (lowest promotion tier)."""
    cluster = describe(rds, cluster_id)
    _require_available(cluster)
    members = cluster.get("DBClusterMembers", [])
    writer = next((m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]), None)
    readers = sorted((m for m in members if not m["IsClusterWriter"]), key=lambda m: m.get("PromotionTier", 15))
    if not readers:
        raise PreconditionError(
            f"{cluster_id} has no reader to fail over to (dev runs a writer only): nothing was changed"
        )
    if target is None:
        target = readers[0]["DBInstanceIdentifier"]
    elif target not in {m["DBInstanceIdentifier"] for m in readers}:
        names = ", ".join(m["DBInstanceIdentifier"] for m in readers)
        raise PreconditionError(f"--target {target} is not a reader of {cluster_id}: choose one of {names}")
    tier = next(m.get("PromotionTier") for m in readers if m["DBInstanceIdentifier"] == target)
    plan = Plan(
        action="db failover",
        steps=[
            f"fail over {cluster_id}: writer {writer} -> {target} (promotion tier {tier})",
            "wait until the new writer is available (clients reconnect through the cluster endpoint)",
        ],
    )
    if not apply:
        return plan
    rds.failover_db_cluster(DBClusterIdentifier=cluster_id, TargetDBInstanceIdentifier=target)

    def promoted() -> tuple[bool, str]:
        current = describe(rds, cluster_id)
        now_writer = next((m["DBInstanceIdentifier"] for m in current["DBClusterMembers"] if m["IsClusterWriter"]), "?")
        return current["Status"] == "available" and now_writer == target, f"{current['Status']}, writer {now_writer}"

    wait_until(promoted, timeout_seconds=timeout_seconds, progress=progress, what="failover", sleep=sleep)
    plan.applied, plan.result = True, {"writer": target, "previous_writer": writer}
    return plan


def scale(rds: RDSClient, cluster_id: str, *, min_acu: float, max_acu: float, apply: bool) -> Plan:
    """A temporary capacity change; the plan says how to go back to the deployed values."""
    for name, value in (("--min", min_acu), ("--max", max_acu)):
        if not (0 <= value <= 256 and float(value * 2).is_integer()):
            raise PreconditionError(f"{name} {value:g}: Serverless v2 capacity is 0-256 ACU in 0.5 steps")
    if min_acu > max_acu:
        raise PreconditionError(f"--min {min_acu:g} is above --max {max_acu:g}")
    cluster = describe(rds, cluster_id)
    _require_available(cluster)
    current = cluster.get("ServerlessV2ScalingConfiguration", {})
    before = (current.get("MinCapacity"), current.get("MaxCapacity"))
    plan = Plan(
        action="db scale",
        steps=[
            f"{cluster_id}: ACU {before[0]}-{before[1]} -> {min_acu:g}-{max_acu:g} (applied immediately)",
            f"revert: patops db scale --min {before[0]} --max {before[1]} --yes, or redeploy the stack "
            "(config is the source of truth; the next `make deploy` restores it)",
        ],
    )
    if apply:
        rds.modify_db_cluster(
            DBClusterIdentifier=cluster_id,
            ServerlessV2ScalingConfiguration={"MinCapacity": min_acu, "MaxCapacity": max_acu},
            ApplyImmediately=True,
        )
        plan.applied, plan.result = True, {"previous": {"min": before[0], "max": before[1]}}
    return plan


def snapshot(rds: RDSClient, cluster_id: str, *, reason: str, apply: bool, now: datetime | None = None) -> Plan:
    if not reason.strip():
        raise PreconditionError("--reason is required: it is stored as a tag so the snapshot explains itself later")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M")
    snapshot_id = f"{cluster_id}-manual-{stamp}"
    plan = Plan(action="db snapshot", steps=[f"manual snapshot {snapshot_id} of {cluster_id} (reason: {reason})"])
    if apply:
        describe(rds, cluster_id)
        rds.create_db_cluster_snapshot(
            DBClusterSnapshotIdentifier=snapshot_id,
            DBClusterIdentifier=cluster_id,
            Tags=[{"Key": "CreatedBy", "Value": "patops"}, {"Key": "Reason", "Value": reason[:256]}],
        )
        plan.applied, plan.result = True, {"snapshot": snapshot_id}
    return plan


def restore_to_time(
    rds: RDSClient,
    cluster_id: str,
    *,
    to_time: datetime,
    new_cluster_id: str,
    apply: bool,
    progress: Progress = lambda _: None,
    sleep: Callable[[float], None] | None = None,
    timeout_seconds: float = 7200,
) -> Plan:
    """Point-in-time restore into a NEW cluster (never in place) plus its writer: a restore creates no instance."""
    source = describe(rds, cluster_id)
    earliest, latest = source.get("EarliestRestorableTime"), source.get("LatestRestorableTime")
    if to_time.tzinfo is None:
        raise PreconditionError("--to-time needs a time zone, e.g. 2026-11-22T02:15:00Z")
    if (earliest and to_time < earliest) or (latest and to_time > latest):
        raise PreconditionError(
            f"--to-time {to_time.isoformat()} is outside the restorable window {earliest} .. {latest}"
        )
    try:
        clusters(rds, new_cluster_id)
        raise PreconditionError(f"--new-cluster {new_cluster_id} already exists: choose another name")
    except rds.exceptions.DBClusterNotFoundFault:
        pass
    scaling = source.get("ServerlessV2ScalingConfiguration", {"MinCapacity": 0.5, "MaxCapacity": 16})
    writer = f"{new_cluster_id}-writer"
    plan = Plan(
        action="db restore",
        steps=[
            f"restore {cluster_id} as of {to_time.isoformat()} into NEW cluster {new_cluster_id} (same subnets, "
            "security groups, KMS key, parameters; the original is untouched)",
            f"create writer instance {writer} (db.serverless): a restored cluster has no instances",
            "wait until both are available, then print how to repoint",
        ],
    )
    if not apply:
        return plan
    rds.restore_db_cluster_to_point_in_time(
        SourceDBClusterIdentifier=cluster_id,
        DBClusterIdentifier=new_cluster_id,
        RestoreToTime=to_time,
        # An Aurora cluster always has a subnet group and a parameter group; ours are encrypted with a CMK.
        DBSubnetGroupName=source["DBSubnetGroup"],
        VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source.get("VpcSecurityGroups", [])],
        KmsKeyId=source["KmsKeyId"],
        DBClusterParameterGroupName=source["DBClusterParameterGroup"],
        EnableIAMDatabaseAuthentication=bool(source.get("IAMDatabaseAuthenticationEnabled")),
        ServerlessV2ScalingConfiguration={"MinCapacity": scaling["MinCapacity"], "MaxCapacity": scaling["MaxCapacity"]},
        CopyTagsToSnapshot=True,
        DeletionProtection=True,
        Tags=[{"Key": "CreatedBy", "Value": "patops"}, {"Key": "RestoredFrom", "Value": cluster_id}],
    )
    rds.create_db_instance(
        DBInstanceIdentifier=writer,
        DBClusterIdentifier=new_cluster_id,
        Engine=source["Engine"],
        DBInstanceClass="db.serverless",
    )

    def ready() -> tuple[bool, str]:
        cluster = describe(rds, new_cluster_id)
        writer_status = instance(rds, writer)["DBInstanceStatus"]
        state = f"cluster {cluster['Status']}, writer {writer_status}"
        return cluster["Status"] == "available" and writer_status == "available", state

    wait_until(ready, timeout_seconds=timeout_seconds, progress=progress, what="restore", sleep=sleep)
    restored = describe(rds, new_cluster_id)
    plan.applied = True
    plan.result = {
        "cluster": new_cluster_id,
        "writer_endpoint": restored.get("Endpoint"),
        "repoint": [
            "compare data in the restored cluster (psql with the owner secret's user and password against its "
            "writer endpoint, from inside the VPC)",
            "to switch: rename the old cluster away and the restored one to its identifier "
            "(aws rds modify-db-cluster --new-db-cluster-identifier ... --apply-immediately), or copy the rows you "
            "need back; the secrets' host fields follow the cluster endpoint name",
        ],
    }
    return plan


def pgbouncer_pools(console_dsn: str) -> list[dict[str, object]]:
    """SHOW POOLS on PgBouncer's admin console (simple query protocol only, hence the client-side cursor)."""

    with psycopg.connect(console_dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        cursor = conn.execute("SHOW POOLS")
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
