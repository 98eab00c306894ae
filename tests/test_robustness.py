"""`har run` robustness: NaN/inf samples, a stalled stream, a port that vanishes and comes back.

Fast: the classifier is the shipped default bundle's model (no TensorFlow) re-declared with 1 s
windows (250 samples: a 250 Hz model) and a 0.2 s hop, so windows fill within a second of a 250 Hz
emulator.
Serial tests run `har run` as a real process on real ptys (emulator, symlinked port)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from serial_harness import VanishingPort

from har.artifacts.bundle import write_manifest
from har.cli import cli
from har.errors import CaptureError
from har.runtime.classifier import WindowClassifier
from har.runtime.live import LiveClassifier, Prediction, run_live
from har.sources.base import SampleBlock, SampleSource
from har.sources.serial import SerialSource
from har.wire.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
_WIN = json.loads((ROOT / "models" / "default" / "metadata.json").read_text())["window"]
W = int(round(_WIN["rate_hz"] * _WIN["window_s"]))  # the default model's input length (250 samples)
RATE = float(W)  # Hz, as declared by the test bundle: 1 s windows
HOP = W // 5  # samples: a 0.2 s hop
HAR = [sys.executable, "-c", "from har.cli import main; main()"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default bundle's model, declared as a 250 Hz model with 1 s windows and a 0.2 s hop."""
    b = tmp_path_factory.mktemp("bundle") / "fast"
    shutil.copytree(ROOT / "models" / "default", b)
    meta = json.loads((b / "metadata.json").read_text())
    meta["window"].update(rate_hz=RATE, window_s=1.0, hop_s=HOP / RATE)
    meta["smoothing"] = {}
    (b / "metadata.json").write_text(json.dumps(meta, indent=2))
    write_manifest(b)
    return b


@pytest.fixture(scope="module")
def clf(bundle: Path) -> WindowClassifier:
    c = WindowClassifier.from_bundle(bundle)
    assert c.window_samples == W and c.metadata.window.hop_samples == HOP
    return c


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    xyz = np.stack([0.3 * np.sin(2 * np.pi * 1.5 * t), 0.2 * np.cos(2 * np.pi * 0.7 * t), 1 + 0 * t], axis=1)
    return (xyz + rng.normal(0, 0.02, xyz.shape)).astype(np.float32)


def _blocks(xyz: np.ndarray, block: int, t: np.ndarray | None = None) -> Iterator[SampleBlock]:
    n = xyz.shape[0]
    t = np.arange(n) / RATE if t is None else t
    seq = np.arange(n, dtype=np.int64)
    for s in range(0, n, block):
        yield SampleBlock(t[s : s + block], xyz[s : s + block], seq[s : s + block])


def _expected(xyz: np.ndarray, runs: list[tuple[int, int]]) -> list[np.ndarray]:
    return [xyz[a + s : a + s + W] for a, b in runs for s in range(0, b - a - W + 1, HOP)]


def _spy(clf: WindowClassifier) -> tuple[WindowClassifier, list[bool]]:
    """Record, for every window the model is given, whether all its values are finite."""
    finite: list[bool] = []
    real = clf.predict_one

    def predict_one(win: np.ndarray) -> np.ndarray:
        finite.append(bool(np.isfinite(win).all()))
        return real(win)

    clf.predict_one = predict_one  # type: ignore[method-assign]
    return clf, finite


# -- NaN / inf ---------------------------------------------------------------------------------
def test_nonfinite_samples_never_reach_the_model(bundle: Path) -> None:
    clf, finite = _spy(WindowClassifier.from_bundle(bundle))
    xyz = _signal(1200)
    xyz[0, 0] = np.nan  # the very first sample
    xyz[300, 0] = np.nan
    xyz[301:303, 1] = np.inf  # a run of three bad samples inside one block
    xyz[699:701, 2] = -np.inf  # across a block boundary (blocks of 7: 700 starts one)
    warnings: list[str] = []
    live = LiveClassifier(clf, source_rate_hz=RATE, on_warning=warnings.append)
    preds = [p for b in _blocks(xyz, 7) for p in live.feed(b)]
    runs = [(1, 300), (303, 699), (701, 1200)]
    expect = _expected(xyz, runs)
    assert live.invalid == 6 and live.samples == 1200
    assert live.resets == 2  # the bad sample before any good one empties nothing
    assert len(finite) == len(preds) == len(expect) and all(finite)
    ref = clf.predict_proba(np.stack(expect), batched=False)
    np.testing.assert_allclose(np.stack([p.probs for p in preds]), ref, atol=1e-6)
    assert len(warnings) == 1 and "non-finite" in warnings[0] and "t=0.000 s" in warnings[0]


def test_block_of_only_bad_samples_and_bad_tail(clf: WindowClassifier) -> None:
    """A block that ends with (or is all) bad samples: the next block starts a new run."""
    xyz = _signal(700, seed=1)
    live = LiveClassifier(clf, source_rate_hz=RATE)
    t = np.arange(700) / RATE
    seq = np.arange(700, dtype=np.int64)
    bad = xyz.copy()
    bad[280:300] = np.nan
    cuts = [0, 280, 290, 300, 700]  # the blocks: good, 10 bad, 10 bad, good
    preds = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        preds += live.feed(SampleBlock(t[a:b], bad[a:b], seq[a:b]))
    expect = _expected(xyz, [(0, 280), (300, 700)])
    assert live.invalid == 20 and live.resets == 1 and len(preds) == len(expect)
    ref = clf.predict_proba(np.stack(expect), batched=False)
    np.testing.assert_allclose(np.stack([p.probs for p in preds]), ref, atol=1e-6)


def test_time_jump_with_continuous_seq_is_a_break(clf: WindowClassifier) -> None:
    """A device that froze and resumed: seq continues, time jumps; no window spans the pause."""
    xyz = _signal(900, seed=2)
    t = np.arange(900) / RATE
    t[400:] += 3.0
    live = LiveClassifier(clf, source_rate_hz=RATE)
    preds = [p for b in _blocks(xyz, 9, t) for p in live.feed(b)]
    expect = _expected(xyz, [(0, 400), (400, 900)])
    assert live.resets == 1 and len(preds) == len(expect)
    ref = clf.predict_proba(np.stack(expect), batched=False)
    np.testing.assert_allclose(np.stack([p.probs for p in preds]), ref, atol=1e-6)


def _write_csv(path: Path, xyz: np.ndarray, cells: dict[tuple[int, int], str]) -> Path:
    rows = ["time_s,x_g,y_g,z_g,label,seq"]
    for i, (x, y, z) in enumerate(xyz.tolist()):
        v = [f"{x:.5f}", f"{y:.5f}", f"{z:.5f}"]
        for (r, c), s in cells.items():
            if r == i:
                v[c] = s
        rows.append(f"{i / RATE:.4f},{v[0]},{v[1]},{v[2]},walking,{i}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("speed", ["0", "100"])
def test_run_file_with_nan_and_inf(tmp_path: Path, bundle: Path, clf: WindowClassifier, speed: str) -> None:
    xyz = _signal(1000, seed=3)
    # nan, inf, -inf, an empty field (pandas writes NaN so), spellings Python and numpy accept
    cells = {(100, 0): "nan", (101, 1): "inf", (102, 2): "-inf", (500, 0): "", (501, 1): "NaN", (502, 2): "Infinity"}
    rec = _write_csv(tmp_path / "bad.csv", xyz, cells)
    r = _runner().invoke(cli, ["run", str(bundle), "--file", str(rec), "--speed", speed, "--json"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "non-finite" in ln]) == 1  # one warning, not one per sample
    objs = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
    expect = _expected(xyz, [(0, 100), (103, 500), (503, 1000)])
    assert len(objs) == len(expect)
    ref = clf.predict_proba(np.stack(expect), batched=False)
    got = np.array([[o["probs"][c] for c in clf.classes] for o in objs])
    np.testing.assert_allclose(got, ref, atol=1e-4)
    summary = json.loads(r.stderr.strip().splitlines()[-1])["summary"]
    assert summary["invalid"] == 6 and summary["gaps"] == 2 and summary["samples"] == 1000
    assert summary["windows"] == len(objs)
    r = _runner().invoke(cli, ["run", str(bundle), "--file", str(rec), "--speed", speed])
    assert r.exit_code == 0 and "6 invalid" in r.stdout


def test_malformed_rows_are_one_line_errors(tmp_path: Path, bundle: Path) -> None:
    good = _write_csv(tmp_path / "good.csv", _signal(300, seed=4), {}).read_text().splitlines()
    for row, line, msg in [
        (11, "0.0400,0.1,abc,1.0,walking,10", "bad.csv:12: non-numeric value"),
        (5, "nan,0.1,0.2,1.0,walking,4", "bad.csv:6: NaN or infinite time"),
        (5, ",0.1,0.2,1.0,walking,4", "bad.csv:6: non-numeric value"),  # an empty time is not a number
        (8, "0.0280,0.1,0.2,1.0,walking,7,extra", "bad.csv:9: expected 6 fields"),
    ]:
        lines = list(good)
        lines[row] = line
        (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
        r = _runner().invoke(cli, ["run", str(bundle), "--file", str(tmp_path / "bad.csv"), "--speed", "0"])
        out = r.stderr.strip().splitlines()
        assert r.exit_code == 1 and len(out) == 1 and out[0].startswith("Error: ") and msg in out[0], r.stderr
    # training-side readers stay strict: a NaN is an error there, never a silently bad window
    rec = _write_csv(tmp_path / "nan.csv", _signal(300, seed=4), {(3, 0): "nan"})
    r = _runner().invoke(cli, ["record", "--file", str(rec), "--out", str(tmp_path / "copy.csv")])
    assert r.exit_code == 1 and "nan.csv:5: NaN or infinite value" in r.output and "Traceback" not in r.output


# -- serial: stall and reconnect (real ptys, `har run` as a process) ----------------------------
class RunProcess:
    """`har run BUNDLE --port PORT --json` in a subprocess; its stdout/stderr lines collected live."""

    def __init__(self, bundle: Path, port: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.p = subprocess.Popen([*HAR, "run", str(bundle), "--port", port, "--json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._cv = threading.Condition()
        self._pumps = [threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
                       for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for th in self._pumps:
            th.start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cv:
                sink.append(line.rstrip("\n"))
                self._cv.notify_all()

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    self.kill()
                    pytest.fail(f"har run: timed out waiting for {what}; stderr: {self.err[-10:]}")
                self._cv.wait(min(left, 0.2))

    def predictions(self) -> list[dict]:
        with self._cv:
            return [json.loads(ln) for ln in self.out if ln.startswith("{")]

    def stderr_with(self, text: str) -> list[str]:
        with self._cv:
            return [ln for ln in self.err if text in ln]

    def stop(self) -> dict:
        """SIGTERM: a clean end (exit 0) with the JSON summary as the last stderr line."""
        self.p.send_signal(signal.SIGTERM)
        assert self.p.wait(timeout=15) == 0, self.err
        for th in self._pumps:  # read to EOF
            th.join(5)
        assert not self.stderr_with("Traceback"), self.err
        return json.loads(self.stderr_with('{"summary"')[-1])["summary"]

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(5)


def test_run_survives_a_stalled_stream(bundle: Path) -> None:
    """The device stops sending for 3 s with the port open: `har run` says so once (with the
    time), keeps waiting, says when it resumes, and classifies on without a window across it."""
    with Emulator(simulate=True, rate_hz=RATE, seed=11, stall_after=2.5, stall_s=3.0) as emu:
        run = RunProcess(bundle, emu.port)
        try:
            emu.start()
            run.wait_for("the stall warning", lambda: bool(run.stderr_with("stream stalled")))
            before = len(run.predictions())
            run.wait_for("the resumption", lambda: bool(run.stderr_with("stream resumed")))
            run.wait_for("predictions after the stall", lambda: len(run.predictions()) >= before + 3)
            summary = run.stop()
        finally:
            run.kill()
    (stalled,) = run.stderr_with("stream stalled")
    assert stalled.startswith("Warning: stream stalled: no samples from serial ") and "; waiting" in stalled
    assert len(run.stderr_with("stream resumed")) == 1
    assert summary["stalls"] == 1 and summary["gaps"] >= 1 and summary["reconnects"] == 0
    t = [p["t"] for p in run.predictions()]
    assert before >= 1 and (np.diff(t) > 0).all()
    # the first window after the stall starts after it: its end is >= 1 s (a window) past the
    # pause, not one hop after the last window before it
    assert t[before] - t[before - 1] >= 3.0 + 0.5


class Recorded(SampleSource):
    """A source that keeps every block another source yields (to check windows after the fact)."""

    def __init__(self, inner: SampleSource) -> None:
        super().__init__()
        self.inner, self.info, self.stats = inner, inner.info, inner.stats
        self.seen: list[SampleBlock] = []

    def blocks(self) -> Iterator[SampleBlock]:
        for b in self.inner.blocks():
            self.seen.append(b)
            yield b

    def want(self, seq: int) -> None:
        self.inner.want(seq)

    def stop(self) -> None:
        self.inner.stop()

    @property
    def stopped(self) -> bool:
        return self.inner.stopped


def test_no_window_spans_a_stall(clf: WindowClassifier) -> None:
    """Sample-exact: every window given to the model is contiguous on the host clock."""
    preds: list[Prediction] = []
    notes: list[str] = []
    with Emulator(simulate=True, rate_hz=RATE, seed=12, stall_after=1.5, stall_s=1.0) as emu:
        src = Recorded(SerialSource(emu.port, wait_on_stall=True, no_data_timeout=0.5))
        emu.start()

        def stopper() -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any("resumed" in n for n in notes):
                time.sleep(0.05)
            n0 = len(preds)
            while time.monotonic() < deadline and len(preds) < n0 + 6:
                time.sleep(0.05)
            src.stop()

        threading.Thread(target=stopper, daemon=True).start()
        summary = run_live(clf, src, preds.append, stall_s=0.5, notify=notes.append)
        src.inner.close()
    t = np.concatenate([b.time for b in src.seen])
    seq = np.concatenate([b.seq for b in src.seen])
    assert (np.diff(seq) == 1).all()  # nothing lost: the device froze, then went on
    assert np.diff(t).max() > 0.8  # the freeze shows as a time jump
    for p in preds:
        end = int(np.searchsorted(t, p.time))
        assert t[end] == p.time and end >= W - 1
        assert np.diff(t[end - W + 1 : end + 1]).max() < 2.5 / RATE, p.time
    assert summary.stalls == 1 and summary.gaps == 1 and len(preds) >= 8
    assert len(notes) == 2, notes
    stalled = r"Warning: stream stalled: no samples from serial .* since \d\d:\d\d:\d\d \(\d+\.\d s\); waiting"
    assert re.fullmatch(stalled, notes[0]), notes
    assert re.fullmatch(r"stream resumed at \d\d:\d\d:\d\d after \d+\.\d s without samples", notes[1]), notes


def test_serial_source_waits_on_stall_only_when_asked() -> None:
    with Emulator(simulate=True, rate_hz=100, seed=13, stall_after=0.5, stall_s=1.2) as emu:
        src = SerialSource(emu.port, no_data_timeout=0.6)
        emu.start(duration=2.5)
        with pytest.raises(CaptureError, match="data stopped from"):
            for _ in src.blocks():
                pass
        src.close()
    with Emulator(simulate=True, rate_hz=100, seed=13, stall_after=0.5, stall_s=1.2) as emu:
        src = SerialSource(emu.port, no_data_timeout=0.6, wait_on_stall=True)
        emu.start(duration=2.5)
        threading.Thread(target=lambda: (emu.finished.wait(10), time.sleep(0.3), src.stop()), daemon=True).start()
        n = sum(len(b) for b in src.blocks())
        src.close()
        assert n == emu.stats.sent
    # a device that never sends anything is still an error
    with Emulator(simulate=True, rate_hz=100, seed=13) as emu:
        src = SerialSource(emu.port, no_data_timeout=0.5, wait_on_stall=True)
        with pytest.raises(CaptureError, match="no data from"):
            for _ in src.blocks():
                pass
        src.close()


def test_run_keeps_classifying_after_the_port_vanishes(tmp_path: Path, bundle: Path) -> None:
    """`har run --port <symlink>`: the device is unplugged (pty closed, link removed) and plugged
    back (a new pty behind the same link): the run reconnects, says so, and classifies on."""
    with VanishingPort(tmp_path, rate_hz=RATE, seeds=(21, 22)) as vp:
        run = RunProcess(bundle, vp.port)
        try:
            vp.start()
            run.wait_for("first predictions", lambda: len(run.predictions()) >= 3)
            vp.vanish()
            run.wait_for("the stall warning", lambda: bool(run.stderr_with("stream stalled")))
            before = len(run.predictions())
            vp.come_back()
            run.wait_for("the resumption", lambda: bool(run.stderr_with("stream resumed")))
            run.wait_for("predictions after the reconnect", lambda: len(run.predictions()) >= before + 3)
            summary = run.stop()
        finally:
            run.kill()
    (stalled,) = run.stderr_with("stream stalled")
    assert f"(reconnecting to {vp.port} (attempt " in stalled
    (resumed,) = run.stderr_with("stream resumed")
    assert resumed.endswith("(reconnected)")
    assert summary["reconnects"] == 1 and summary["gaps"] >= 1 and summary["stalls"] == 1
    assert summary["windows"] == len(run.predictions()) >= before + 3
    t = [p["t"] for p in run.predictions()]
    assert (np.diff(t) > 0).all()


def test_reads_are_planned_around_predictions() -> None:
    """`har run` pauses long between reads of a 50 Hz device, but run_live tells the source which
    sample its next prediction needs: the port is read right after that sample is due, so
    predictions come out promptly instead of up to a read pause late."""
    import dataclasses

    meta = WindowClassifier.from_bundle(ROOT / "models" / "default").metadata
    # the default model re-declared with a 1 s hop (the hop is not part of the TFLite model)
    meta = dataclasses.replace(meta, window=dataclasses.replace(meta.window, hop_s=1.0))
    clf = WindowClassifier(ROOT / "models" / "default" / "model.tflite", meta)
    hop_s = clf.metadata.window.hop_samples / 50.0
    preds: list[Prediction] = []
    emitted: list[float] = []
    with Emulator(simulate=True, rate_hz=50.0, seed=13) as emu:
        # a 0.7 s pause, out of step with the 1 s hop: without the plan a prediction would wait
        # 0-0.7 s for the next read
        inner = SerialSource(emu.port, read_interval_s=0.7)
        src = Recorded(inner)
        emu.start()

        def on_prediction(p: Prediction) -> None:
            emitted.append(time.monotonic() - inner.clock_origin)
            preds.append(p)
            if len(preds) >= 7:
                src.stop()

        run_live(clf, src, on_prediction, stall_s=None)
        inner.close()
    late = np.array(emitted) - np.array([p.time for p in preds])  # p.time: its last sample's arrival
    assert len(preds) == 7 and hop_s >= 1.0
    assert np.median(late) < 0.2, late
    assert len(src.seen) <= 3 * len(preds) + 12, len(src.seen)  # not a read every 20 ms (~550)
