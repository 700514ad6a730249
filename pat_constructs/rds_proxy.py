"""RDS Proxy in front of Aurora (staging, prod): TLS required, the login secrets, a read-only endpoint with readers."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from pat_constructs.pooler import POOLER_PORT, PoolerEndpoints
from pat_constructs.settings.pooler import RdsProxySettings
from pat_data.contract import PhysicalNames


class RdsProxyPooler(Construct):
    """RDS Proxy with TLS required, the app/readonly secrets, and a read-only endpoint when the cluster has readers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env_name: str,
        vpc: ec2.IVpc,
        cluster: rds.IDatabaseCluster,
        cluster_engine: rds.IClusterEngine,
        cluster_port: int,
        secrets: Sequence[secretsmanager.ISecret],
        database_key: kms.IKey,
        security_group: ec2.ISecurityGroup,
        has_readers: bool,
        settings: RdsProxySettings,
    ) -> None:
        super().__init__(scope, construct_id)
        isolated = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        # The target as a reference with a literal port and no security groups: the Data stack already admits the
        # pooler group on 5432, and CDK would otherwise add a duplicate rule whose port is an unresolvable token.
        target = rds.DatabaseCluster.from_database_cluster_attributes(
            self,
            "Target",
            cluster_identifier=cluster.cluster_identifier,
            engine=cluster_engine,
            port=cluster_port,
        )
        # Own role + customer-managed policy (no inline policy): read exactly the attached secrets. The secrets are
        # referenced by ARN so CDK's automatic grants do not reach back into the Keys/Data stacks' policies.
        secrets = [
            secretsmanager.Secret.from_secret_complete_arn(self, f"Secret{index}", secret.secret_arn)
            for index, secret in enumerate(secrets)
        ]
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("rds.amazonaws.com"))
        iam.ManagedPolicy(
            self,
            "SecretsPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[secret.secret_arn for secret in secrets],
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[database_key.key_arn]),
            ],
        )
        self.proxy = rds.DatabaseProxy(
            self,
            "Proxy",
            db_proxy_name=PhysicalNames(env_name).db_proxy,
            proxy_target=rds.ProxyTarget.from_cluster(target),
            role=role.without_policy_updates(),
            secrets=list(secrets),
            vpc=vpc,
            vpc_subnets=isolated,
            security_groups=[security_group],
            require_tls=True,
            debug_logging=False,
            idle_client_timeout=Duration.seconds(settings.idle_client_timeout_seconds),
            borrow_timeout=Duration.seconds(settings.borrow_timeout_seconds),
            max_connections_percent=settings.max_connections_percent,
            max_idle_connections_percent=settings.max_idle_connections_percent,
        )
        reader_endpoint = self.proxy.endpoint
        if has_readers:
            # Reads that tolerate replica lag go here; RDS Proxy balances them over the readers.
            read_only = rds.CfnDBProxyEndpoint(
                self,
                "ReadOnlyEndpoint",
                db_proxy_name=self.proxy.db_proxy_name,
                db_proxy_endpoint_name=PhysicalNames(env_name).db_proxy_read_only_endpoint,
                target_role="READ_ONLY",
                vpc_subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
                vpc_security_group_ids=[security_group.security_group_id],
            )
            reader_endpoint = read_only.attr_endpoint
        self.endpoints = PoolerEndpoints(
            kind="rds_proxy", endpoint=self.proxy.endpoint, reader_endpoint=reader_endpoint, port=POOLER_PORT
        )
