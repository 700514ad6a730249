"""The Docker-free Lambda bundle: built for real (pip from the package index), then imported in isolation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import boto3
import botocore
import pytest

from pat_constructs.bundling import PipLocalBundling
from pat_constructs.schema_migrator import BUNDLE_INCLUDE
from pat_data.contract import content_hash

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "lambdas" / "schema_migrator" / "requirements.txt"
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bundled for this interpreter's version, so the import test below can load the binary wheels."""
    out = tmp_path_factory.mktemp("bundle")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    bundler = PipLocalBundling(root=ROOT, requirements=REQUIREMENTS, include=BUNDLE_INCLUDE, python_version=version)
    assert bundler.try_bundle(str(out), object())
    return out


def test_bundle_holds_the_handler_the_library_the_schema_and_linux_wheels(bundle: Path) -> None:
    assert (bundle / "lambdas" / "schema_migrator" / "handler.py").is_file()
    assert (bundle / "pat_data" / "migrations" / "engine.py").is_file()
    assert sorted(p.name for p in (bundle / "schema" / "migrations").iterdir()) == sorted(
        p.name for p in (ROOT / "schema" / "migrations").iterdir()
    )
    assert (bundle / "schema" / "partitions.toml").is_file()
    assert any((bundle / "psycopg_binary").glob("*manylinux*")) or any((bundle / "psycopg_binary.libs").iterdir())
    assert not list(bundle.rglob("__pycache__"))
    assert not (bundle / "tests").exists()
    assert not (bundle / "boto3").exists()  # provided by the Lambda runtime


def test_handler_imports_with_only_the_bundle_and_the_runtime_sdk(bundle: Path, tmp_path: Path) -> None:
    """What Lambda does: no virtualenv, no project checkout; just the bundle plus the runtime's boto3."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site = Path(boto3.__file__).parents[1]
    assert Path(botocore.__file__).parents[1] == site
    for name in RUNTIME_PROVIDED:
        if (site / name).exists():
            (runtime / name).symlink_to(site / name)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "import lambdas.schema_migrator.handler as h, psycopg, psycopg_pool; "
        "print(h.BUNDLE_ROOT.name, psycopg.pq.__impl__)"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe, str(bundle), str(runtime)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [bundle.name, "binary"]


def test_content_hash_follows_content_not_timestamps(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "V001__a.sql").write_text("SELECT 1;\n")
    first = content_hash(tmp_path, ["schema"])
    (tmp_path / "schema" / "V001__a.sql").touch()
    assert content_hash(tmp_path, ["schema"]) == first
    (tmp_path / "schema" / "V002__b.sql").write_text("SELECT 2;\n")
    assert content_hash(tmp_path, ["schema"]) != first


def test_the_rds_ca_bundle_is_cut_from_the_pinned_package_and_loads_in_openssl(tmp_path: Path) -> None:
    """The migrator verifies the writer (verify-full) against this bundle, shipped in its asset."""
    import ssl

    from pat_constructs.bundling import rds_ca_bundle

    bundle = rds_ca_bundle(ROOT)
    assert bundle.count(b"-----BEGIN CERTIFICATE-----") >= 100  # every region's RDS CAs (2024 rotation)
    path = tmp_path / "rds-ca-bundle.pem"
    path.write_bytes(bundle)
    context = ssl.create_default_context(cafile=str(path))
    subjects = [str(cert["subject"]) for cert in context.get_ca_certs()]
    assert any("Amazon RDS" in subject for subject in subjects)
