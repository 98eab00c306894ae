"""`har doctor` on real bundles (a tiny Dense model converted with tf.lite in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd_fixture import tiny_bundle

from har.cli import cli
from har.deploy.doctor import FAIL, OK, doctor


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("doctor") / "bundle")


@pytest.fixture
def tampered_bundle(tmp_path: Path, good_bundle: Path) -> Path:
    import shutil

    d = tmp_path / "tampered"
    shutil.copytree(good_bundle, d)
    raw = bytearray((d / "model.tflite").read_bytes())
    raw[-1] ^= 0xFF
    (d / "model.tflite").write_bytes(bytes(raw))
    return d


def test_good_bundle_all_ok(good_bundle: Path) -> None:
    rep = doctor(bundle=good_bundle)
    assert rep.ok
    assert {c.name for c in rep.checks} >= {"python", "runtime", "numpy", "tensorflow", "bundle", "model", "disk"}
    for name in ("python", "runtime", "numpy", "bundle", "model", "disk"):
        c = rep.get(name)
        assert c is not None and c.status == OK, c
    assert "ai-edge-litert" in rep.get("runtime").detail or "tflite-runtime" in rep.get("runtime").detail
    assert "classifies one window" in rep.get("model").detail
    assert all("\n" not in c.detail for c in rep.checks)


def test_tampered_bundle_fails(tampered_bundle: Path) -> None:
    rep = doctor(bundle=tampered_bundle)
    assert not rep.ok
    assert rep.get("bundle").status == FAIL and "model.tflite" in rep.get("bundle").detail
    assert rep.get("model").status == FAIL


def test_missing_port_fails_clearly(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyNOPE0")
    rep = doctor(port=port)
    c = rep.get("serial")
    assert c.status == FAIL and port in c.detail and "does not exist" in c.detail
    assert not rep.ok


def test_port_not_a_tty_is_a_warning(tmp_path: Path) -> None:
    f = tmp_path / "plainfile"
    f.write_text("")
    c = doctor(port=str(f)).get("serial")
    assert c.status == "warn" and "not a character device" in c.detail


def test_cli_json_parses_and_exit_codes(good_bundle: Path, tampered_bundle: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["doctor", "--bundle", str(good_bundle), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["ok"] is True and all(c["status"] in ("ok", "warn") for c in data["checks"])
    r = CliRunner().invoke(cli, ["doctor", "--bundle", str(tampered_bundle), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["ok"] is False
    r = CliRunner().invoke(cli, ["doctor", "--port", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "[FAIL] serial" in r.output


def test_doctor_imports_no_tensorflow(good_bundle: Path) -> None:
    code = (
        "import sys; from har.deploy.doctor import doctor; "
        f"r = doctor(bundle={str(good_bundle)!r}); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]; "
        "assert r.ok and not bad, bad"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def test_tflite_runtime_needs_numpy_below_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from har.deploy import doctor as doc

    versions = {"numpy": "2.1.0", "tflite-runtime": "2.14.0"}
    monkeypatch.setattr(doc, "_dist_version", lambda name: versions.get(name))
    rep = doc.DoctorReport()
    doc._check_numpy(rep, "tflite-runtime")
    c = rep.get("numpy")
    assert c.status == FAIL and "numpy<2" in c.detail
    versions["numpy"] = "1.26.4"
    rep = doc.DoctorReport()
    doc._check_numpy(rep, "tflite-runtime")
    assert rep.get("numpy").status == OK


def test_no_runtime_fails_with_install_command(monkeypatch: pytest.MonkeyPatch, good_bundle: Path) -> None:
    from har.deploy import doctor as doc
    from har.runtime import interpreter

    missing = (("har_no_such_runtime.interpreter", "Interpreter", "ai-edge-litert", "ai-edge-litert"),)
    monkeypatch.setattr(interpreter, "_RUNTIMES", missing)
    monkeypatch.setenv("HAR_RUNTIME", "ai-edge-litert")
    monkeypatch.setattr(doc, "_dist_version", lambda name: None if name.startswith("tensorflow") else "1.0")
    rep = doc.doctor(bundle=good_bundle)
    c = rep.get("runtime")
    assert c.status == FAIL and "ai-edge-litert skipped: not installed" in c.detail and "pip install" in c.detail
    assert rep.get("tensorflow").status == OK and "not needed" in rep.get("tensorflow").detail
    assert rep.get("model").status == FAIL and not rep.ok
