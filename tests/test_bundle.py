"""Bundle manifests: write, verify, tamper, describe. Bundles come from the session's fp32 export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_export import fp32_bundle, tiny_model_dir  # noqa: F401 - fixtures

from har.artifacts.bundle import describe_bundle, read_manifest, sha256_file, verify_bundle, write_manifest
from har.errors import BundleError


@pytest.fixture
def bundle_copy(tmp_path: Path, fp32_bundle: Path) -> Path:  # noqa: F811
    dst = tmp_path / "b"
    shutil.copytree(fp32_bundle, dst)
    return dst


@pytest.mark.slow
def test_manifest_lists_every_file(bundle_copy: Path) -> None:
    files = read_manifest(bundle_copy)
    assert set(files) == {"model.tflite", "model_batch.tflite", "metadata.json", "report.txt", "head.npz"}
    for name, digest in files.items():
        assert sha256_file(bundle_copy / name) == digest
    meta = verify_bundle(bundle_copy)
    assert meta.classes == ("still", "shake", "wave")
    d = describe_bundle(bundle_copy)
    assert d["checksums_ok"] is True and d["quantize"] == "fp32" and d["batch_model"] is True
    assert d["verification"]["agreement"] >= 0.98
    json.dumps(d)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model.tflite", "metadata.json", "report.txt"])
def test_tampered_file_is_named(bundle_copy: Path, name: str) -> None:
    p = bundle_copy / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{name} does not match its checksum") as ei:
        verify_bundle(bundle_copy)
    assert "\n" not in str(ei.value)
    assert describe_bundle(bundle_copy)["checksums_ok"] is False


@pytest.mark.slow
def test_missing_unlisted_and_bad_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "model_batch.tflite").unlink()
    with pytest.raises(BundleError, match="model_batch.tflite is listed in the manifest but missing"):
        verify_bundle(bundle_copy)
    write_manifest(bundle_copy)
    verify_bundle(bundle_copy)
    (bundle_copy / "extra.tflite").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.tflite is not listed"):
        verify_bundle(bundle_copy)
    (bundle_copy / "extra.tflite").unlink()
    m = json.loads((bundle_copy / "manifest.json").read_text())
    m["files"]["../evil"] = "0" * 64
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="invalid file name"):
        verify_bundle(bundle_copy)
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="invalid JSON"):
        verify_bundle(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        verify_bundle(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        verify_bundle(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(BundleError, match="not a bundle directory"):
        verify_bundle(tmp_path / "f")
    with pytest.raises(BundleError, match="without model.tflite"):
        write_manifest(tmp_path)


def test_bundle_module_has_no_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, har.artifacts.bundle; assert 'tensorflow' not in sys.modules and 'tf_keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
