"""Cutting recordings into fixed-length windows (numpy/scipy only, no TensorFlow).

Each contiguous segment of a recording (:meth:`Recording.segments`) is resampled to the window
rate when the recording's rate differs from it by more than 0.5 %, then cut into windows of
``window_samples`` every ``hop_samples``. Windows never span two segments (gaps or breaks).

A window's label is its majority label when that label covers at least ``purity`` of its samples.
A window with any unlabeled (``""``) sample is never a training window.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from har.config import WindowConfig
from har.recording.format import Recording

RATE_TOLERANCE = 0.005  # relative rate difference below which no resampling is done
MAX_RESAMPLE_DENOMINATOR = 200


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


def needs_resampling(source_hz: float, target_hz: float) -> bool:
    """True when the rates (Hz) differ by more than 0.5 %."""
    return abs(source_hz - target_hz) > RATE_TOLERANCE * target_hz


def resample_ratio(source_hz: float, target_hz: float) -> tuple[int, int]:
    """``(up, down)``: a rational approximation of ``target_hz / source_hz``."""
    frac = Fraction(target_hz / source_hz).limit_denominator(MAX_RESAMPLE_DENOMINATOR)
    if frac.numerator == 0:
        raise ValueError(f"cannot resample {source_hz} Hz to {target_hz} Hz")
    return frac.numerator, frac.denominator


def resample_segment(
    xyz: np.ndarray, labels: np.ndarray, source_hz: float, target_hz: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Resample one contiguous segment (xyz float (n, 3) g, labels (n,)) from ``source_hz`` to
    ``target_hz`` with a polyphase filter; labels by nearest sample.

    Returns ``(xyz float32 (m, 3), labels (m,), effective output rate in Hz)``."""
    from scipy.signal import resample_poly

    up, down = resample_ratio(source_hz, target_hz)
    n = xyz.shape[0]
    if n == 0:
        return xyz.astype(np.float32), labels, source_hz * up / down
    out = resample_poly(xyz.astype(np.float64), up, down, axis=0, padtype="line")
    m = out.shape[0]
    src = np.clip(np.rint(np.arange(m) * down / up).astype(np.int64), 0, n - 1)
    return out.astype(np.float32), labels[src], source_hz * up / down


def _label_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    return names, codes.reshape(-1)


def window_grid(labels: np.ndarray, cfg: WindowConfig, labelled_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """The windows of one contiguous segment (at the window rate) with per-sample ``labels``,
    without cutting them: ``(start sample index (k,), label (k,))``; the label is ``""`` for an
    impure window or one that touches an unlabelled sample (such windows are dropped when
    ``labelled_only``)."""
    w, h = cfg.window_samples, cfg.hop_samples
    n = labels.shape[0]
    if n < w:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype="<U1")
    starts = np.arange(0, n - w + 1, h, dtype=np.int64)
    names, codes = _label_codes(labels)
    k = names.shape[0]
    onehot = np.zeros((n + 1, k), dtype=np.int64)
    onehot[np.arange(1, n + 1), codes] = 1
    cum = np.cumsum(onehot, axis=0)
    counts = cum[starts + w] - cum[starts]  # (n_windows, k)
    best = counts.argmax(axis=1)
    frac = counts[np.arange(starts.shape[0]), best] / float(w)
    y = names[best].astype(str)
    has_unlabeled = np.zeros(starts.shape[0], dtype=bool)
    empty = np.flatnonzero(names == "")
    if empty.size:
        has_unlabeled = counts[:, int(empty[0])] > 0
    good = (frac >= cfg.purity - 1e-9) & ~has_unlabeled
    y = np.where(good, y, "")
    if labelled_only:
        starts, y = starts[good], y[good]
    return starts, y


def _cut_segment(
    xyz: np.ndarray,
    labels: np.ndarray,
    cfg: WindowConfig,
    labelled_only: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of one segment: (x (k, W, 3), y (k,), start sample index (k,))."""
    w = cfg.window_samples
    starts, y = window_grid(labels, cfg, labelled_only)
    if not starts.size:
        return np.zeros((0, w, 3), dtype=np.float32), y, starts
    idx = starts[:, None] + np.arange(w)[None, :]
    x = xyz[idx].astype(np.float32, copy=False)
    return x, y, starts


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
    resample = needs_resampling(rec.rate_hz, cfg.rate_hz)
    xs, ys, ts = [], [], []
    for seg in rec.segments():
        xyz = rec.xyz[seg]
        labels = rec.labels[seg].astype(str)
        rate = rec.rate_hz
        if resample:
            xyz, labels, rate = resample_segment(xyz, labels, rec.rate_hz, cfg.rate_hz)
        x, y, starts = _cut_segment(xyz, labels, cfg, labelled_only)
        if x.shape[0]:
            xs.append(x)
            ys.append(y)
            if resample:
                ts.append(float(rec.time[seg.start]) + starts / rate)
            else:
                ts.append(rec.time[seg.start + starts])
    if not xs:
        return Windows.empty(cfg.window_samples)
    n = sum(x.shape[0] for x in xs)
    return Windows(
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        subject=np.full(n, rec.subject, dtype=object).astype(str),
        start_s=np.concatenate(ts).astype(np.float64),
        file_index=np.full(n, file_index, dtype=np.int64),
    )
