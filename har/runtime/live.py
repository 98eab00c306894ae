"""Live classification (`har run`). No TensorFlow.

:class:`LiveClassifier` keeps the last window of samples in a preallocated ring buffer, fed
:class:`~har.sources.base.SampleBlock` s from any source, and classifies every hop once a window
is full. A break (``break_before``), a sequence gap or a time step that :func:`har.signal.is_break`
calls a break empties the buffer: no window spans a gap. When the source rate differs from the
model's, samples are resampled on the fly by :class:`har.signal.Resampler`, the very filter
training used: the windows are bit for bit those of :func:`har.signal.make_windows`.

Robustness policies (all counted in :class:`RunSummary`):

* **Non-finite samples** (NaN/inf on any axis, e.g. from a recording file): the sample is dropped
  and treated like a gap, the buffer restarts after it, so no window given to the model ever holds
  a non-finite value (nothing is interpolated or held). Counted as ``invalid``; the first one gives
  one warning.
* **Time jumps** with ``seq`` continuing (a device that froze and resumed, as SerialSource stamps
  it): a step of more than ``har.signal.BREAK_PERIODS`` sample periods, or a step that is not
  positive, is a break (the rule of :meth:`har.recording.format.Recording.breaks`): the samples on
  either side are not contiguous in time, so no window spans the pause.
* **Stalls** (no samples for ``stall_s`` seconds while the source stays open): :func:`run_live`
  says so once (with the time), keeps waiting and says when samples resume. A vanished serial
  port is reopened by :class:`~har.sources.serial.SerialSource` (a break; ``reconnects``)."""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from har.runtime.classifier import WindowClassifier
from har.runtime.smoothing import Smoother, SmoothingConfig
from har.runtime.watchdog import Watchdog
from har.signal import Resampler, is_break, max_step_s, needs_resampling
from har.sources.base import SampleBlock, SampleSource

SMALL_BLOCK = 16  # samples; blocks up to this size try the scalar fast path of LiveClassifier.feed
STALL_WARN_S = 2.0  # seconds without samples before run_live reports a stalled stream


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


class LiveClassifier:
    """Ring buffer + WindowClassifier: feed blocks, get predictions every hop."""

    def __init__(
        self,
        classifier: WindowClassifier,
        source_rate_hz: float | None = None,
        hop_samples: int | None = None,
        on_warning: Callable[[str], Any] | None = None,
    ) -> None:
        self.clf = classifier
        self.window = classifier.window_samples
        self.hop = int(hop_samples or classifier.metadata.window.hop_samples)
        self.model_rate_hz = float(classifier.metadata.window.rate_hz)
        self.source_rate_hz: float | None = None
        self.resampler: Resampler | None = None
        # Each sample is written twice (at i and i + window) so the last window is always the
        # contiguous slice buf[pos:pos + window] (no copy-on-read).
        self._buf = np.zeros((2 * self.window, classifier.n_channels), dtype=np.float32)
        self._pos = 0
        self._filled = 0
        self._since = 0  # samples since the last prediction
        self._fresh = True  # no prediction since the last reset: predict as soon as the window is full
        self._last_seq: int | None = None
        self._last_t = 0.0
        self._break_rate = self.model_rate_hz  # Hz: the rate the break rule applies to
        self._max_dt = max_step_s(self.model_rate_hz)  # s; longer steps are breaks
        self._dirty = False  # samples went in since the last reset
        self._tail_invalid = False  # the previous block ended with non-finite samples
        self._pend_t: list[np.ndarray] = []  # samples accepted by the plain path, not yet in the buffer
        self._pend_x: list[np.ndarray] = []
        self._pend_n = 0
        self._rs_t: list[np.ndarray] = []  # samples of the current run not yet through the resampler
        self._rs_x: list[np.ndarray] = []
        self._rs_n = 0
        self.on_warning = on_warning
        self._reset_hooks: list[Callable[[], Any]] = []
        self.warnings: list[str] = []  # at most one per kind
        self.resets = 0  # buffer resets caused by gaps, breaks, time jumps and invalid samples
        self.invalid = 0  # non-finite samples dropped
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
        self._break_rate = float(rate_hz or m)
        self._max_dt = max_step_s(self._break_rate)
        if rate_hz and needs_resampling(float(rate_hz), m):
            self.resampler = Resampler(float(rate_hz), m)
        else:
            self.resampler = None
        self.reset()

    def on_reset(self, hook: Callable[[], Any]) -> None:
        """Call ``hook()`` at every later :meth:`reset` (after the buffer was emptied), e.g. to
        reset a smoother exactly where the windows restart."""
        self._reset_hooks.append(hook)

    def reset(self) -> None:
        """Forget the buffered samples (after a gap or break)."""
        self._pend_t, self._pend_x, self._pend_n = [], [], 0
        self._rs_t, self._rs_x, self._rs_n = [], [], 0
        self._dirty = False
        self._filled = 0
        self._since = 0
        self._fresh = True
        if self.resampler is not None:
            self.resampler.reset()
        for hook in self._reset_hooks:
            hook()

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

    def _feed_plain(self, block: SampleBlock, n: int) -> list[Prediction] | None:
        """The usual live block (a few samples, contiguous, finite) checked with plain Python on
        scalars: numpy's per-call overhead dominates for 1-5 samples. None = not plain: the
        general path decides."""
        tarr = np.asarray(block.time, dtype=np.float64)
        seq, t = np.asarray(block.seq).tolist(), tarr.tolist()
        max_dt = self._max_dt
        last = self._last_seq
        if last is not None and (seq[0] != last + 1 or not 0 < t[0] - self._last_t <= max_dt):
            return None
        for i in range(1, n):
            if seq[i] != seq[i - 1] + 1 or not 0 < t[i] - t[i - 1] <= max_dt:
                return None
        xyz = np.asarray(block.xyz, dtype=np.float32)
        if not all(map(math.isfinite, xyz.ravel().tolist())):
            return None
        self.samples += n
        self._last_seq, self._last_t = seq[-1], t[-1]
        self._dirty = True
        if self.resampler is not None:
            return self._resample(tarr, xyz)
        # Hold the samples until a prediction is due: one buffer write per hop, not per block.
        self._pend_t.append(tarr)
        self._pend_x.append(xyz)
        self._pend_n += n
        if self._filled + self._pend_n >= self.window and (self._fresh or self._since + self._pend_n >= self.hop):
            return self._flush()
        return []

    def samples_until_prediction(self) -> int:
        """Source samples still to come before the next prediction (a hint for sources that
        batch their reads: :meth:`~har.sources.base.SampleSource.want`)."""
        need = self._due()
        if self.resampler is not None:
            need = max(1, self.resampler.inputs_for(need) - self._rs_n)
        return need

    def _resample(self, t: np.ndarray, xyz: np.ndarray) -> list[Prediction]:
        """Samples of the current run through the resampler, then into the ring buffer. They are
        held until the next prediction's window can be complete: one filter call per prediction
        whatever the block size (the output does not depend on how the run is cut)."""
        r = self.resampler
        if r is None:
            return self._push(t, xyz)
        self._rs_t.append(t)
        self._rs_x.append(xyz)
        self._rs_n += t.shape[0]
        if self._rs_n < r.inputs_for(self._due()):
            return []
        if len(self._rs_x) > 1:
            t, xyz = np.concatenate(self._rs_t), np.concatenate(self._rs_x)
        self._rs_t, self._rs_x, self._rs_n = [], [], 0
        ts, xs, _ = r.push(t, xyz)
        return self._push(ts, xs)

    def _due(self) -> int:
        """Samples at the model's rate still to enter the ring buffer before the next prediction."""
        total = self._filled + self._pend_n
        if total < self.window:
            return self.window - total
        if self._fresh:
            return 1
        return max(1, self.hop - self._since - self._pend_n)

    def _flush(self) -> list[Prediction]:
        """Push the held samples into the ring buffer (predicting where due)."""
        if not self._pend_n:
            return []
        if len(self._pend_x) == 1:
            t, x = self._pend_t[0], self._pend_x[0]
        else:
            t, x = np.concatenate(self._pend_t), np.concatenate(self._pend_x)
        self._pend_t, self._pend_x, self._pend_n = [], [], 0
        return self._push(t, x)

    def feed(self, block: SampleBlock) -> list[Prediction]:
        """Add one block of samples; return the predictions it completed (oldest first)."""
        n = len(block)
        if n == 0:
            return []
        if n <= SMALL_BLOCK and not block.break_before and not self._tail_invalid:
            plain = self._feed_plain(block, n)
            if plain is not None:
                return plain
        held = self._flush()  # samples held by the plain path come first (no prediction was due in them)
        if held:
            return held + self.feed(block)
        self.samples += n
        seq = np.asarray(block.seq, dtype=np.int64)
        t = np.asarray(block.time, dtype=np.float64)
        xyz = np.asarray(block.xyz, dtype=np.float32)
        # cut[i]: a new contiguous run starts at sample i (break, seq gap, time jump, after a bad sample)
        cut = np.zeros(n, dtype=bool)
        cut[0] = block.break_before or self._tail_invalid or (
            self._last_seq is not None
            and (int(seq[0]) != self._last_seq + 1 or not 0 < float(t[0]) - self._last_t <= self._max_dt)
        )
        if n > 1:
            cut[1:] = (np.diff(seq) != 1) | is_break(np.diff(t), self._break_rate)
        ok = np.isfinite(xyz).all(axis=1)
        all_ok = bool(ok.all())
        if not all_ok:
            self._invalid(n - int(ok.sum()), t[~ok])
            cut[1:] |= ~ok[:-1]
        self._tail_invalid = not bool(ok[-1])
        self._last_seq = int(seq[-1])
        self._last_t = float(t[-1])
        preds: list[Prediction] = []
        bounds = [*np.flatnonzero(cut).tolist(), n]
        if bounds[0] != 0:
            bounds.insert(0, 0)
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            if cut[s] and self._dirty:  # nothing to forget otherwise (e.g. before the first block)
                self.resets += 1
                self.reset()
            stop = e
            if not all_ok:  # a bad sample ends its run (the next one is a cut): keep the good head
                bad = np.flatnonzero(~ok[s:e])
                if bad.shape[0]:
                    stop = s + int(bad[0])
                    if stop == s:
                        continue
            ts, xs = t[s:stop], xyz[s:stop]
            self._dirty = True
            preds.extend(self._resample(ts, xs))
        return preds

    def _invalid(self, k: int, times: np.ndarray) -> None:
        self.invalid += k
        if not self.warnings:
            msg = (
                f"Warning: non-finite sample (NaN/inf) at t={float(times[0]):.3f} s: such samples are dropped "
                "and no window spans them (counted as invalid in the summary)"
            )
            self.warnings.append(msg)
            if self.on_warning is not None:
                self.on_warning(msg)


@dataclass
class RunSummary:
    windows: int = 0
    samples: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # predictions per label
    elapsed_s: float = 0.0
    first_prediction_s: float | None = None  # from run_live start to the first prediction
    gaps: int = 0  # buffer resets (gaps, breaks, time jumps, invalid samples)
    dropped: int = 0  # samples the source reported lost
    invalid: int = 0  # non-finite samples dropped (NaN/inf)
    stalls: int = 0  # times the stream stopped for stall_s seconds or more
    reconnects: int = 0  # times the source reopened a vanished port
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
            "invalid": self.invalid,
            "stalls": self.stalls,
            "reconnects": self.reconnects,
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
            f"first prediction after {first}; {self.gaps} gap(s), {self.dropped} sample(s) lost, "
            f"{self.invalid} invalid; {self.stalls} stall(s), {self.reconnects} reconnect(s); runtime {self.runtime}",
            f"labels: {parts or 'none'}",
        ]


def _as_classifier(bundle: WindowClassifier | str | os.PathLike[str], num_threads: int = 1) -> WindowClassifier:
    if isinstance(bundle, WindowClassifier):
        return bundle
    return WindowClassifier.from_bundle(bundle, verify=True, num_threads=num_threads)


class _SmoothingTap:
    """Applies a Smoother to a LiveClassifier's predictions, resetting it exactly where the
    buffer was reset (a gap or break), even when one block holds predictions from both sides."""

    def __init__(self, live: LiveClassifier, smoother: Smoother) -> None:
        if tuple(smoother.classes) != tuple(live.clf.classes):
            from har.errors import SmoothingError  # noqa: PLC0415

            raise SmoothingError("the smoother's classes differ from the bundle's")
        self.smoother = smoother
        self.seen = 0  # predictions smoothed so far (= index of the next one)
        self.resets_at: list[int] = []  # prediction index that follows each buffer reset
        smoother.reset()

        def mark() -> None:
            if not self.resets_at or self.resets_at[-1] != live.windows:  # bounded by predictions
                self.resets_at.append(live.windows)

        live.on_reset(mark)

    def __call__(self, p: Prediction) -> Prediction:
        while self.resets_at and self.resets_at[0] <= self.seen:
            self.resets_at.pop(0)
            self.smoother.reset()
        self.seen += 1
        i = self.smoother.update_index(p.time, p.probs)
        return replace(p, label=self.smoother.classes[i], confidence=float(p.probs[i]), raw_label=p.label)


def _stderr_line(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def run_live(
    bundle: WindowClassifier | str | os.PathLike[str],
    source: SampleSource,
    emit: Callable[[Prediction], Any],
    duration: float | None = None,
    num_threads: int = 1,
    smoother: Smoother | SmoothingConfig | None = None,
    stall_s: float | None = STALL_WARN_S,
    notify: Callable[[str], Any] | None = None,
) -> RunSummary:
    """Classify a source until it ends, ``duration`` seconds pass, or ``source.stop()`` is called
    (e.g. from a SIGINT/SIGTERM handler). ``emit`` is called once per prediction.

    With an active ``smoother`` (a Smoother or a SmoothingConfig; reset after every gap or break)
    each emitted Prediction's ``label`` is the smoothed label, ``raw_label`` the model's argmax and
    ``confidence`` the window's probability of ``label``; ``summary.counts`` counts smoothed labels.

    ``notify`` (default: a line on stderr) gets the warnings: the first non-finite sample, and a
    stream that delivered nothing for ``stall_s`` seconds (None: no watchdog) and its resumption."""
    t0 = time.monotonic()
    clf = _as_classifier(bundle, num_threads)
    say = notify if notify is not None else _stderr_line
    live = LiveClassifier(clf, source_rate_hz=source.info.rate_hz, on_warning=say)
    if isinstance(smoother, SmoothingConfig):
        smoother = Smoother(smoother, clf.classes)
    tap = _SmoothingTap(live, smoother) if smoother is not None and smoother.active else None
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
    dog = Watchdog(source, stall_s, say) if stall_s is not None else None
    try:
        for block in source.blocks():
            if dog is not None:
                dog.beat()
            live.set_source_rate(source.info.rate_hz)  # a device may announce its rate late
            for p in live.feed(block):
                if tap is not None:
                    p = tap(p)  # noqa: PLW2901
                if summary.first_prediction_s is None:
                    summary.first_prediction_s = time.monotonic() - t0
                counts[p.label] += 1
                emit(p)
            if block.seq.shape[0]:
                source.want(int(block.seq[-1]) + live.samples_until_prediction())
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
        if dog is not None:
            dog.close()
            summary.stalls = dog.stalls
        summary.elapsed_s = time.monotonic() - t0
        summary.windows = live.windows
        summary.samples = live.samples
        summary.gaps = live.resets
        summary.counts = dict(counts)
        summary.dropped = int(getattr(source.stats, "dropped", 0))
        summary.invalid = live.invalid
        summary.reconnects = int(getattr(source.stats, "reconnects", 0))
    return summary
