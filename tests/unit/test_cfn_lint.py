"""cfn-lint on every synthesized template: 0 errors, 0 warnings (CDK-noise ids ignored in .cfnlintrc.yaml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Synthesized


def test_cfn_lint_is_clean(synthesized: Synthesized, synthesized_flipped: Synthesized) -> None:
    templates = sorted(Path(synthesized.assembly.directory).glob("*.template.json"))
    # Keys, Network, Data, Access, Schema, Cache, Storage, Ops, EdgeMonitoring per environment; prod adds
    # StorageReplica and BackupDr.
    assert len(templates) == 9 * 3 + 2
    templates += sorted(Path(synthesized_flipped.assembly.directory).glob("Pat-*-Access.template.json"))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
