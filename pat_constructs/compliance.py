"""The compliance gate: cdk-nag packs registered on the app, and the one way this project acknowledges a finding."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import (
    AwsSolutionsChecks,
    HIPAASecurityChecks,
    NagPack,
    NIST80053R5Checks,
    PCIDSS321Checks,
    ServerlessChecks,
)
from constructs import IConstruct

from pat_data.contract import NAG_PACK_PREFIXES, NAG_PACKS

MIN_REASON_WORDS = 12
_PACK_CLASSES: dict[str, Callable[[App], NagPack]] = {
    "AwsSolutions": AwsSolutionsChecks,
    "HIPAA.Security": HIPAASecurityChecks,
    "NIST.800.53.R5": NIST80053R5Checks,
    "PCI.DSS.321": PCIDSS321Checks,
    "Serverless": ServerlessChecks,
}
PACK_PREFIXES = NAG_PACK_PREFIXES


def compliance_packs(app: App) -> list[NagPack]:
    """The packs every environment must pass (contract.NAG_PACKS); synth fails on any unacknowledged finding."""
    return [_PACK_CLASSES[name](app) for name in NAG_PACKS]


def register_compliance_packs(app: App) -> None:
    Validations.of(app).add_plugins(*compliance_packs(app))


def acknowledge(construct: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge ONE finding on ONE construct; the reason must name the compensating control."""
    if any(sep in finding_id for sep in (",", " ")) or "-" not in finding_id:
        raise ValueError(f"acknowledge one finding id such as 'AwsSolutions-IAM4', got {finding_id!r}")
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(
            f"acknowledgment of {finding_id} on {construct.node.path}: the reason needs at least "
            f"{MIN_REASON_WORDS} words naming the compensating control, got {reason!r}"
        )
    _record(construct, finding_id, reason)


def _record(construct: IConstruct, finding_id: str, reason: str) -> None:
    """The single call into CDK's acknowledgment API (the stale-acknowledgment test replaces it to see raw findings)."""
    Validations.of(construct).acknowledge(Acknowledgment(id=finding_id, reason=reason))


@dataclass(frozen=True)
class RecordedAcknowledgment:
    path: str
    finding_id: str
    reason: str


def recorded_acknowledgments(scope: IConstruct) -> Iterator[RecordedAcknowledgment]:
    """Every cdk-nag acknowledgment below `scope`, read back from construct metadata (for the stale/total tests).

    CDK records acknowledgments as `{"Annotation::<id>": reason}`; entries CDK adds for its own validator
    (`CloudFormation-Validate::...`) are not ours and are skipped.
    """
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key or not isinstance(entry.data, dict):
                continue
            for qualified_id, reason in entry.data.items():
                finding_id = qualified_id.split("::", 1)[1] if "::" in qualified_id else qualified_id
                if finding_id.startswith(PACK_PREFIXES):
                    yield RecordedAcknowledgment(construct.node.path, finding_id, reason)
