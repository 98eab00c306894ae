"""Memory benchmark: `har run`'s live path over a whole day, accelerated.

Feeds ``--hours`` hours (default 24) of samples at the bundle's rate (50 Hz for the default
model: 4.32 M samples, 86,400 windows at a 1 s hop) through :func:`har.runtime.live.run_live`
(the function `har run` uses, with the bundle's smoothing, the stall watchdog and a SampleSource)
as fast as the model allows. Samples are generated on the fly in blocks like a device delivers
them (``--block`` samples per block, each a fresh array) from a pool of activity-simulator signal
made before the measurement starts; with ``--faults`` (default) the day has a NaN sample every
10 minutes, 5 lost samples every 30 minutes and a reconnect (break) every 2 hours, so the gap
paths run all day too. ``emit`` keeps only counters: the benchmark itself accumulates nothing.

The process RSS (VmRSS, /proc/self/status) and Python's allocated blocks are sampled before the
run and after every simulated hour; the table, the RSS growth from hour 1 to the last hour (and
the ratio of the last hour to the start), the wall time and windows/s are printed. Never fails on
numbers.

    .venv/bin/python bench/bench_memory.py [BUNDLE] [--hours 24] [--block 10] [--smooth SPEC] [--no-faults]

BUNDLE defaults to models/default (int8, ~5 ms per window); an fp32 bundle is ~5x faster:
``har deploy demo-out/model --out /tmp/b32 --quantize fp32 --batch 0``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from har.recording.simulate import ActivitySimulator  # noqa: E402
from har.runtime.classifier import WindowClassifier  # noqa: E402
from har.runtime.live import Prediction, run_live  # noqa: E402
from har.runtime.smoothing import resolve_smoothing  # noqa: E402
from har.sources.base import SampleBlock, SampleSource  # noqa: E402

ACTIVITIES = ("walking", "sitting", "running", "standing", "stairs", "lying")


def rss_kb() -> int:
    """Resident set size of this process (kB), from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class DaySource(SampleSource):
    """``hours`` of samples at ``rate_hz`` in blocks of ``block`` samples, as fast as consumed.

    The signal cycles through a pool of simulated activities (``pool_s`` seconds each); ``seq``
    and ``time`` follow the nominal timeline. ``on_hour(h)`` is called after each simulated hour."""

    def __init__(self, rate_hz: float, hours: float, block: int, faults: bool, on_hour: object,
                 pool_s: float = 120.0, seed: int = 0) -> None:
        super().__init__()
        self.info.rate_hz = rate_hz
        self.info.device = "synthetic"
        self.info.description = f"synthetic day ({hours:g} h at {rate_hz:g} Hz, blocks of {block})"
        self.total = int(round(hours * 3600 * rate_hz))
        self.block = int(block)
        self.faults = faults
        self.on_hour = on_hour
        sim = ActivitySimulator(subject_seed=3, rate_hz=rate_hz, seed=seed)
        n = int(pool_s * rate_hz)
        self.pool = np.concatenate([sim.generate(a, n) for a in ACTIVITIES]).astype(np.float32)
        self.nan_every = int(600 * rate_hz)  # one NaN sample every 10 min
        self.gap_every = int(1800 * rate_hz)  # 5 samples lost every 30 min
        self.break_every = int(7200 * rate_hz)  # a reconnect every 2 h
        self.per_hour = int(3600 * rate_hz)
        self.injected = {"nan": 0, "lost": 0, "breaks": 0}

    def blocks(self) -> Iterator[SampleBlock]:
        rate, pool, b = float(self.info.rate_hz or 50.0), self.pool, self.block
        m = pool.shape[0]
        k = 0  # samples produced (the device's clock)
        seq_off = 0  # seq lead from lost samples and breaks
        next_hour = self.per_hour
        while k < self.total and not self.stopped:
            n = min(b, self.total - k, next_hour - k)
            i = k % m
            xyz = pool[i : i + n].copy() if i + n <= m else np.concatenate([pool[i:], pool[: n - (m - i)]])
            brk = False
            if self.faults:
                if k and k % self.break_every < n:
                    brk, seq_off = True, seq_off + 1  # a one-step seq hole, like SerialSource
                    self.injected["breaks"] += 1
                    self.stats.reconnects += 1
                elif k and k % self.gap_every < n:
                    seq_off += 5
                    self.injected["lost"] += 5
                    self.stats.dropped += 5
                if k % self.nan_every < n:
                    xyz[0, 1] = np.nan
                    self.injected["nan"] += 1
            seq = np.arange(k, k + n, dtype=np.int64) + seq_off
            self.stats.samples += n
            yield SampleBlock(time=seq / rate, xyz=xyz, seq=seq, break_before=brk)
            k += n
            if k == next_hour:
                self.on_hour(k // self.per_hour)  # type: ignore[operator]
                next_hour += self.per_hour


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", default=str(ROOT / "models" / "default"), help="bundle directory")
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    ap.add_argument("--block", type=int, default=10, help="samples per block (default 10 = 0.2 s at 50 Hz)")
    ap.add_argument("--smooth", default=None, help="smoothing spec (default: the bundle's; 'none' to disable)")
    ap.add_argument("--no-faults", dest="faults", action="store_false", help="no NaN / lost samples / breaks")
    args = ap.parse_args()

    clf = WindowClassifier.from_bundle(args.bundle, verify=True)
    rate = float(clf.metadata.window.rate_hz)
    smoothing = resolve_smoothing(clf.metadata.smoothing, args.smooth)
    # hour, RSS kB, Python allocated blocks, windows, wall s: preallocated, so that taking the
    # measurements allocates nothing that lives on (the block count measures the live path only)
    table = np.zeros((max(1, int(args.hours)), 5), dtype=np.float64)
    state = {"windows": 0}
    t0 = time.monotonic()

    def on_hour(h: int) -> None:
        gc.collect()
        table[h - 1] = (h, rss_kb(), sys.getallocatedblocks(), state["windows"], time.monotonic() - t0)
        r = table[h - 1]
        print(f"  hour {h:3d}: RSS {r[1] / 1024:7.1f} MB, {int(r[3]):7d} windows, {r[4]:7.1f} s wall", flush=True)

    def emit(p: Prediction) -> None:  # a counter only: nothing is kept
        state["windows"] += 1

    source = DaySource(rate, args.hours, args.block, args.faults, on_hour)
    notes: list[str] = []
    print(f"bundle {args.bundle} ({clf.runtime_name}, {clf.input_dtype} input), window {clf.window_samples} samples "
          f"at {rate:g} Hz, hop {clf.metadata.window.hop_samples}; smoothing {smoothing.spec}")
    print(f"{source.info.description}: {source.total:,} samples; faults {'on' if args.faults else 'off'}")
    gc.collect()
    start_rss, start_blocks = rss_kb(), sys.getallocatedblocks()
    t0 = time.monotonic()
    summary = run_live(clf, source, emit, smoother=smoothing, notify=notes.append)
    wall = time.monotonic() - t0
    rows = [(int(h), int(kb), int(b), int(w), float(ws)) for h, kb, b, w, ws in table if h > 0]

    print()
    print(f"{'hour':>5} {'RSS MB':>8} {'vs h1 MB':>9} {'py blocks':>10} {'windows':>9} {'wall s':>8}")
    print(f"{'start':>5} {start_rss / 1024:8.1f} {'':>9} {start_blocks:10d} {0:9d} {0.0:8.1f}")
    h1 = rows[0][1] if rows else start_rss
    for h, kb, blocks, win, ws in rows:
        print(f"{h:5d} {kb / 1024:8.1f} {(kb - h1) / 1024:+9.2f} {blocks:10d} {win:9d} {ws:8.1f}")
    if rows:
        last = rows[-1]
        print()
        print(f"RSS growth hour 1 -> hour {last[0]}: {last[1] - h1:+d} kB "
              f"({100 * (last[1] - h1) / h1:+.2f}%); last hour / start: {last[1] / start_rss:.3f}x "
              f"({start_rss / 1024:.1f} -> {last[1] / 1024:.1f} MB)")
        b1, bl = rows[0][2], last[2]
        print(f"Python allocated blocks hour 1 -> hour {last[0]}: {b1} -> {bl} ({bl - b1:+d})")
    print(f"wall {wall:.1f} s for {summary.samples:,} samples, {summary.windows:,} windows: "
          f"{summary.windows / wall:,.0f} windows/s, {args.hours * 3600 / wall:,.0f}x real time")
    print(f"summary: {summary.lines()[0]}")
    print(f"injected: {source.injected}; warnings: {len(notes)} ({'; '.join(n[:70] for n in notes[:2])})")


if __name__ == "__main__":
    main()
