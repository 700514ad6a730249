"""Pat-<env>-Schema: the migrator custom resource, its Lambda, schedule, failure destination and permissions."""

from __future__ import annotations

import json
from typing import Any

from pat_constructs.bundling import content_hash
from pat_constructs.schema_migrator import ENGINE_FILES
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
    assert set(props) == {"ServiceToken", "SchemaHash", "EngineHash", "Environment"}
    stack = synthesized.envs[env_name].schema
    assert synthesized.envs[env_name].data in stack.dependencies  # after the writer instance exists


def test_migrator_lambda_is_isolated_reserved_and_reads_only_its_secrets(
    synthesized: Synthesized, env_name: str
) -> None:
    props = migrator_function(synthesized, env_name)
    assert props["Runtime"] == "python3.14"
    assert props["Handler"] == "lambdas.schema_migrator.handler.handler"
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == 900
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert "KmsKeyArn" in props
    variables = props["Environment"]["Variables"]
    assert variables["ENV_NAME"] == env_name
    assert variables["DB_SSLMODE"] == "require"
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
