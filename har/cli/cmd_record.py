"""`har record`: capture a serial device (or a recording file) into the recording format."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..errors import CaptureError, DataError


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM call ``stop`` (a clean end); a second signal interrupts for real."""
    seen = {"n": 0}

    def handler(signum: int, frame: Any) -> None:
        seen["n"] += 1
        if seen["n"] > 1:
            raise KeyboardInterrupt
        stop()

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


class _Progress:
    """One updating line on a TTY, plain lines (every ``plain_every`` s) otherwise."""

    def __init__(self, plain_every: float = 1.0) -> None:
        self.tty = sys.stderr.isatty()
        self.plain_every = plain_every
        self._last = 0.0
        self._width = 0

    def __call__(self, p: Any) -> None:
        rate = f"{p.rate_hz:.1f} Hz" if p.rate_hz else "-- Hz"
        line = (
            f"recording {p.elapsed_s:6.1f} s  {p.samples} samples  {rate}  label={p.label or '-'}  "
            f"dropped={p.dropped}  corrupt={p.corrupt}"
        )
        if p.resets or p.reconnects:
            line += f"  resets={p.resets}  reconnects={p.reconnects}"
        if self.tty:
            pad = max(0, self._width - len(line))
            self._width = len(line)
            click.echo("\r" + line + " " * pad, err=True, nl=False)
        elif time.monotonic() - self._last >= self.plain_every:
            self._last = time.monotonic()
            click.echo(line, err=True)

    def done(self) -> None:
        if self.tty and self._width:
            click.echo("", err=True)


@click.command("record")
@click.option("--port", type=str, default=None,
              help="Serial port / pyserial URL, e.g. /dev/ttyACM0 [default: none; give --port or --file].")
@click.option("--baud", type=click.IntRange(50), default=115200, show_default=True, help="Baud rate (bit/s).")
@click.option("--rate", "rate_hz", type=click.FloatRange(0, min_open=True), default=None,
              help="Sample rate (Hz) to assume until the device's header arrives [default: wait for the header].")
@click.option("--file", "file", type=str, default=None,
              help="Record from a recording (.csv) instead of a device [default: none].")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=None,
              help="With --file: pace at N times real time [default: as fast as possible].")
@click.option("--label", default="", show_default=True, help="Activity label for every row (empty: unlabeled).")
@click.option("--subject", default="unknown", show_default=True, help="Subject id stored in the sidecar.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds [default: until Ctrl-C / SIGTERM / end of source].")
@click.option("--out", "out", type=str, default=None,
              help="Output .csv (sidecar .json next to it), or a directory for <subject>_<label>_<time>.csv. Required.")
@click.option("--overwrite", is_flag=True, help="Replace an existing recording at --out [default: refuse].")
def record_cmd(
    port: str | None, baud: int, rate_hz: float | None, file: str | None, speed: float | None, label: str,
    subject: str, duration: float | None, out: str | None, overwrite: bool,
) -> None:
    """Record an accelerometer stream (wire protocol v1) into NAME.csv + NAME.json.

    Ctrl-C or SIGTERM ends the recording cleanly: every sample received is written and the
    sidecar is marked complete. Even `kill -9` loses at most about half a second.
    """
    from ..capture import output_path, record
    from ..recording import check_label
    from ..sources import open_source

    if out is None:
        raise CaptureError("missing --out PATH (a .csv file or a directory)")
    if (port is None) == (file is None):
        raise CaptureError("give exactly one source: --port PATH or --file RECORDING")
    check_label(label)
    target = output_path(Path(out), subject, label)  # fail on a bad/existing --out before opening the port
    if target.exists() and not overwrite:
        raise DataError(f"{target} exists (choose another --out or pass --overwrite)")
    source = open_source(port=port, file=file, baud=baud, speed=speed, rate_hz=rate_hz)
    show = _Progress()
    where = port if port is not None else file
    click.echo(f"Recording from {where} -> {out} (Ctrl-C to stop)", err=True)
    with stop_on_signals(source.stop):
        try:
            res = record(source, Path(out), label=label, subject=subject, duration=duration,
                         overwrite=overwrite, progress=show)
        finally:
            show.done()
    rate = f"{res.measured_rate_hz:.2f} Hz measured" if res.measured_rate_hz else "rate unknown"
    nominal = f" ({res.rate_hz:g} Hz nominal)" if res.rate_hz else ""
    click.echo(
        f"Recorded {res.samples} samples ({res.duration_s:.1f} s) at {rate}{nominal}; "
        f"dropped {res.dropped}, corrupt {res.corrupt}"
        + (f", resets {res.resets}, reconnects {res.reconnects}" if res.resets or res.reconnects else "")
        + f" -> {res.path}"
    )
    for w in res.warnings:
        click.echo(f"Warning: {w}", err=True)


COMMANDS = [record_cmd]
