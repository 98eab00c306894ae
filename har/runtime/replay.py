"""Offline replay (`har replay`): a whole recording classified as fast as possible on the same
windows as `har run --file` and training (:mod:`har.signal`: runs, resampling, window grid and
labels), with a timeline and accuracy. No TensorFlow."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from har.artifacts.layout import BATCH_MODEL_FILE
from har.runtime.classifier import BATCH_THRESHOLD, WindowClassifier
from har.runtime.live import _as_classifier
from har.runtime.smoothing import SmoothingConfig, smooth_sequence
from har.scoring.events import event_metrics
from har.signal import runs, window_labels, window_starts

REPLAY_CHUNK = 4096  # windows normalised and classified at a time (bounds memory)


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
    model: str = ""  # what scored the windows: model_batch.tflite, model.tflite (+ head_adapted.npz)
    predicted: list[str] = field(default_factory=list)
    true: list[str] = field(default_factory=list)  # "" for unscored windows
    # Smoothing and event scoring (filled by with_smoothing(); replay() applies the bundle's setting).
    classes: tuple[str, ...] = ()
    probs: np.ndarray | None = field(default=None, repr=False)  # float32 (windows, classes)
    spans: list[tuple[float, float]] = field(default_factory=list, repr=False)  # per window, seconds
    majority: list[str] = field(default_factory=list, repr=False)  # majority recorded label ("" unlabeled)
    run_starts: list[int] = field(default_factory=list, repr=False)  # first window of each contiguous run
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    smoothed: list[str] = field(default_factory=list)  # labels `har run` would emit with ``smoothing``
    smoothed_correct: int = 0
    events: dict[str, Any] = field(default_factory=dict)  # {"raw": event_metrics, "smoothed": event_metrics}

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    @property
    def smoothed_accuracy(self) -> float | None:
        return self.smoothed_correct / self.scored if self.scored else None

    def with_smoothing(self, config: SmoothingConfig) -> ReplayResult:
        """A copy scored with ``config``: smoothed labels (the same as `har run` with that
        setting: the smoother is reset at each gap), their window accuracy, and event metrics
        (har.scoring.events) raw and smoothed against the windows' majority recorded labels."""
        if self.probs is None or len(self.classes) == 0:
            smoothed = list(self.predicted)
        else:
            times = [float(e) for _, e in self.spans]
            smoothed = smooth_sequence(self.probs, times, config, self.classes, self.run_starts)
        correct = sum(int(s == t) for s, t in zip(smoothed, self.true, strict=True) if t)
        truth = self.majority if len(self.majority) == len(self.predicted) else list(self.true)
        spans = self.spans if len(self.spans) == len(self.predicted) else [(float(i), i + 1.0) for i in
                                                                            range(len(self.predicted))]
        events = {"raw": event_metrics(self.predicted, truth, spans),
                  "smoothed": event_metrics(smoothed, truth, spans)}
        return replace(self, smoothing=config, smoothed=smoothed, smoothed_correct=correct, events=events)

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
            "model": self.model,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "predicted": s.predicted, "true": s.true,
                 "windows": s.windows}
                for s in self.segments
            ],
            "smoothing": {"spec": self.smoothing.spec, **self.smoothing.to_dict()},
            "smoothed": {"accuracy": self.smoothed_accuracy, "correct": self.smoothed_correct,
                         "counts": dict(Counter(self.smoothed))},
            "events": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in d.items()}
                       for k, d in self.events.items()},
        }


def _chunks(views: list[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Windows from consecutive runs in arrays of ``size`` (the last one shorter), so memory stays
    bounded by the chunk whatever the recording's length."""
    pending: list[np.ndarray] = []
    have = 0
    for v in views:
        s = 0
        while s < v.shape[0]:
            take = min(size - have, v.shape[0] - s)
            pending.append(v[s : s + take])
            have += take
            s += take
            if have == size:
                yield np.concatenate(pending) if len(pending) > 1 else np.ascontiguousarray(pending[0])
                pending, have = [], 0
    if pending:
        yield np.concatenate(pending) if len(pending) > 1 else np.ascontiguousarray(pending[0])


def replay(
    bundle: WindowClassifier | str | os.PathLike[str],
    recording_path: str | os.PathLike[str],
    num_threads: int = 1,
    exact: bool = False,
    progress: Callable[[int, int], Any] | None = None,
) -> ReplayResult:
    """Classify a whole recording as fast as possible, on the same window grid as `har run --file`
    (each contiguous segment from its first sample, every hop, resampled like training when the
    rates differ). Windows are scored exactly when training would use them
    (:func:`har.signal.window_labels`): pure enough for the model's purity setting and without an
    unlabelled sample.

    With a batched model in the bundle (``model_batch.tflite``: float32, fixed batch, the LSTM
    unrolled so that XNNPACK runs it as matrix products) it is used for every window; its argmax
    agreement with the bundle's live model is measured at deploy time (``verification`` in the
    metadata). ``exact=True`` runs the live model itself on every window instead: the very numbers
    `har run` would print, several times slower. An adapted bundle (a personal head,
    ``head_adapted.npz``) always runs the live model: the head was fitted on its embeddings, which an
    int8 live model's differ from the float batched model's. ``progress(done, total)`` is called
    after each chunk of windows."""
    from har.recording.format import read_recording  # noqa: PLC0415

    t0 = time.monotonic()
    clf = _as_classifier(bundle, num_threads)
    rec = read_recording(recording_path)
    meta = clf.metadata
    w, hop, purity = clf.window_samples, int(meta.window.hop_samples), float(meta.window.purity)
    model_rate = float(meta.window.rate_hz)
    views: list[np.ndarray] = []  # per contiguous run: (windows, w, channels), strided views (no copy)
    spans: list[tuple[float, float]] = []
    majority: list[str] = []  # recorded majority label of each window
    scored_labels: list[np.ndarray] = []  # the label training gives each window ("" = not scored)
    for run in runs(rec, model_rate):
        t, xyz = run.time, run.xyz
        starts = window_starts(xyz.shape[0], meta.window)
        if starts.shape[0] == 0:
            continue
        views.append(sliding_window_view(xyz, (w, xyz.shape[1]))[::hop, 0])
        # Timeline: each window owns the hop that ends at its last sample (the first window of a
        # run owns its whole span), so segments do not overlap.
        ends = t[starts + w - 1]
        owned = t[np.maximum(starts + w - 1 - hop, 0)]
        owned[0] = t[0]
        spans.extend(zip(owned.tolist(), ends.tolist(), strict=True))
        major, _, label = window_labels(run.labels, starts, w, purity)
        majority.extend(str(v) for v in major.tolist())
        scored_labels.append(label)
    n_windows = len(spans)
    use_batch = not exact and clf.uses_batch_model and n_windows >= BATCH_THRESHOLD
    probs = np.empty((n_windows, len(clf.classes)), dtype=np.float32)
    done = 0
    for chunk in _chunks(views, REPLAY_CHUNK):
        probs[done : done + chunk.shape[0]] = clf.predict_proba(chunk, batched=use_batch)
        done += chunk.shape[0]
        if progress is not None:
            progress(done, n_windows)
    labels_all = np.concatenate(scored_labels).tolist() if scored_labels else []
    pred = [clf.classes[i] for i in np.argmax(probs, axis=1).tolist()] if n_windows else []
    true_maj = majority
    scored_true = [str(v) for v in labels_all]
    scored = sum(1 for lab in scored_true if lab)
    correct = sum(1 for p, lab in zip(pred, scored_true, strict=True) if lab and p == lab)
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
    # A window that does not start where the previous one ended opens a new contiguous run (after
    # a gap or break): the live path resets its buffer, and its smoother, there.
    run_starts = [i for i in range(len(pred)) if i == 0 or spans[i][0] != spans[i - 1][1]]
    result = ReplayResult(
        recording=str(Path(recording_path)),
        windows=len(pred),
        scored=scored,
        correct=correct,
        segments=segments,
        counts=dict(Counter(pred)),
        elapsed_s=time.monotonic() - t0,
        runtime=clf.runtime_name,
        batched=use_batch,
        model=BATCH_MODEL_FILE if use_batch else clf.scored_model,
        predicted=pred,
        true=scored_true,
        classes=tuple(clf.classes),
        probs=probs,
        spans=[(float(a), float(b)) for a, b in spans],
        majority=true_maj,
        run_starts=run_starts,
    )
    return result.with_smoothing(SmoothingConfig.from_dict(meta.smoothing))
