"""One signal contract (har.signal): training's windows (make_windows), `har replay` and the live
ring buffer of `har run` cut bit for bit the same windows from a recording with gaps, a device
reset, a stall and a rate that needs resampling (50.4 Hz, 100 Hz) or not (50 Hz), fed to the live
path in blocks of random sizes; the same model (models/default, real TFLite runtime) gives the
same argmax; replay scores exactly the windows training would use. The resampler is numpy only,
its filter is scipy's, and block boundaries never change its output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from har.artifacts.layout import open_live_classifier
from har.recording.format import Recording, RecordingMeta, read_recording, write_recording
from har.runtime.classifier import WindowClassifier
from har.runtime.live import LiveClassifier
from har.runtime.replay import replay
from har.signal import (
    BREAK_PERIODS,
    Resampler,
    lowpass_fir,
    make_windows,
    needs_resampling,
    polyphase_taps,
    resample_ratio,
)
from har.sources.base import SampleBlock

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
ACTIVITIES = ("walking", "sitting", "running", "")  # "" = an unlabelled stretch


class WindowSpy(WindowClassifier):
    """The real classifier, keeping a copy of every window it is given."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[np.ndarray] = []

    def predict_proba(self, x: np.ndarray, batched: bool | None = None) -> np.ndarray:
        self.seen.append(np.array(x, dtype=np.float32, copy=True))
        return super().predict_proba(x, batched=batched)

    def windows(self) -> np.ndarray:
        return np.concatenate(self.seen) if self.seen else np.zeros((0, self.window_samples, 3), np.float32)


def _spy() -> WindowSpy:
    base = open_live_classifier(BUNDLE)
    return WindowSpy(BUNDLE / "model.tflite", base.metadata)


def _signal(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    f = rng.uniform(0.5, 3.0)
    x = np.stack([0.3 * np.sin(2 * np.pi * f * t), 0.2 * np.cos(2 * np.pi * 2.1 * f * t), 0.9 + 0.1 * np.sin(t)],
                 axis=1)
    x += rng.normal(0, 0.05, x.shape)  # broadband: above the model's Nyquist too
    return x.astype(np.float32)


def _recording(path: Path, rate: float, seed: int) -> Recording:
    """~70 s at ``rate``: label changes and an unlabelled stretch, lost samples (seq gaps), a stall
    (seq continues, time jumps), and a device reset (seq and time restart)."""
    rng = np.random.default_rng(seed)
    times, xyzs, labs, seqs = [], [], [], []
    next_seq, offset = 0, 0.0
    for k, seconds in enumerate((21.0, 13.0, 17.0, 19.0)):
        n = int(seconds * rate)
        if k == 1:
            next_seq += 7  # 7 samples lost
        elif k == 2:
            offset += 3.0  # a 3 s stall: seq continues, time jumps
        elif k == 3:  # a reset: seq restarts, time goes on from the arrival time
            next_seq, offset = 0, float(times[-1][-1]) + 0.4
        seq = next_seq + np.arange(n, dtype=np.int64)
        times.append(offset + seq / rate + rng.uniform(-0.1, 0.1, n) / rate)  # host clock jitter
        xyzs.append(_signal(n, rate, rng))
        labs.append(np.repeat(rng.choice(ACTIVITIES, 4), -(-n // 4))[:n])
        seqs.append(seq)
        next_seq = int(seq[-1]) + 1
    rec = Recording(time=np.concatenate(times), xyz=np.concatenate(xyzs), labels=np.concatenate(labs),
                    seq=np.concatenate(seqs), meta=RecordingMeta(subject="s1", rate_hz=rate))
    write_recording(path, rec)
    return read_recording(path)


def _random_blocks(rec: Recording, rng: np.random.Generator) -> list[SampleBlock]:
    """The recording in blocks of 1-60 samples that ignore its breaks (the live path finds them)."""
    out, i, n = [], 0, len(rec)
    while i < n:
        k = int(rng.integers(1, 61)) if rng.random() < 0.7 else int(rng.integers(1, 4))
        sl = slice(i, min(n, i + k))
        out.append(SampleBlock(rec.time[sl], rec.xyz[sl], rec.seq[sl]))  # type: ignore[index]
        i = sl.stop
    return out


@pytest.mark.parametrize("rate", [50.4, 100.0, 50.0])
def test_offline_replay_and_live_cut_the_same_windows(tmp_path: Path, rate: float) -> None:
    path = tmp_path / f"r{rate:g}.csv"
    rec = _recording(path, rate, seed=int(rate * 10))
    assert len(rec.segments()) == 4  # the gap, the stall and the reset
    spy = _spy()
    cfg = spy.metadata.window
    assert needs_resampling(rate, cfg.rate_hz) == (rate != 50.0)

    offline = make_windows(rec, cfg, labelled_only=False)
    assert len(offline) > 40 and set(offline.y.tolist()) > {""}
    ref = spy.predict_proba(offline.x, batched=False)
    spy.seen.clear()

    res = replay(spy, path, exact=True)
    np.testing.assert_array_equal(spy.windows(), offline.x)  # bitwise
    assert res.predicted == [spy.classes[i] for i in ref.argmax(axis=1)]
    assert res.true == offline.y.tolist()  # scored exactly where training has a label
    assert res.scored == int((offline.y != "").sum()) < res.windows

    for seed in range(3):
        spy.seen.clear()
        live = LiveClassifier(spy, source_rate_hz=rate)
        preds = [p for b in _random_blocks(rec, np.random.default_rng(seed)) for p in live.feed(b)]
        np.testing.assert_array_equal(spy.windows(), offline.x)  # bitwise
        assert [p.label for p in preds] == res.predicted
        assert live.resets == 3
        if needs_resampling(rate, cfg.rate_hz):  # stamped with the time of the window's last sample
            up, down = resample_ratio(rate, cfg.rate_hz)
            end = offline.start_s + (cfg.window_samples - 1) * down / (up * rate)
            np.testing.assert_allclose([p.time for p in preds], end, rtol=0, atol=1e-9)


def test_firwin_equivalent_matches_scipy() -> None:
    signal = pytest.importorskip("scipy.signal")
    for numtaps, cutoff in ((41, 0.5), (201, 0.1), (2521, 1 / 126), (4001, 1 / 200)):
        np.testing.assert_allclose(lowpass_fir(numtaps, cutoff), signal.firwin(numtaps, cutoff, window=("kaiser", 5.0)),
                                   rtol=0, atol=1e-15)


@pytest.mark.parametrize(("src", "dst"), [(100.0, 50.0), (50.4, 50.0), (20.0, 50.0), (25.0, 50.0), (20.0, 10.0)])
def test_resampler_is_scipys_resample_poly_and_blocks_do_not_matter(src: float, dst: float) -> None:
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 3))
    r = Resampler(src, dst)
    t, y, near = r.push(np.arange(2000) / src, x)
    ref = signal.resample_poly(x, r.up, r.down, axis=0, padtype="constant")
    m0 = int(round((t[0] * src) * r.up / r.down))  # index of the first output on scipy's grid
    np.testing.assert_allclose(y, ref[m0 : m0 + len(y)], atol=1e-6)  # float32 output
    assert len(y) >= len(ref) - 2 * (polyphase_taps(r.up, r.down)[0].shape[1] * r.up // r.down + 2)
    assert np.abs(near - t * src).max() <= 0.5 + 1e-9  # the nearest input sample (for labels)
    for seed in range(3):
        r.reset()
        blocks, i, g = [], 0, np.random.default_rng(seed)
        while i < 2000:
            k = int(g.integers(0, 50))
            blocks.append(r.push(np.arange(i, min(2000, i + k)) / src, x[i : i + k]))
            i += k
        np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), y)
        np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), t)


def test_resampler_removes_what_the_model_rate_cannot_hold() -> None:
    """A 40 Hz tone at 100 Hz aliases to 10 Hz when taking every other sample; the filter removes it."""
    t = np.arange(4000) / 100.0
    tone = np.stack([np.sin(2 * np.pi * 40.0 * t)] * 3, axis=1)
    _, y, _ = Resampler(100.0, 50.0).push(t, tone)
    assert np.abs(tone[::2]).max() > 0.5 and np.abs(y).max() < 0.02


def test_ratio_factors_are_bounded() -> None:
    assert resample_ratio(50.4, 50.0) == (125, 126)
    for src in (13.7, 20.3, 50.37, 99.1, 200.0, 333.3):
        up, down = resample_ratio(src, 50.0)
        assert 1 <= up <= 200 and 1 <= down <= 200
        assert up / down == pytest.approx(50.0 / src, rel=1e-3)


def test_the_runtime_resampler_needs_no_scipy() -> None:
    import subprocess
    import sys

    code = ("import sys; import har.runtime.live, har.runtime.replay, har.signal; "
            "sys.exit(1 if 'scipy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_one_break_rule() -> None:
    rate = 50.0
    step = BREAK_PERIODS / rate
    t = np.array([0.0, 0.02, 0.02 + step, 0.04 + 2 * step, 0.04 + 2 * step])  # ok, ok, break, not positive
    rec = Recording(time=t, xyz=np.zeros((5, 3), np.float32), labels=np.full(5, "a"), seq=None,
                    meta=RecordingMeta(rate_hz=rate))
    np.testing.assert_array_equal(rec.breaks(), [3, 4])


def test_long_runs_are_resampled_in_chunks_with_the_same_result() -> None:
    from har import signal

    rng = np.random.default_rng(2)
    x = rng.standard_normal((3 * signal.RESAMPLE_CHUNK, 3)).astype(np.float32)
    t = np.arange(x.shape[0]) / 100.0
    r = Resampler(100.0, 50.0)
    whole = r.push(t, x)[1]
    assert whole.shape[0] > signal.RESAMPLE_CHUNK
    r.reset()
    parts = [r.push(t[i : i + 999], x[i : i + 999])[1] for i in range(0, x.shape[0], 999)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
