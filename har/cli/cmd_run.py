"""`har run`: live classification from a device or a paced recording.

This module and everything it imports must never import TensorFlow / Keras: `har run` starts on a
Raspberry Pi with only the TFLite runtime installed."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any

import click


def _fmt_time(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60.0)
    return f"{int(m):02d}:{s:06.3f}"


@click.command("run")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=str))
@click.option("--port", type=str, default=None, help="Serial port of the device (e.g. /dev/ttyACM0).")
@click.option("--baud", type=click.IntRange(1), default=115200, show_default=True, help="Serial baud rate.")
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Stream a recording (.csv) instead of a device, paced at real time.")
@click.option("--speed", type=click.FloatRange(0.0), default=1.0, show_default=True,
              help="With --file: play N times faster than real time (0: as fast as possible).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per prediction; summary to stderr.")
@click.option("--duration", type=click.FloatRange(0.0, min_open=True), default=None, help="Stop after S seconds.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Interpreter threads.")
def run_cmd(
    bundle: str, port: str | None, baud: int, file: str | None, speed: float, as_json: bool,
    duration: float | None, threads: int,
) -> None:
    """Classify live: one line per prediction (time, label, confidence).

    BUNDLE is a directory from `har deploy`; its checksums are verified first. Ctrl-C or SIGTERM
    ends cleanly with a summary.
    """
    from ..errors import CaptureError
    from ..runtime.classifier import WindowClassifier
    from ..runtime.live import Prediction, run_live
    from ..sources import open_source

    if (port is None) == (file is None):
        raise CaptureError("give exactly one source: --port PATH or --file RECORDING")
    clf = WindowClassifier.from_bundle(bundle, verify=True, num_threads=threads)
    source = open_source(port=port, file=file, baud=baud, speed=(speed or None) if file else None)
    classes = clf.classes
    out = sys.stdout

    def emit(p: Prediction) -> None:
        if as_json:
            out.write(json.dumps(p.to_dict(classes)) + "\n")
        else:
            out.write(f"{_fmt_time(p.time)}  {p.label:<16} {p.confidence:6.1%}\n")
        out.flush()

    stops = {"n": 0}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stops["n"] += 1
        if stops["n"] > 1:  # a second Ctrl-C: give up waiting
            raise KeyboardInterrupt
        source.stop()

    old: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread (e.g. some test runners)
            pass
    desc = source.info.description or (port or file or "")
    click.echo(f"Running {bundle} on {desc} ({clf.runtime_name}, {threads} thread(s)); Ctrl-C to stop", err=True)
    try:
        with source:
            summary = run_live(clf, source, emit, duration=duration)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    if stops["n"]:
        summary.stopped_by = "signal"
    for line in summary.lines():
        click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps({"summary": summary.to_dict()}), err=True)


COMMANDS = [run_cmd]
