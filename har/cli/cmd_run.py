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

from har.cli._common import fmt_time

# Serial reads at most 1 s apart; run_live tells the source which sample its next prediction needs,
# so the port is read about once per hop, right after that sample is due: about 50 lines per read at
# 50 Hz (less CPU than frequent reads) with no added latency (bench/bench_live.py). Faster devices
# are read more often (SerialSource.read_pause_s).
LIVE_READ_INTERVAL_S = 1.0


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
@click.option("--smooth", "smooth", metavar="SPEC", default=None,
              help="Smoothing instead of the bundle's: none, vote:K/N, avg:N[,enter=P][,margin=M], ema:ALPHA "
              "(,min=S for a minimum duration).")
@click.option("--min-duration", "min_duration", type=click.FloatRange(0.0), default=None, metavar="SECONDS",
              help="Report a new activity only after it persisted this long (overrides the bundle's / --smooth's).")
@click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="PATH",
              help="Append one JSON object per prediction (the --json format) to PATH, flushed per line.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="PATH",
              help="Append predictions to a CSV log: time_s,label,confidence,raw_label,p_<class>...")
@click.option("--on-change", "on_change", metavar="CMD", default=None,
              help="Run CMD (no shell) on each activity change; env HAR_LABEL, HAR_PREVIOUS, HAR_CONFIDENCE, "
              "HAR_TIME, HAR_RAW_LABEL; {label} {previous} {confidence} {time} in arguments are replaced.")
@click.option("--post", "post", metavar="URL", default=None, help="POST a JSON body to URL on each activity change.")
@click.option("--action-timeout", "action_timeout", type=click.FloatRange(0.0, min_open=True), default=10.0,
              show_default=True, help="Seconds before an --on-change command is killed / a --post gives up.")
@click.option("--mqtt", "mqtt", metavar="HOST[:PORT]", default=None,
              help="Publish activity changes to an MQTT broker (retained; needs the mqtt extra).")
@click.option("--mqtt-topic", "mqtt_topic", metavar="TOPIC", default=None,
              help="MQTT topic  [default: har/<hostname>/activity]")
@click.option("--mqtt-every", "mqtt_every", is_flag=True, help="Publish every prediction to MQTT, not only changes.")
def run_cmd(
    bundle: str, port: str | None, baud: int, file: str | None, speed: float, as_json: bool,
    duration: float | None, threads: int, smooth: str | None = None, min_duration: float | None = None,
    jsonl: str | None = None, csv_path: str | None = None, on_change: str | None = None, post: str | None = None,
    action_timeout: float = 10.0, mqtt: str | None = None, mqtt_topic: str | None = None, mqtt_every: bool = False,
) -> None:
    """Classify live: one line per prediction (time, label, confidence).

    BUNDLE is a directory from `har deploy`; its checksums are verified first. Ctrl-C or SIGTERM
    ends cleanly with a summary. --jsonl, --csv, --on-change, --post and --mqtt feed other programs
    (see README, "Outputs for other programs").
    """
    from har.artifacts.layout import open_live_classifier
    from har.errors import CaptureError
    from har.runtime.live import Prediction, run_live
    from har.runtime.outputs import OutputConfig, build_outputs
    from har.sources import open_source

    if (port is None) == (file is None):
        raise CaptureError("give exactly one source: --port PATH or --file RECORDING")
    from har.runtime.smoothing import parse_spec, resolve_smoothing

    if smooth is not None:
        parse_spec(smooth)  # a bad spec fails before the bundle is loaded
    # the runtime is proven in a child process first: a runtime that crashes never takes this one down
    clf = open_live_classifier(bundle, num_threads=threads)
    smoothing = resolve_smoothing(clf.metadata.smoothing, smooth, min_duration)
    # a stalled device is waited for (run_live reports it); NaN/inf samples are dropped by the classifier
    source = open_source(port=port, file=file, baud=baud, speed=(speed or None) if file else None,
                         wait_on_stall=True, allow_nonfinite=True, read_interval_s=LIVE_READ_INTERVAL_S)
    classes = clf.classes
    out = sys.stdout
    outputs = build_outputs(OutputConfig(
        jsonl=jsonl, csv=csv_path, on_change=on_change, post=post, mqtt=mqtt, mqtt_topic=mqtt_topic,
        mqtt_every=mqtt_every, action_timeout_s=action_timeout), classes)

    def emit(p: Prediction) -> None:
        if as_json:
            out.write(json.dumps(p.to_dict(classes)) + "\n")
        else:
            if p.raw_label is not None and p.raw_label != p.label:  # smoothing holds the label
                raw_p = float(p.probs[classes.index(p.raw_label)])
                line = f"{fmt_time(p.time)}  {p.label:<16} {'held':>6}   (this window: {p.raw_label} {raw_p:.1%})"
            else:
                line = f"{fmt_time(p.time)}  {p.label:<16} {p.confidence:6.1%}"
            out.write(line + "\n")
        out.flush()
        outputs(p)

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
    if clf.runtime_choice is not None:  # after every input check: a bad input stays a one-line error
        click.echo(clf.runtime_choice.line, err=True)
    desc = source.info.description or (port or file or "")
    smooth_desc = f", smoothing {smoothing.spec}" if smoothing.active else ""
    click.echo(f"Running {bundle} on {desc} ({clf.runtime_name}, {threads} thread(s){smooth_desc}); Ctrl-C to stop",
               err=True)
    if clf.metadata.adaptation:
        from har.runtime.adapt import adapted_line

        click.echo(adapted_line(clf.metadata), err=True)
    if outputs:
        click.echo(f"Outputs: {outputs.describe()}", err=True)
    try:
        with source:
            summary = run_live(clf, source, emit, duration=duration, smoother=smoothing)
    finally:
        try:
            outputs.close()  # drains queued --on-change / --post actions (short deadline)
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
