"""Settings of `pat_constructs.network.PatNetwork`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """VPC layout. Subnet groups are allocated largest first so the CIDR arithmetic config validates is exact."""

    # The VPC's IPv4 range (RFC 1918, /16 to /28). Required.
    vpc_cidr: str
    # At least two distinct zones of the stack's region. Required.
    availability_zones: tuple[str, ...]
    # NAT gateways: 1 (cheap) up to one per zone (survives losing a zone). Required.
    nat_gateways: int
    # Private-with-egress subnets (Fargate tasks): /20 per zone.
    private_subnet_mask: int = 20
    # Isolated subnets (Aurora, ElastiCache, Lambda): /22 per zone.
    isolated_subnet_mask: int = 22
    # Public subnets (NAT gateways only): /24 per zone.
    public_subnet_mask: int = 24

    def subnet_masks(self) -> dict[str, int]:
        return {
            "private_subnet_mask": self.private_subnet_mask,
            "isolated_subnet_mask": self.isolated_subnet_mask,
            "public_subnet_mask": self.public_subnet_mask,
        }
