"""Shared fixtures. Everything here is made by the tests themselves (no files outside the repo)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from har.recording.format import Recording, RecordingMeta, write_recording

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WISDM_DIR = SHARED_DATA / "wisdm2019-watch-accel"

TINY_CLASSES = ("still", "shake", "wave")


def tiny_signal(label: str, n: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Three easily told apart classes (float32 (n,3) g): flat, fast shake, slow wave."""
    t = np.arange(n) / rate_hz
    g = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.05, 3)
    base = np.tile(g, (n, 1))
    if label == "shake":
        f = 3.0 + rng.normal(0, 0.2)
        base[:, 0] += 0.8 * np.sin(2 * np.pi * f * t)
    elif label == "wave":
        f = 0.8 + rng.normal(0, 0.05)
        base[:, 1] += 0.5 * np.sin(2 * np.pi * f * t)
    base += rng.normal(0, 0.03, base.shape)
    return base.astype(np.float32)


def make_tiny_recordings(
    out_dir: Path,
    subjects: int = 4,
    seconds_per_class: float = 20.0,
    rate_hz: float = 25.0,
    classes: tuple[str, ...] = TINY_CLASSES,
    seed: int = 0,
) -> list[Path]:
    """One recording per subject, all classes in turn, written in the har recording format."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for s in range(subjects):
        n = int(seconds_per_class * rate_hz)
        xyz = np.concatenate([tiny_signal(c, n, rate_hz, rng) for c in classes])
        labels = np.repeat(np.array(classes), n)
        total = xyz.shape[0]
        rec = Recording(
            time=np.arange(total) / rate_hz,
            xyz=xyz,
            labels=labels,
            seq=np.arange(total, dtype=np.int64),
            meta=RecordingMeta(subject=f"s{s}", device="test", rate_hz=rate_hz, complete=True),
        )
        paths.append(write_recording(out_dir / f"s{s}.csv", rec))
    return paths


@pytest.fixture
def tiny_recordings(tmp_path: Path) -> list[Path]:
    return make_tiny_recordings(tmp_path / "data")


@pytest.fixture(autouse=True)
def _quiet_tf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


def require_shared() -> Path:
    if not WISDM_DIR.is_dir():
        pytest.skip(f"../shared/data not present ({WISDM_DIR}): real-data test skipped")
    return WISDM_DIR


os.environ.setdefault("HYPOTHESIS_PROFILE", "default")


# TensorFlow, tf_keras and aeon bring several hundred thousand long-lived objects, and every full
# garbage collection walks them all: Keras' clear_session() after each fit, Optuna's gc after each
# trial, Python's own gen-2 passes (0.3-1 s each once TensorFlow is in; a tune test with instant fake
# trials spent ~10 of its ~11 s there). Once such a module is first imported, what is alive is
# collected once and frozen (gc.freeze: kept out of later collections); objects made afterwards are
# collected as usual. Nothing a test asserts changes.
_HEAVY_MODULES = ("tensorflow", "tf_keras", "aeon")
_frozen_after: set[str] = set()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    loaded = {m for m in _HEAVY_MODULES if m in sys.modules}
    if loaded - _frozen_after:
        _frozen_after.update(loaded)
        gc.collect()
        gc.freeze()
