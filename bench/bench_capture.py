"""Capture-path benchmark: parser throughput and SerialSource over an emulator pty.

    .venv/bin/python bench/bench_capture.py [--seconds 3] [--rates 50,500,1000]

Prints lines/s and MB/s of :class:`LineParser` on a synthetic stream, then for each rate the
samples received vs sent, losses, and the CPU time per second of stream (whole process: the
emulator thread runs in it too).
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np

from har.device.emulator import Emulator
from har.device.protocol import Header, LineParser, encode_header, encode_sample
from har.sources.serial import SerialSource


def bench_parser(n: int = 200_000, chunk: int = 4096) -> None:
    rng = np.random.default_rng(0)
    vals = rng.integers(-4000, 4000, (n, 3)).tolist()
    stream = encode_header(Header(100, 8)) + b"".join(encode_sample(i, *v) for i, v in enumerate(vals))
    p = LineParser()
    t0 = time.perf_counter()
    got = 0
    for i in range(0, len(stream), chunk):
        got += len(p.feed(stream[i : i + chunk]))
    dt = time.perf_counter() - t0
    print(f"parser: {got} lines in {dt:.2f} s = {got / dt:,.0f} lines/s, {len(stream) / dt / 1e6:.1f} MB/s")


def bench_serial(rate: float, seconds: float) -> None:
    with Emulator(simulate=True, rate_hz=rate, seed=0) as emu:
        src = SerialSource(emu.port)
        emu.start(duration=seconds)

        def stopper() -> None:
            emu.finished.wait(seconds + 5)
            time.sleep(0.3)
            src.stop()

        threading.Thread(target=stopper, daemon=True).start()
        c0 = time.process_time()
        n = 0
        blocks = 0
        for b in src.blocks():
            n += len(b)
            blocks += 1
        cpu = time.process_time() - c0
        src.close()
        print(
            f"serial {rate:6.0f} Hz: received {n}/{emu.stats.sent} (tx_dropped {emu.stats.tx_dropped}, "
            f"dropped {src.stats.dropped}, corrupt {src.stats.corrupt}), {blocks} blocks, "
            f"measured {src.measured_rate_hz or 0:.2f} Hz, CPU {100 * cpu / seconds:.1f}% of one core"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rates", default="50,500,1000")
    args = ap.parse_args()
    bench_parser()
    for r in args.rates.split(","):
        bench_serial(float(r), args.seconds)


if __name__ == "__main__":
    main()
