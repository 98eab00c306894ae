"""The runtime is proven in a child process: a runtime that really crashes (a fake module on
PYTHONPATH that kills its own process with SIGSEGV / SIGILL on ``Interpreter()``, shadowing the
installed ai-edge-litert) never takes down `har run` or passes `har doctor`; har falls back to the
next runtime and says so in one line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sshd_fixture import tiny_bundle

from har.errors import RuntimeInferenceError
from har.runtime.interpreter import choose_runtime

ROOT = Path(__file__).resolve().parents[1]
SIM = ROOT / "data" / "sim" / "sim01.csv"
DEFAULT = ROOT / "models" / "default"
HAR = [sys.executable, "-m", "har.cli"]

_CRASH = """
import os, signal
class Interpreter:
    def __init__(self, *args, **kwargs):
        os.kill(os.getpid(), signal.{sig})
"""


def _crashing_runtime(d: Path, sig: str = "SIGSEGV") -> Path:
    """A directory holding a fake ``ai_edge_litert`` whose Interpreter() kills the process."""
    pkg = d / "ai_edge_litert"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text(_CRASH.format(sig=sig))
    return d


def _env(tmp: Path, fake: Path | None, runtimes: str | None) -> dict[str, str]:
    env = dict(os.environ, HAR_CACHE_DIR=str(tmp / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([*([str(fake)] if fake else []), str(ROOT)])
    env.pop("HAR_RUNTIME", None)
    if runtimes:
        env["HAR_RUNTIME"] = runtimes
    return env


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("probe") / "bundle")


@pytest.mark.parametrize("sig", ["SIGSEGV", "SIGILL"])
def test_crashing_runtime_fails_har_run_with_one_line(tmp_path: Path, sig: str) -> None:
    fake = _crashing_runtime(tmp_path / "fake", sig)
    env = _env(tmp_path, fake, "ai-edge-litert,tflite-runtime")
    r = subprocess.run([*HAR, "run", str(DEFAULT), "--file", str(SIM), "--speed", "0"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    assert len(lines) == 1 and lines[0].startswith("Error: no TFLite runtime can run the model"), r.stderr
    assert f"ai-edge-litert skipped: crashed with {sig} loading the model" in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_crashing_runtime_fails_doctor(tmp_path: Path, bundle: Path) -> None:
    fake = _crashing_runtime(tmp_path / "fake")
    env = _env(tmp_path, fake, "ai-edge-litert")
    r = subprocess.run([*HAR, "doctor", "--bundle", str(bundle)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    rt = next(ln for ln in r.stdout.splitlines() if " runtime " in ln)
    assert rt.startswith("[FAIL]") and "crashed with SIGSEGV" in rt
    assert any(ln.startswith("[FAIL] model") for ln in r.stdout.splitlines())


def test_real_runtime_chosen_and_cached(tmp_path: Path, bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HAR_RUNTIME", raising=False)
    first = choose_runtime(bundle / "model.tflite")
    assert first.name == "ai-edge-litert" and not first.cached and first.skipped == {}
    assert first.line.startswith("runtime: ai-edge-litert ") and "child process" in first.line
    again = choose_runtime(bundle / "model.tflite")
    assert again.cached and again.name == first.name and "probe cached" in again.line
    # a different module found first on the path is a different runtime: not taken from the cache
    fake = _crashing_runtime(tmp_path / "fake")
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(fake), str(ROOT)]))
    monkeypatch.setenv("HAR_RUNTIME", "ai-edge-litert")
    crashed = choose_runtime(bundle / "model.tflite")
    assert not crashed.cached and crashed.name is None
    assert crashed.skipped == {"ai-edge-litert": "crashed with SIGSEGV loading the model"}


def test_bad_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAR_RUNTIME", "tflite")
    with pytest.raises(RuntimeInferenceError, match="HAR_RUNTIME: unknown runtime 'tflite'"):
        choose_runtime(DEFAULT / "model.tflite")
    monkeypatch.delenv("HAR_RUNTIME")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all, really")
    with pytest.raises(RuntimeInferenceError, match="not a valid TFLite model"):
        choose_runtime(bad)
    with pytest.raises(RuntimeInferenceError, match="no such model file"):
        choose_runtime(tmp_path / "missing.tflite")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow not installed")
def test_crash_falls_back_to_the_next_runtime(tmp_path: Path) -> None:
    """ai-edge-litert crashes, tflite-runtime is absent: tf.lite runs, and one line says why."""
    fake = _crashing_runtime(tmp_path / "fake")
    r = subprocess.run([*HAR, "run", str(DEFAULT), "--file", str(SIM), "--speed", "0", "--duration", "10"],
                       capture_output=True, text=True, timeout=600, env=_env(tmp_path, fake, None))
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("runtime: "))
    assert line.startswith("runtime: tensorflow ")
    assert "ai-edge-litert skipped: crashed with SIGSEGV loading the model" in line
    assert "tflite-runtime skipped: " in line
    assert len([ln for ln in r.stdout.splitlines() if ln.strip()]) > 10
