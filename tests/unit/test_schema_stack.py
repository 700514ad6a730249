"""Pat-<env>-Schema: the migrator custom resource, its Lambda, schedule, failure destination and permissions."""

from __future__ import annotations

import ast
import json
from typing import Any

from pat_constructs.schema_migrator import ENGINE_FILES
from pat_data import contract
from pat_data.contract import content_hash
from tests.conftest import ROOT, Synthesized


def migrator_function(synthesized: Synthesized, env: str) -> dict[str, Any]:
    functions = synthesized.resources(env, "Schema", "AWS::Lambda::Function")
    (props,) = [
        f["Properties"] for f in functions.values() if f["Properties"].get("Handler", "").startswith("lambdas.")
    ]
    return props


def test_custom_resource_reruns_only_when_schema_or_engine_change(synthesized: Synthesized, env_name: str) -> None:
    (resource,) = synthesized.resources(env_name, "Schema", "Custom::PatSchema").values()
    props = resource["Properties"]
    assert props["SchemaHash"] == content_hash(ROOT, ["schema"])
    assert props["EngineHash"] == content_hash(ROOT, ENGINE_FILES)
    assert set(props) == {"ServiceToken", *contract.MIGRATOR_PROPERTIES}
    stack = synthesized.envs[env_name].schema
    assert synthesized.envs[env_name].data in stack.dependencies  # after the writer instance exists


def test_migrator_lambda_is_isolated_unreserved_and_reads_only_its_secrets(
    synthesized: Synthesized, env_name: str
) -> None:
    props = migrator_function(synthesized, env_name)
    assert props["Runtime"] == "python3.14"
    assert props["Handler"] == "lambdas.schema_migrator.handler.handler"
    # No reservation: it must leave the account's unreserved floor (docs/aws-facts-iam-kms-lambda.md
    # LAMBDA-RESERVED-CONCURRENCY-FLOOR), and one slot would throttle a deploy while the daily run holds it.
    assert "ReservedConcurrentExecutions" not in props
    assert props["Timeout"] == contract.MIGRATOR_TIMEOUT_SECONDS
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    # Lambda's own key: a customer key would have to admit Lambda (LAMBDA-ENV-KMS-CALLER-PERMISSIONS).
    assert "KmsKeyArn" not in props
    variables = props["Environment"]["Variables"]
    assert variables["ENV_NAME"] == env_name
    assert variables[contract.ENV_DB_SSLMODE] == "verify-full"
    assert variables[contract.ENV_DB_SSLROOTCERT] == contract.RDS_CA_BUNDLE
    assert {"OWNER_SECRET_ARN", "LOGIN_SECRET_ARNS"} <= set(variables)
    subnets = json.dumps(props["VpcConfig"]["SubnetIds"])
    assert "Isolated" in subnets
    assert "Private" not in subnets
    assert "Public" not in subnets
    template = synthesized.template_json(env_name, "Schema")
    statements = [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in json.dumps(statement["Action"])
    ]
    (statement,) = statements
    assert len(statement["Resource"]) == 3  # owner, pat_app, pat_readonly: nothing else
    assert not any(r["Type"] == "AWS::IAM::Policy" for r in template["Resources"].values())  # no inline policies


def test_daily_schedule_and_async_failure_destination(synthesized: Synthesized, env_name: str) -> None:
    (rule,) = synthesized.resources(env_name, "Schema", "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "cron(17 3 * * ? *)"
    (target,) = rule["Properties"]["Targets"]
    assert json.loads(target["Input"]) == {"action": "maintain"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    (invoke_config,) = synthesized.resources(env_name, "Schema", "AWS::Lambda::EventInvokeConfig").values()
    destination = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert "FailureQueue" in json.dumps(destination)
    (queue,) = synthesized.resources(env_name, "Schema", "AWS::SQS::Queue").values()
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "KmsMasterKeyId" in queue["Properties"]


def test_provider_framework_runs_in_the_nat_subnets_with_https_only(synthesized: Synthesized, env_name: str) -> None:
    functions = synthesized.resources(env_name, "Schema", "AWS::Lambda::Function").values()
    (framework,) = [f["Properties"] for f in functions if "onEvent" in f["Properties"].get("Description", "")]
    assert "Private" in json.dumps(framework["VpcConfig"]["SubnetIds"])
    groups = synthesized.resources(env_name, "Schema", "AWS::EC2::SecurityGroup").values()
    (provider_group,) = [g["Properties"] for g in groups if "provider" in g["Properties"]["GroupDescription"]]
    (egress,) = provider_group["SecurityGroupEgress"]
    assert (egress["FromPort"], egress["ToPort"], egress["IpProtocol"]) == (443, 443, "tcp")


def test_schema_discovery_parameters(synthesized: Synthesized, env_name: str) -> None:
    names = {p["Properties"]["Name"] for p in synthesized.resources(env_name, "Schema", "AWS::SSM::Parameter").values()}
    assert names == {f"/pat/{env_name}/schema/migrator-function-name", f"/pat/{env_name}/schema/failure-queue-url"}


def test_the_handler_reads_exactly_the_properties_and_environment_the_construct_sends(
    synthesized: Synthesized, env_name: str
) -> None:
    """Both sides spell the contract through pat_data.contract: the handler holds no literal copy of a property or
    environment name (an earlier handler logged "Engine" while the construct sent "EngineHash")."""
    (resource,) = synthesized.resources(env_name, "Schema", "Custom::PatSchema").values()
    sent = set(resource["Properties"]) - {"ServiceToken"}
    assert sent == set(contract.MIGRATOR_PROPERTIES)
    assert set(migrator_function(synthesized, env_name)["Environment"]["Variables"]) == set(
        contract.MIGRATOR_ENVIRONMENT
    )
    handler = ast.parse((ROOT / "lambdas" / "schema_migrator" / "handler.py").read_text())
    literals = {node.value for node in ast.walk(handler) if isinstance(node, ast.Constant)}
    names = {"Engine", *contract.MIGRATOR_PROPERTIES, *contract.MIGRATOR_ENVIRONMENT}
    assert not literals & names, "spell properties and environment names through pat_data.contract"
    used = {node.attr for node in ast.walk(handler) if isinstance(node, ast.Attribute)}
    assert {"PROP_SCHEMA_HASH", "PROP_ENGINE_HASH", "ENV_NAME", "ENV_OWNER_SECRET_ARN"} <= used
