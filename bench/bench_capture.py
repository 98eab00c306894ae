"""Capture-path benchmark: parser throughput, and `har record`'s capture code (SerialSource +
record) against `har emulate` in a separate process over a real pty.

    .venv/bin/python bench/bench_capture.py [--seconds 10] [--rates 500,1000,2000,4000,8000,16000,20000]

Prints LineParser lines/s (the reference path, parse_line per line, vs. the fast path),
then for each rate: samples recorded vs sent, losses, and the CPU share of the capture side
(process CPU time / wall time of this process, which runs only the capture: reader thread,
parser, writer), and finally the highest rate captured with zero loss.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from har.recording.capture import record
from har.recording.format import read_recording
from har.sources.serial import SerialSource
from har.wire.emulator import parse_describe
from har.wire.protocol import Header, LineParser, encode_header, encode_sample

HAR = [sys.executable, "-c", "from har.cli import main; main()"]


def bench_parser(n: int = 200_000, chunk: int = 4096) -> None:
    rng = np.random.default_rng(0)
    vals = rng.integers(-4000, 4000, (n, 3)).tolist()
    stream = encode_header(Header(100, 8)) + b"".join(encode_sample(i, *v) for i, v in enumerate(vals))
    for name, fast in (("reference (parse_line per line)", False), ("fast path (feed_batch)", True)):
        p = LineParser(reference=not fast)
        f = p.feed_batch
        t0 = time.perf_counter()
        got = 0
        for i in range(0, len(stream), chunk):
            got += len(f(stream[i : i + chunk]))
        dt = time.perf_counter() - t0
        print(f"parser {name:32s}: {got / dt:>10,.0f} lines/s ({len(stream) / dt / 1e6:.1f} MB/s, {chunk} B chunks)")


def capture_run(rate: float, seconds: float, workdir: Path) -> dict[str, float | int | bool]:
    """Stream ``rate`` Hz for ``seconds`` from `har emulate` (own process) into record(); return counts."""
    emu = subprocess.Popen(
        [*HAR, "emulate", "--simulate", "--rate", f"{rate:g}", "--duration", f"{seconds:g}", "--seed", "0",
         "--delay", "0.5", "--linger", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert emu.stdout is not None and emu.stderr is not None
    port = emu.stdout.readline().strip()
    src = SerialSource(port, reconnect=False)
    final: dict[str, int] = {}

    def watch() -> None:
        for line in emu.stderr:  # type: ignore[union-attr]
            if line.startswith("emulator stopped:"):
                final.update(parse_describe(line))
                time.sleep(0.5)  # let the reader take in the last bytes
                src.stop()

    threading.Thread(target=watch, daemon=True).start()
    out = workdir / f"r{rate:g}.csv"
    c0, w0 = time.process_time(), time.perf_counter()
    res = record(src, out)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    emu.wait(10)
    rec = read_recording(out)
    seq_ok = bool((np.diff(rec.seq) == 1).all())
    sent = final.get("sent", -1)
    meta = json.loads(out.with_suffix(".json").read_text())
    zero = (seq_ok and res.dropped == 0 and res.corrupt == 0 and res.samples == sent == len(rec)
            and final.get("tx_dropped", 0) == 0 and meta["complete"])
    return {"rate": rate, "sent": sent, "samples": res.samples, "dropped": res.dropped, "corrupt": res.corrupt,
            "tx_dropped": final.get("tx_dropped", 0), "seq_ok": seq_ok, "zero_loss": zero,
            "cpu_share": cpu / wall, "measured": res.measured_rate_hz or 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of stream per rate")
    ap.add_argument("--rates", default="500,1000,2000,4000,8000,16000,20000", help="Hz, comma-separated, ascending")
    ap.add_argument("--no-parser", action="store_true", help="skip the parser micro-benchmark")
    args = ap.parse_args()
    if not args.no_parser:
        bench_parser()
    best = 0.0
    cpu_1k: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in [float(x) for x in args.rates.split(",")]:
            m = capture_run(r, args.seconds, Path(tmp))
            print(
                f"capture {r:7.0f} Hz: {m['samples']}/{m['sent']} samples, dropped {m['dropped']}, corrupt "
                f"{m['corrupt']}, tx_dropped {m['tx_dropped']}, seq contiguous {m['seq_ok']}, measured "
                f"{m['measured']:.1f} Hz, capture CPU {100 * m['cpu_share']:.1f}% of one core -> "
                f"{'ZERO LOSS' if m['zero_loss'] else 'LOSS'}",
                flush=True,
            )
            if r == 1000:
                cpu_1k = float(m["cpu_share"])
            if m["zero_loss"]:
                best = max(best, r)
    print(f"highest rate with zero loss: {best:g} Hz")
    if cpu_1k is not None:
        print(f"capture CPU share at 1 kHz: {100 * cpu_1k:.1f}% of one core (process CPU time / wall time)")


if __name__ == "__main__":
    main()
