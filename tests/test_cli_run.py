"""`har deploy`, `har run --file`, `har replay` through click, and the no-TensorFlow rule for the
run path (checked in a subprocess with an import blocker)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_CLASSES, make_tiny_recordings
from test_export import fp32_bundle, tiny_model_dir  # noqa: F401 - fixtures

from har.cli import cli


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_recordings(tmp_path_factory.mktemp("rec"), subjects=1, seconds_per_class=4.0, rate_hz=25.0)[0]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


@pytest.mark.slow
def test_deploy_cli(tmp_path: Path, tiny_model_dir: Path, fp32_bundle: Path) -> None:  # noqa: F811
    r = _runner().invoke(cli, ["deploy", str(tiny_model_dir), "--out", str(tmp_path / "b"), "--quantize", "fp16",
                               "--batch", "0"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "agreement with Keras" in r.stdout and "Bundle written" in r.stdout
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "head.npz", "manifest.json", "metadata.json", "model.tflite", "report.txt"]
    r = _runner().invoke(cli, ["deploy", str(tiny_model_dir), "--out", str(fp32_bundle)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: ") and "exists" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_run_file_human_and_json(fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    r = _runner().invoke(cli, ["run", str(fp32_bundle), "--file", str(recording), "--speed", "0"])
    assert r.exit_code == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    preds = [ln for ln in lines if re.match(r"\d\d:\d\d\.\d{3}  ", ln)]
    assert preds and all(ln.split()[1] in TINY_CLASSES for ln in preds)
    assert len(preds) == len(range(0, 300 - 25 + 1, 10))
    assert any(ln.startswith(f"{len(preds)} windows from 300 samples") for ln in lines)

    r = _runner().invoke(cli, ["run", str(fp32_bundle), "--file", str(recording), "--speed", "0", "--json"])
    assert r.exit_code == 0
    objs = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
    assert len(objs) == len(preds)
    for o in objs:
        assert set(o) == {"t", "label", "confidence", "probs"}
        assert set(o["probs"]) == set(TINY_CLASSES) and o["label"] in TINY_CLASSES
        assert abs(sum(o["probs"].values()) - 1) < 0.01
    summary = json.loads(r.stderr.strip().splitlines()[-1])["summary"]
    assert summary["windows"] == len(objs) and summary["samples"] == 300


def test_run_text_shows_when_smoothing_holds_a_label() -> None:
    """The default bundle smooths (avg:4, enter=0.6): around a change of activity the reported
    label is held for a window or two; the text line says so and shows what this window saw."""
    root = Path(__file__).resolve().parents[1]
    rec = root / "data" / "sim" / "sim01.csv"
    r = _runner().invoke(cli, ["run", str(root / "models" / "default"), "--file", str(rec), "--speed", "0"])
    assert r.exit_code == 0, r.stdout + r.stderr
    preds = [ln for ln in r.stdout.splitlines() if re.match(r"\d\d:\d\d\.\d{3}  ", ln)]
    held = [ln for ln in preds if " held " in ln]
    assert held and len(held) < len(preds) // 5
    for ln in held:
        m = re.fullmatch(r"\d\d:\d\d\.\d{3}  (\w+) +held   \(this window: (\w+) (\d+\.\d)%\)", ln)
        assert m and m.group(1) != m.group(2), ln
    assert all(re.search(r" \d+\.\d%$", ln) for ln in preds if ln not in held)


@pytest.mark.slow
def test_run_refuses_tampered_bundle_and_bad_args(tmp_path: Path, fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    b = tmp_path / "b"
    shutil.copytree(fp32_bundle, b)
    (b / "model.tflite").write_bytes(b"garbage")
    r = _runner().invoke(cli, ["run", str(b), "--file", str(recording), "--speed", "0"])
    assert r.exit_code == 1 and "model.tflite does not match its checksum" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _runner().invoke(cli, ["run", str(fp32_bundle)])
    assert r.exit_code == 1 and "exactly one source" in r.stderr
    r = _runner().invoke(cli, ["replay", str(tmp_path / "missing"), str(recording)])
    assert r.exit_code == 1 and "no such bundle" in r.stderr


@pytest.mark.slow
def test_replay_cli(fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    r = _runner().invoke(cli, ["replay", str(fp32_bundle), str(recording)])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0].split()[:4] == ["start", "end", "predicted", "recorded"]
    assert "accuracy" in r.stdout.splitlines()[-1]
    r = _runner().invoke(cli, ["replay", str(fp32_bundle), str(recording), "--json"])
    d = json.loads(r.stdout)
    assert d["windows"] == len(range(0, 300 - 25 + 1, 10)) and d["accuracy"] >= 0.9
    assert {s["predicted"] for s in d["segments"]} <= set(TINY_CLASSES)


_NO_TF = r"""
import sys
BLOCKED = ("tensorflow", "keras", "tf_keras")
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Blocker())
from har.cli import cli
for args in (["run", BUNDLE, "--file", REC, "--speed", "0", "--json"], ["replay", BUNDLE, REC]):
    try:
        cli.main(args=args, prog_name="har", standalone_mode=False)
    except SystemExit as e:
        assert not e.code, e.code
bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not bad, bad
print("NO-TF-OK", file=sys.stderr)
"""


@pytest.mark.slow
def test_run_path_never_imports_tensorflow(fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    code = _NO_TF.replace("BUNDLE", repr(str(fp32_bundle))).replace("REC", repr(str(recording)))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "NO-TF-OK" in p.stderr
    assert len([ln for ln in p.stdout.splitlines() if ln.startswith("{")]) > 0


@pytest.mark.slow
def test_sigterm_ends_cleanly_with_summary(fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "-c", "from har.cli import main; main()", "run", str(fp32_bundle),
                       "--file", str(recording), "--speed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert p.stdout is not None
    first = p.stdout.readline()  # the first prediction (after ~1 s of real-time replay)
    assert first.split()[1] in TINY_CLASSES
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 0, err
    assert "(signal)" in out and "windows from" in out
