"""Every patops command, registered once in COMMANDS: its place in the command line, its help, its arguments, whether
it changes anything, and the handler that does it (over `pat_data.operations`). scripts/patops.py builds the parser
from this table and dispatches through it; nothing else lists the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from redis.cluster import RedisCluster

from pat_data import contract
from pat_data.cache import CacheSettings, cluster_client, settings_from_secret
from pat_data.cache_auth import CacheAuthRotation
from pat_data.connect import target_from_dsn
from pat_data.contract import Operation
from pat_data.operations import CheckFailedError, Plan, PreconditionError, aws, cache, db, translate
from pat_data.operations.common import Discovery
from pat_data.schema_deploy import run_operation

if TYPE_CHECKING:
    from mypy_boto3_backup import BackupClient
    from mypy_boto3_cloudfront import CloudFrontClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elasticache import ElastiCacheClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

# Any: what the migrator (or `run_operation` locally) answers is JSON whose shape each operation owns
# (pat_data.schema_deploy); patops reads a few fields of it and prints the rest.
Json = dict[str, Any]
Result = Plan | Mapping[str, object]
Handler = Callable[["Context"], Result]
SessionFactory = Callable[..., boto3.Session]

LOCAL_SETTINGS = {
    "PAT_LOCAL_DSN": "owner DSN of the local PostgreSQL (make local prints it)",
    "PAT_LOCAL_PGBOUNCER_CONSOLE": "DSN of the local PgBouncer admin console",
    "PAT_LOCAL_CACHE": "host:port:password of a node of the local Redis cluster",
}
# The migrator function's timeout (the construct sets it from the same contract value).
MIGRATOR_TIMEOUT_SECONDS = contract.MIGRATOR_TIMEOUT_SECONDS
# A synchronous invoke holds the connection open until the function returns: wait longer than it may run, never let
# the SDK send the same (possibly mutating) invocation again, and keep the idle connection alive meanwhile.
MIGRATOR_INVOKE_CONFIG = Config(
    connect_timeout=10,
    read_timeout=MIGRATOR_TIMEOUT_SECONDS + 60,
    retries={"total_max_attempts": 1},
    tcp_keepalive=True,
)
SECRET_KEYS = contract.DB_SECRET_ARNS


class Context:
    """One invocation: its arguments, lazily created typed AWS clients, and discovery."""

    def __init__(self, args: argparse.Namespace, *, session_factory: SessionFactory | None = None) -> None:
        self.args = args
        self.env: str = args.env
        self._session_factory = session_factory

    @cached_property
    def session(self) -> boto3.Session:
        if self.env == "local":
            raise PreconditionError("this command needs AWS: use --env dev|staging|prod")
        factory = self._session_factory or boto3.Session
        return factory(profile_name=self.args.profile, region_name=self.args.region or "eu-west-1")

    # One typed client per service patops calls (boto3-stubs: the service name selects the client type).
    @cached_property
    def backup(self) -> BackupClient:
        return self.session.client("backup")

    @cached_property
    def cloudfront(self) -> CloudFrontClient:
        return self.session.client("cloudfront")

    # Typed once requirements-dev.txt adds the cloudwatch extra (see there); until then the stub import is missing and
    # mypy sees Any here.
    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        return self.session.client("cloudwatch")

    @cached_property
    def ecs(self) -> ECSClient:
        return self.session.client("ecs")

    @cached_property
    def elasticache(self) -> ElastiCacheClient:
        return self.session.client("elasticache")

    @cached_property
    def migrator_client(self) -> LambdaClient:
        return self.session.client("lambda", config=MIGRATOR_INVOKE_CONFIG)

    @cached_property
    def rds(self) -> RDSClient:
        return self.session.client("rds")

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return self.session.client("secretsmanager")

    @cached_property
    def ssm(self) -> SSMClient:
        return self.session.client("ssm")

    @cached_property
    def sts(self) -> STSClient:
        return self.session.client("sts")

    @cached_property
    def discovery(self) -> Discovery:
        return Discovery(self.ssm, self.env)

    @property
    def names(self) -> contract.PhysicalNames:
        """Fixed resource names (RDS Proxy, PgBouncer's ECS cluster, alarms): derived, never discovered."""
        return contract.PhysicalNames(self.env)

    @property
    def cluster_id(self) -> str:
        return self.discovery.get(contract.DB_CLUSTER_IDENTIFIER)

    def local(self, name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise PreconditionError(
                f"--env local needs {name} ({LOCAL_SETTINGS[name]}); run `make local` and export it"
            )
        return value

    def progress(self, status: str) -> None:
        if not self.args.json:
            print(f"  [{datetime.now(UTC):%H:%M:%S}] {status}", file=sys.stderr, flush=True)


def lambda_operation(ctx: Context, operation: Operation, arguments: Mapping[str, object] | None = None) -> Json:
    """Database operations run inside the VPC, in the migrator Lambda: neither the writer nor the pooler is reachable
    from an on-call laptop. `--env local` runs the same `run_operation` against the local services."""
    if ctx.env == "local":
        root = Path(__file__).resolve().parents[1]
        return run_operation(
            target_from_dsn(ctx.local("PAT_LOCAL_DSN")),
            operation,
            arguments or {},
            migrations_dir=root / "schema" / "migrations",
            partitions_file=root / "schema" / "partitions.toml",
            env=os.environ.get("PAT_LOCAL_PARTITION_ENV", "dev"),
        )
    function = ctx.discovery.get(contract.SCHEMA_MIGRATOR_FUNCTION)
    ctx.progress(f"{operation}: invoking {function} (it may run up to {MIGRATOR_TIMEOUT_SECONDS // 60} minutes)")
    response = ctx.migrator_client.invoke(
        FunctionName=function,
        Payload=json.dumps(contract.operate_event(operation, arguments)).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise CheckFailedError(f"{function}: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return dict(payload)


def cache_client(ctx: Context) -> RedisCluster:
    if ctx.env == "local":
        host, _, rest = ctx.local("PAT_LOCAL_CACHE").partition(":")
        port, _, password = rest.partition(":")
        if not (host and port.isdigit()):
            raise PreconditionError(f"PAT_LOCAL_CACHE: expected {LOCAL_SETTINGS['PAT_LOCAL_CACHE']}")
        return cluster_client(CacheSettings(host=host, port=int(port), password=password, tls=False))
    secret = ctx.secretsmanager.get_secret_value(SecretId=ctx.discovery.get(contract.CACHE_AUTH_SECRET_ARN))
    return cluster_client(
        settings_from_secret(
            secret["SecretString"],
            host=ctx.discovery.get(contract.CACHE_CONFIGURATION_ENDPOINT),
            port=int(ctx.discovery.get(contract.CACHE_PORT)),
        )
    )


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PreconditionError(f"--to-time {text!r}: use ISO 8601 with a zone, e.g. 2026-11-22T02:15:00Z") from exc


def status(ctx: Context) -> Result:
    report: dict[str, object] = {"env": ctx.env}

    def section(name: str, build: Callable[[], object]) -> None:
        try:
            report[name] = build()
        except Exception as exc:  # one broken section must not hide the others at 3 a.m.
            known = translate(exc)
            report[name] = {"unavailable": str(known) if known else f"{type(exc).__name__}: {exc}"}

    section("database", lambda: db.status(ctx.rds, ctx.cluster_id))
    section("pooler", lambda: pooler_pools(ctx))
    section("cache", lambda: cache_group(ctx))
    section("alarms_firing", lambda: firing_alarms(ctx))
    section("latest_backup", lambda: latest_backup(ctx))
    section("migrations", lambda: lambda_operation(ctx, Operation.VALIDATE))
    section("partitions", lambda: lambda_operation(ctx, Operation.PARTITIONS_STATUS))
    return report


def cache_group(ctx: Context) -> dict[str, object]:
    group_id = ctx.discovery.get(contract.CACHE_REPLICATION_GROUP)
    pages = ctx.elasticache.get_paginator("describe_replication_groups").paginate(ReplicationGroupId=group_id)
    (group,) = [group for page in pages for group in page.get("ReplicationGroups", [])]
    return {
        "group": group_id,
        "status": group["Status"],
        "shards": [
            {"shard": g["NodeGroupId"], "status": g.get("Status"), "nodes": len(g.get("NodeGroupMembers", []))}
            for g in group.get("NodeGroups", [])
        ],
    }


def firing_alarms(ctx: Context) -> list[dict[str, object]]:
    pages = ctx.cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=ctx.names.alarm_prefix, StateValue="ALARM"
    )
    return [
        {"alarm": a["AlarmName"], "since": str(a.get("StateUpdatedTimestamp")), "runbook": a.get("AlarmDescription")}
        for page in pages
        for a in page.get("MetricAlarms", [])
    ]


def latest_backup(ctx: Context) -> dict[str, object]:
    vault = ctx.discovery.get(contract.OPS_BACKUP_VAULT)
    pages = ctx.backup.get_paginator("list_recovery_points_by_backup_vault").paginate(BackupVaultName=vault)
    done = [p for page in pages for p in page.get("RecoveryPoints", []) if p.get("Status") == "COMPLETED"]
    if not done:
        return {"vault": vault, "latest": None}
    newest = max(p["CreationDate"] for p in done)
    age = datetime.now(UTC) - newest
    return {"vault": vault, "latest": str(newest), "age_hours": round(age.total_seconds() / 3600, 1)}


def db_status(ctx: Context) -> Result:
    return db.status(ctx.rds, ctx.cluster_id)


def db_failover(ctx: Context) -> Result:
    return db.failover(ctx.rds, ctx.cluster_id, target=ctx.args.target, apply=ctx.args.yes, progress=ctx.progress)


def db_scale(ctx: Context) -> Result:
    return db.scale(ctx.rds, ctx.cluster_id, min_acu=ctx.args.min, max_acu=ctx.args.max, apply=ctx.args.yes)


def db_snapshot(ctx: Context) -> Result:
    return db.snapshot(ctx.rds, ctx.cluster_id, reason=ctx.args.reason, apply=ctx.args.yes)


def db_restore(ctx: Context) -> Result:
    to_time = parse_time(ctx.args.to_time)
    new_id = ctx.args.new_cluster or f"{ctx.cluster_id}-restore-{to_time:%Y%m%d%H%M}"
    return db.restore_to_time(
        ctx.rds, ctx.cluster_id, to_time=to_time, new_cluster_id=new_id, apply=ctx.args.yes, progress=ctx.progress
    )


def db_connections(ctx: Context) -> Result:
    return lambda_operation(ctx, Operation.CONNECTIONS)


def migrations_info(ctx: Context) -> Result:
    return lambda_operation(ctx, Operation.INFO)


def migrations_plan(ctx: Context) -> Result:
    return lambda_operation(ctx, Operation.PLAN)


def migrations_validate(ctx: Context) -> Result:
    result = lambda_operation(ctx, Operation.VALIDATE)
    if not result.get("valid"):
        raise CheckFailedError("migrations do not validate: " + "; ".join(result["problems"]), result)
    return result


def migrations_repair(ctx: Context) -> Result:
    preview = lambda_operation(ctx, Operation.REPAIR, {"apply": False})
    plan = Plan(action="migrations repair", steps=[f"{a['script']}: {a['action']}" for a in preview["actions"]])
    if not plan.steps:
        plan.steps = ["nothing to repair"]
    elif ctx.args.yes:
        plan.applied, plan.result = True, lambda_operation(ctx, Operation.REPAIR, {"apply": True})
    return plan


def migrations_baseline(ctx: Context) -> Result:
    version = ctx.args.version
    plan = Plan(action="migrations baseline", steps=[f"record the database as being at version {version}"])
    if ctx.args.yes:
        plan.applied, plan.result = True, lambda_operation(ctx, Operation.BASELINE, {"version": version})
    return plan


def partitions_status(ctx: Context) -> Result:
    return lambda_operation(ctx, Operation.PARTITIONS_STATUS)


def partitions_maintain(ctx: Context) -> Result:
    status = lambda_operation(ctx, Operation.PARTITIONS_STATUS)
    plan = Plan(
        action="partitions maintain",
        steps=[
            "create missing monthly partitions up to premake, retire expired months (drop or detach per config)",
            f"now: min future partitions {status['min_future_partitions']}, default rows {status['default_rows']}",
        ],
    )
    if ctx.args.yes:
        plan.applied, plan.result = True, lambda_operation(ctx, Operation.PARTITIONS_MAINTAIN)
    return plan


def with_cache(operation: Callable[[Context, RedisCluster], Result]) -> Handler:
    """A handler that talks to the cache itself, closing the client however it ends."""

    def handler(ctx: Context) -> Result:
        client = cache_client(ctx)
        try:
            return operation(ctx, client)
        finally:
            client.close()

    return handler


def cache_stats(_: Context, client: RedisCluster) -> Result:
    return cache.stats(client)


def cache_flush(ctx: Context, client: RedisCluster) -> Result:
    return cache.flush(client, tag=ctx.args.tag, everything=ctx.args.all, apply=ctx.args.yes)


def cache_rotate_auth(ctx: Context) -> Result:
    rotation = CacheAuthRotation(
        ctx.elasticache,
        ctx.secretsmanager,
        ctx.discovery.get(contract.CACHE_REPLICATION_GROUP),
        ctx.discovery.get(contract.CACHE_AUTH_SECRET_ARN),
    )
    return cache.rotate_auth(rotation, step=ctx.args.step, apply=ctx.args.yes)


def pooler_pools(ctx: Context) -> dict[str, object]:
    if ctx.env == "local":
        return {"kind": "pgbouncer", "pools": db.pgbouncer_pools(ctx.local("PAT_LOCAL_PGBOUNCER_CONSOLE"))}
    if ctx.discovery.get(contract.POOLER_KIND) == "rds_proxy":
        return {"kind": "rds_proxy", "targets": aws.proxy_targets(ctx.rds, ctx.names.db_proxy)}
    return {
        "kind": "pgbouncer",
        "service": aws.pgbouncer_service(ctx.ecs, ctx.names.pooler_cluster, contract.POOLER_SERVICE),
    }


def pooler_restart(ctx: Context) -> Result:
    if ctx.discovery.get(contract.POOLER_KIND) != "pgbouncer":
        raise PreconditionError(
            f"{ctx.env} uses RDS Proxy, which has no tasks to restart: see the pooler runbook section"
        )
    return aws.restart_pgbouncer(ctx.ecs, ctx.names.pooler_cluster, contract.POOLER_SERVICE, apply=ctx.args.yes)


def secrets_rotate(ctx: Context) -> Result:
    secret_id = ctx.discovery.get(SECRET_KEYS[ctx.args.name])

    def verify(secret: Mapping[str, object]) -> None:
        # The migrator reads the secret when invoked: after the rotation finished, that is the new password.
        result = lambda_operation(ctx, Operation.CHECK_LOGIN, {"role": secret["username"]})
        if not result.get("ok"):
            raise CheckFailedError(f"{result.get('role')}: {result.get('error')}")

    return aws.rotate_secret(
        ctx.secretsmanager,
        secret_id,
        apply=ctx.args.yes,
        verify_login=None if ctx.args.skip_login_check else verify,
        progress=ctx.progress,
    )


def cdn_invalidate(ctx: Context) -> Result:
    return aws.invalidate(
        ctx.cloudfront,
        ctx.discovery.get(contract.STORAGE_DISTRIBUTION_ID),
        ctx.args.paths,
        apply=ctx.args.yes,
        now=datetime.now(UTC),
    )


def backup_verify(ctx: Context) -> Result:
    region = ctx.session.region_name
    account = ctx.sts.get_caller_identity()["Account"]
    arns = [
        f"arn:aws:rds:{region}:{account}:cluster:{ctx.cluster_id}",
        f"arn:aws:s3:::{ctx.discovery.get(contract.STORAGE_BUCKET_NAME)}",
    ]
    return aws.verify_backups(ctx.backup, resource_arns=arns, max_age_hours=ctx.args.max_age_hours)


@dataclass(frozen=True)
class Argument:
    """One argument of a command: an option (`--name`), a flag (`--name`, no value) or a positional."""

    name: str
    help: str | None = None
    type: Callable[[str], object] = str
    required: bool = False
    default: object = None
    choices: Sequence[str] | None = None
    flag: bool = False
    nargs: str | None = None

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.flag:
            parser.add_argument(self.name, action="store_true", help=self.help)
        elif self.name.startswith("-"):
            parser.add_argument(
                self.name,
                type=self.type,
                required=self.required,
                default=self.default,
                choices=self.choices,
                help=self.help,
            )
        else:
            parser.add_argument(self.name, nargs=self.nargs, choices=self.choices, help=self.help)


@dataclass(frozen=True)
class Command:
    """`patops <group> [<name>]`: `mutates` commands print their plan and act only with --yes."""

    group: str
    name: str | None
    help: str
    handler: Handler
    arguments: tuple[Argument, ...] = field(default=())
    mutates: bool = False

    @property
    def words(self) -> str:
        return f"{self.group} {self.name}" if self.name else self.group

    @property
    def summary(self) -> str:
        return f"{self.help} [dry run unless --yes]" if self.mutates else self.help


# The help of each group (`patops <group> --help` lists its commands).
GROUPS = {
    "status": "one screen: database, pooler, cache, alarms, backups, schema",
    "db": "Aurora",
    "migrations": "schema history",
    "partitions": "monthly partitions",
    "cache": "ElastiCache",
    "pooler": "RDS Proxy / PgBouncer",
    "secrets": "Secrets Manager",
    "cdn": "CloudFront",
    "backup": "AWS Backup",
}

COMMANDS: tuple[Command, ...] = (
    Command("status", None, GROUPS["status"], status),
    Command("db", "status", "cluster, instances, capacity range, endpoints", db_status),
    Command(
        "db",
        "failover",
        "promote a reader (lowest promotion tier unless --target)",
        db_failover,
        (Argument("--target", "reader instance to promote"),),
        mutates=True,
    ),
    Command(
        "db",
        "scale",
        "temporary ACU range change",
        db_scale,
        (Argument("--min", type=float, required=True), Argument("--max", type=float, required=True)),
        mutates=True,
    ),
    Command(
        "db",
        "snapshot",
        "manual, tagged cluster snapshot",
        db_snapshot,
        (Argument("--reason", "stored as a tag on the snapshot", required=True),),
        mutates=True,
    ),
    Command(
        "db",
        "restore",
        "point-in-time restore into a NEW cluster (+ writer)",
        db_restore,
        (
            Argument("--to-time", "ISO 8601 with zone, e.g. 2026-11-22T02:15:00Z", required=True),
            Argument("--new-cluster", "identifier of the new cluster (default: <cluster>-restore-<time>)"),
        ),
        mutates=True,
    ),
    Command("db", "connections", "who is connected (pg_stat_activity, asked inside the VPC)", db_connections),
    Command("migrations", "info", "applied and pending migrations", migrations_info),
    Command("migrations", "plan", "what the next deploy would apply", migrations_plan),
    Command(
        "migrations", "validate", "applied files unchanged, nothing failed (exit 1 lists problems)", migrations_validate
    ),
    Command(
        "migrations", "repair", "remove failed rows, realign checksums with the files", migrations_repair, mutates=True
    ),
    Command(
        "migrations",
        "baseline",
        "mark an existing database (empty history) as at --version",
        migrations_baseline,
        (Argument("--version", required=True),),
        mutates=True,
    ),
    Command("partitions", "status", "future months per table, rows in DEFAULT partitions", partitions_status),
    Command("partitions", "maintain", "premake and retire monthly partitions", partitions_maintain, mutates=True),
    Command("cache", "stats", "hit rate, memory, evictions and clients per shard", with_cache(cache_stats)),
    Command(
        "cache",
        "flush",
        "delete the values of one tag, or everything",
        with_cache(cache_flush),
        (Argument("--tag", "the tag whose values to delete"), Argument("--all", "FLUSHALL every primary", flag=True)),
        mutates=True,
    ),
    Command(
        "cache",
        "rotate-auth",
        "AUTH token rotation, one step at a time",
        cache_rotate_auth,
        (Argument("--step", required=True, choices=("begin", "promote", "finish")),),
        mutates=True,
    ),
    Command("pooler", "pools", "RDS Proxy target health or PgBouncer tasks (local: SHOW POOLS)", pooler_pools),
    Command("pooler", "restart", "rolling restart of the PgBouncer tasks", pooler_restart, mutates=True),
    Command(
        "secrets",
        "rotate",
        "rotate a database secret now, then log in with the new password",
        secrets_rotate,
        (
            Argument("name", choices=sorted(SECRET_KEYS)),
            Argument("--skip-login-check", "skip logging in with the new password", flag=True),
        ),
        mutates=True,
    ),
    Command(
        "cdn",
        "invalidate",
        "invalidate paths on the attachments distribution",
        cdn_invalidate,
        (Argument("paths", "paths starting with /, e.g. /tenants/<id>/*", nargs="+"),),
        mutates=True,
    ),
    Command(
        "backup",
        "verify",
        "a fresh completed recovery point per resource (exit 1 names the stale ones)",
        backup_verify,
        (Argument("--max-age-hours", type=int, default=26),),
    ),
)
