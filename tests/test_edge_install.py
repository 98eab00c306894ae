"""The runtime-only install: a fresh venv with only the `edge` extra runs `har run` and `har replay`.

Installs from the package index (pip's cache makes repeat runs quick); skips with the reason when
the index cannot be reached."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "default"
SIM = ROOT / "data" / "sim" / "sim08.csv"


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("edge-venv")
    venv.EnvBuilder(with_pip=True).create(d)
    py = d / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"{ROOT}[edge]"],
        capture_output=True, text=True, timeout=900, env=env,
    )
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        if "No matching distribution" in r.stderr or "connection" in r.stderr.lower():
            pytest.skip(f"cannot install the edge extra here: {tail}")
        pytest.fail(f"pip install .[edge] failed: {tail}")
    return d


@pytest.mark.slow
def test_edge_venv_has_no_tensorflow(edge_venv: Path) -> None:
    py = edge_venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, check=True)
    names = {line.split("==")[0].lower() for line in r.stdout.splitlines()}
    assert "ai-edge-litert" in names
    assert not names & {"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "matplotlib"}
    # a small device install: har needs numpy, click, pyserial and the runtime only (issue 13,
    # point 4); tqdm may still come as a dependency of ai-edge-litert itself
    assert "scipy" not in names, names
    r = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(chr(10).join(m.requires('har-edge')))"],
                       capture_output=True, text=True, check=True)
    own = {ln.split(";")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
           for ln in r.stdout.splitlines() if "extra ==" not in ln or "extra == \"edge\"" in ln}
    assert own == {"numpy", "click", "pyserial", "ai-edge-litert"}, own


@pytest.mark.slow
def test_edge_venv_simulator_needs_scipy_one_line(edge_venv: Path) -> None:
    har = edge_venv / "bin" / "har"
    r = subprocess.run([str(har), "emulate", "--simulate", "--duration", "1"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "needs scipy" in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_edge_venv_runs_and_replays(edge_venv: Path) -> None:
    har = edge_venv / "bin" / "har"
    r = subprocess.run([str(har), "replay", str(BUNDLE), str(SIM)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout
    assert "runtime: ai-edge-litert" in r.stderr  # proven in a child process first
    r = subprocess.run(
        [str(har), "run", str(BUNDLE), "--file", str(SIM), "--speed", "0", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) > 100
    r = subprocess.run(
        [str(edge_venv / "bin" / "python"), "-c",
         "import sys, har.cli, har.runtime.live, har.runtime.replay; "
         "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow','keras','tf_keras')))"],
        capture_output=True, text=True, check=True,
    )
    assert r.stdout.strip() == "[]"

