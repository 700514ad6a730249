"""The layering lint (scripts/lint_layers.py) passes on the project and fails, with its exact message, where it must."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import lint_layers

ROOT = Path(__file__).resolve().parents[2]
CDK_FREE = lint_layers.CDK_FREE_REASON
PAT_DATA = "run-time library: the Lambda bundle, patops and applications import it without the CDK app"
READERS = lint_layers.READER_RULE.reason


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_project_follows_its_layering() -> None:
    assert lint_layers.violations(ROOT) == []


def test_run_time_code_importing_the_cdk_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(tmp_path, {"pat_data/__init__.py": "", "pat_data/cache.py": '"""Cache."""\n\nimport aws_cdk as cdk\n'})
    assert lint_layers.main([str(tmp_path)]) == 1
    assert capsys.readouterr().out == f"pat_data/cache.py:3: pat_data may not import aws_cdk ({PAT_DATA})\n"


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "pat_data/__init__.py": "",
            "pat_data/migrations/__init__.py": "",
            "pat_data/migrations/engine.py": "from ..connect import Target\nfrom ... import stacks\n",
            "pat_data/connect.py": "",
        },
    )
    assert lint_layers.violations(tmp_path) == [
        f"pat_data/migrations/engine.py:2: pat_data may not import stacks ({PAT_DATA})"
    ]


def test_config_reaching_the_cdk_through_a_package_init_is_reported(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "stacks/__init__.py": "",
            "stacks/config.py": "import os\n\nfrom pat_constructs.settings import cache\n",
            "pat_constructs/__init__.py": '"""Constructs."""\nfrom pat_constructs.keys import Keys\n',
            "pat_constructs/keys.py": "from aws_cdk import aws_kms\n",
            "pat_constructs/settings/__init__.py": "",
            "pat_constructs/settings/cache.py": "import dataclasses\n",
        },
    )
    hops = "pat_constructs/__init__.py:2 -> pat_constructs/keys.py:1"
    assert lint_layers.violations(tmp_path) == [
        f"pat_constructs/settings/__init__.py:1: pat_constructs/settings/__init__.py may not import aws_cdk"
        f" (through its package {hops}; {CDK_FREE})",
        f"pat_constructs/settings/cache.py:1: pat_constructs/settings/cache.py may not import aws_cdk"
        f" (through its package {hops}; {CDK_FREE})",
        f"stacks/config.py:3: stacks/config.py may not import aws_cdk (through {hops}; {CDK_FREE})",
    ]


def test_only_config_reads_the_environment_and_context(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            "stacks/config.py": "import os\nA = os.environ['A']\nB = app.node.try_get_context('env')\n",
            "stacks/data_stack.py": "B = self.node.try_get_context('env')\n",
            "pat_constructs/pooler.py": "from os import getenv\n",
            "pat_data/local.py": "import os\nBIN = os.environ.get('PAT_PG_BIN')\n",
            "pat_data/connect.py": "import os\nDSN = os.getenv('DSN')\n",
        },
    )
    assert lint_layers.violations(tmp_path) == [
        f"pat_constructs/pooler.py:1: pat_constructs may not read os.getenv ({READERS})",
        f"pat_data/connect.py:2: pat_data may not read os.getenv ({READERS})",
        f"stacks/data_stack.py:1: stacks may not read CDK context (try_get_context) ({READERS})",
    ]


def test_every_allowed_reader_exists() -> None:
    """An exception for a file that is gone would silently allow its successor: the table names real files only."""
    assert [name for name in lint_layers.READER_RULE.allowed if not (ROOT / name).is_file()] == []


def test_make_help_lists_every_public_target() -> None:
    """`make help` prints targets with a `## description`; a target without one would be invisible to newcomers."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-zA-Z0-9_-]*):(?!=)", makefile, re.M)
    undocumented = [t for t in targets if not re.search(rf"^{re.escape(t)}:.*## \S", makefile, re.M)]
    assert targets
    assert not undocumented, f"add a `## description` to: {undocumented}"
