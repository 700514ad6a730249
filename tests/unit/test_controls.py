"""The catalog of compensating controls is the only source of acknowledgment and skip reasons, and all of it is used.

(That every cdk-nag control is used by some acknowledgment, and that every recorded reason is a control's text, is
checked on the synthesized environments in tests/nag/test_compliance.py.)
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from pat_constructs import checkov, controls

ROOT = Path(__file__).resolve().parents[2]
ACKNOWLEDGING_ROOMS = ("pat_constructs", "stacks")
FORWARDING_RECIPE = ROOT / "pat_constructs" / "vpc_lambda.py"


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for room in ACKNOWLEDGING_ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if called == name:
                        found.append((path, node))
    return found


def test_ids_and_texts_are_unique() -> None:
    for attribute in ("id", "text"):
        counts = Counter(getattr(control, attribute) for control in controls.CATALOG)
        assert [value for value, count in counts.items() if count > 1] == [], attribute


def test_acknowledge_is_only_called_with_catalog_controls() -> None:
    sites = _calls("acknowledge")
    assert sites, "no acknowledge() call found: has the API moved?"
    for path, call in sites:
        where = f"{path.relative_to(ROOT)}:{call.lineno}"
        if isinstance(call.func, ast.Attribute):
            # The one call into CDK's API, inside compliance._record.
            assert path == ROOT / "pat_constructs" / "compliance.py", f"{where}: acknowledge through compliance only"
            continue
        assert len(call.args) == 2, f"{where}: acknowledge(construct, controls.<CONTROL>)"
        control = call.args[1]
        if path == FORWARDING_RECIPE and isinstance(control, ast.Name):
            continue  # a control its caller chose, forwarded (compliance.acknowledge refuses non-catalog ones)
        assert isinstance(control, ast.Attribute), f"{where}: pass a control as controls.<NAME>"
        assert isinstance(control.value, ast.Name), where
        assert control.value.id == "controls", f"{where}: pass a control as controls.<NAME>"
        assert getattr(controls, control.attr, None) in controls.CATALOG, f"{where}: {control.attr} is not a control"
        assert {k.arg for k in call.keywords} <= {"applies_to"}, f"{where}: no free-text reason beside the control"


def test_no_acknowledgment_is_built_outside_compliance() -> None:
    sites = [path for path, _ in _calls("Acknowledgment")]
    assert set(sites) <= {ROOT / "pat_constructs" / "compliance.py"}, sites


def test_every_checkov_answer_of_a_control_has_a_skip_rule_and_every_rule_a_control() -> None:
    ruled = {(rule.check_id, rule.control.id) for rule in checkov.RULES}
    for rule in checkov.RULES:
        assert rule.control in controls.CATALOG
        assert rule.check_id in rule.control.checkov
    missing = [(check, c.id) for c in controls.CATALOG for check in c.checkov if (check, c.id) not in ruled]
    assert missing == [], f"controls claiming checkov checks no skip rule relies on: {missing}"


def test_a_control_refuses_short_texts_and_blanket_findings() -> None:
    with pytest.raises(ValueError, match="at least 12 words"):
        controls.Control(id="short", text="because", nag=controls.rule("IAM4", controls.AWS_SOLUTIONS))
    text = controls.UNRESERVED_BY_DESIGN.text
    with pytest.raises(ValueError, match="is not one"):
        controls.Control(id="blanket", text=text, nag=("AwsSolutions-IAM4, AwsSolutions-IAM5",))
    with pytest.raises(ValueError, match="is not one"):
        controls.Control(id="unknown-pack", text=text, nag=("CIS-IAM4",))
    with pytest.raises(ValueError, match="non-empty subset"):
        controls.rule("IAM4", "CIS")
    with pytest.raises(ValueError, match="wording for checks it does not answer"):
        controls.Control(id="wording", text=text, checkov=("CKV_AWS_1",), checkov_wording={"CKV_AWS_2": "x"})


def test_finding_ids_carry_the_resources_they_name() -> None:
    assert controls.LAMBDA_NETWORKING_AND_TRACING.finding_ids() == ("AwsSolutions-IAM5[Resource::*]",)
    assert controls.AWS_MANAGED_SERVICE_ROLE.finding_ids(["Policy::a", "Policy::b"]) == (
        "AwsSolutions-IAM4[Policy::a]",
        "AwsSolutions-IAM4[Policy::b]",
    )
    assert controls.UNRESERVED_BY_DESIGN.finding_ids() == (
        "HIPAA.Security-LambdaConcurrency",
        "NIST.800.53.R5-LambdaConcurrency",
    )
