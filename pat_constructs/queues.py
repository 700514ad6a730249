"""The one shape of queue this project has: where failed deliveries wait for on-call (KMS, TLS-only, 14 days)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct


def failure_queue(scope: Construct, construct_id: str, *, encryption_key: kms.IKey) -> sqs.Queue:
    """A dead-letter / failure-destination queue: nothing consumes it automatically; messages stay 14 days."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=encryption_key,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
