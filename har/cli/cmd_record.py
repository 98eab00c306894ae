"""`har record`: capture a serial device (or a recording file) into the recording format."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from har.errors import CaptureError, DataError


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
        head = f"recording {p.elapsed_s:6.1f} s  {p.samples} samples  {rate}"
        if p.status:  # e.g. reconnecting to PORT (attempt N)
            head += f"  {p.status}"
        labels = p.labels or f"label={p.label or '-'}"
        line = f"{head}  {labels}  dropped={p.dropped}  corrupt={p.corrupt}"
        if p.resets or p.reconnects:
            line += f"  resets={p.resets}  reconnects={p.reconnects}"
        if self.tty:
            pad = max(0, self._width - len(line))
            self._width = len(line)
            click.echo("\r" + line + " " * pad, err=True, nl=False)
        elif time.monotonic() - self._last >= self.plain_every or p.status:
            self._last = time.monotonic()
            click.echo(line, err=True)

    def done(self) -> None:
        if self.tty and self._width:
            click.echo("", err=True)


def _label_list(labels_opt: str | None, label: tuple[str, ...]) -> list[str]:
    """The labels of ``--labels a,b,c`` or of the repeated ``--label`` (validated, in order, unique)."""
    from har.recording.format import check_label

    raw = [x for x in labels_opt.split(",")] if labels_opt else list(label)
    out: list[str] = []
    for x in raw:
        lab = check_label(x)
        if not lab:
            raise CaptureError("empty label in --labels (0 / space already mean unlabeled)")
        if lab not in out:
            out.append(lab)
    return out


def summary_lines(res: Any) -> list[str]:
    """The end-of-recording summary: counts, measured vs nominal rate, errors, rows per label."""
    rate = f"{res.measured_rate_hz:.2f} Hz measured" if res.measured_rate_hz else "rate unknown"
    nominal = f" ({res.rate_hz:g} Hz nominal)" if res.rate_hz else ""
    lines = [
        f"Recorded {res.samples} samples ({res.duration_s:.1f} s) at {rate}{nominal}; "
        f"dropped {res.dropped}, corrupt {res.corrupt}, resets {res.resets}, reconnects {res.reconnects} "
        f"-> {res.path}"
    ]
    if res.label_counts:
        counts = ", ".join(f"{k or '(unlabeled)'} {v}" for k, v in res.label_counts.items())
        lines.append(f"Samples per label: {counts}")
    return lines


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
@click.option("--label", "label", multiple=True,
              help="Activity label for every row; repeat to give the labels keys 1-9 select [default: unlabeled].")
@click.option("--labels", "labels_opt", default=None,
              help="Comma-separated labels for keys 1-9, e.g. walking,sitting [default: the --label values].")
@click.option("--keys/--no-keys", "keys", default=None,
              help="Live labelling from single key presses on stdin (1-9 label, 0/space unlabeled, q stop) "
                   "[default: on when stdin is a terminal and recording from --port].")
@click.option("--subject", default="unknown", show_default=True, help="Subject id stored in the sidecar.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop after this many seconds [default: until q / Ctrl-C / SIGTERM / end of source].")
@click.option("--out", "out", type=str, default=None,
              help="Output .csv (sidecar .json next to it), or a directory for <subject>_<label>_<time>.csv. Required.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing recording (or a sidecar .json) at --out [default: refuse].")
@click.option("--force", is_flag=True,
              help="With --file: record a file that fails the plausibility checks (units, timestamps, sidecar "
              "rate) as it is [default: refuse].")
def record_cmd(
    port: str | None, baud: int, rate_hz: float | None, file: str | None, speed: float | None,
    label: tuple[str, ...], labels_opt: str | None, keys: bool | None, subject: str, duration: float | None,
    out: str | None, overwrite: bool, force: bool = False,
) -> None:
    """Record an accelerometer stream (wire protocol v1) into NAME.csv + NAME.json.

    In a terminal, single keys switch the label while recording (no Enter): 1-9 select from
    --labels (or the repeated --label), 0 or space = unlabeled, q = stop. A key press applies
    from the first sample whose host timestamp is at or after the moment the key was read;
    earlier samples keep their label. The sidecar lists every change and the samples per label.

    Ctrl-C, SIGTERM or q end the recording cleanly: every sample received is written and the
    sidecar is marked complete. Even `kill -9` loses at most about half a second. The summary
    lists samples, measured rate, dropped, corrupt, resets and reconnects, and warns when the
    measured rate differs from the announced one by more than 2%.
    """
    from har.recording.capture import output_path, record
    from har.recording.checks import check_recording, enforce
    from har.recording.format import sidecar_path
    from har.recording.labeling import KeyReader, LiveLabels
    from har.sources import open_source

    if out is None:
        raise CaptureError("missing --out PATH (a .csv file or a directory)")
    if (port is None) == (file is None):
        raise CaptureError("give exactly one source: --port PATH or --file RECORDING")
    names = _label_list(labels_opt, label)
    if keys is None:
        keys = port is not None and _stdin_fd() is not None
    if keys and port is None:
        raise CaptureError("--keys needs a live device (--port): a file has no host clock to label against")
    if not keys and (len(names) > 1 or labels_opt):
        raise CaptureError("--labels / several --label need live labelling (--keys, in a terminal); give one --label")
    if len(names) > 9:
        raise CaptureError(f"keys 1-9 select at most 9 labels (got {len(names)})")
    fd = _stdin_fd(tty_only=False) if keys else None
    if keys and fd is None:
        raise CaptureError("--keys needs a readable stdin (a terminal)")
    fixed = names[0] if len(names) == 1 and not labels_opt else ""
    name_label = fixed if not keys or len(names) <= 1 else "live"
    target = output_path(Path(out), subject, name_label)  # fail on a bad/existing --out before opening the port
    for q in (target, sidecar_path(target)):
        if (q.exists() or q.is_symlink()) and not overwrite:
            raise DataError(f"{q} exists (choose another --out or pass --overwrite)")
    source = open_source(port=port, file=file, baud=baud, speed=speed, rate_hz=rate_hz)
    if file is not None:  # a file's units, timestamps and sidecar rate are checked before copying it
        try:
            enforce(check_recording(source.rec), force=force, warn=_warn)  # type: ignore[attr-defined]
        except Exception:
            source.close()
            raise
    live = None
    if fd is not None:
        reader = KeyReader(fd, on_key=lambda k: source.stop() if k.key in "qQ" else None)
        live = LiveLabels(reader, names, initial=fixed, offset=float(getattr(source, "clock_origin", 0.0)))
    show = _Progress()
    where = port if port is not None else file
    how = "q or Ctrl-C to stop" if live is not None else "Ctrl-C to stop"
    click.echo(f"Recording from {where} -> {out} ({how})", err=True)
    if live is not None:
        keys_help = "  ".join(f"{i + 1}={n}" for i, n in enumerate(names))
        click.echo(f"Keys: {keys_help}  0/space=unlabeled  q=stop", err=True)
    with stop_on_signals(source.stop):
        try:
            if live is not None:
                live.reader.start()
            res = record(source, Path(out), label=fixed if live is None else "", subject=subject,
                         duration=duration, overwrite=overwrite, progress=show, live=live)
        finally:
            if live is not None:
                live.reader.close()  # the terminal mode is restored on every exit path
            show.done()
    for line in summary_lines(res):
        click.echo(line)
    for w in res.warnings:
        click.echo(f"Warning: {w}", err=True)
    if port is not None and res.samples:  # what a device sent is kept as is; implausible values are named
        from har.recording.checks import recorded_warnings

        for w in recorded_warnings(res.path):
            _warn(w)


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def _stdin_fd(tty_only: bool = True) -> int | None:
    """The file descriptor of ``sys.stdin``; with ``tty_only`` None unless it is a terminal this
    process may read keys from (not a background job's)."""
    try:
        fd = sys.stdin.fileno()
        if not tty_only:
            return fd
        if not os.isatty(fd):
            return None
    except (AttributeError, OSError, ValueError):
        return None
    try:  # a background job (`har record ... &`) must not grab the terminal
        if os.tcgetpgrp(fd) != os.getpgrp():
            return None
    except OSError:  # not our controlling terminal: nobody else's foreground job either
        pass
    return fd


COMMANDS = [record_cmd]
