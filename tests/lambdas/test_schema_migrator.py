"""The schema migrator handler end to end: CloudFormation events and the schedule against a real PostgreSQL, with
the owner and login secrets in moto's Secrets Manager."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql

from lambdas.schema_migrator import handler as migrator
from pat_data import contract
from pat_data.connect import target_from_dsn
from pat_data.local import LocalPostgres, create_owner_database
from pat_data.migrations import MigrationFailedError
from pat_data.schema_deploy import WriterUnavailableError, wait_for_writer

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = sorted(p.name[1:4] for p in (ROOT / "schema" / "migrations").glob("V*.sql"))
ALL = ",".join(VERSIONS)
FUTURE = ",".join(VERSIONS[4:])  # what a bundle that knew only V001-V004 ignores
NEXT = f"{int(VERSIONS[-1]) + 1:03d}"
_databases = itertools.count(1)


class LambdaContext:
    """The two things the handler reads from the Lambda context object."""

    function_name = "pat-test-schema-migrator"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Deployment:
    postgres: LocalPostgres
    dbname: str
    app_password: str
    bundle: Path

    def event(self, request: str, **hashes: str) -> dict[str, Any]:
        return cfn_event(request, self.bundle, **hashes)

    def history(self) -> list[tuple[str, bool]]:
        with psycopg.connect(self.postgres.dsn(dbname=self.dbname)) as conn:
            rows = conn.execute("SELECT version, success FROM public.flyway_schema_history ORDER BY installed_rank")
            return [(str(v), bool(ok)) for v, ok in rows.fetchall()]


def properties(schema_hash: str) -> dict[str, str]:
    return {
        contract.PROP_SCHEMA_HASH: schema_hash,
        contract.PROP_ENGINE_HASH: "engine-1",
        contract.PROP_ENVIRONMENT: "dev",
    }


def cfn_event(
    request: str, bundle: Path, *, schema_hash: str | None = None, old_hash: str | None = None
) -> dict[str, Any]:
    """A CloudFormation event; by default it asks for exactly the schema the bundle holds (a normal deploy)."""
    event: dict[str, Any] = {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:provider",
        "ResponseURL": "https://example.invalid/response",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/Pat-dev-Schema/1",
        "RequestId": "request-1",
        "LogicalResourceId": "Schema",
        "ResourceType": "Custom::PatSchema",
        "ResourceProperties": properties(schema_hash or contract.schema_hash(bundle)),
    }
    if request != "Create":
        event["PhysicalResourceId"] = "pat-schema-dev"
    if old_hash:
        event["OldResourceProperties"] = properties(old_hash)
    return event


@pytest.fixture
def deployment(lambda_postgres: LocalPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    dbname = f"pat_lambda_{next(_databases)}"
    owner = target_from_dsn(create_owner_database(lambda_postgres, dbname=dbname))
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "schema", bundle / "schema")
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")

        def secret(name: str, username: str, password: str) -> str:
            value = {"engine": "postgres", "host": owner.host, "port": owner.port, "dbname": dbname,
                     "username": username, "password": password}  # fmt: skip
            return str(client.create_secret(Name=f"{name}-{dbname}", SecretString=json.dumps(value))["ARN"])

        app_password = f"app-{dbname}-from-secrets-manager"
        environ = {
            "AWS_DEFAULT_REGION": "eu-west-1",
            "ENV_NAME": "dev",
            "OWNER_SECRET_ARN": secret("owner", owner.user, owner.password or ""),
            "LOGIN_SECRET_ARNS": json.dumps(
                {
                    "pat_app": secret("app", "pat_app", app_password),
                    "pat_readonly": secret("ro", "pat_readonly", "ro-pw"),
                }
            ),
            "DB_SSLMODE": "disable",
            "PAT_BUNDLE_ROOT": str(bundle),
        }
        for key, value in environ.items():
            monkeypatch.setenv(key, value)
        yield Deployment(lambda_postgres, dbname, app_password, bundle)


def emf_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def test_create_applies_everything_sets_login_passwords_and_publishes_metrics(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    response = migrator.handler(deployment.event("Create"), LambdaContext())
    assert response["PhysicalResourceId"] == "pat-schema-dev"
    assert response["Data"]["AppliedVersions"] == ALL
    assert response["Data"]["CurrentVersion"] == VERSIONS[-1]
    assert response["Data"]["LoginPasswordsSet"] == "pat_app,pat_readonly"
    app_dsn = deployment.postgres.dsn("pat_app", deployment.app_password, deployment.dbname)
    with psycopg.connect(app_dsn) as conn:  # the password from Secrets Manager now logs in
        assert conn.execute("SELECT current_user").fetchone() == ("pat_app",)
    metrics = emf_lines(capsys.readouterr().out)
    assert metrics[-1]["MigrationFailures"] == 0
    assert metrics[-1]["FuturePartitionsMin"] == 12
    assert metrics[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Pat/Schema"

    again = migrator.handler(deployment.event("Update", old_hash="hash-1"), LambdaContext())
    assert again["Data"]["AppliedVersions"] == "none"
    assert again["Data"]["LoginPasswordsSet"] == "none"  # already matching: rotation is never fought


def test_a_rotation_in_progress_is_not_fought_and_a_finished_one_is_kept(deployment: Deployment) -> None:
    """Secrets Manager's single-user rotation, step by step with moto's staging labels, and a deploy in each window.

    Between setSecret and finishSecret the database holds AWSPENDING while AWSCURRENT is still the old password:
    a deploy that reset the role to AWSCURRENT there would make testSecret fail (or, after it, leave the database on
    the old password once finishSecret moved AWSCURRENT)."""
    migrator.handler(deployment.event("Create"), LambdaContext())
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = json.loads(os.environ["LOGIN_SECRET_ARNS"])["pat_app"]
    current = client.get_secret_value(SecretId=arn)
    new_password = f"rotated-{deployment.dbname}"
    secret = {**json.loads(current["SecretString"]), "password": new_password}
    # createSecret: the new password as AWSPENDING; AWSCURRENT still the old one.
    pending = client.put_secret_value(SecretId=arn, SecretString=json.dumps(secret), VersionStages=["AWSPENDING"])[
        "VersionId"
    ]
    deploy = migrator.handler(deployment.event("Update", old_hash="hash-1"), LambdaContext())
    assert (deploy["Data"]["LoginPasswordsSet"], deploy["Data"]["LoginRotationsInProgress"]) == ("none", "none")
    # setSecret: the rotation logs in as pat_app and sets the pending password.
    dsn = deployment.postgres.dsn("pat_app", deployment.app_password, deployment.dbname)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER USER pat_app WITH PASSWORD {}").format(sql.Literal(new_password)))

    deploy = migrator.handler(deployment.event("Update", old_hash="hash-2"), LambdaContext())
    assert (deploy["Data"]["LoginPasswordsSet"], deploy["Data"]["LoginRotationsInProgress"]) == ("none", "pat_app")
    pending_dsn = deployment.postgres.dsn("pat_app", new_password, deployment.dbname)
    with psycopg.connect(pending_dsn) as conn:  # testSecret: the pending password still logs in
        conn.execute("SELECT NOW()")

    # finishSecret: AWSCURRENT moves to the pending version (which keeps its AWSPENDING label here).
    client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=pending, RemoveFromVersionId=current["VersionId"]
    )
    deploy = migrator.handler(deployment.event("Update", old_hash="hash-3"), LambdaContext())
    assert (deploy["Data"]["LoginPasswordsSet"], deploy["Data"]["LoginRotationsInProgress"]) == ("none", "none")
    with psycopg.connect(pending_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("pat_app",)


def test_a_failed_rotation_that_never_set_the_password_leaves_the_role_to_on_call(deployment: Deployment) -> None:
    """A stale AWSPENDING (a rotation failed before setSecret) while the role's password matches neither version:
    the deploy still does not reset it, and says so; once the rotation is finished or its AWSPENDING label removed,
    the next deploy aligns the role with AWSCURRENT."""
    migrator.handler(deployment.event("Create"), LambdaContext())
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = json.loads(os.environ["LOGIN_SECRET_ARNS"])["pat_app"]
    secret = json.loads(client.get_secret_value(SecretId=arn)["SecretString"])
    pending = client.put_secret_value(
        SecretId=arn, SecretString=json.dumps({**secret, "password": "never-set"}), VersionStages=["AWSPENDING"]
    )["VersionId"]
    with psycopg.connect(deployment.postgres.dsn(dbname=deployment.dbname), autocommit=True) as conn:
        conn.execute("ALTER ROLE pat_app PASSWORD NULL")  # drifted: matches no version of the secret

    deploy = migrator.handler(deployment.event("Update", old_hash="hash-1"), LambdaContext())
    assert (deploy["Data"]["LoginPasswordsSet"], deploy["Data"]["LoginRotationsInProgress"]) == ("none", "pat_app")
    client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=pending)
    deploy = migrator.handler(deployment.event("Update", old_hash="hash-2"), LambdaContext())
    assert (deploy["Data"]["LoginPasswordsSet"], deploy["Data"]["LoginRotationsInProgress"]) == ("pat_app", "none")
    app_dsn = deployment.postgres.dsn("pat_app", deployment.app_password, deployment.dbname)
    with psycopg.connect(app_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("pat_app",)


def test_delete_never_touches_the_database(deployment: Deployment) -> None:
    migrator.handler(deployment.event("Create"), LambdaContext())
    assert migrator.handler(deployment.event("Delete"), LambdaContext()) == {"PhysicalResourceId": "pat-schema-dev"}
    dsn = deployment.postgres.dsn(dbname=deployment.dbname)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM public.flyway_schema_history").fetchone() == (len(VERSIONS),)
        assert conn.execute("SELECT to_regclass('pat.emails') IS NOT NULL").fetchone() == (True,)


def test_rollback_with_old_properties_and_old_code_neither_fails_nor_downgrades(deployment: Deployment) -> None:
    migrator.handler(deployment.event("Create"), LambdaContext())
    # The previous deployment's bundle knew V001-V004 only; CloudFormation re-sends its properties on rollback.
    for newer in sorted((deployment.bundle / "schema" / "migrations").glob("V*.sql"))[4:]:
        newer.unlink()
    # Both rolled back (the old bundle asks for its own schema): the engine ignores versions newer than its files.
    response = migrator.handler(deployment.event("Update", old_hash="hash-2"), LambdaContext())
    assert response["Data"]["AppliedVersions"] == "none"
    assert response["Data"]["IgnoredFutureVersions"] == FUTURE
    with psycopg.connect(deployment.postgres.dsn(dbname=deployment.dbname)) as conn:
        assert conn.execute("SELECT to_regclass('pat.audit_log') IS NOT NULL").fetchone() == (True,)


def test_a_failing_file_fails_the_deploy_naming_it_and_the_next_deploy_resumes(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = deployment.bundle / "schema" / "migrations" / f"V{NEXT}__tag_counts.sql"
    broken.write_text("ALTER TABLE pat.tags ADD COLUMN email_count integer NOT NULL DEFAULT 0;\nSELECT 1/0;\n")
    with pytest.raises(MigrationFailedError, match=rf"^V{NEXT}__tag_counts\.sql line 2: 22012 division by zero"):
        migrator.handler(deployment.event("Create"), LambdaContext())
    assert emf_lines(capsys.readouterr().out)[-1]["MigrationFailures"] == 1
    broken.write_text("ALTER TABLE pat.tags ADD COLUMN email_count integer NOT NULL DEFAULT 0;\n")
    response = migrator.handler(deployment.event("Update", old_hash="hash-2"), LambdaContext())
    assert response["Data"]["AppliedVersions"] == NEXT  # the earlier files stayed applied from the failed run


def test_rollback_update_with_old_properties_on_the_new_bundle_succeeds_without_touching_the_database(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failing deploy: Update with the new schema fails; CloudFormation then sends Update with the OLD properties
    while the function still runs the NEW bundle. Re-running the failing file there is what left stacks in
    UPDATE_ROLLBACK_FAILED; the handler must answer SUCCESS and leave the database alone."""
    migrator.handler(deployment.event("Create"), LambdaContext())
    old_hash = contract.schema_hash(deployment.bundle)
    broken = deployment.bundle / "schema" / "migrations" / f"V{NEXT}__broken.sql"
    broken.write_text("SELECT 1/0;\n")
    with pytest.raises(MigrationFailedError):
        migrator.handler(deployment.event("Update", old_hash=old_hash), LambdaContext())
    before = deployment.history()
    capsys.readouterr()
    # Any database or secret access would now fail: the owner secret points at a closed port.
    monkeypatch.setenv("OWNER_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gone")
    rollback = deployment.event("Update", schema_hash=old_hash, old_hash=contract.schema_hash(deployment.bundle))
    response = migrator.handler(rollback, LambdaContext())
    assert response["PhysicalResourceId"] == "pat-schema-dev"
    assert response["Data"]["Skipped"] == "true"
    assert response["Data"]["AppliedVersions"] == "none"
    assert deployment.history() == before
    assert emf_lines(capsys.readouterr().out) == []  # not a migration, not a failure


def test_create_for_a_schema_this_bundle_does_not_hold_still_migrates(deployment: Deployment) -> None:
    """Only an Update can be a rollback: a Create always applies the bundle (it has nothing to roll back to)."""
    response = migrator.handler(deployment.event("Create", schema_hash="not-this-bundle"), LambdaContext())
    assert response["Data"]["AppliedVersions"] == ALL


def test_schedule_runs_partition_maintenance_and_publishes_metrics(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    migrator.handler(deployment.event("Create"), LambdaContext())
    scheduled = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}
    result = migrator.handler(scheduled, LambdaContext())
    assert result["min_future_partitions"] == 12
    assert result["created"] == []
    metrics = emf_lines(capsys.readouterr().out)[-1]
    assert (metrics["MaintenanceFailures"], metrics["DefaultPartitionRows"]) == (0, 0)
    assert migrator.handler({"action": "maintain"}, LambdaContext())["min_future_partitions"] == 12


def test_unknown_events_and_missing_settings_are_refused(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unrecognised event"):
        migrator.handler({"hello": "world"}, LambdaContext())
    monkeypatch.delenv("OWNER_SECRET_ARN")
    with pytest.raises(RuntimeError, match="OWNER_SECRET_ARN not set"):
        migrator.handler(deployment.event("Create"), LambdaContext())


def test_waiting_for_the_writer_backs_off_and_gives_up_at_the_deadline(lambda_postgres: LocalPostgres) -> None:
    closed = target_from_dsn(lambda_postgres.dsn()).with_host("127.0.0.1", 1, pooled=False)
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    with pytest.raises(WriterUnavailableError, match=r"127\.0\.0\.1:1 not accepting connections after 7 attempts"):
        wait_for_writer(closed, deadline=60.0, sleep=sleep, clock=lambda: clock[0])
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0]  # capped at 20 s, never past the deadline
    assert wait_for_writer(target_from_dsn(lambda_postgres.dsn()), deadline=60.0) == 1


class RecordingProperties(dict[str, Any]):
    """ResourceProperties that remember which names the handler asks for."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)


def test_the_handler_asks_only_for_properties_the_construct_sends(deployment: Deployment) -> None:
    """Behavioural side of the contract (tests/unit/test_schema_stack pins what the template sends to
    contract.MIGRATOR_PROPERTIES): whatever name the handler reads must be one that is sent. A handler reading
    `Engine` while the construct sends `EngineHash` fails here, with no list of known misspellings."""
    asked: set[str] = set()
    for request in ("Create", "Update", "Delete"):
        event = deployment.event(request, old_hash="hash-0")
        event["ResourceProperties"] = recording = RecordingProperties(event["ResourceProperties"])
        migrator.handler(event, LambdaContext())
        asked |= recording.asked
    assert asked <= set(contract.MIGRATOR_PROPERTIES), asked - set(contract.MIGRATOR_PROPERTIES)
    assert contract.PROP_SCHEMA_HASH in asked
