"""The runtime without TensorFlow: interpreter loading, WindowClassifier, LiveClassifier, replay."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLASSES, make_tiny_recordings, tiny_signal
from test_export import RATE_HZ, WINDOW, fp32_bundle, get_bundle, tiny_model_dir  # noqa: F401 - fixtures

from har.errors import RuntimeInferenceError
from har.recording.format import read_recording
from har.runtime.classifier import WindowClassifier
from har.runtime.interpreter import load_interpreter
from har.runtime.live import LiveClassifier, run_live
from har.runtime.replay import replay
from har.sources.base import SampleBlock, SampleSource


class ArraySource(SampleSource):
    """Blocks of ``block`` samples from arrays; optionally a seq jump (lost samples) or a break
    (seq restarts, ``break_before``) at sample ``cut``."""

    def __init__(self, xyz: np.ndarray, rate_hz: float, block: int = 7, cut: int | None = None,
                 kind: str = "seq") -> None:
        super().__init__()
        self.xyz, self.block, self.cut, self.kind = xyz.astype(np.float32), block, cut, kind
        self.info.rate_hz = rate_hz
        n = xyz.shape[0]
        self.seq = np.arange(n, dtype=np.int64)
        if cut is not None:
            self.seq[cut:] += 5 if kind == "seq" else -cut
        self.t = np.arange(n) / rate_hz

    def blocks(self) -> Iterator[SampleBlock]:
        n = self.xyz.shape[0]
        edges = set(range(0, n, self.block)) | ({self.cut} if self.cut is not None else set())
        bounds = sorted(edges) + [n]
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            if self.stopped:
                return
            brk = self.kind == "break" and s == self.cut
            yield SampleBlock(self.t[s:e], self.xyz[s:e], self.seq[s:e], None, brk)


def _stream(rng: np.random.Generator, seconds: float = 6.0) -> np.ndarray:
    n = int(seconds * RATE_HZ)
    return np.concatenate([tiny_signal(c, n, RATE_HZ, rng) for c in TINY_CLASSES])


@pytest.mark.slow
def test_interpreter_errors(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    interp, name = load_interpreter(fp32_bundle / "model.tflite")
    assert name == "ai-edge-litert"
    assert interp.get_input_details()[0]["shape"].tolist() == [1, WINDOW.window_samples, 3]
    with pytest.raises(RuntimeInferenceError, match="no such model file"):
        load_interpreter(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(RuntimeInferenceError, match="not a valid TFLite model") as ei:
        load_interpreter(bad)
    assert "\n" not in str(ei.value)
    # Correct identifier but truncated body: the loader's own error, still one line.
    data = (fp32_bundle / "model.tflite").read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(RuntimeInferenceError) as ei:
        load_interpreter(bad)
    assert "\n" not in str(ei.value) and "bad.tflite" in str(ei.value)


@pytest.mark.slow
def test_classifier_batched_matches_single(fp32_bundle: Path) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    assert clf.classes == TINY_CLASSES and clf.has_batch_model and clf.batch_size == 128
    rng = np.random.default_rng(1)
    x = np.stack([tiny_signal(TINY_CLASSES[i % 3], 25, RATE_HZ, rng) for i in range(300)])  # 2 x 128 + 44 padded
    p1 = clf.predict_proba(x, batched=False)
    pb = clf.predict_proba(x)
    np.testing.assert_allclose(p1, pb, atol=1e-5)
    np.testing.assert_allclose(clf.predict_one(x[3]), p1[3], atol=1e-6)
    assert clf.predict_proba(np.zeros((0, 25, 3), np.float32)).shape == (0, 3)
    with pytest.raises(RuntimeInferenceError, match="expected windows of shape"):
        clf.predict_proba(np.zeros((2, 24, 3), np.float32))


@pytest.mark.slow
def test_int8_io_model_is_quantised_by_the_runtime(tmp_path: Path, tiny_model_dir: Path) -> None:  # noqa: F811
    from har.config import ExportConfig
    from har.training.convert import export_bundle

    res = export_bundle(tiny_model_dir, tmp_path / "b", ExportConfig(quantize="int8"), echo=lambda s: None,
                        batch_size=1, int8_io=True)
    clf = WindowClassifier.from_bundle(tmp_path / "b")
    assert clf.input_dtype == "int8" and not clf.has_batch_model
    assert res.model.agreement >= 0.98


@pytest.mark.slow
def test_live_matches_offline_windows(fp32_bundle: Path) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    xyz = _stream(np.random.default_rng(2))
    preds: list = []
    summary = run_live(clf, ArraySource(xyz, RATE_HZ, block=7), preds.append)
    w, hop = WINDOW.window_samples, WINDOW.hop_samples
    starts = np.arange(0, xyz.shape[0] - w + 1, hop)
    ref = clf.predict_proba(np.stack([xyz[s : s + w] for s in starts]), batched=False)
    assert summary.windows == len(preds) == len(starts)
    np.testing.assert_allclose(np.stack([p.probs for p in preds]), ref, atol=1e-6)
    assert [p.time for p in preds] == pytest.approx(((starts + w - 1) / RATE_HZ).tolist())
    assert sum(summary.counts.values()) == summary.windows and summary.gaps == 0
    assert summary.first_prediction_s is not None and summary.samples == xyz.shape[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["seq", "break"])
def test_no_window_spans_a_gap(fp32_bundle: Path, kind: str) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    xyz = _stream(np.random.default_rng(3), seconds=2.0)  # 150 samples
    cut = 60
    src = ArraySource(xyz, RATE_HZ, block=9, cut=cut, kind=kind)
    live = LiveClassifier(clf, source_rate_hz=RATE_HZ)
    preds = [p for b in src.blocks() for p in live.feed(b)]
    w, hop = WINDOW.window_samples, WINDOW.hop_samples
    expect = [xyz[s : s + w] for s in range(0, cut - w + 1, hop)] + [
        xyz[cut + s : cut + s + w] for s in range(0, xyz.shape[0] - cut - w + 1, hop)
    ]
    assert live.resets == 1 and len(preds) == len(expect)
    ref = clf.predict_proba(np.stack(expect), batched=False)
    np.testing.assert_allclose(np.stack([p.probs for p in preds]), ref, atol=1e-6)


def _offline_windows(xyz: np.ndarray, rate_hz: float, clf: WindowClassifier) -> np.ndarray:
    """The windows training cuts from the same samples (har.signal.make_windows)."""
    from har.recording.format import Recording, RecordingMeta
    from har.signal import make_windows

    n = xyz.shape[0]
    rec = Recording(time=np.arange(n) / rate_hz, xyz=xyz.astype(np.float32), labels=np.full(n, "", dtype=str),
                    seq=np.arange(n, dtype=np.int64), meta=RecordingMeta(subject="s", rate_hz=rate_hz))
    return make_windows(rec, clf.metadata.window, labelled_only=False).x


@pytest.mark.slow
def test_resampling_when_rates_differ(fp32_bundle: Path) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    rng = np.random.default_rng(4)
    n = 200  # 4 s at 50 Hz, a smooth signal
    t = np.arange(n) / 50.0
    xyz = np.stack([0.2 * np.sin(2 * np.pi * 0.5 * t), np.zeros(n), np.ones(n)], axis=1).astype(np.float32)
    xyz += rng.normal(0, 0.001, xyz.shape).astype(np.float32)
    preds: list = []
    summary = run_live(clf, ArraySource(xyz, 50.0, block=13), preds.append)
    # 200 samples at 50 Hz -> 25 Hz by the anti-aliasing filter, the very windows training cuts
    offline = _offline_windows(xyz, 50.0, clf)
    assert summary.windows == len(offline) >= 5
    ref = clf.predict_proba(offline, batched=False)
    np.testing.assert_array_equal(np.stack([p.probs for p in preds]), ref)
    # and they are the signal at 25 Hz: every other sample, from 0.4 s on (the filter's history)
    down = xyz[20::2]
    np.testing.assert_allclose(offline, np.stack([down[s : s + 25] for s in range(0, 10 * len(offline), 10)]),
                               atol=0.01)


@pytest.mark.slow
def test_replay_recording(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    path = make_tiny_recordings(tmp_path / "data", subjects=1, seconds_per_class=6.0, rate_hz=RATE_HZ)[0]
    res = replay(fp32_bundle, path)
    rec = read_recording(path)
    assert res.windows == len(range(0, len(rec) - 25 + 1, 10))
    assert res.batched and res.accuracy is not None and res.accuracy >= 0.9
    assert 0 < res.scored < res.windows  # windows straddling a label change are not scored
    assert [s.predicted for s in res.segments if s.windows > 2] == list(TINY_CLASSES)
    last_start = (len(rec) - 25) // 10 * 10
    assert res.segments[0].start == 0.0 and res.segments[-1].end == pytest.approx(rec.time[last_start + 24])
    ends = [s.end for s in res.segments]
    assert all(a.start == pytest.approx(b) for a, b in zip(res.segments[1:], ends[:-1], strict=True))


@pytest.mark.slow
def test_classifier_needs_a_verified_bundle(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    from har.errors import BundleError

    b = tmp_path / "b"
    shutil.copytree(fp32_bundle, b)
    (b / "model.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(BundleError, match="model.tflite does not match"):
        WindowClassifier.from_bundle(b)
    with pytest.raises(RuntimeInferenceError, match="not a valid TFLite model"):
        WindowClassifier.from_bundle(b, verify=False)


class LateRateSource(ArraySource):
    """Like a device: the rate is only known once the stream (its header) has started."""

    def blocks(self) -> Iterator[SampleBlock]:
        rate, self.info.rate_hz = self.info.rate_hz, None
        for i, b in enumerate(super().blocks()):
            if i == 0:
                self.info.rate_hz = rate
            yield b


@pytest.mark.slow
def test_rate_announced_late_is_used(fp32_bundle: Path) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    xyz = np.tile(np.array([[0.0, 0.0, 1.0]], np.float32), (200, 1))  # 4 s at 50 Hz
    preds: list = []
    summary = run_live(clf, LateRateSource(xyz, 50.0, block=10), preds.append)
    assert summary.windows == len(_offline_windows(xyz, 50.0, clf)) >= 5  # resampled to 25 Hz
    assert np.diff([p.time for p in preds]) == pytest.approx(0.4)


def test_window_labels_match_the_per_window_rule() -> None:
    from har.signal import window_labels

    rng = np.random.default_rng(3)
    runs = rng.integers(1, 40, 60)
    labs = np.repeat(rng.choice(["", "sit", "walk", "run"], runs.size), runs)
    w, hop, purity = 25, 7, 0.8
    starts = np.arange(0, labs.size - w + 1, hop)
    major, share, label = window_labels(labs, starts, w, purity)
    for s, gm, gs, gl in zip(starts, major, share, label, strict=True):
        vals, cnt = np.unique(labs[s : s + w], return_counts=True)
        i = int(np.argmax(cnt))  # ties: first in sorted order
        assert (gm, gs) == (vals[i], pytest.approx(cnt[i] / w))
        assert gl == (vals[i] if cnt[i] / w >= purity and "" not in vals else "")
    assert [len(v) for v in window_labels(labs[:0], starts[:0], w, purity)] == [0, 0, 0]


@pytest.mark.slow
def test_replay_chunks_and_exact_mode_agree(
    tmp_path: Path, fp32_bundle: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Chunking (across runs split by a gap) changes nothing; --exact (the live model on every
    window) gives the same labels as the batched replay model on a float bundle."""
    import har.runtime.replay as rp
    from har.recording.format import write_recording

    path = make_tiny_recordings(tmp_path / "data", subjects=1, seconds_per_class=8.0, rate_hz=RATE_HZ)[0]
    rec = read_recording(path)
    keep = np.ones(len(rec), dtype=bool)
    keep[100:110] = False  # a 10-sample hole: two contiguous runs
    gapped = tmp_path / "gapped.csv"
    write_recording(gapped, dataclasses.replace(
        rec, time=rec.time[keep], xyz=rec.xyz[keep], labels=rec.labels[keep], seq=rec.seq[keep]))
    whole = replay(fp32_bundle, gapped)
    monkeypatch.setattr(rp, "REPLAY_CHUNK", 7)
    seen: list[tuple[int, int]] = []
    chunked = replay(fp32_bundle, gapped, progress=lambda d, n: seen.append((d, n)))
    exact = replay(fp32_bundle, gapped, exact=True)
    assert whole.predicted == chunked.predicted == exact.predicted
    assert whole.correct == chunked.correct and whole.windows == chunked.windows
    assert seen[-1] == (whole.windows, whole.windows) and len(seen) == -(-whole.windows // 7)
    assert whole.batched and not exact.batched
    run2 = len(range(0, keep.sum() - 100 - 25 + 1, 10))
    assert whole.windows == len(range(0, 100 - 25 + 1, 10)) + run2


@pytest.mark.slow
def test_small_blocks_take_the_plain_path_with_identical_results(fp32_bundle: Path) -> None:  # noqa: F811
    """Blocks of 1-20 samples (the scalar fast path, samples held until a prediction is due) give
    exactly the predictions of big blocks (the general path), across a seq gap, a time jump and a
    NaN sample, in any mix of block sizes."""
    clf = WindowClassifier.from_bundle(fp32_bundle, use_batch_model=False)
    rng = np.random.default_rng(4)
    xyz = _stream(rng, seconds=8.0).astype(np.float32)
    n = xyz.shape[0]
    t = np.arange(n) / RATE_HZ
    seq = np.arange(n)
    seq[150:] += 3  # 3 samples lost
    t[300:] += 5.0  # the device paused 5 s (seq continues)
    xyz[450] = np.nan

    def run(sizes: Iterator[int]) -> tuple[list[tuple], LiveClassifier]:
        live = LiveClassifier(clf, source_rate_hz=RATE_HZ)
        out: list[tuple] = []
        i = 0
        while i < n:
            k = min(next(sizes), n - i)
            block = SampleBlock(t[i : i + k], xyz[i : i + k], seq[i : i + k])
            out += [(p.time, p.label, *p.probs.tolist()) for p in live.feed(block)]
            i += k
        return out, live

    big, live_big = run(iter(lambda: 1000, None))
    ones, live_ones = run(iter(lambda: 1, None))
    mixed, live_mixed = run(iter(lambda: int(rng.integers(1, 21)), None))
    assert len(big) > 10
    assert ones == big and mixed == big
    for lv in (live_ones, live_mixed):
        assert (lv.samples, lv.windows, lv.resets, lv.invalid) == (
            live_big.samples, live_big.windows, live_big.resets, live_big.invalid)
    assert live_big.resets == 3 and live_big.invalid == 1


@pytest.mark.slow
def test_on_reset_hook_runs_at_every_buffer_reset(fp32_bundle: Path) -> None:  # noqa: F811
    clf = WindowClassifier.from_bundle(fp32_bundle)
    live = LiveClassifier(clf, source_rate_hz=float(RATE_HZ))
    calls: list[int] = []
    live.on_reset(lambda: calls.append(live.windows))
    src = ArraySource(np.zeros((120, 3), np.float32), float(RATE_HZ), block=9, cut=60, kind="break")
    for b in src.blocks():
        live.feed(b)
    assert live.resets == 1 and len(calls) == 1 and "reset" not in vars(live)  # a method, not replaced
