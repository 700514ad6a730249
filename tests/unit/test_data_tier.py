"""Data tier per environment and per pooler: Aurora, secrets + rotation, RDS Proxy / PgBouncer, discovery."""

from __future__ import annotations

import json

import pytest

from stacks import config
from tests.conftest import Synthesized


def one(synthesized: Synthesized, env: str, part: str, resource_type: str) -> dict:
    (resource,) = synthesized.resources(env, part, resource_type).values()
    return resource["Properties"]


def test_cluster_engine_capacity_encryption_and_logs(synthesized: Synthesized, env_name: str) -> None:
    db = config.ENVIRONMENTS[env_name].database
    cluster = one(synthesized, env_name, "Data", "AWS::RDS::DBCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EngineVersion"] == db.engine_version
    assert cluster["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": db.min_capacity,
        "MaxCapacity": db.max_capacity,
    }
    assert cluster["StorageEncrypted"] is True
    assert "KmsKeyId" in cluster
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert cluster["BackupRetentionPeriod"] == db.backup_retention_days
    assert cluster["PreferredBackupWindow"]
    assert cluster["CopyTagsToSnapshot"] is True
    assert cluster["PerformanceInsightsEnabled"] is True
    assert cluster["PerformanceInsightsRetentionPeriod"] == db.performance_insights_retention_days
    assert "PerformanceInsightsKmsKeyId" in cluster
    instances = synthesized.resources(env_name, "Data", "AWS::RDS::DBInstance").values()
    assert all(i["Properties"]["MonitoringInterval"] == 60 for i in instances)
    assert cluster["DBClusterIdentifier"] == f"pat-{env_name}"


def test_cluster_parameters_force_tls_and_log_what_operators_need(synthesized: Synthesized, env_name: str) -> None:
    params = one(synthesized, env_name, "Data", "AWS::RDS::DBClusterParameterGroup")["Parameters"]
    assert params["rds.force_ssl"] == "1"
    assert {"pg_stat_statements", "pgaudit", "auto_explain"} <= set(params["shared_preload_libraries"].split(","))
    assert params["pgaudit.log"] == "ddl,role"
    assert params["log_lock_waits"] == "1"
    assert int(params["idle_in_transaction_session_timeout"]) > 0
    assert params["auto_explain.log_min_duration"] == str(
        config.ENVIRONMENTS[env_name].database.log_min_duration_statement_ms
    )


def test_writer_and_readers_with_tiers_and_zones(synthesized: Synthesized, env_name: str) -> None:
    db = config.ENVIRONMENTS[env_name].database
    instances = synthesized.resources(env_name, "Data", "AWS::RDS::DBInstance").values()
    assert len(instances) == 1 + len(db.readers)
    readers = sorted(
        (i["Properties"] for i in instances if "AvailabilityZone" in i["Properties"]), key=lambda p: p["PromotionTier"]
    )
    assert [(r["AvailabilityZone"], r["PromotionTier"]) for r in readers] == sorted(
        ((r.availability_zone, r.promotion_tier) for r in db.readers), key=lambda t: t[1]
    )
    assert all(i["Properties"]["PubliclyAccessible"] is False for i in instances)


def test_postgres_is_reachable_only_from_security_groups(synthesized: Synthesized, env_name: str) -> None:
    template = synthesized.template_json(env_name, "Data")["Resources"]
    ingress = [r["Properties"] for r in template.values() if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert len(ingress) == 5  # Aurora: pooler, migrator, rotation; pooler: clients, itself (NLB -> tasks)
    for rule in ingress:
        assert "CidrIp" not in rule
        assert "SourceSecurityGroupId" in rule
        assert (rule["FromPort"], rule["ToPort"]) == (5432, 5432)
    for group in (r for r in template.values() if r["Type"] == "AWS::EC2::SecurityGroup"):
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            assert rule.get("CidrIp") != "0.0.0.0/0"


def test_every_secret_is_cmk_encrypted_generated_and_rotated(synthesized: Synthesized, env_name: str) -> None:
    secrets = synthesized.resources(env_name, "Data", "AWS::SecretsManager::Secret")
    assert len(secrets) == 3  # owner, pat_app, pat_readonly
    usernames = set()
    for secret in secrets.values():
        props = secret["Properties"]
        assert "KmsKeyId" in props
        assert "SecretString" not in props
        usernames.add(json.loads(props["GenerateSecretString"]["SecretStringTemplate"])["username"])
    assert usernames == {"pat_owner", "pat_app", "pat_readonly"}
    schedules = synthesized.resources(env_name, "Data", "AWS::SecretsManager::RotationSchedule").values()
    assert len(schedules) == 3
    days = config.ENVIRONMENTS[env_name].database.secret_rotation_days
    for schedule in schedules:
        props = schedule["Properties"]
        assert props["RotationRules"]["ScheduleExpression"] == f"rate({days} days)"
        assert "HostedRotationLambda" in props
        assert props["HostedRotationLambda"]["RotationType"] == "PostgreSQLSingleUser"
    immediate = [s["Properties"].get("RotateImmediatelyOnUpdate") for s in schedules]
    assert immediate.count(False) == 2  # app users wait until the migrations created their roles


def test_discovery_parameters_and_no_exports_for_them(synthesized: Synthesized, env_name: str) -> None:
    names = set()
    for part in ("Data", "Access"):
        for param in synthesized.resources(env_name, part, "AWS::SSM::Parameter").values():
            names.add(param["Properties"]["Name"])
        outputs = synthesized.template_json(env_name, part).get("Outputs", {})
        # Discovery is by SSM, never an export; the only exports are CDK's strong cross-stack references.
        exported = {lid for lid, out in outputs.items() if "Export" in out}
        assert all(lid.startswith("ExportsOutput") for lid in exported)
    expected = {"cluster-identifier", "writer-endpoint", "reader-endpoint", "port", "owner-secret-arn",
                "app-secret-arn", "readonly-secret-arn"}  # fmt: skip
    assert names >= {f"/pat/{env_name}/db/{key}" for key in expected}
    assert names >= {f"/pat/{env_name}/pooler/{key}" for key in ("kind", "endpoint", "reader-endpoint", "port")}


def access(synthesized: Synthesized, flipped: Synthesized, env: str, kind: str) -> tuple[Synthesized, str]:
    chosen = synthesized if config.ENVIRONMENTS[env].database.pooler == kind else flipped
    return chosen, env


@pytest.mark.parametrize("env", config.ENV_NAMES)
def test_rds_proxy_requires_tls_and_has_a_read_only_endpoint(
    synthesized: Synthesized, synthesized_flipped: Synthesized, env: str
) -> None:
    chosen, _ = access(synthesized, synthesized_flipped, env, "rds_proxy")
    proxy = one(chosen, env, "Access", "AWS::RDS::DBProxy")
    assert proxy["RequireTLS"] is True
    assert proxy["DebugLogging"] is False
    assert proxy["IdleClientTimeout"] > 0
    assert len(proxy["Auth"]) == 2
    target = one(chosen, env, "Access", "AWS::RDS::DBProxyTargetGroup")
    assert target["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"] > 0
    assert target["ConnectionPoolConfigurationInfo"]["ConnectionBorrowTimeout"] > 0
    endpoints = chosen.resources(env, "Access", "AWS::RDS::DBProxyEndpoint").values()
    assert len(endpoints) == (1 if config.ENVIRONMENTS[env].database.readers else 0)
    assert all(e["Properties"]["TargetRole"] == "READ_ONLY" for e in endpoints)


@pytest.mark.parametrize("env", config.ENV_NAMES)
def test_pgbouncer_service_uses_secrets_tls_and_an_internal_nlb(
    synthesized: Synthesized, synthesized_flipped: Synthesized, env: str
) -> None:
    chosen, _ = access(synthesized, synthesized_flipped, env, "pgbouncer")
    task = one(chosen, env, "Access", "AWS::ECS::TaskDefinition")
    (bouncer,) = [c for c in task["ContainerDefinitions"] if c["Name"] == "PgBouncer"]
    assert "@sha256:" in bouncer["Image"]
    environment = {e["Name"]: e["Value"] for e in bouncer["Environment"]}
    assert environment["POOL_MODE"] == "transaction"
    assert environment["MAX_PREPARED_STATEMENTS"] == "0"  # prepared statements are off on every pooled path
    assert int(environment["TCP_KEEPIDLE"]) < 350
    assert environment["SERVER_TLS_SSLMODE"] == "verify-full"
    assert environment["CLIENT_TLS_SSLMODE"] == "require"
    assert not any("PASSWORD" in name for name in environment)
    assert "AUTH_QUERY" not in environment  # Aurora hides pg_shadow: auth_file from the login secrets instead
    assert {s["Name"] for s in bouncer["Secrets"]} == {"DB_USER", "DB_PASSWORD", "READONLY_USER", "READONLY_PASSWORD"}
    assert bouncer["Command"][-1].endswith("exec /usr/bin/pgbouncer /etc/pgbouncer/pgbouncer.ini")
    service = one(chosen, env, "Access", "AWS::ECS::Service")
    expected_min = 2 if env == "prod" or chosen is synthesized_flipped else 1
    assert service["DesiredCount"] >= expected_min
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    nlb = one(chosen, env, "Access", "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert nlb["Scheme"] == "internal"
    assert nlb["Type"] == "network"
    attributes = {a["Key"]: a["Value"] for a in nlb["LoadBalancerAttributes"]}
    assert attributes["load_balancing.cross_zone.enabled"] == "true"
    cluster = one(chosen, env, "Access", "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["ClusterSettings"]
    scaling = one(chosen, env, "Access", "AWS::ApplicationAutoScaling::ScalableTarget")
    assert scaling["MinCapacity"] == service["DesiredCount"]
    rule = one(chosen, env, "Access", "AWS::Events::Rule")
    assert rule["EventPattern"]["detail"]["eventName"] == ["RotationSucceeded"]
    assert len(rule["EventPattern"]["detail"]["additionalEventData"]["SecretId"]) == 2  # app and read-only
