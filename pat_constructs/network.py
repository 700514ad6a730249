"""The VPC every Pat data component lives in: three subnet tiers, flow logs, and endpoints instead of NAT."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from pat_constructs import controls
from pat_constructs.compliance import acknowledge
from pat_constructs.log_groups import encrypted_log_group
from pat_constructs.settings.network import NetworkSettings

# Interface endpoints that let isolated workloads (migrator Lambda, secret rotation, Fargate image pulls) reach AWS
# APIs without a route to the internet.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
}


class PatNetwork(Construct):
    """VPC with public (NAT only), private-with-egress (Fargate) and isolated (data stores, Lambda) subnets.

    Subnet groups are declared largest first so they pack without alignment gaps (the config validates the same
    arithmetic). Public subnets never auto-assign public IPs: only NAT gateways (Elastic IPs) live there.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: NetworkSettings,
        flow_log_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        cidr = settings.vpc_cidr
        self.vpc: ec2.IVpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            availability_zones=list(settings.availability_zones),
            nat_gateways=settings.nat_gateways,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Private",
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                    cidr_mask=settings.private_subnet_mask,
                ),
                ec2.SubnetConfiguration(
                    name="Isolated",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=settings.isolated_subnet_mask,
                ),
                ec2.SubnetConfiguration(
                    name="Public",
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=settings.public_subnet_mask,
                    map_public_ip_on_launch=False,
                ),
            ],
        )
        for subnet in self.vpc.public_subnets:
            acknowledge(subnet.node.find_child("DefaultRoute"), controls.PUBLIC_SUBNETS_NAT_ONLY)
        # Every accepted and rejected flow, kept as long as the environment keeps logs (incident forensics).
        self.flow_log_group = encrypted_log_group(
            self, "FlowLogGroup", encryption_key=flow_log_key, retention_days=log_retention_days
        )
        # A customer-managed policy instead of CDK's inline default policy (HIPAA/NIST/PCI IAMNoInlinePolicy);
        # `without_policy_updates` stops FlowLog from adding the inline policy back.
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"),
            description="VPC flow logs delivery to the encrypted flow-log group",
        )
        iam.ManagedPolicy(
            self,
            "FlowLogDeliveryPolicy",
            roles=[flow_log_role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[self.flow_log_group.log_group_arn],
                )
            ],
        )
        self.flow_log = ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group, flow_log_role.without_policy_updates()
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        # S3 through the route tables (free), so attachment access from Fargate/Lambda never crosses NAT.
        self.vpc.add_gateway_endpoint(
            "S3Endpoint",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[
                ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            ],
        )
        # One shared security group: HTTPS from inside the VPC only, no egress needed by an endpoint ENI.
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the interface endpoints",
            allow_all_outbound=False,
        )
        # The literal CIDR (not the VPC's CidrBlock token) so port/peer rules can be checked at synth.
        self.endpoint_security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        for name, service in INTERFACE_ENDPOINTS.items():
            self.interface_endpoints[name] = self.vpc.add_interface_endpoint(
                f"{name}Endpoint",
                service=service,
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                security_groups=[self.endpoint_security_group],
                open=False,
                private_dns_enabled=True,
            )
