"""The compliance gate per environment: no unacknowledged finding, no stale acknowledgment, visible totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from pat_constructs import compliance, controls
from stacks import config
from tests.conftest import Synthesized, build_app

# Growth of acknowledgments must be visible in review: change these numbers deliberately, with the reason in the PR.
EXPECTED_ACKNOWLEDGMENTS = {"dev": 72, "staging": 63, "prod": 71}


def violations(app_scope: object) -> Iterator[tuple[str, str, str]]:
    """(pack rule id, construct path, severity) for every unacknowledged finding of every registered pack."""
    for pack in compliance.compliance_packs(app_scope):  # type: ignore[arg-type]
        for violation in pack.validate_scope(app_scope).violations:  # type: ignore[arg-type]
            for resource in violation.violating_resources:
                yield violation.rule_name, str(resource.construct_path), str(violation.severity)


@pytest.fixture(scope="session")
def raw_findings() -> dict[str, list[tuple[str, str, str]]]:
    """Findings of a build in which acknowledgments are recorded but not applied (to detect stale ones)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compliance, "_record", lambda construct, finding_id, reason: None)
        app, _ = build_app(config.resolve("all"))
    return {name: [v for v in violations(app) if v[1].startswith(f"Pat-{name}-")] for name in config.ENV_NAMES}


def test_no_unacknowledged_findings(synthesized: Synthesized, env_name: str) -> None:
    found = [v for v in violations(synthesized.app) if v[1].startswith(f"Pat-{env_name}-")]
    assert found == [], "fix the resource, or acknowledge ONE finding on the narrowest construct:\n" + "\n".join(
        f"{rule} ({severity}) at {path}" for rule, path, severity in found
    )


def test_every_acknowledgment_matches_a_finding(
    synthesized: Synthesized, raw_findings: dict[str, list[tuple[str, str, str]]], env_name: str
) -> None:
    raw = {(rule, path) for rule, path, _ in raw_findings[env_name]}
    stale = []
    for ack in compliance.recorded_acknowledgments(synthesized.app):
        if not ack.path.startswith(f"Pat-{env_name}-"):
            continue
        matched = any(
            rule == ack.finding_id and (path == ack.path or path.startswith(ack.path + "/")) for rule, path in raw
        )
        if not matched:
            stale.append(f"{ack.finding_id} at {ack.path}")
    assert stale == [], "stale acknowledgments (no finding left to acknowledge): remove them\n" + "\n".join(stale)


def test_acknowledgments_are_single_findings_with_reasons(synthesized: Synthesized, env_name: str) -> None:
    acks = [a for a in compliance.recorded_acknowledgments(synthesized.app) if a.path.startswith(f"Pat-{env_name}-")]
    for ack in acks:
        assert len(ack.reason.split()) >= controls.MIN_REASON_WORDS, ack
        # Never a stack- or app-wide blanket: the construct must be below a stack.
        assert ack.path.count("/") >= 1, ack
    by_rule = Counter(a.finding_id for a in acks)
    print(f"\n{env_name}: {len(acks)} acknowledgments: {dict(sorted(by_rule.items()))}")
    assert len(acks) == EXPECTED_ACKNOWLEDGMENTS[env_name]


def test_acknowledge_takes_only_catalog_controls(synthesized: Synthesized) -> None:
    construct = synthesized.envs["dev"].network.vpc
    look_alike = controls.Control(id="look-alike", text=controls.UNRESERVED_BY_DESIGN.text, nag=("AwsSolutions-IAM4",))
    with pytest.raises(ValueError, match="not a control of controls"):
        compliance.acknowledge(construct, look_alike)
    with pytest.raises(ValueError, match="name the resources"):
        compliance.acknowledge(construct, controls.AWS_MANAGED_SERVICE_ROLE)
    with pytest.raises(ValueError, match="takes no applies_to"):
        compliance.acknowledge(construct, controls.UNRESERVED_BY_DESIGN, applies_to=["Resource::*"])


def test_every_reason_is_the_text_of_a_control_answering_that_finding(synthesized: Synthesized) -> None:
    by_text = {control.text: control for control in controls.CATALOG}
    for ack in compliance.recorded_acknowledgments(synthesized.app):
        control = by_text.get(ack.reason)
        assert control is not None, f"{ack.finding_id} at {ack.path}: the reason is not a control's text"
        assert ack.finding_id.split("[", 1)[0] in control.nag, f"{control.id} does not answer {ack.finding_id}"


def test_every_nag_control_is_used(synthesized: Synthesized, synthesized_flipped: Synthesized) -> None:
    reasons = {
        ack.reason
        for app in (synthesized.app, synthesized_flipped.app)
        for ack in compliance.recorded_acknowledgments(app)
    }
    unused = [control.id for control in controls.CATALOG if control.nag and control.text not in reasons]
    assert unused == [], f"controls no acknowledgment uses (remove them, or their findings came back): {unused}"


def test_the_other_pooler_is_compliant_too(synthesized_flipped: Synthesized, env_name: str) -> None:
    found = [v for v in violations(synthesized_flipped.app) if v[1].startswith(f"Pat-{env_name}-")]
    assert found == [], "\n".join(f"{rule} ({severity}) at {path}" for rule, path, severity in found)
