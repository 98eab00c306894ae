"""The shipped default bundle holds on simulated people it never saw (inference only, real TFLite
runtime, no TensorFlow): >= 97% mean window accuracy and no subject under 93% on fresh subjects,
and on a live stream every activity is labelled correctly within 3 s of its start.

models/default is trained on `har simulate` subjects of the seeds in scripts/rebuild_default_model.sh
(subject seed 1000 x seed + i); the subjects here come from seeds 17 and 18 (17001-..., 18001-...),
never used in training or in any choice of the recipe (that was made on the validation seeds of
scripts/validate_default_model.py: 5, 6, 7, 41, 97 fresh, 42 and 98 live)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from har.artifacts.metadata import load_metadata
from har.recording.format import write_recording
from har.recording.simulate import ACTIVITIES, generate_dataset, simulate_recording

pytestmark = pytest.mark.slow  # inference only (a few seconds), but thousands of windows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
FRESH_SEED = 17
LIVE_SEED = 18
LATENCY_S = 3.0


def _training_seeds() -> set[int]:
    text = (ROOT / "scripts" / "rebuild_default_model.sh").read_text()
    seeds = {int(s) for s in re.findall(r"har simulate [^\n]*--seed (\d+)", text)}
    for loop in re.findall(r"for seed in ([\d ]+);", text):
        seeds |= {int(s) for s in loop.split()}
    return seeds


def test_fresh_seeds_are_not_training_seeds() -> None:
    seeds = _training_seeds()
    assert seeds, "no har simulate --seed found in scripts/rebuild_default_model.sh"
    # subject seeds are 1000 x seed + 1..99: disjoint from the training ones when the seeds differ
    assert FRESH_SEED not in seeds and LIVE_SEED not in seeds


@pytest.fixture(scope="module")
def fresh_scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from har.scoring.evaluate import evaluate

    d = tmp_path_factory.mktemp("fresh")
    generate_dataset(d, subjects=10, seconds_per_activity=40.0, seed=FRESH_SEED)
    return evaluate(DEFAULT, [d], echo=lambda s: None, progress=False)


def test_default_bundle_mean_accuracy_on_fresh_subjects(fresh_scores: dict[str, Any]) -> None:
    res = fresh_scores
    assert res["scored"].startswith("model.tflite")  # the int8 live model `har run` uses
    sp = res["subject_spread"]
    assert sp["n_subjects"] == 10
    assert res["accuracy"] >= 0.97 and sp["mean_accuracy"] >= 0.97, res["report"]


# Measured 2026-12-02 (models/README.md), bundle of the pinned recipe (1,782 wearers, window
# features beside the LSTM): mean 99.8%, worst wearer 98.2% (sim07, 86.0% with the 2026-12-01
# bundle: its sitting posture lies among other wearers' standing ones; the window features' sway and
# micro-motion tell them apart); live 41 of 41. Recipe chosen on the validation seeds only.
def test_default_bundle_worst_subject_on_fresh_subjects(fresh_scores: dict[str, Any]) -> None:
    assert fresh_scores["subject_spread"]["worst_accuracy"] >= 0.93, fresh_scores["report"]


def _label_at(ends: np.ndarray, labels: list[str], t: float) -> str | None:
    """The label `har run` shows at time ``t``: that of the last window ending at or before ``t``."""
    i = int(np.searchsorted(ends, t + 1e-9, side="right")) - 1
    return labels[i] if i >= 0 else None


def test_live_stream_labels_each_activity_within_3_s(tmp_path: Path) -> None:
    """A continuous simulated stream (10 s per activity, as the demo's emulator) through the live
    window grid and the bundle's stored smoothing, with the live model itself (replay exact=True:
    the numbers `har run` prints). Each activity must be shown within 3 s of its start."""
    from har.runtime.replay import replay

    meta = load_metadata(DEFAULT)
    rng = np.random.default_rng(LIVE_SEED)
    late: list[str] = []
    n_checked = 0
    for i in range(4):
        order = [str(a) for a in rng.permutation(ACTIVITIES)] + [str(a) for a in rng.permutation(ACTIVITIES)]
        schedule = [(a, 10.0) for a in order]
        s = 1000 * LIVE_SEED + i + 1
        rec = simulate_recording(schedule, subject=f"live{i}", subject_seed=s, seed=s, rate_hz=meta.window.rate_hz)
        path = write_recording(tmp_path / f"live{i}.csv", rec)
        res = replay(DEFAULT, path, exact=True)
        assert res.smoothing.to_dict() == meta.smoothing  # the bundle's stored live smoothing
        ends = np.array([e for _, e in res.spans])
        labels = res.smoothed
        t0 = 0.0
        for k, (act, secs) in enumerate(schedule):
            start, t0 = t0, t0 + secs
            if k == 0 or schedule[k - 1][0] == act:
                continue
            n_checked += 1
            shown = _label_at(ends, labels, start + LATENCY_S)
            if shown != act:
                late.append(f"live{i} {schedule[k - 1][0]}->{act} at {start:g} s: shows {shown} after {LATENCY_S:g} s")
    assert n_checked >= 30
    assert not late, "\n".join(late)
