"""Check har's training defaults on other real sets: aeon's BasicMotions and seglearn's watch set.

BasicMotions: smartwatch on the wrist, 4 activities (standing, walking, running, badminton),
40 train + 40 test cases of 10 s at 10 Hz; accelerometer channels 0-2 only (the UEA copy is
per-series scaled, so values are not in g: har's per-axis normalisation absorbs the scale, the
rotation augmentation is then only approximately physical). No subject ids are published, so each
case is its own "subject" (validation cases are carved from the train cases) and the archive's
test cases are the test set (``--test DATA``). Cases are written as har recordings to a temp dir.

seglearn watch (``seglearn.datasets.load_watch()``, seglearn 1.2.5): a smartwatch on the wrist,
10 subjects doing 7 shoulder-rehabilitation exercises, 140 series of 19-52 s at 50 Hz, accelerometer
channels 0-2 in g. Each series is one recording of its subject; subjects 8-10 are the test subjects.

    python bench/generality.py [basic] [watch]   (needs ``pip install aeon`` / ``seglearn==1.2.5``)
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from har.config import AugmentConfig, ModelConfig, TrainConfig, WindowConfig  # noqa: E402
from har.recording.format import Recording, RecordingMeta, write_recording  # noqa: E402

RATE_HZ = 10.0


def write_cases(x: np.ndarray, y: np.ndarray, out: Path, prefix: str) -> Path:
    """Each case (channels, time) -> one recording (accelerometer channels 0-2)."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(x.shape[0]):
        xyz = np.ascontiguousarray(x[i, :3].T).astype(np.float32)
        n = xyz.shape[0]
        meta = RecordingMeta(subject=f"{prefix}{i:02d}", device="basicmotions", rate_hz=RATE_HZ, complete=True)
        rec = Recording(np.arange(n) / RATE_HZ, xyz, np.full(n, str(y[i])), np.arange(n), meta)
        write_recording(out / f"{prefix}{i:02d}.csv", rec)
    return out


def _configs(rate: float, test_subjects: tuple[str, ...] = ()) -> dict[str, TrainConfig]:
    d = TrainConfig(test_subjects=test_subjects)
    return {
        "har defaults": dataclasses.replace(d, window=dataclasses.replace(d.window, rate_hz=rate)),
        "old defaults (2.56 s, no conv, no aug)": dataclasses.replace(
            d,
            window=WindowConfig(rate_hz=rate, window_s=2.56, hop_s=0.64),
            model=ModelConfig(conv_filters=0, conv_stride=1),
            augment=AugmentConfig(enabled=False),
            lr_schedule="constant",
        ),
    }


def _run(name: str, cfg: TrainConfig, data: Path, out: Path, test: Path | None = None) -> dict[str, object]:
    from har.training.train import train

    t0 = time.monotonic()
    res = train([data], out, cfg, test_data=[test] if test else None, progress=False, echo=lambda s: None)
    m = res.metrics["metrics"]
    row = {
        "config": name,
        "accuracy": round(m["accuracy"], 4),
        "macro_f1": round(m["macro_f1"], 4),
        "test_windows": m["n"],
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def watch() -> None:
    """seglearn's smartwatch exercise set, subject-wise (test subjects 8, 9, 10)."""
    try:
        from seglearn.datasets import load_watch
    except ImportError:
        sys.exit(f"needs seglearn: {sys.executable} -m pip install seglearn==1.2.5")
    d = load_watch()
    names = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    with tempfile.TemporaryDirectory(prefix="har-watch-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for i, (x, y, subj) in enumerate(zip(d["X"], d["y"], d["subject"], strict=True)):
            xyz = np.ascontiguousarray(x[:, :3]).astype(np.float32)
            n = xyz.shape[0]
            meta = RecordingMeta(subject=f"w{int(subj):02d}", device="seglearn-watch", rate_hz=50.0, complete=True)
            rec = Recording(np.arange(n) / 50.0, xyz, np.full(n, names[int(y)]), np.arange(n), meta)
            write_recording(data / f"watch{i:03d}.csv", rec)
        print("seglearn watch (50 Hz, 10 subjects, test w08-w10):")
        for name, cfg in _configs(50.0, ("w08", "w09", "w10")).items():
            _run(name, cfg, data, Path(tmp) / "m")


def basic() -> None:
    """aeon's BasicMotions, archive train/test split."""
    try:
        from aeon.datasets import load_basic_motions
    except ImportError:
        sys.exit(f"needs aeon: {sys.executable} -m pip install aeon")
    xtr, ytr = load_basic_motions(split="train")
    xte, yte = load_basic_motions(split="test")
    print("BasicMotions (10 Hz, archive split):")
    with tempfile.TemporaryDirectory(prefix="har-gen-") as tmp:
        tr = write_cases(xtr, ytr, Path(tmp) / "train", "tr")
        te = write_cases(xte, yte, Path(tmp) / "test", "te")
        for name, cfg in _configs(RATE_HZ).items():
            _run(name, cfg, tr, Path(tmp) / "m", te)


def main() -> None:
    which = sys.argv[1:] or ["basic", "watch"]
    for w in which:
        {"basic": basic, "watch": watch}[w]()


if __name__ == "__main__":
    main()
