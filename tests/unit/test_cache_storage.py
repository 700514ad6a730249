"""Pat-<env>-Cache and Pat-<env>-Storage(/StorageReplica) per environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pat_constructs.settings.storage import StorageSettings
from pat_constructs.storage import AttachmentStorage
from stacks import config
from tests.conftest import Synthesized


def one(synthesized: Synthesized, env: str, part: str, resource_type: str) -> dict[str, Any]:
    (resource,) = synthesized.resources(env, part, resource_type).values()
    return dict(resource["Properties"])


def test_cache_is_cluster_mode_multi_az_encrypted_and_authenticated(synthesized: Synthesized, env_name: str) -> None:
    cache = config.ENVIRONMENTS[env_name].cache
    group = one(synthesized, env_name, "Cache", "AWS::ElastiCache::ReplicationGroup")
    assert (group["NumNodeGroups"], group["ReplicasPerNodeGroup"]) == (cache.shards, cache.replicas_per_shard)
    assert {"dev": (1, 1), "staging": (2, 1), "prod": (3, 2)}[env_name] == (cache.shards, cache.replicas_per_shard)
    assert group["AutomaticFailoverEnabled"] is True
    assert group["MultiAZEnabled"] is True
    assert group["Engine"] == cache.engine
    assert group["EngineVersion"] == cache.engine_version
    assert group["Port"] == cache.port != 6379
    assert group["TransitEncryptionEnabled"] is True
    assert group["TransitEncryptionMode"] == "required"
    assert group["AtRestEncryptionEnabled"] is True
    assert "KmsKeyId" in group
    assert "resolve:secretsmanager" in json.dumps(group["AuthToken"])
    assert group["SnapshotRetentionLimit"] == cache.snapshot_retention_days >= 15
    assert group["SnapshotWindow"]
    assert group["PreferredMaintenanceWindow"]
    logs = {d["LogType"]: d for d in group["LogDeliveryConfigurations"]}
    assert set(logs) == {"slow-log", "engine-log"}
    assert all(d["DestinationType"] == "cloudwatch-logs" for d in logs.values())
    groups = synthesized.resources(env_name, "Cache", "AWS::Logs::LogGroup").values()
    assert len(groups) == 2
    assert all("KmsKeyId" in g["Properties"] for g in groups)
    params = one(synthesized, env_name, "Cache", "AWS::ElastiCache::ParameterGroup")["Properties"]
    assert params == {"cluster-enabled": "yes", "maxmemory-policy": "allkeys-lru", "notify-keyspace-events": ""}
    subnets = one(synthesized, env_name, "Cache", "AWS::ElastiCache::SubnetGroup")
    assert "Isolated" in json.dumps(subnets["SubnetIds"])


def test_cache_is_reachable_from_the_client_group_only(synthesized: Synthesized, env_name: str) -> None:
    group = one(synthesized, env_name, "Cache", "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in group
    assert group["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"  # no egress: it only answers
    ingress = one(synthesized, env_name, "Cache", "AWS::EC2::SecurityGroupIngress")
    assert "ClientSecurityGroup" in json.dumps(ingress["SourceSecurityGroupId"])
    assert ingress["FromPort"] == ingress["ToPort"] == config.ENVIRONMENTS[env_name].cache.port
    secret = one(synthesized, env_name, "Cache", "AWS::SecretsManager::Secret")
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] == 64
    assert generated["GenerateStringKey"] == "token"
    assert "!" in generated["ExcludeCharacters"]
    assert "-" in generated["ExcludeCharacters"]
    names = {p["Properties"]["Name"] for p in synthesized.resources(env_name, "Cache", "AWS::SSM::Parameter").values()}
    assert names == {
        f"/pat/{env_name}/cache/{key}"
        for key in ("configuration-endpoint", "port", "replication-group-id", "auth-secret-arn")
    }


def test_cache_snapshots_survive_stack_deletion_where_data_is_retained(synthesized: Synthesized, env_name: str) -> None:
    (resource,) = synthesized.resources(env_name, "Cache", "AWS::ElastiCache::ReplicationGroup").values()
    expected = "Delete" if config.ENVIRONMENTS[env_name].allow_destroy else "Snapshot"
    assert resource["DeletionPolicy"] == expected


def attachment_bucket(synthesized: Synthesized, env: str) -> dict[str, Any]:
    buckets = synthesized.resources(env, "Storage", "AWS::S3::Bucket")
    (props,) = [b["Properties"] for b in buckets.values() if "KMSMasterKeyID" in json.dumps(b["Properties"])]
    return props


def test_attachment_bucket_encryption_access_versioning_lifecycle_logging(
    synthesized: Synthesized, env_name: str
) -> None:
    storage = config.ENVIRONMENTS[env_name].storage
    bucket = attachment_bucket(synthesized, env_name)
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["BucketKeyEnabled"] is True
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    transitions = {t["StorageClass"]: t["TransitionInDays"] for t in rules["tier-current-versions"]["Transitions"]}
    assert transitions["INTELLIGENT_TIERING"] == 30
    assert transitions.get("GLACIER") == storage.glacier_after_days
    assert rules["tier-current-versions"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert bucket["LoggingConfiguration"]["LogFilePrefix"] == "s3-access/attachments/"
    (cors,) = bucket["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == list(storage.cors_origins)
    assert set(cors["AllowedMethods"]) == {"PUT", "POST"}
    policies = synthesized.resources(env_name, "Storage", "AWS::S3::BucketPolicy").values()
    statements = json.dumps([p["Properties"]["PolicyDocument"] for p in policies])
    assert '"aws:SecureTransport": "false"' in statements
    assert '"s3:TlsVersion": 1.2' in statements


def test_access_log_bucket_is_encrypted_and_expires(synthesized: Synthesized, env_name: str) -> None:
    buckets = synthesized.resources(env_name, "Storage", "AWS::S3::Bucket").values()
    (logs,) = [b["Properties"] for b in buckets if "AES256" in json.dumps(b["Properties"])]
    (rule,) = logs["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == config.ENVIRONMENTS[env_name].storage.access_log_retention_days
    assert all(logs["PublicAccessBlockConfiguration"].values())


def test_replication_is_on_in_prod_only_to_a_replica_with_its_own_key(synthesized: Synthesized, env_name: str) -> None:
    bucket = attachment_bucket(synthesized, env_name)
    region = config.ENVIRONMENTS[env_name].storage.replication_region
    if region is None:
        assert "ReplicationConfiguration" not in bucket
        assert f"Pat-{env_name}-StorageReplica" not in {s.stack_name for s in synthesized.assembly.stacks}
        return
    (rule,) = bucket["ReplicationConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"] == "Enabled"
    destination = json.dumps(rule["Destination"])
    assert f"pat-{env_name}-attachments-replica-" in destination
    assert f":kms:{region}:" in destination
    assert "alias/pat/prod/storage-replica" in destination
    replica_stack = synthesized.assembly.get_stack_by_name(f"Pat-{env_name}-StorageReplica")
    assert replica_stack.environment.region == region
    built = synthesized.envs[env_name]
    assert built.storage_replica is not None
    assert built.storage_replica in built.storage.dependencies  # the destination exists first
    replica = replica_stack.template["Resources"]
    keys = [r for r in replica.values() if r["Type"] == "AWS::KMS::Key"]
    assert len(keys) == 1
    assert keys[0]["Properties"]["EnableKeyRotation"] is True
    aliases = [r["Properties"]["AliasName"] for r in replica.values() if r["Type"] == "AWS::KMS::Alias"]
    assert aliases == ["alias/pat/prod/storage-replica"]


def test_distribution_uses_oac_https_headers_logging_and_a_key_policy_for_exactly_it(
    synthesized: Synthesized, env_name: str
) -> None:
    storage = config.ENVIRONMENTS[env_name].storage
    distribution = one(synthesized, env_name, "Storage", "AWS::CloudFront::Distribution")["DistributionConfig"]
    (origin,) = distribution["Origins"]
    assert "OriginAccessControlId" in origin
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no OAI
    behavior = distribution["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert distribution["Logging"]["Prefix"] == "cloudfront/attachments/"
    assert distribution["PriceClass"] == storage.price_class
    oac = one(synthesized, env_name, "Storage", "AWS::CloudFront::OriginAccessControl")["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    headers = one(synthesized, env_name, "Storage", "AWS::CloudFront::ResponseHeadersPolicy")
    security = headers["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert "sandbox" in security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    cache_policy = one(synthesized, env_name, "Storage", "AWS::CloudFront::CachePolicy")["CachePolicyConfig"]
    assert cache_policy["DefaultTTL"] == cache_policy["MaxTTL"] == 365 * 24 * 3600

    template = synthesized.template_json(env_name, "Storage")
    (distribution_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudFront::Distribution"]
    key = one(synthesized, env_name, "Storage", "AWS::KMS::Key")
    (statement,) = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudFrontOriginAccessControlDecrypt"]
    assert statement["Action"] == "kms:Decrypt"
    source_arn = json.dumps(statement["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert distribution_id in source_arn
    assert "*" not in source_arn
    policies = synthesized.resources(env_name, "Storage", "AWS::S3::BucketPolicy").values()
    reads = [
        s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "CloudFrontOriginAccessControlRead"
    ]  # fmt: skip
    (read,) = reads
    assert distribution_id in json.dumps(read["Condition"])


def test_storage_discovery(synthesized: Synthesized, env_name: str) -> None:
    names = {
        p["Properties"]["Name"] for p in synthesized.resources(env_name, "Storage", "AWS::SSM::Parameter").values()
    }
    keys = ("bucket-name", "key-arn", "distribution-id", "distribution-domain")
    assert names == {f"/pat/{env_name}/storage/{key}" for key in keys}


def test_a_custom_certificate_switches_cloudfront_to_tls_1_2_2021() -> None:
    import aws_cdk as cdk
    from aws_cdk.assertions import Match, Template

    stack = cdk.Stack(cdk.App(), "Bare", env=cdk.Environment(region="eu-west-1"))
    AttachmentStorage(
        stack,
        "Attachments",
        env_name="qa",
        settings=StorageSettings(
            cors_origins=("https://app.qa.pat.example",),
            access_log_retention_days=30,
            web_acl_arn="arn:aws:wafv2:us-east-1:123456789012:global/webacl/pat/0123abcd-0123-0123-0123-0123456789ab",
            cdn_domain_names=("files.qa.pat.example",),
            cdn_certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0123-0123-0123-0123456789ab",
        ),
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "Aliases": ["files.qa.pat.example"],
                    "ViewerCertificate": Match.object_like({"MinimumProtocolVersion": "TLSv1.2_2021"}),
                    "WebACLId": Match.string_like_regexp("webacl"),
                }
            )
        },
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cache": {"replicas_per_shard": 0}}, r"cache.replicas_per_shard=0 is invalid; 1-5: automatic failover"),
        ({"cache": {"port": 6379}}, r"cache.port=6379 is invalid; a non-default port"),
        ({"cache": {"engine": "valkey", "engine_version": "7.1"}}, r"allowed for valkey: 7.2, 8.0"),
        ({"cache": {"snapshot_retention_days": 7}}, r"cache.snapshot_retention_days=7 is invalid; allowed: 15-35"),
        ({"storage": {"replication_region": None}}, r"prod replicates attachments to a second region"),
        ({"storage": {"cors_origins": ("http://app.pat.example",)}}, r"an https origin"),
        ({"storage": {"cdn_domain_names": ("files.pat.example",)}}, r"set cdn_domain_names and cdn_certificate_arn"),
        ({"storage": {"glacier_after_days": 40}}, r"at least 30 days after"),
    ],
)  # fmt: skip
def test_invalid_cache_and_storage_config_fails_before_synth(
    changes: dict[str, dict[str, object]], message: str
) -> None:
    import dataclasses

    prod = config.ENVIRONMENTS["prod"]
    updated = {part: dataclasses.replace(getattr(prod, part), **values) for part, values in changes.items()}
    with pytest.raises(config.ConfigError, match=message):
        config.validate(dataclasses.replace(prod, **updated))
