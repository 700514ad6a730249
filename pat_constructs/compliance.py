"""The compliance gate: cdk-nag packs registered on the app, and the one way this project acknowledges findings
(by a compensating control of pat_constructs/controls.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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

from pat_constructs.controls import AWS_SOLUTIONS, CATALOG, HIPAA, NIST, PCI, SERVERLESS, Control
from pat_data.contract import NAG_PACK_PREFIXES, NAG_PACKS

_PACK_CLASSES: dict[str, Callable[[App], NagPack]] = {
    AWS_SOLUTIONS: AwsSolutionsChecks,
    HIPAA: HIPAASecurityChecks,
    NIST: NIST80053R5Checks,
    PCI: PCIDSS321Checks,
    SERVERLESS: ServerlessChecks,
}
PACK_PREFIXES = NAG_PACK_PREFIXES


def compliance_packs(app: App) -> list[NagPack]:
    """The packs every environment must pass (contract.NAG_PACKS); synth fails on any unacknowledged finding."""
    return [_PACK_CLASSES[name](app) for name in NAG_PACKS]


def register_compliance_packs(app: App) -> None:
    Validations.of(app).add_plugins(*compliance_packs(app))


def acknowledge(construct: IConstruct, control: Control, *, applies_to: Sequence[str] = ()) -> None:
    """Acknowledge, on ONE construct, every cdk-nag finding that `control` (of controls.CATALOG) answers.

    The reason recorded is the control's text. `applies_to` names the resources or policies of an IAM finding
    (`Policy::...`, `Resource::...`) for controls whose findings name them (`names_resources`).
    """
    if control not in CATALOG:  # controls compare by identity: only the catalog's instances pass
        raise ValueError(f"acknowledge on {construct.node.path}: {control!r} is not a control of controls.CATALOG")
    for finding_id in control.finding_ids(applies_to):
        _record(construct, finding_id, control.text)


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
