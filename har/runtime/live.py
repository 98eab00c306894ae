"""Live classification (`har run`). No TensorFlow.

:class:`LiveClassifier` keeps the last window of samples in a preallocated ring buffer, fed
:class:`~har.sources.base.SampleBlock` s from any source, and classifies every hop once a window
is full. A break (``break_before``) or a sequence gap empties the buffer: no window spans a gap.
When the source rate differs from the model's, samples are resampled on the fly (linear
interpolation on the nominal timeline)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sources.base import SampleBlock, SampleSource
from .classifier import WindowClassifier

RATE_TOLERANCE = 0.01  # relative rate difference below which samples are used as they are


@dataclass(frozen=True)
class Prediction:
    time: float  # seconds (source clock) of the last sample in the window
    label: str
    confidence: float  # probability of ``label``
    probs: np.ndarray  # float32 (n_classes,)
    raw_label: str | None = None  # the model's own argmax when smoothing changed ``label``'s meaning

    def to_dict(self, classes: tuple[str, ...]) -> dict[str, Any]:
        d: dict[str, Any] = {
            "t": round(float(self.time), 4),
            "label": self.label,
            "confidence": round(float(self.confidence), 4),
            "probs": {c: round(float(p), 4) for c, p in zip(classes, self.probs.tolist(), strict=True)},
        }
        if self.raw_label is not None:
            d["raw_label"] = self.raw_label
        return d


class _Resampler:
    """Streaming linear interpolation from ``src_hz`` to ``dst_hz`` on one contiguous run."""

    def __init__(self, src_hz: float, dst_hz: float) -> None:
        self.step = src_hz / dst_hz  # source samples per output sample
        self.reset()

    def reset(self) -> None:
        self._consumed = 0  # source samples seen in this run
        self._next = 0.0  # source-index position of the next output sample
        self._last_xyz: np.ndarray | None = None
        self._last_t = 0.0

    def push(self, t: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = t.shape[0]
        if n == 0:
            return t, xyz
        k0 = self._consumed
        if self._last_xyz is not None:
            idx = np.arange(k0 - 1, k0 + n, dtype=np.float64)
            tt = np.concatenate([[self._last_t], t])
            aa = np.concatenate([self._last_xyz[None], xyz])
        else:
            idx = np.arange(k0, k0 + n, dtype=np.float64)
            tt, aa = t, xyz
        hi = float(k0 + n - 1)
        m = int(np.floor((hi - self._next) / self.step)) + 1 if hi >= self._next else 0
        pos = self._next + self.step * np.arange(m)
        self._next += self.step * m
        self._consumed += n
        self._last_xyz = np.asarray(xyz[-1], dtype=np.float32).copy()
        self._last_t = float(t[-1])
        out_t = np.interp(pos, idx, tt)
        out = np.empty((m, 3), dtype=np.float32)
        for j in range(3):
            out[:, j] = np.interp(pos, idx, aa[:, j])
        return out_t, out


class LiveClassifier:
    """Ring buffer + WindowClassifier: feed blocks, get predictions every hop."""

    def __init__(
        self, classifier: WindowClassifier, source_rate_hz: float | None = None, hop_samples: int | None = None
    ) -> None:
        self.clf = classifier
        self.window = classifier.window_samples
        self.hop = int(hop_samples or classifier.metadata.window.hop_samples)
        self.model_rate_hz = float(classifier.metadata.window.rate_hz)
        self.source_rate_hz: float | None = None
        self.resampler: _Resampler | None = None
        # Each sample is written twice (at i and i + window) so the last window is always the
        # contiguous slice buf[pos:pos + window] (no copy-on-read).
        self._buf = np.zeros((2 * self.window, classifier.n_channels), dtype=np.float32)
        self._pos = 0
        self._filled = 0
        self._since = 0  # samples since the last prediction
        self._fresh = True  # no prediction since the last reset: predict as soon as the window is full
        self._last_seq: int | None = None
        self.resets = 0  # buffer resets caused by gaps or breaks
        self.samples = 0
        self.windows = 0
        self.set_source_rate(source_rate_hz)

    def set_source_rate(self, rate_hz: float | None) -> None:
        """Declare the source's sample rate (Hz; None = assume the model's). A device announces
        it in its header, possibly after the classifier was made: a change empties the buffer."""
        if rate_hz == self.source_rate_hz:
            return
        self.source_rate_hz = rate_hz
        m = self.model_rate_hz
        if rate_hz and abs(rate_hz - m) / m > RATE_TOLERANCE:
            self.resampler = _Resampler(float(rate_hz), m)
        else:
            self.resampler = None
        self.reset()

    def reset(self) -> None:
        """Forget the buffered samples (after a gap or break)."""
        self._filled = 0
        self._since = 0
        self._fresh = True
        if self.resampler is not None:
            self.resampler.reset()

    def _push(self, t: np.ndarray, xyz: np.ndarray) -> list[Prediction]:
        preds: list[Prediction] = []
        w = self.window
        i, n = 0, xyz.shape[0]
        while i < n:
            need = (w - self._filled) if self._filled < w else (self.hop - self._since)
            k = min(max(need, 1), n - i, w)
            chunk = xyz[i : i + k]
            p = self._pos
            first = min(k, w - p)
            self._buf[p : p + first] = chunk[:first]
            self._buf[p + w : p + w + first] = chunk[:first]
            if k > first:
                self._buf[: k - first] = chunk[first:]
                self._buf[w : w + k - first] = chunk[first:]
            self._pos = (p + k) % w
            self._filled = min(w, self._filled + k)
            self._since += k
            i += k
            if self._filled >= w and (self._fresh or self._since >= self.hop):
                win = self._buf[self._pos : self._pos + w]
                probs = self.clf.predict_one(win)
                label, conf = self.clf.label_of(probs)
                preds.append(Prediction(float(t[i - 1]), label, conf, probs))
                self.windows += 1
                self._since = 0
                self._fresh = False
        return preds

    def feed(self, block: SampleBlock) -> list[Prediction]:
        """Add one block of samples; return the predictions it completed (oldest first)."""
        n = len(block)
        if n == 0:
            return []
        self.samples += n
        seq = np.asarray(block.seq, dtype=np.int64)
        gap_first = block.break_before or (self._last_seq is not None and int(seq[0]) != self._last_seq + 1)
        cuts = (np.flatnonzero(np.diff(seq) != 1) + 1).tolist() if n > 1 else []
        self._last_seq = int(seq[-1])
        t = np.asarray(block.time, dtype=np.float64)
        xyz = np.asarray(block.xyz, dtype=np.float32)
        preds: list[Prediction] = []
        bounds = [0, *cuts, n]
        for j, (s, e) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            if j > 0 or gap_first:
                if j > 0 or self.samples > n:  # not before the very first block
                    self.resets += 1
                self.reset()
            ts, xs = t[s:e], xyz[s:e]
            if self.resampler is not None:
                ts, xs = self.resampler.push(ts, xs)
            preds.extend(self._push(ts, xs))
        return preds


@dataclass
class RunSummary:
    windows: int = 0
    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # predictions per label
    elapsed_s: float = 0.0
    first_prediction_s: float | None = None  # from run_live start to the first prediction
    gaps: int = 0  # buffer resets (gaps and breaks)
    dropped: int = 0  # samples the source reported lost
    runtime: str = ""
    stopped_by: str = "end"  # end | duration | signal

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "samples": self.samples,
            "counts": dict(self.counts),
            "elapsed_s": round(self.elapsed_s, 3),
            "first_prediction_s": None if self.first_prediction_s is None else round(self.first_prediction_s, 4),
            "gaps": self.gaps,
            "dropped": self.dropped,
            "runtime": self.runtime,
            "stopped_by": self.stopped_by,
        }

    def lines(self) -> list[str]:
        total = max(self.windows, 1)
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in ranked)
        first = "n/a" if self.first_prediction_s is None else f"{self.first_prediction_s:.2f} s"
        return [
            f"{self.windows} windows from {self.samples} samples in {self.elapsed_s:.1f} s ({self.stopped_by}); "
            f"first prediction after {first}; {self.gaps} gap(s), {self.dropped} sample(s) lost; "
            f"runtime {self.runtime}",
            f"labels: {parts or 'none'}",
        ]


def _as_classifier(bundle: WindowClassifier | str | os.PathLike[str], num_threads: int = 1) -> WindowClassifier:
    if isinstance(bundle, WindowClassifier):
        return bundle
    return WindowClassifier.from_bundle(bundle, verify=True, num_threads=num_threads)


def run_live(
    bundle: WindowClassifier | str | os.PathLike[str],
    source: SampleSource,
    emit: Callable[[Prediction], Any],
    duration: float | None = None,
    num_threads: int = 1,
) -> RunSummary:
    """Classify a source until it ends, ``duration`` seconds pass, or ``source.stop()`` is called
    (e.g. from a SIGINT/SIGTERM handler). ``emit`` is called once per prediction."""
    t0 = time.monotonic()
    clf = _as_classifier(bundle, num_threads)
    live = LiveClassifier(clf, source_rate_hz=source.info.rate_hz)
    summary = RunSummary(runtime=clf.runtime_name)
    counts: Counter[str] = Counter()
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if duration is not None:
        # Also stops a source that delivers nothing (a silent device): blocks() ends on stop().
        def _expire() -> None:
            timed_out.set()
            source.stop()

        timer = threading.Timer(max(0.0, duration - (time.monotonic() - t0)), _expire)
        timer.daemon = True
        timer.start()
    try:
        for block in source.blocks():
            live.set_source_rate(source.info.rate_hz)  # a device may announce its rate late
            for p in live.feed(block):
                if summary.first_prediction_s is None:
                    summary.first_prediction_s = time.monotonic() - t0
                counts[p.label] += 1
                emit(p)
            if duration is not None and time.monotonic() - t0 >= duration:
                summary.stopped_by = "duration"
                source.stop()
                break
        if timed_out.is_set():
            summary.stopped_by = "duration"
        elif source.stopped and summary.stopped_by == "end":
            summary.stopped_by = "signal"
    finally:
        if timer is not None:
            timer.cancel()
        summary.elapsed_s = time.monotonic() - t0
        summary.windows = live.windows
        summary.samples = live.samples
        summary.gaps = live.resets
        summary.counts = dict(counts)
        summary.dropped = int(getattr(source.stats, "dropped", 0))
    return summary
