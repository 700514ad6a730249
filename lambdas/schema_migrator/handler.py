"""Schema migrator: the CDK Provider's onEvent handler at deploy time, and the daily partition maintenance job.

Thin on purpose: parse the event, read the secrets, call pat_data.schema_deploy, shape the response and metrics.
Create/Update migrate forward. When an Update fails, CloudFormation rolls the resource back by sending Update with
the OLD properties while this function still runs the NEW bundle: a request whose schema hash is not the one this
bundle holds is answered with success without touching the database (content hashes have no order, so "differs"
is the rule, not "older"). Delete never touches the database.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3

from pat_data import contract
from pat_data.connect import Target, target_from_secret
from pat_data.contract import SchemaMetric as Metric
from pat_data.schema_deploy import (
    LoginSecret,
    deploy_schema,
    emf_metrics,
    maintain_partitions,
    run_operation,
    wait_for_writer,
)

if TYPE_CHECKING:  # boto3-stubs: types only, nothing extra in the Lambda bundle
    from mypy_boto3_secretsmanager import SecretsManagerClient

BUNDLE_ROOT = Path(__file__).resolve().parents[2]
# Leave this much of the Lambda timeout to report a clean error instead of being killed mid-file.
SAFETY_MARGIN_SECONDS = 45

logger = logging.getLogger()
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))


class LambdaContext(Protocol):
    """What the handler reads from the Lambda context object: the time left before the function is stopped."""

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Settings:
    env: str
    owner_secret_arn: str
    login_secret_arns: dict[str, str]
    sslmode: str
    sslrootcert: str | None
    out_of_order: bool
    root: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        missing = [key for key in (contract.ENV_NAME, contract.ENV_OWNER_SECRET_ARN) if not environ.get(key)]
        if missing:
            raise RuntimeError(f"schema migrator misconfigured: environment variable(s) {', '.join(missing)} not set")
        root = Path(environ.get("PAT_BUNDLE_ROOT", str(BUNDLE_ROOT)))
        # The CA bundle ships in the asset: a relative path is relative to the bundle root.
        rootcert = environ.get(contract.ENV_DB_SSLROOTCERT) or None
        return cls(
            env=environ[contract.ENV_NAME],
            owner_secret_arn=environ[contract.ENV_OWNER_SECRET_ARN],
            login_secret_arns=json.loads(environ.get(contract.ENV_LOGIN_SECRET_ARNS, "{}")),
            sslmode=environ.get(contract.ENV_DB_SSLMODE, "verify-full"),
            sslrootcert=str(root / rootcert) if rootcert else None,
            out_of_order=environ.get("OUT_OF_ORDER", "false") == "true",
            root=root,
        )


def _secret(client: Any, arn: str) -> dict[str, Any]:
    return dict(json.loads(client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]))


def _login_secret(client: SecretsManagerClient, arn: str) -> LoginSecret:
    """A login secret's AWSCURRENT password and whether a rotation is in progress (an AWSPENDING version other than
    AWSCURRENT's). AWSPENDING is read first: a finishSecret between the two reads then shows as the new password with
    no rotation, never as the old password with no rotation. Only GetSecretValue, the one action the role has."""
    try:
        pending = client.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["VersionId"]
    except client.exceptions.ResourceNotFoundException:  # no AWSPENDING label on any version
        pending = None
    current = client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    password = str(json.loads(current["SecretString"])["password"])
    return LoginSecret(password=password, rotating=pending is not None and pending != current["VersionId"])


def _owner_target(client: Any, settings: Settings) -> Target:
    return target_from_secret(
        _secret(client, settings.owner_secret_arn),
        sslmode=settings.sslmode,
        sslrootcert=settings.sslrootcert,
        application_name="pat-migrator",
    )


def _emit(settings: Settings, metrics: Mapping[contract.SchemaMetric, float]) -> None:
    # One JSON line on stdout: CloudWatch turns Embedded Metric Format documents into metrics.
    print(json.dumps(emf_metrics(settings.env, metrics)))


def _deadline(context: LambdaContext) -> float:
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS


def on_event(event: Mapping[str, Any], settings: Settings, deadline: float, client: Any) -> dict[str, Any]:
    request = event["RequestType"]
    physical_id = event.get("PhysicalResourceId") or contract.PhysicalNames(settings.env).schema_resource
    if request == "Delete":
        logger.info("delete: the schema and its data are never dropped by CloudFormation", extra={"id": physical_id})
        return {"PhysicalResourceId": physical_id}
    properties = event.get("ResourceProperties", {})
    requested = properties.get(contract.PROP_SCHEMA_HASH)
    bundled = contract.schema_hash(settings.root)
    logger.info(
        "schema deploy",
        extra={
            "request": request,
            "schema_hash": requested,
            "engine_hash": properties.get(contract.PROP_ENGINE_HASH),
            "bundle_schema_hash": bundled,
        },
    )
    if request == "Update" and requested != bundled:
        return _not_this_bundle(physical_id, requested, bundled)
    try:
        owner = _owner_target(client, settings)
        arns = settings.login_secret_arns
        logins = {role: _secret(client, arn)["password"] for role, arn in arns.items()}
        result = deploy_schema(
            owner,
            migrations_dir=settings.root / "schema" / "migrations",
            partitions_file=settings.root / "schema" / "partitions.toml",
            env=settings.env,
            logins=logins,
            deadline=deadline,
            out_of_order=settings.out_of_order,
            read_secret=lambda role: _login_secret(client, arns[role]),
        )
    except Exception:
        _emit(settings, {Metric.MIGRATION_FAILURES: 1})
        logger.exception("schema deploy failed")
        raise
    report = result.partitions
    _emit(
        settings,
        {
            Metric.MIGRATION_FAILURES: 0,
            Metric.MIGRATIONS_APPLIED: len(result.migrate.applied),
            Metric.FUTURE_PARTITIONS_MIN: report.min_future_partitions,
            Metric.DEFAULT_PARTITION_ROWS: report.total_default_rows,
        },
    )
    for warning in report.warnings:
        logger.warning(warning)
    return {
        "PhysicalResourceId": physical_id,
        "Data": {
            "AppliedVersions": ",".join(result.migrate.applied) or "none",
            "CurrentVersion": result.migrate.current_version or "none",
            "IgnoredFutureVersions": ",".join(result.migrate.future) or "none",
            "EngineVersion": result.engine_version,
            "LoginPasswordsSet": ",".join(result.passwords_set) or "none",
            "LoginRotationsInProgress": ",".join(result.passwords_rotating) or "none",
        },
    }


def _not_this_bundle(physical_id: str, requested: object, bundled: str) -> dict[str, Any]:
    """A rollback (or any Update for a schema this bundle does not hold): succeed, change nothing, say so.

    Re-running the bundle's own migrations here would repeat the very failure being rolled back and leave the stack
    in UPDATE_ROLLBACK_FAILED; the database keeps what the failed Update committed (see docs/deploy.md).
    """
    logger.warning(
        "update for a schema this bundle does not hold (a rollback): database left untouched",
        extra={"requested_schema_hash": requested, "bundle_schema_hash": bundled},
    )
    skipped = "unchanged: rollback to another schema bundle, see docs/deploy.md"
    return {
        "PhysicalResourceId": physical_id,
        "Data": {
            "AppliedVersions": "none",
            "CurrentVersion": skipped,
            "IgnoredFutureVersions": "none",
            "EngineVersion": "unchanged",
            "LoginPasswordsSet": "none",
            "LoginRotationsInProgress": "none",
            "Skipped": "true",
        },
    }


def maintain(settings: Settings, deadline: float, client: Any) -> dict[str, Any]:
    try:
        report = maintain_partitions(
            _owner_target(client, settings),
            partitions_file=settings.root / "schema" / "partitions.toml",
            env=settings.env,
            deadline=deadline,
        )
    except Exception:
        _emit(settings, {Metric.MAINTENANCE_FAILURES: 1})
        logger.exception("partition maintenance failed")
        raise
    _emit(
        settings,
        {
            Metric.MAINTENANCE_FAILURES: 0,
            Metric.FUTURE_PARTITIONS_MIN: report.min_future_partitions,
            Metric.DEFAULT_PARTITION_ROWS: report.total_default_rows,
        },
    )
    for warning in report.warnings:
        logger.warning(warning)
    return {
        "created": report.created,
        "dropped": report.dropped,
        "detached": report.detached,
        "min_future_partitions": report.min_future_partitions,
        "default_rows": report.default_rows,
    }


def operate(event: Mapping[str, Any], settings: Settings, deadline: float, client: Any) -> dict[str, Any]:
    """On-call operations (`patops migrations ...`, `patops db connections`, the login check of `patops secrets
    rotate`): the same engine, from inside the VPC, so on-call never needs a network path to the writer."""
    owner = _owner_target(client, settings)
    wait_for_writer(owner, deadline=deadline)
    operation = str(event[contract.EVENT_OPERATION])
    # Read on every invocation (never cached across warm starts): a login check must test the CURRENT password.
    logins = (
        {role: _secret(client, arn)["password"] for role, arn in settings.login_secret_arns.items()}
        if operation == contract.Operation.CHECK_LOGIN
        else None
    )
    return run_operation(
        owner,
        operation,
        dict(event.get(contract.EVENT_ARGUMENTS, {})),
        migrations_dir=settings.root / "schema" / "migrations",
        partitions_file=settings.root / "schema" / "partitions.toml",
        env=settings.env,
        logins=logins,
    )


def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_environ(os.environ)
    client = boto3.client("secretsmanager")
    deadline = _deadline(context)
    if "RequestType" in event:
        return on_event(event, settings, deadline, client)
    if event.get(contract.EVENT_ACTION) == contract.ACTION_MAINTAIN or event.get("detail-type") == "Scheduled Event":
        return maintain(settings, deadline, client)
    if event.get(contract.EVENT_ACTION) == contract.ACTION_OPERATE:
        return operate(event, settings, deadline, client)
    raise ValueError('unrecognised event: expected a CloudFormation custom resource event or {"action": "maintain"}')
