"""patops: the on-call runbook CLI for the Pat data platform.

    scripts/patops --env prod status
    scripts/patops --env prod db failover            # prints the plan; add --yes to do it
    scripts/patops --env local migrations info       # against the local environment (make local)

Everything is discovered from the `/pat/<env>/...` SSM parameters the stacks publish. Mutations print what they
would do and act only with --yes. Exit codes: 0 ok, 1 a check failed (or AWS refused), 2 usage / precondition
(nothing was changed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError, ProfileNotFound

from pat_data import contract
from pat_data.cache import CacheSettings, cluster_client, settings_from_secret
from pat_data.cache_auth import CacheAuthRotation
from pat_data.connect import target_from_dsn
from pat_data.contract import Operation
from pat_data.operations import CheckFailedError, OpsError, Plan, all_pages, aws, cache, db
from pat_data.operations.common import Discovery
from pat_data.schema_deploy import run_operation

ENVS = ("dev", "staging", "prod", "local")
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


class Context:
    """Lazily created AWS clients and discovery for one invocation."""

    def __init__(self, args: argparse.Namespace, *, session_factory: Callable[..., Any] | None = None) -> None:
        self.args = args
        self.env: str = args.env
        self._session_factory = session_factory

    @cached_property
    def session(self) -> Any:
        if self.env == "local":
            raise OpsError("this command needs AWS: use --env dev|staging|prod")

        factory = self._session_factory or boto3.Session
        return factory(profile_name=self.args.profile, region_name=self.args.region or "eu-west-1")

    def client(self, service: str, region: str | None = None, *, config: Config | None = None) -> Any:
        return self.session.client(service, region_name=region, config=config)

    @cached_property
    def discovery(self) -> Discovery:
        return Discovery(self.client("ssm"), self.env)

    @property
    def names(self) -> contract.PhysicalNames:
        """Fixed resource names (RDS Proxy, PgBouncer's ECS cluster, alarms): derived, never discovered."""
        return contract.PhysicalNames(self.env)

    def local(self, name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise OpsError(f"--env local needs {name} ({LOCAL_SETTINGS[name]}); run `make local` and export it")
        return value

    def progress(self, status: str) -> None:
        if not self.args.json:
            print(f"  [{datetime.now(UTC):%H:%M:%S}] {status}", file=sys.stderr, flush=True)

    @property
    def cluster_id(self) -> str:
        return self.discovery.get(contract.DB_CLUSTER_IDENTIFIER)


def lambda_operation(ctx: Context, operation: Operation, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
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
    response = ctx.client("lambda", config=MIGRATOR_INVOKE_CONFIG).invoke(
        FunctionName=function,
        Payload=json.dumps(contract.operate_event(operation, arguments)).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise CheckFailedError(f"{function}: {payload.get('errorType')}: {payload.get('errorMessage')}")
    return dict(payload)


def cache_client(ctx: Context) -> Any:

    if ctx.env == "local":
        host, port, password = ctx.local("PAT_LOCAL_CACHE").split(":", 2)
        return cluster_client(CacheSettings(host=host, port=int(port), password=password, tls=False))
    secret = ctx.client("secretsmanager").get_secret_value(SecretId=ctx.discovery.get(contract.CACHE_AUTH_SECRET_ARN))
    return cluster_client(
        settings_from_secret(
            secret["SecretString"],
            host=ctx.discovery.get(contract.CACHE_CONFIGURATION_ENDPOINT),
            port=int(ctx.discovery.get(contract.CACHE_PORT)),
        )
    )


# ---- command implementations (each returns a dict or a Plan) ----


def cmd_status(ctx: Context) -> dict[str, Any]:

    report: dict[str, Any] = {"env": ctx.env}

    def section(name: str, build: Callable[[], Any]) -> None:
        try:
            report[name] = build()
        except (OpsError, CheckFailedError) as exc:
            report[name] = {"unavailable": str(exc)}
        except Exception as exc:  # one broken section must not hide the others at 3 a.m.
            report[name] = {"unavailable": f"{type(exc).__name__}: {exc}"}

    section("database", lambda: db.status(ctx.client("rds"), ctx.cluster_id))
    section("pooler", lambda: cmd_pooler_pools(ctx))
    section("cache", lambda: cache_group(ctx))
    section("alarms_firing", lambda: firing_alarms(ctx))
    section("latest_backup", lambda: latest_backup(ctx))
    section("migrations", lambda: lambda_operation(ctx, Operation.VALIDATE))
    section("partitions", lambda: lambda_operation(ctx, Operation.PARTITIONS_STATUS))
    return report


def cache_group(ctx: Context) -> dict[str, Any]:
    group_id = ctx.discovery.get(contract.CACHE_REPLICATION_GROUP)
    (group,) = all_pages(
        ctx.client("elasticache"), "describe_replication_groups", "ReplicationGroups", ReplicationGroupId=group_id
    )
    return {
        "group": group_id,
        "status": group["Status"],
        "shards": [
            {"shard": g["NodeGroupId"], "status": g.get("Status"), "nodes": len(g.get("NodeGroupMembers", []))}
            for g in group.get("NodeGroups", [])
        ],
    }


def firing_alarms(ctx: Context) -> list[dict[str, Any]]:
    alarms = all_pages(
        ctx.client("cloudwatch"),
        "describe_alarms",
        "MetricAlarms",
        AlarmNamePrefix=ctx.names.alarm_prefix,
        StateValue="ALARM",
    )
    return [
        {"alarm": a["AlarmName"], "since": str(a.get("StateUpdatedTimestamp")), "runbook": a.get("AlarmDescription")}
        for a in alarms
    ]


def latest_backup(ctx: Context) -> dict[str, Any]:
    vault = ctx.discovery.get(contract.OPS_BACKUP_VAULT)
    points = all_pages(
        ctx.client("backup"), "list_recovery_points_by_backup_vault", "RecoveryPoints", BackupVaultName=vault
    )
    done = [p for p in points if p.get("Status") == "COMPLETED"]
    if not done:
        return {"vault": vault, "latest": None}
    newest = max(done, key=lambda p: p["CreationDate"])
    age = datetime.now(UTC) - newest["CreationDate"]
    return {"vault": vault, "latest": str(newest["CreationDate"]), "age_hours": round(age.total_seconds() / 3600, 1)}


def cmd_db(ctx: Context) -> Any:

    args, rds = ctx.args, None if ctx.args.command == "connections" else ctx.client("rds")
    if args.command == "status":
        return db.status(rds, ctx.cluster_id)
    if args.command == "failover":
        return db.failover(rds, ctx.cluster_id, target=args.target, apply=args.yes, progress=ctx.progress)
    if args.command == "scale":
        return db.scale(rds, ctx.cluster_id, min_acu=args.min, max_acu=args.max, apply=args.yes)
    if args.command == "snapshot":
        return db.snapshot(rds, ctx.cluster_id, reason=args.reason, apply=args.yes)
    if args.command == "restore":
        to_time = parse_time(args.to_time)
        new_id = args.new_cluster or f"{ctx.cluster_id}-restore-{to_time:%Y%m%d%H%M}"
        return db.restore_to_time(
            rds, ctx.cluster_id, to_time=to_time, new_cluster_id=new_id, apply=args.yes, progress=ctx.progress
        )
    return lambda_operation(ctx, Operation.CONNECTIONS)


def parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise OpsError(f"--to-time {text!r}: use ISO 8601 with a zone, e.g. 2026-11-22T02:15:00Z") from exc


def cmd_migrations(ctx: Context) -> Any:
    args = ctx.args
    if args.command in ("info", "plan"):
        return lambda_operation(ctx, args.command)
    if args.command == "validate":
        result = lambda_operation(ctx, Operation.VALIDATE)
        if not result.get("valid"):
            raise CheckFailedError("migrations do not validate:\n  - " + "\n  - ".join(result["problems"]), result)
        return result
    if args.command == "repair":
        preview = lambda_operation(ctx, Operation.REPAIR, {"apply": False})
        plan = Plan(action="migrations repair", steps=[f"{a['script']}: {a['action']}" for a in preview["actions"]])
        if not plan.steps:
            plan.steps = ["nothing to repair"]
        elif args.yes:
            plan.applied, plan.result = True, lambda_operation(ctx, Operation.REPAIR, {"apply": True})
        return plan
    plan = Plan(action="migrations baseline", steps=[f"record the database as being at version {args.version}"])
    if args.yes:
        plan.applied, plan.result = True, lambda_operation(ctx, Operation.BASELINE, {"version": args.version})
    return plan


def cmd_partitions(ctx: Context) -> Any:
    if ctx.args.command == "status":
        return lambda_operation(ctx, Operation.PARTITIONS_STATUS)
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


def cmd_cache(ctx: Context) -> Any:

    args = ctx.args
    if args.command == "rotate-auth":
        rotation = CacheAuthRotation(
            ctx.client("elasticache"),
            ctx.client("secretsmanager"),
            ctx.discovery.get(contract.CACHE_REPLICATION_GROUP),
            ctx.discovery.get(contract.CACHE_AUTH_SECRET_ARN),
        )
        return cache.rotate_auth(rotation, step=args.step, apply=args.yes)
    client = cache_client(ctx)
    try:
        if args.command == "stats":
            return cache.stats(client)
        return cache.flush(client, tag=args.tag, everything=args.all, apply=args.yes)
    finally:
        client.close()


def cmd_pooler_pools(ctx: Context) -> Any:

    if ctx.env == "local":
        return {"kind": "pgbouncer", "pools": db.pgbouncer_pools(ctx.local("PAT_LOCAL_PGBOUNCER_CONSOLE"))}
    if ctx.discovery.get(contract.POOLER_KIND) == "rds_proxy":
        return {"kind": "rds_proxy", "targets": aws.proxy_targets(ctx.client("rds"), ctx.names.db_proxy)}
    return {
        "kind": "pgbouncer",
        "service": aws.pgbouncer_service(ctx.client("ecs"), ctx.names.pooler_cluster, contract.POOLER_SERVICE),
    }


def cmd_pooler(ctx: Context) -> Any:

    if ctx.args.command == "pools":
        return cmd_pooler_pools(ctx)
    if ctx.discovery.get(contract.POOLER_KIND) != "pgbouncer":
        raise OpsError(f"{ctx.env} uses RDS Proxy, which has no tasks to restart: see the pooler runbook section")
    return aws.restart_pgbouncer(
        ctx.client("ecs"), ctx.names.pooler_cluster, contract.POOLER_SERVICE, apply=ctx.args.yes
    )


SECRET_KEYS = contract.DB_SECRET_ARNS


def cmd_secrets(ctx: Context) -> Any:

    secret_id = ctx.discovery.get(SECRET_KEYS[ctx.args.name])

    def verify(secret: dict[str, Any]) -> None:
        # The migrator reads the secret when invoked: after the rotation finished, that is the new password.
        result = lambda_operation(ctx, Operation.CHECK_LOGIN, {"role": secret["username"]})
        if not result.get("ok"):
            raise CheckFailedError(f"{result.get('role')}: {result.get('error')}")

    return aws.rotate_secret(
        ctx.client("secretsmanager"),
        secret_id,
        apply=ctx.args.yes,
        verify_login=None if ctx.args.skip_login_check else verify,
        progress=ctx.progress,
    )


def cmd_cdn(ctx: Context) -> Any:

    return aws.invalidate(
        ctx.client("cloudfront"),
        ctx.discovery.get(contract.STORAGE_DISTRIBUTION_ID),
        ctx.args.paths,
        apply=ctx.args.yes,
        now=datetime.now(UTC),
    )


def cmd_backup(ctx: Context) -> Any:

    region = ctx.session.region_name
    account = ctx.client("sts").get_caller_identity()["Account"]
    arns = [
        f"arn:aws:rds:{region}:{account}:cluster:{ctx.cluster_id}",
        f"arn:aws:s3:::{ctx.discovery.get(contract.STORAGE_BUCKET_NAME)}",
    ]
    return aws.verify_backups(ctx.client("backup"), resource_arns=arns, max_age_hours=ctx.args.max_age_hours)


COMMANDS: dict[str, Callable[[Context], Any]] = {
    "status": cmd_status,
    "db": cmd_db,
    "migrations": cmd_migrations,
    "partitions": cmd_partitions,
    "cache": cmd_cache,
    "pooler": cmd_pooler,
    "secrets": cmd_secrets,
    "cdn": cmd_cdn,
    "backup": cmd_backup,
}


class _Subparsers:
    """add_subparsers() whose parsers all accept the global options too."""

    def __init__(self, action: Any, common: argparse.ArgumentParser) -> None:
        self.action, self.common = action, common

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        created = self.action.add_parser(name, parents=[self.common], **kwargs)
        original = created.add_subparsers

        def add_subparsers(**options: Any) -> _Subparsers:
            return _Subparsers(original(**options), self.common)

        created.add_subparsers = add_subparsers
        return created


def parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - the whole command tree, read top to bottom
    def global_options(target: argparse.ArgumentParser, default: Any) -> None:
        """Accepted before the command and after it (`patops db failover --env prod --yes`)."""
        pick = (lambda value: value) if default is None else (lambda _: argparse.SUPPRESS)
        target.add_argument("--env", choices=ENVS, default=pick(None), help="dev|staging|prod, or local (make local)")
        target.add_argument("--profile", default=pick(None), help="AWS profile (default: the credential chain)")
        target.add_argument("--region", default=pick(None), help="AWS region (default: eu-west-1)")
        target.add_argument("--json", action="store_true", default=pick(False), help="machine-readable output")
        target.add_argument("--yes", action="store_true", default=pick(False), help="really do it (else a dry run)")

    common = argparse.ArgumentParser(add_help=False)
    global_options(common, argparse.SUPPRESS)
    root = argparse.ArgumentParser(
        prog="patops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    global_options(root, None)
    groups = _Subparsers(root.add_subparsers(dest="group", required=True), common)
    groups.add_parser("status", help="one screen: database, pooler, cache, alarms, backups, schema")

    database = groups.add_parser("db", help="Aurora").add_subparsers(dest="command", required=True)
    database.add_parser("status")
    failover = database.add_parser("failover", help="promote a reader (lowest promotion tier unless --target)")
    failover.add_argument("--target", help="reader instance to promote")
    scale = database.add_parser("scale", help="temporary ACU range change")
    scale.add_argument("--min", type=float, required=True)
    scale.add_argument("--max", type=float, required=True)
    snap = database.add_parser("snapshot", help="manual, tagged cluster snapshot")
    snap.add_argument("--reason", required=True)
    restore = database.add_parser("restore", help="point-in-time restore into a NEW cluster (+ writer)")
    restore.add_argument("--to-time", required=True, help="ISO 8601 with zone, e.g. 2026-11-22T02:15:00Z")
    restore.add_argument("--new-cluster", help="identifier of the new cluster (default: <cluster>-restore-<time>)")
    database.add_parser("connections", help="who is connected (pg_stat_activity)")

    migrations = groups.add_parser("migrations", help="schema history").add_subparsers(dest="command", required=True)
    for name in ("info", "plan", "validate", "repair"):
        migrations.add_parser(name)
    migrations.add_parser("baseline").add_argument("--version", required=True)

    partitions = groups.add_parser("partitions", help="monthly partitions").add_subparsers(
        dest="command", required=True
    )
    partitions.add_parser("status")
    partitions.add_parser("maintain")

    cache_group_parser = groups.add_parser("cache", help="ElastiCache").add_subparsers(dest="command", required=True)
    cache_group_parser.add_parser("stats")
    flush = cache_group_parser.add_parser("flush")
    flush.add_argument("--tag")
    flush.add_argument("--all", action="store_true")
    rotate = cache_group_parser.add_parser("rotate-auth", help="AUTH token rotation, one step at a time")
    rotate.add_argument("--step", required=True, choices=("begin", "promote", "finish"))

    pooler = groups.add_parser("pooler", help="RDS Proxy / PgBouncer").add_subparsers(dest="command", required=True)
    pooler.add_parser("pools")
    pooler.add_parser("restart")

    secrets = groups.add_parser("secrets", help="Secrets Manager").add_subparsers(dest="command", required=True)
    rotate_secret = secrets.add_parser("rotate")
    rotate_secret.add_argument("name", choices=sorted(SECRET_KEYS))
    rotate_secret.add_argument("--skip-login-check", action="store_true", help="skip logging in with the new password")

    cdn = groups.add_parser("cdn", help="CloudFront").add_subparsers(dest="command", required=True)
    cdn.add_parser("invalidate").add_argument("paths", nargs="+")

    backup_parser = groups.add_parser("backup", help="AWS Backup").add_subparsers(dest="command", required=True)
    backup_parser.add_parser("verify").add_argument("--max-age-hours", type=int, default=26)
    return root


def render(result: Any, *, as_json: bool) -> str:
    if isinstance(result, Plan):
        data: Any = {"action": result.action, "applied": result.applied, "steps": result.steps, "result": result.result}
        if as_json:
            return json.dumps(data, default=str, indent=2)
        head = f"{result.action}: {'DONE' if result.applied else 'DRY RUN (nothing changed; add --yes to do it)'}"
        lines = [head, *(f"  - {step}" for step in result.steps)]
        lines += [f"  {key}: {value}" for key, value in result.result.items()]
        return "\n".join(lines)
    return json.dumps(result, default=str, indent=2)


def main(argv: Sequence[str] | None = None, *, session_factory: Callable[..., Any] | None = None) -> int:
    command_line = parser()
    args = command_line.parse_args(argv)
    if args.env is None:
        command_line.error("--env is required (dev, staging, prod or local)")
    if getattr(args, "command", None) is None:
        args.command = None
    ctx = Context(args, session_factory=session_factory)
    try:
        result = COMMANDS[args.group](ctx)
    except OpsError as exc:
        print(f"patops: {exc}", file=sys.stderr)
        return 2
    except CheckFailedError as exc:
        print(f"patops: check failed: {exc}", file=sys.stderr)
        if exc.report is not None:
            print(render(exc.report, as_json=args.json))
        return 1
    except KeyboardInterrupt:
        print(
            "patops: interrupted; anything already requested continues in AWS (check: patops status)", file=sys.stderr
        )
        return 130
    except Exception as exc:
        if isinstance(exc, NoCredentialsError | NoRegionError | ProfileNotFound):
            print(f"patops: {exc}: set --profile/--region or AWS credentials", file=sys.stderr)
            return 2
        if isinstance(exc, ClientError | BotoCoreError):
            print(f"patops: AWS refused: {exc}", file=sys.stderr)
            return 1
        raise
    print(render(result, as_json=args.json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
