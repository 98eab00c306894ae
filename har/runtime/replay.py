"""Offline replay (`har replay`): a whole recording classified as fast as possible on the same
window grid as `har run --file`, with a timeline and accuracy. No TensorFlow."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .classifier import WindowClassifier
from .live import RATE_TOLERANCE, _as_classifier, _Resampler


@dataclass(frozen=True)
class TimelineSegment:
    start: float  # seconds: end of the window before the first one (or the first window's start)
    end: float  # seconds: last sample of the last window
    predicted: str
    true: str  # majority recorded label over the span ("" = unlabeled)
    windows: int


@dataclass
class ReplayResult:
    recording: str
    windows: int
    scored: int  # windows with a pure recorded label (the accuracy denominator)
    correct: int
    segments: list[TimelineSegment]
    counts: dict[str, int]
    elapsed_s: float
    runtime: str
    batched: bool
    predicted: list[str] = field(default_factory=list)
    true: list[str] = field(default_factory=list)  # "" for unscored windows

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "recording": self.recording,
            "windows": self.windows,
            "scored": self.scored,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "counts": dict(self.counts),
            "elapsed_s": round(self.elapsed_s, 4),
            "runtime": self.runtime,
            "batched": self.batched,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "predicted": s.predicted, "true": s.true,
                 "windows": s.windows}
                for s in self.segments
            ],
        }


def _majority(labels: np.ndarray) -> tuple[str, float]:
    if labels.size == 0:
        return "", 0.0
    vals, cnt = np.unique(labels, return_counts=True)
    i = int(np.argmax(cnt))
    return str(vals[i]), float(cnt[i]) / labels.size


def replay(
    bundle: WindowClassifier | str | os.PathLike[str], recording_path: str | os.PathLike[str], num_threads: int = 1
) -> ReplayResult:
    """Classify a whole recording as fast as possible (batched when the bundle has a batched
    model), on the same window grid as `har run --file` (each contiguous segment from its first
    sample, every hop). Windows whose recorded labels are unlabeled or less pure than the
    model's purity setting are not scored."""
    from ..recording import read_recording  # noqa: PLC0415

    t0 = time.monotonic()
    clf = _as_classifier(bundle, num_threads)
    rec = read_recording(recording_path)
    meta = clf.metadata
    w, hop, purity = clf.window_samples, int(meta.window.hop_samples), float(meta.window.purity)
    model_rate = float(meta.window.rate_hz)
    wins: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    wlabels: list[np.ndarray] = []
    for seg in rec.segments():
        t, xyz, labs = rec.time[seg], rec.xyz[seg], rec.labels[seg]
        if abs(rec.rate_hz - model_rate) / model_rate > RATE_TOLERANCE:
            r = _Resampler(rec.rate_hz, model_rate)
            t2, xyz = r.push(t, xyz)
            near = np.clip(np.searchsorted(t, t2), 0, len(t) - 1)
            t, labs = t2, labs[near]
        n = xyz.shape[0]
        if n < w:
            continue
        starts = np.arange(0, n - w + 1, hop)
        idx = starts[:, None] + np.arange(w)[None, :]
        wins.append(xyz[idx])
        # Timeline: each window owns the hop that ends at its last sample (the first window of a
        # run owns its whole span), so segments do not overlap.
        spans.extend(
            (float(t[s]) if k == 0 else float(t[s + w - 1 - hop]), float(t[s + w - 1])) for k, s in enumerate(starts)
        )
        wlabels.extend(labs[s : s + w] for s in starts)
    x = np.concatenate(wins) if wins else np.zeros((0, w, clf.n_channels), dtype=np.float32)
    probs = clf.predict_proba(x)
    pred = [clf.classes[i] for i in np.argmax(probs, axis=1).tolist()] if len(x) else []
    true_maj: list[str] = []
    scored_true: list[str] = []
    correct = scored = 0
    for p, labs in zip(pred, wlabels, strict=True):
        lab, frac = _majority(labs)
        true_maj.append(lab)
        if lab and frac >= purity:
            scored += 1
            correct += int(p == lab)
            scored_true.append(lab)
        else:
            scored_true.append("")
    segments: list[TimelineSegment] = []
    i = 0
    while i < len(pred):
        j = i
        while (
            j + 1 < len(pred) and pred[j + 1] == pred[i] and true_maj[j + 1] == true_maj[i]
            and spans[j + 1][0] <= spans[j][1] + 1.5 / model_rate
        ):
            j += 1
        segments.append(TimelineSegment(spans[i][0], spans[j][1], pred[i], true_maj[i], j - i + 1))
        i = j + 1
    return ReplayResult(
        recording=str(Path(recording_path)),
        windows=len(pred),
        scored=scored,
        correct=correct,
        segments=segments,
        counts=dict(Counter(pred)),
        elapsed_s=time.monotonic() - t0,
        runtime=clf.runtime_name,
        batched=clf.has_batch_model and len(pred) >= 8,
        predicted=pred,
        true=scored_true,
    )
