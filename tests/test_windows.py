"""Windowing: spans, purity, unlabeled samples, gaps, resampling (numpy/scipy only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from har.config import WindowConfig
from har.recording.format import Recording, RecordingMeta
from har.signal import make_windows, needs_resampling, resample_ratio


def _rec(
    xyz: np.ndarray,
    labels: list[str] | np.ndarray,
    rate: float,
    seq: np.ndarray | None = None,
    subject: str = "a",
) -> Recording:
    n = xyz.shape[0]
    if seq is None:
        seq = np.arange(n, dtype=np.int64)
    return Recording(
        time=seq / rate,
        xyz=np.asarray(xyz, dtype=np.float32),
        labels=np.asarray(labels, dtype=str),
        seq=seq,
        meta=RecordingMeta(subject=subject, rate_hz=rate),
    )


def _ramp(n: int) -> np.ndarray:
    return np.stack([np.arange(n), np.arange(n) * 2, np.arange(n) * 3], axis=1).astype(np.float32)


def test_window_and_hop_in_samples() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=0.5)
    assert (cfg.window_samples, cfg.hop_samples) == (10, 5)
    w = make_windows(_rec(_ramp(40), ["a"] * 40, 10), cfg)
    # starts 0, 5, ..., 30 -> 7 windows
    assert len(w) == 7
    assert w.x.shape == (7, 10, 3) and w.x.dtype == np.float32
    np.testing.assert_array_equal(w.x[:, 0, 0], np.arange(0, 31, 5))
    np.testing.assert_array_equal(w.x[2, :, 1], np.arange(10, 20) * 2)
    np.testing.assert_allclose(w.start_s, np.arange(0, 31, 5) / 10)
    assert set(w.y.tolist()) == {"a"} and set(w.subject.tolist()) == {"a"}


def test_purity_threshold() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=1.0, purity=0.8)
    # window 0: 10 a; window 1: 8 a + 2 b (0.8 -> a); window 2: 7 b + 3 a (0.7 -> impure)
    labels = ["a"] * 18 + ["b"] * 2 + ["a"] * 3 + ["b"] * 7
    rec = _rec(_ramp(30), labels, 10)
    w = make_windows(rec, cfg)
    assert w.y.tolist() == ["a", "a"]
    allw = make_windows(rec, cfg, labelled_only=False)
    assert allw.y.tolist() == ["a", "a", ""]


def test_unlabeled_sample_never_a_training_window() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=1.0, purity=0.5)
    labels = ["a"] * 10 + ["a"] * 9 + [""] + ["a"] * 10
    rec = _rec(_ramp(30), labels, 10)
    w = make_windows(rec, cfg)
    np.testing.assert_allclose(w.start_s, [0.0, 2.0])
    allw = make_windows(rec, cfg, labelled_only=False)
    assert allw.y.tolist() == ["a", "", "a"]


def test_no_window_across_a_gap() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=0.2)
    seq = np.concatenate([np.arange(15), np.arange(20, 35)])  # 5 samples lost after row 15
    rec = _rec(_ramp(30), ["a"] * 30, 10, seq=seq)
    w = make_windows(rec, cfg)
    for x in w.x[:, :, 0]:
        # every window's rows are contiguous in the file: values step by exactly 1
        assert np.all(np.diff(x) == 1)
        assert x[0] >= 15 or x[-1] < 15
    assert len(w) == 2 * 3  # each 15-sample segment: starts 0, 2, 4


def test_break_on_time_jump_without_seq() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=1.0)
    rec = _rec(_ramp(20), ["a"] * 20, 10)
    rec.seq = None
    rec.time = np.concatenate([np.arange(10) / 10, 100 + np.arange(10) / 10])
    w = make_windows(rec, cfg)
    np.testing.assert_allclose(w.start_s, [0.0, 100.0])


def test_short_segment_gives_no_windows() -> None:
    cfg = WindowConfig(rate_hz=10, window_s=1.0, hop_s=1.0)
    w = make_windows(_rec(_ramp(9), ["a"] * 9, 10), cfg)
    assert len(w) == 0 and w.x.shape == (0, 10, 3)


def test_resample_100_to_50_keeps_signal_and_labels() -> None:
    src, dst = 100.0, 50.0
    n = 1000  # 10 s
    t = np.arange(n) / src
    sig = np.sin(2 * np.pi * 2.0 * t)  # 2 Hz, well below the new Nyquist
    xyz = np.stack([sig, np.zeros(n), np.ones(n)], axis=1)
    labels = np.where(t < 5.0, "a", "b")
    cfg = WindowConfig(rate_hz=dst, window_s=1.0, hop_s=1.0, purity=1.0)
    w = make_windows(_rec(xyz, labels, src), cfg)
    assert w.x.shape[1] == 50
    # The filter needs 20 input samples (0.2 s) on each side: the run's output starts at 0.2 s
    # and ends at 9.8 s, so windows start at 0.2, 1.2, ... 8.2 s; the one over 5 s is impure.
    np.testing.assert_allclose(w.start_s, [0.2, 1.2, 2.2, 3.2, 5.2, 6.2, 7.2, 8.2])
    assert w.y.tolist() == ["a"] * 4 + ["b"] * 4
    for x, t0 in zip(w.x, w.start_s, strict=True):
        tt = t0 + np.arange(50) / dst
        np.testing.assert_allclose(x[:, 0], np.sin(2 * np.pi * 2.0 * tt), atol=0.01)
        np.testing.assert_allclose(x[:, 2], 1.0, atol=0.01)


def test_resample_upsampling_labels_nearest() -> None:
    cfg = WindowConfig(rate_hz=50, window_s=0.2, hop_s=0.1, purity=1.0)
    labels = ["a"] * 10 + ["b"] * 10  # 25 Hz: switch at 0.4 s
    w = make_windows(_rec(np.zeros((20, 3)), labels, 25), cfg)
    assert w.x.shape[1] == 10
    for y, t0 in zip(w.y, w.start_s, strict=True):
        assert y == ("a" if t0 + 0.2 <= 0.4 + 1e-9 else "b")


def test_rate_tolerance() -> None:
    assert not needs_resampling(50.2, 50.0)
    assert needs_resampling(51.0, 50.0)
    assert resample_ratio(100.0, 50.0) == (1, 2)
    assert resample_ratio(25.0, 50.0) == (2, 1)
    up, down = resample_ratio(20.0, 50.0)
    assert up / down == pytest.approx(2.5)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    w=st.integers(4, 40),
    h=st.integers(1, 40),
    cut=st.integers(0, 300),
)
def test_window_count_and_spans_property(n: int, w: int, h: int, cut: int) -> None:
    cfg = WindowConfig(rate_hz=10, window_s=w / 10, hop_s=h / 10)
    assert (cfg.window_samples, cfg.hop_samples) == (w, h)
    seq = np.arange(n, dtype=np.int64)
    seq[min(cut, n) :] += 3  # a gap before row `cut` (none when cut >= n)
    rec = _rec(_ramp(n), ["a"] * n, 10, seq=seq)
    win = make_windows(rec, cfg)
    seg_lengths = [len(range(n)[s]) for s in rec.segments()]
    expected = sum((m - w) // h + 1 for m in seg_lengths if m >= w)
    assert len(win) == expected
    if len(win):
        assert np.all(np.diff(win.x[:, :, 0], axis=1) == 1)  # contiguous rows, never across the gap
