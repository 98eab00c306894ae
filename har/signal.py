"""The signal contract shared by training, evaluation, replay, `har run` and `har plot` (numpy only).

* **Breaks**: a new contiguous run starts where ``seq`` does not step by 1, or the time step is not
  positive or exceeds ``BREAK_PERIODS`` sample periods (:func:`is_break`). No window spans a break.
* **Resampling**: when a source's rate differs from the model's by more than ``RATE_TOLERANCE``
  (relative), each run is resampled by :class:`Resampler`: a streaming polyphase anti-aliasing
  filter designed like ``scipy.signal.resample_poly`` (Kaiser-windowed sinc, beta 5, ten periods of
  the larger of up/down on each side), run with kept state, so blocks of any size give bit for bit
  the same output as the whole run. Outputs start once the filter has a full history and stop where
  it would need samples that have not arrived: nothing before or after a run is invented (a run
  loses about ``10 * max(up, down) / up`` input samples at each end). Within the tolerance samples
  are used as they are, at no cost.
* **Window grid**: every ``hop_samples`` from the first sample of each run (after resampling),
  ``window_samples`` long (:func:`window_starts`).
* **Window labels**: the majority label and its share; a window is labelled (a training or scored
  window) when that share is at least ``purity`` and it holds no unlabelled (``""``) sample
  (:func:`window_labels`).
* **Normalisation**: :class:`har.artifacts.metadata.Normalization` (``fit`` / ``apply``), saved
  with the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from har.config import WindowConfig

if TYPE_CHECKING:
    from har.recording.format import Recording

BREAK_PERIODS = 2.5  # a time step over this many sample periods is a break
RATE_TOLERANCE = 0.005  # relative rate difference below which no resampling is done
MAX_RESAMPLE_FACTOR = 200  # largest up or down factor of the rational resampling ratio
FILTER_HALF_PERIODS = 10  # filter half length in periods of max(up, down) (scipy's resample_poly)
KAISER_BETA = 5.0  # window of the filter (scipy's resample_poly)
RESAMPLE_CHUNK = 8192  # output samples computed at a time (memory: chunk x taps x channels floats)


# -- breaks -------------------------------------------------------------------------------
def max_step_s(rate_hz: float) -> float:
    """The longest time step (s) between two samples of one run at ``rate_hz``."""
    return BREAK_PERIODS / float(rate_hz)


def is_break(dt: np.ndarray, rate_hz: float) -> np.ndarray:
    """True where a time step ``dt`` (s) is a break: not positive or over ``BREAK_PERIODS`` periods."""
    return (dt <= 0) | (dt > max_step_s(rate_hz))


def break_rows(time_s: np.ndarray, rate_hz: float, seq: np.ndarray | None = None) -> np.ndarray:
    """Row indices i where a new contiguous run starts (a gap or break before row i)."""
    n = time_s.shape[0]
    if n < 2:
        return np.zeros(0, dtype=np.int64)
    cut = is_break(np.diff(time_s), rate_hz)
    if seq is not None:
        cut |= np.diff(seq) != 1
    return np.flatnonzero(cut) + 1


# -- resampling ---------------------------------------------------------------------------
def needs_resampling(source_hz: float, target_hz: float) -> bool:
    """True when the rates (Hz) differ by more than ``RATE_TOLERANCE`` of the target."""
    return abs(source_hz - target_hz) > RATE_TOLERANCE * target_hz


def resample_ratio(source_hz: float, target_hz: float) -> tuple[int, int]:
    """``(up, down)``: a rational approximation of ``target_hz / source_hz`` with both factors at
    most ``MAX_RESAMPLE_FACTOR``."""
    from fractions import Fraction  # noqa: PLC0415 - only when resampling (`har run` start-up)

    ratio = Fraction(target_hz / source_hz)
    limit = MAX_RESAMPLE_FACTOR if ratio <= 1 else max(1, int(MAX_RESAMPLE_FACTOR / ratio))
    frac = ratio.limit_denominator(limit)
    if frac.numerator == 0 or frac.numerator > MAX_RESAMPLE_FACTOR:
        raise ValueError(f"cannot resample {source_hz:g} Hz to {target_hz:g} Hz")
    return frac.numerator, frac.denominator


def lowpass_fir(numtaps: int, cutoff: float, beta: float = KAISER_BETA) -> np.ndarray:
    """A linear-phase low-pass FIR: Kaiser-windowed sinc with unit DC gain, ``cutoff`` relative to
    Nyquist (what ``scipy.signal.firwin(numtaps, cutoff, window=("kaiser", beta))`` gives)."""
    m = np.arange(numtaps, dtype=np.float64) - 0.5 * (numtaps - 1)
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    return h / h.sum()


def polyphase_taps(up: int, down: int) -> tuple[np.ndarray, int]:
    """The anti-aliasing filter of ``resample_poly(x, up, down)`` split into its ``up`` phases:
    ``(taps float64 (up, K), first)`` such that output ``m`` is
    ``sum_k taps[m * down % up, k] * x[m * down // up + first + k]``."""
    big = max(up, down)
    half = FILTER_HALF_PERIODS * big
    h = lowpass_fir(2 * half + 1, 1.0 / big) * up
    first = -(half // up)
    last = (up - 1 + half) // up
    j = np.arange(first, last + 1)
    hidx = np.arange(up)[:, None] - j[None, :] * up + half
    valid = (hidx >= 0) & (hidx <= 2 * half)
    taps = np.where(valid, h[np.clip(hidx, 0, 2 * half)], 0.0)
    return taps, first


class Resampler:
    """Streaming polyphase resampling of one contiguous run from ``source_hz`` to about ``target_hz``
    (``rate_hz``: the exact output rate ``source_hz * up / down``). :meth:`push` blocks of samples;
    :meth:`reset` at every break. The output does not depend on how the run is cut into blocks."""

    def __init__(self, source_hz: float, target_hz: float) -> None:
        self.source_hz = float(source_hz)
        self.up, self.down = resample_ratio(source_hz, target_hz)
        self.rate_hz = self.source_hz * self.up / self.down
        self.taps, self.first = polyphase_taps(self.up, self.down)
        self.last = self.first + self.taps.shape[1] - 1
        # the first output whose filter history lies inside the run
        self._m0 = -((self.first * self.up) // self.down)  # ceil(-first * up / down)
        self.reset()

    def reset(self) -> None:
        """Start a new run."""
        self._hist: np.ndarray | None = None  # inputs the next outputs need, float64
        self._base = 0  # run index of _hist[0]
        self._n = 0  # samples pushed in this run
        self._m = self._m0  # next output index
        self._t0 = 0.0  # time of the run's first sample

    def inputs_for(self, outputs: int) -> int:
        """Input samples still needed before ``outputs`` more output samples are ready."""
        m = self._m + max(outputs, 1) - 1
        return max(0, (m * self.down) // self.up + self.last + 1 - self._n)

    def push(self, t: np.ndarray, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add samples (times s (n,), values (n, channels)) of the current run; returns the output
        samples now complete: ``(times s (k,), values float32 (k, channels), nearest input (k,))``,
        the nearest input as an index from the run's first sample."""
        n = xyz.shape[0]
        if self._n == 0 and n:
            self._t0 = float(t[0])
        x = np.asarray(xyz, dtype=np.float64)
        hist = x if self._hist is None or not self._hist.shape[0] else np.concatenate([self._hist, x])
        self._n += n
        up, down = self.up, self.down
        top = ((self._n - self.last) * up - 1) // down  # the last output computable now
        if top < self._m:
            self._hist = hist.copy() if hist is x else hist
            return np.zeros(0), np.zeros((0, hist.shape[1]), dtype=np.float32), np.zeros(0, dtype=np.int64)
        ms = np.arange(self._m, top + 1, dtype=np.int64)
        pos = ms * down
        q, phase = pos // up, pos % up
        at = q + (self.first - self._base)
        out = np.empty((ms.shape[0], hist.shape[1]), dtype=np.float32)
        span = np.arange(self.taps.shape[1])
        for s in range(0, ms.shape[0], RESAMPLE_CHUNK):  # bounded memory on long recordings
            e = s + RESAMPLE_CHUNK
            taps = self.taps[phase[s:e]]  # (outputs, K)
            seen = hist[at[s:e, None] + span]  # (outputs, K, channels)
            acc = np.zeros((taps.shape[0], hist.shape[1]), dtype=np.float64)
            for k in range(taps.shape[1]):  # tap by tap: each output is summed in the same order
                acc += taps[:, k, None] * seen[:, k]
            out[s:e] = acc
        self._m = top + 1
        keep = (self._m * down) // up + self.first  # the next output's first input
        self._hist = hist[keep - self._base :].copy()
        self._base = keep
        near = np.minimum((2 * pos + up) // (2 * up), self._n - 1)  # nearest input, halves up
        return self._t0 + pos / (up * self.source_hz), out, near


@dataclass(frozen=True)
class Run:
    """One contiguous run of a recording at the model's rate: ``time`` s (n,), ``xyz`` float32
    (n, 3) g, ``labels`` (n,) and the recording rows it came from (``rows``)."""

    time: np.ndarray
    xyz: np.ndarray
    labels: np.ndarray
    rows: slice


def runs(rec: Recording, rate_hz: float) -> Iterator[Run]:
    """The recording's contiguous runs (:meth:`Recording.segments`), resampled to ``rate_hz`` when
    the recording's rate differs by more than the tolerance (labels: the nearest input sample)."""
    resample = needs_resampling(rec.rate_hz, rate_hz)
    for seg in rec.segments():
        t, xyz, labels = rec.time[seg], rec.xyz[seg], rec.labels[seg]
        if resample:
            t, xyz, near = Resampler(rec.rate_hz, rate_hz).push(t, xyz)
            labels = labels[near]
        yield Run(t, np.asarray(xyz, dtype=np.float32), labels, seg)


# -- window grid and labels ---------------------------------------------------------------
def window_starts(n: int, cfg: WindowConfig) -> np.ndarray:
    """Start indices of the windows of a run of ``n`` samples: 0, hop, 2 hop, ..."""
    w = cfg.window_samples
    if n < w:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - w + 1, cfg.hop_samples, dtype=np.int64)


def window_labels(
    labels: np.ndarray, starts: np.ndarray, window: int, purity: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the windows ``labels[s:s + window]``: ``(majority label, its share, label)`` where the
    label is the majority when its share is at least ``purity`` and the window has no unlabelled
    sample, else ``""``. Ties go to the label first in sorted order."""
    k = starts.shape[0]
    if k == 0:
        empty = np.zeros(0, dtype="<U1")
        return empty, np.zeros(0), empty
    labs = np.asarray(labels).astype(str)
    change = np.flatnonzero(labs[1:] != labs[:-1]) + 1  # label runs: sort the few run values only
    names, run_codes = np.unique(labs[np.r_[0, change]], return_inverse=True)
    codes = np.repeat(run_codes.reshape(-1), np.diff(np.r_[0, change, labs.shape[0]]))
    counts = np.empty((k, names.shape[0]), dtype=np.int64)
    for c in range(names.shape[0]):
        cs = np.concatenate([[0], np.cumsum(codes == c)])
        counts[:, c] = cs[starts + window] - cs[starts]
    best = counts.argmax(axis=1)
    share = counts[np.arange(k), best] / float(window)
    major = names[best]
    good = share >= purity - 1e-9
    unlabelled = np.flatnonzero(names == "")
    if unlabelled.size:
        good &= counts[:, int(unlabelled[0])] == 0
    return major, share, np.where(good, major, "")


# -- windows of recordings ----------------------------------------------------------------
@dataclass
class Windows:
    """A batch of windows.

    ``x``: float32 (n, window_samples, 3), raw acceleration in g; ``y``: label per window (``""``
    = unlabeled or impure); ``subject``: subject per window; ``start_s``: start time of each
    window in seconds (recording time axis); ``file_index``: index of the source recording.
    """

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    start_s: np.ndarray
    file_index: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def empty(cls, window_samples: int, n_channels: int = 3) -> Windows:
        """No windows, with the right shapes."""
        return cls(
            x=np.zeros((0, window_samples, n_channels), dtype=np.float32),
            y=np.zeros(0, dtype="<U1"),
            subject=np.zeros(0, dtype="<U1"),
            start_s=np.zeros(0, dtype=np.float64),
            file_index=np.zeros(0, dtype=np.int64),
        )

    def select(self, mask: np.ndarray) -> Windows:
        """The windows where ``mask`` (boolean or index array) selects."""
        return Windows(self.x[mask], self.y[mask], self.subject[mask], self.start_s[mask], self.file_index[mask])


def concat_windows(parts: list[Windows], window_samples: int, n_channels: int = 3) -> Windows:
    """Concatenate batches of windows (an empty batch when ``parts`` is empty)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Windows.empty(window_samples, n_channels)
    return Windows(
        x=np.concatenate([p.x for p in parts]).astype(np.float32, copy=False),
        y=np.concatenate([p.y for p in parts]),
        subject=np.concatenate([p.subject for p in parts]),
        start_s=np.concatenate([p.start_s for p in parts]),
        file_index=np.concatenate([p.file_index for p in parts]),
    )


def make_windows(
    rec: Recording,
    cfg: WindowConfig,
    labelled_only: bool = True,
    file_index: int = 0,
) -> Windows:
    """Cut one recording into windows at ``cfg.rate_hz``.

    ``labelled_only=True`` keeps only training windows (pure, no unlabeled sample);
    ``labelled_only=False`` keeps every window, with ``y == ""`` where it is impure or touches
    unlabeled samples (for replay and timelines). ``file_index`` is stored per window."""
    w = cfg.window_samples
    xs, ys, ts = [], [], []
    for run in runs(rec, cfg.rate_hz):
        starts = window_starts(run.xyz.shape[0], cfg)
        _, _, y = window_labels(run.labels, starts, w, cfg.purity)
        if labelled_only:
            keep = y != ""
            starts, y = starts[keep], y[keep]
        if starts.shape[0]:
            xs.append(run.xyz[starts[:, None] + np.arange(w)[None, :]])
            ys.append(y.astype(str))
            ts.append(run.time[starts])
    if not xs:
        return Windows.empty(w)
    n = sum(x.shape[0] for x in xs)
    return Windows(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        subject=np.full(n, rec.subject, dtype=object).astype(str),
        start_s=np.concatenate(ts).astype(np.float64),
        file_index=np.full(n, file_index, dtype=np.int64),
    )
