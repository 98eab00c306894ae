"""Replay speed: `har replay` against the naive baseline, in the same process.

    .venv/bin/python bench/bench_replay.py [--bundle models/default] [--hours 6] [--recording CSV]
                                           [--baseline-windows N]

A synthetic recording of ``--hours`` at 50 Hz (har's simulator, one subject, bouts of 1-10 minutes
of the six activities in random order: 6 h = 1,080,000 samples) is written to a temporary directory, unless --recording
gives one. Then, pinned to one CPU (sched_setaffinity, inherited by the command) and one thread:

* naive baseline: the recording read by the same reader, then a plain Python loop with one
  interpreter call per window (the bundle's live model, batch 1, state reset per window, the way
  the classic notebooks and examples do it). ``--baseline-windows N`` times only the first N
  windows and extrapolates (the int8 live model takes ~5 ms per window: a full 6-hour baseline
  takes ~2 minutes).
* har: `har.runtime.replay.replay()` on the same file: reading, windowing, the bundle's batched
  float32 replay model, scoring, smoothing and event metrics (all of it is timed), and the `har
  replay` command in a subprocess (process start to exit).

Prints the times, windows/s and the ratio baseline / har. The issue's target: a 6-hour 50 Hz log in
5 s or less."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_recording(out: Path, hours: float) -> Path:
    from har.recording.format import write_recording
    from har.recording.simulate import ACTIVITIES, simulate_recording

    rng = np.random.default_rng(11)
    schedule: list[tuple[str, float]] = []
    left = hours * 3600.0
    while left > 0:  # bouts of 1-10 minutes, activities in random order
        secs = min(left, float(rng.uniform(60.0, 600.0)))
        schedule.append((str(rng.choice(ACTIVITIES)), secs))
        left -= secs
    rec = simulate_recording(schedule, subject="bench", subject_seed=11, rate_hz=50.0, seed=11)
    return write_recording(out / "bench.csv", rec)


def naive_baseline(bundle: Path, recording: Path, limit: int | None) -> tuple[float, int, int, list[int]]:
    """(seconds, windows timed, windows total, predicted class indices) of the plain loop."""
    from har.recording.format import read_recording
    from har.runtime.classifier import WindowClassifier

    t0 = time.perf_counter()
    clf = WindowClassifier.from_bundle(bundle, use_batch_model=False)
    m = clf._single  # the interpreter itself: the baseline does by hand what a notebook would
    rec = read_recording(recording)
    w, hop = clf.window_samples, int(clf.metadata.window.hop_samples)
    starts = [s for seg in rec.segments() for s in range(seg.start, seg.stop - w + 1, hop)]
    total = len(starts)
    if limit is not None:
        starts = starts[:limit]
    mean = np.asarray(clf.metadata.normalization.mean, dtype=np.float32)
    std = np.asarray(clf.metadata.normalization.std, dtype=np.float32)
    preds: list[int] = []
    for s in starts:
        x = ((rec.xyz[s : s + w] - mean) / std)[None].astype(np.float32)
        m.interp.reset_all_variables()
        m.interp.set_tensor(m._in_index, m.quantize_input(x))
        m.interp.invoke()
        preds.append(int(np.argmax(m.interp.get_tensor(m._out_index)[0])))
    return time.perf_counter() - t0, len(starts), total, preds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--recording", type=Path, default=None)
    ap.add_argument("--baseline-windows", type=int, default=None, help="time only the first N baseline windows")
    ap.add_argument("--repeats", type=int, default=3, help="har replay runs (the median is reported)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):  # one core, for this process and the `har replay` child
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(f"pinned to CPU {sorted(os.sched_getaffinity(0))}")

    from har.runtime.classifier import WindowClassifier
    from har.runtime.replay import replay

    with tempfile.TemporaryDirectory(prefix="har-bench-replay-") as tmp:
        rec_path = args.recording
        if rec_path is None:
            t = time.perf_counter()
            rec_path = make_recording(Path(tmp), args.hours)
            print(f"wrote {rec_path.name}: {args.hours:g} h at 50 Hz in {time.perf_counter() - t:.1f} s")
        n_samples = sum(1 for _ in open(rec_path, "rb")) - 1
        meta = WindowClassifier.from_bundle(args.bundle, use_batch_model=False).metadata
        print(f"bundle {args.bundle} ({meta.export.quantize if meta.export else '?'} live model), "
              f"recording {n_samples:,} samples")

        # har: in process, full replay (read + window + batched model + scoring + smoothing)
        times: list[float] = []
        res = None
        for _ in range(args.repeats):
            clf = WindowClassifier.from_bundle(args.bundle)
            t = time.perf_counter()
            res = replay(clf, rec_path)
            times.append(time.perf_counter() - t)
        assert res is not None
        har_s = statistics.median(times)
        print(f"har replay():        {har_s:7.2f} s  ({res.windows:,} windows, {res.windows / har_s:,.0f} windows/s, "
              f"batched={res.batched}; runs {', '.join(f'{v:.2f}' for v in times)})")

        # har: the command, process start to exit (imports, checksum verification, output)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "har.cli", "replay", str(args.bundle), str(rec_path), "--json"],
                           capture_output=True, text=True, cwd=ROOT)
        cli_s = time.perf_counter() - t
        fail = "" if p.returncode == 0 else ", FAILED: " + p.stderr[-200:]
        print(f"`har replay` command: {cli_s:7.2f} s  (process start to exit{fail})")

        # naive baseline
        base_s, timed, total, preds = naive_baseline(args.bundle, rec_path, args.baseline_windows)
        est = base_s / max(timed, 1) * total
        what = "measured" if timed == total else f"extrapolated from {timed:,} windows"
        print(f"naive baseline:      {est:7.2f} s  ({total:,} windows, {total / est:,.0f} windows/s, {what})")
        agree = np.mean(np.array(preds) == np.array([clf.classes.index(c) for c in res.predicted[:timed]]))
        print(f"ratio baseline / har replay(): x{est / har_s:.1f}; baseline / command: x{est / cli_s:.1f}; "
              f"argmax agreement replay model vs live model on the timed windows: {100 * agree:.2f}%")
        six_h = har_s * 1_080_000 / n_samples
        six_h_cli = cli_s * 1_080_000 / n_samples
        print(f"target: 6 h of 50 Hz in <= 5 s on one core -> replay() {six_h:.2f} s "
              f"({'met' if six_h <= 5.0 else 'NOT met'}), command {six_h_cli:.2f} s "
              f"({'met' if six_h_cli <= 5.0 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
