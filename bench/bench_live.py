"""Live path (`har run`): Python cost per sample, start-up time and resident memory, each next to a
naive baseline measured in the same run.

    .venv/bin/python bench/bench_live.py [--bundle models/default] [--minutes 30] [--device-seconds 20]

1. Python per sample (in process, one thread): a recording's samples are fed through `run_live`
   in blocks the way a source delivers them (1 sample per block = a 50 Hz device read every
   20 ms; 5 = every 100 ms; 50). The interpreter's own time is measured around every model call
   and subtracted: what is left is what har adds (ring buffer, gap/NaN checks, resampling hook,
   smoothing, bookkeeping). Baseline: the per-sample loop of the classic examples (a deque of
   the last window, `np.array(deque)` every hop, then the same model call).
2. End to end with a device: `har run --port` on the emulator (pty, 50 Hz) for --device-seconds;
   the process's CPU time (user + sys, from wait4) minus the interpreter's time for its windows,
   per sample: serial reading and parsing included.
3. Start-up: process start of `har run BUNDLE --file REC --speed 0 --json` to its first prediction
   on stdout (the window is full at once), median of 5; baseline: the same through TensorFlow's
   own tf.lite interpreter (what a script that imports TensorFlow pays), when TensorFlow is installed.
4. Resident memory: peak RSS (ru_maxrss) of the `har run` process of 3.

Targets (issue 5): <= 5 us of Python per sample, start-up <= 0.5 s, RSS <= 100 MB."""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HAR = [sys.executable, "-m", "har.cli"]


def _recording(out: Path, minutes: float) -> Path:
    from har.recording.format import write_recording
    from har.recording.simulate import ACTIVITIES, simulate_recording

    per = minutes * 60.0 / len(ACTIVITIES)
    rec = simulate_recording([(a, per) for a in ACTIVITIES], subject="bench", subject_seed=5, rate_hz=50.0, seed=5)
    return write_recording(out / "live.csv", rec)


class _Timed:
    """Wraps WindowClassifier.predict_one and sums the interpreter's time."""

    def __init__(self, clf: object) -> None:
        self.clf = clf
        self.orig = clf.predict_one  # type: ignore[attr-defined]
        self.seconds = 0.0
        self.calls = 0

        def timed(win: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = self.orig(win)
            self.seconds += time.perf_counter() - t
            self.calls += 1
            return out

        clf.predict_one = timed  # type: ignore[attr-defined]


def python_per_sample(bundle: Path, rec_path: Path, block: int) -> tuple[float, float, int]:
    """(har us/sample, interpreter ms/window, windows) through run_live with ``block``-sample blocks."""
    from har.recording.format import read_recording
    from har.runtime.classifier import WindowClassifier
    from har.runtime.live import run_live
    from har.sources.base import SampleBlock, SampleSource

    rec = read_recording(rec_path)
    n = len(rec)
    blocks = [SampleBlock(rec.time[i : i + block], rec.xyz[i : i + block], rec.seq[i : i + block])
              for i in range(0, n, block)]

    class Blocks(SampleSource):
        def __init__(self) -> None:
            super().__init__()
            self.info.rate_hz = 50.0

        def blocks(self) -> Iterator[SampleBlock]:
            yield from blocks

    clf = WindowClassifier.from_bundle(bundle, use_batch_model=False)
    timer = _Timed(clf)
    t = time.perf_counter()
    summary = run_live(clf, Blocks(), lambda p: None)
    total = time.perf_counter() - t
    assert summary.samples == n
    return (total - timer.seconds) / n * 1e6, timer.seconds / max(timer.calls, 1) * 1e3, timer.calls


def serial_per_sample(bundle: Path, rec_path: Path, lines_per_read: int) -> tuple[float, int]:
    """(har us/sample, windows) of the whole serial path in process: the recording as protocol
    lines (what a device sends), ``lines_per_read`` lines per read fed to a WireSession (what
    SerialSource's reader thread does with each read: parse, CRC, seq unwrapping, host-clock
    timeline), its blocks through `run_live`. Interpreter time is subtracted; the OS side
    (thread wake-ups, the read syscall, the queue between the threads) is not in this number."""
    from har.recording.format import read_recording
    from har.runtime.classifier import WindowClassifier
    from har.runtime.live import run_live
    from har.sources.base import SampleBlock, SampleSource
    from har.wire.protocol import Header, encode_header, encode_sample
    from har.wire.session import WireSession

    rec = read_recording(rec_path)
    mg = np.round(rec.xyz * 1000.0).astype(int).tolist()
    lines = [encode_sample(i, *v) for i, v in enumerate(mg)]
    chunks = [b"".join(lines[i : i + lines_per_read]) for i in range(0, len(lines), lines_per_read)]

    class Parsed(SampleSource):
        """The reader thread's work, done in line: decode each read, then hand over its blocks."""

        def __init__(self) -> None:
            super().__init__()
            self.info.rate_hz = 50.0
            self.session = WireSession(self.info, self.stats, name="bench")

        def blocks(self) -> Iterator[SampleBlock]:
            self.session.feed(encode_header(Header(50.0, 8.0)), 0.0)
            for k, c in enumerate(chunks):
                yield from self.session.feed(c, (k + 1) * lines_per_read / 50.0)

    clf = WindowClassifier.from_bundle(bundle, use_batch_model=False)
    timer = _Timed(clf)
    t = time.perf_counter()
    summary = run_live(clf, Parsed(), lambda p: None)
    total = time.perf_counter() - t
    assert summary.samples == len(lines), (summary.samples, len(lines))
    return (total - timer.seconds) / len(lines) * 1e6, timer.calls


def naive_per_sample(bundle: Path, rec_path: Path) -> tuple[float, int]:
    """(us/sample, windows) of the per-sample deque loop, interpreter time subtracted."""
    from har.recording.format import read_recording
    from har.runtime.classifier import WindowClassifier

    rec = read_recording(rec_path)
    clf = WindowClassifier.from_bundle(bundle, use_batch_model=False)
    timer = _Timed(clf)
    w, hop = clf.window_samples, int(clf.metadata.window.hop_samples)
    buf: collections.deque[list[float]] = collections.deque(maxlen=w)
    rows = rec.xyz.tolist()  # samples arrive one by one as Python values
    since = 0
    t = time.perf_counter()
    for row in rows:
        buf.append(row)
        since += 1
        if len(buf) == w and since >= hop:
            since = 0
            probs = clf.predict_one(np.array(buf, dtype=np.float32))
            clf.label_of(probs)
    total = time.perf_counter() - t
    return (total - timer.seconds) / len(rows) * 1e6, timer.calls


class _PeakRss:
    """Polls /proc/PID/status VmHWM (the peak RSS of the process's own address space) every 20 ms.

    (ru_maxrss from wait4 cannot be used: on exec Linux carries over the parent's RSS high-water
    mark, so a child of this benchmark process would report at least the benchmark's size.)"""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = float("nan")
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for ln in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if ln.startswith("VmHWM:"):
                        self.mb = int(ln.split()[1]) / 1024.0
            except (OSError, ValueError, IndexError):
                pass
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.mb


def _wait_child(p: subprocess.Popen[str], rss: _PeakRss) -> tuple[float, float]:
    """Wait for ``p``; (cpu seconds user+sys of that child alone, peak RSS MB)."""
    # Read the last VmHWM while the process is a zombie-to-be: wait for its output to end first.
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, rss.stop()


def startup(cmd: list[str], marker: str = "{") -> tuple[float, float]:
    """Seconds from process start to the first stdout line starting with ``marker``; peak RSS (MB)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    peak = _PeakRss(p.pid)
    assert p.stdout is not None
    first = None
    for line in p.stdout:
        if first is None and line.startswith(marker):
            first = time.perf_counter() - t
    _, rss = _wait_child(p, peak)
    return (first if first is not None else float("nan")), rss


TF_BASELINE = r"""
import sys, json, numpy as np
import tensorflow as tf
from har.recording.format import read_recording
from har.artifacts.metadata import load_metadata
b, rec = sys.argv[1], sys.argv[2]
meta = load_metadata(b)
it = tf.lite.Interpreter(model_path=b + "/model.tflite", num_threads=1)
it.allocate_tensors()
r = read_recording(rec)
w = meta.window.window_samples
x = ((r.xyz[:w] - np.array(meta.normalization.mean, np.float32)) / np.array(meta.normalization.std, np.float32))
it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(np.float32))
it.invoke()
print(json.dumps({"probs": it.get_tensor(it.get_output_details()[0]["index"])[0].tolist()}), flush=True)
"""


NAIVE_SERIAL = r"""
import collections, json, sys, time
import numpy as np, serial
from har.runtime.classifier import WindowClassifier
bundle, port, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
clf = WindowClassifier.from_bundle(bundle, use_batch_model=False)
w, hop = clf.window_samples, int(clf.metadata.window.hop_samples)
ser = serial.Serial(port, 115200, timeout=1.0)
buf = collections.deque(maxlen=w)
n = since = windows = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    line = ser.readline()
    if not line or line[:1] in (b"#", b"!"):
        continue
    try:
        _, x, y, z = (int(v) for v in line.split(b"*")[0].split(b","))
    except ValueError:
        continue
    buf.append((x / 1000.0, y / 1000.0, z / 1000.0))
    n += 1
    since += 1
    if len(buf) == w and since >= hop:
        since = 0
        clf.label_of(clf.predict_one(np.array(buf, dtype=np.float32)))
        windows += 1
print(json.dumps({"summary": {"samples": n, "windows": windows}}), file=sys.stderr)
"""


def device_run(bundle: Path, seconds: float, naive: bool = False) -> tuple[float, int, int, float] | None:
    """(CPU s, samples, windows, peak RSS MB) of `har run --port` (or, with ``naive``, of the
    classic readline loop) on an emulated 50 Hz device."""
    import json

    emu = subprocess.Popen([*HAR, "emulate", "--simulate", "--rate", "50", "--seed", "1",
                            "--duration", str(seconds + 30)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert emu.stdout is not None
        port = emu.stdout.readline().strip()
        if not port:
            return None
        cmd = ([sys.executable, "-c", NAIVE_SERIAL, str(bundle), port, str(seconds)] if naive else
               [*HAR, "run", str(bundle), "--port", port, "--json", "--duration", str(seconds)])
        run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        peak = _PeakRss(run.pid)
        assert run.stderr is not None
        err = run.stderr.read()
        cpu, rss = _wait_child(run, peak)  # type: ignore[arg-type]
    finally:
        emu.terminate()
        emu.wait(timeout=10)
    summ = next((json.loads(ln)["summary"] for ln in err.splitlines() if ln.startswith('{"summary"')), None)
    if summ is None:
        return None
    return cpu, int(summ["samples"]), int(summ["windows"]), rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the in-process recording")
    ap.add_argument("--device-seconds", type=float, default=60.0, help="0 skips the emulator runs")
    args = ap.parse_args()
    bundle = args.bundle.resolve()

    with tempfile.TemporaryDirectory(prefix="har-bench-live-") as tmp:
        rec = _recording(Path(tmp), args.minutes)
        print(f"bundle {bundle}; recording {args.minutes:g} min at 50 Hz\n")

        print("1. Python per sample over the interpreter's own cost (in process, 1 thread)")
        ms_win = 0.0
        for block in (1, 5, 50):
            us, ms_win, windows = python_per_sample(bundle, rec, block)
            print(f"   har run_live, {block:>2}-sample blocks: {us:6.2f} us/sample  ({windows} windows, "
                  f"interpreter {ms_win:.2f} ms/window)")
        base_us, _ = naive_per_sample(bundle, rec)
        print(f"   naive per-sample deque loop:     {base_us:6.2f} us/sample")
        print("   with the serial protocol in front (parse + CRC + timeline + blocks + loop, in process):")
        from har.artifacts.metadata import load_metadata

        lpr = int(load_metadata(bundle).window.hop_samples)  # `har run` reads once per hop (want())
        for k in sorted({1, 12, lpr}):
            us, _ = serial_per_sample(bundle, rec, k)
            what = " (`har run` at 50 Hz: one read per hop)" if k == lpr else ""
            print(f"   har serial path, {k:>2} lines/read: {us:6.2f} us/sample{what}")

        if args.device_seconds > 0:
            print(f"\n2. `har run --port` on the emulator at 50 Hz (whole process: reader thread, parsing, loop); "
                  f"{args.device_seconds:g} s minus a 5 s run, so start-up cancels out")
            per_of: dict[bool, float] = {}
            for naive in (False, True):
                long = device_run(bundle, args.device_seconds, naive)
                short = device_run(bundle, 5.0, naive)
                what = "naive readline loop (ser.readline() per sample, deque)" if naive else "har run"
                if long is None or short is None:
                    print(f"   {what}: the emulator run failed")
                    continue
                d_cpu, d_s, d_w = long[0] - short[0], long[1] - short[1], long[2] - short[2]
                per_of[naive] = per = (d_cpu - d_w * ms_win / 1e3) / max(d_s, 1) * 1e6
                print(f"   {what}: {long[1]} samples, {long[2]} windows, process CPU {long[0]:.2f} s, "
                      f"peak RSS {long[3]:.1f} MB; 5 s run: CPU {short[0]:.2f} s")
                print(f"   -> {per:.1f} us of CPU per sample besides the interpreter ({d_s} samples, {d_w} windows)")
            if len(per_of) == 2:
                print(f"   ratio naive / har run: x{per_of[True] / per_of[False]:.1f} (most of either is the OS "
                      "waking a thread: har reads about once per hop, the loop once per line)")

        print("\n3. Start-up: process start -> first prediction (`--file --speed 0`, window full at once)")
        har_cmd = [*HAR, "run", str(bundle), "--file", str(rec), "--speed", "0", "--json", "--duration", "2"]
        runs = [startup(har_cmd) for _ in range(5)]
        st = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        print(f"   har run:             {st:.3f} s (median of 5: {', '.join(f'{r[0]:.3f}' for r in runs)})")
        try:
            import importlib.util

            has_tf = importlib.util.find_spec("tensorflow") is not None
        except Exception:  # noqa: BLE001
            has_tf = False
        if has_tf:
            tf_runs = [startup([sys.executable, "-c", TF_BASELINE, str(bundle), str(rec)]) for _ in range(3)]
            tf_st = statistics.median(r[0] for r in tf_runs)
            tf_rss = max(r[1] for r in tf_runs)
            print(f"   baseline (tf.lite):  {tf_st:.3f} s (x{tf_st / st:.1f} har), peak RSS {tf_rss:.0f} MB")
        else:
            tf_rss = float("nan")
            print("   baseline (tf.lite):  skipped (TensorFlow not installed)")
        print(f"\n4. Peak RSS of `har run`: {rss:.1f} MB" + (f" (tf.lite baseline {tf_rss:.0f} MB)" if has_tf else ""))
        print(f"\ntargets: <= 5 us/sample, start-up <= 0.5 s ({'met' if st <= 0.5 else 'NOT met'}), "
              f"RSS <= 100 MB ({'met' if rss <= 100 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
