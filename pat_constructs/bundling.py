"""Lambda packaging without Docker: pip installs Linux wheels for the runtime's Python into the asset directory.

`pip install --platform manylinux2014_x86_64 --only-binary=:all: --python-version X.Y` fetches the same binary
wheels a Lambda x86_64 image would build, from any host; the project's own packages are then copied in. The asset
hash is computed from exactly those inputs, so synth never re-bundles (or re-uploads) an unchanged function.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

LAMBDA_PLATFORM = "manylinux2014_x86_64"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


def _files(root: Path, include: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for item in include:
        path = root / item
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        found.extend(p for p in candidates if "__pycache__" not in p.parts and p.suffix != ".pyc")
    return found


def content_hash(root: Path, include: Sequence[str], *extra: str) -> str:
    """SHA-256 over the relative paths and bytes of the included files (and any extra strings)."""
    digest = hashlib.sha256()
    for path in _files(root, include):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for value in extra:
        digest.update(value.encode())
    return digest.hexdigest()


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Installs `requirements` for `python_version` on Lambda's platform, then copies `include` (relative to root)."""

    def __init__(self, *, root: Path, requirements: Path, include: Sequence[str], python_version: str) -> None:
        self.root, self.requirements, self.include, self.python_version = root, requirements, include, python_version

    def try_bundle(self, output_dir: str, *_options: Any, **_keyword_options: Any) -> bool:
        """jsii passes the BundlingOptions positionally; nothing in them applies to a local pip install."""
        out = Path(output_dir)
        # An argv list (no shell) running this interpreter's pip against a pinned requirements file.
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--platform", LAMBDA_PLATFORM, "--implementation", "cp", "--python-version", self.python_version,
             "--only-binary=:all:", "--target", str(out), "--requirement", str(self.requirements)],
            check=True,
        )  # fmt: skip
        for item in self.include:
            source = self.root / item
            if source.is_dir():
                shutil.copytree(source, out / item, ignore=_IGNORED, dirs_exist_ok=True)
            else:
                (out / item).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out / item)
        return True


def python_code(
    *, root: Path, requirements: Path, include: Sequence[str], runtime: lambda_.Runtime
) -> tuple[lambda_.Code, str]:
    """Lambda code bundled locally (no Docker) and its content hash (also usable as a deploy trigger)."""
    version = runtime.name.removeprefix("python")
    asset_hash = content_hash(root, [*include, str(requirements.relative_to(root))], runtime.name, LAMBDA_PLATFORM)
    code = lambda_.Code.from_asset(
        str(requirements.parent),
        asset_hash=asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds, and CDK requires an image to be named.
            image=DockerImage.from_registry("local-bundling-only"),
            local=PipLocalBundling(root=root, requirements=requirements, include=include, python_version=version),
        ),
    )
    return code, asset_hash
