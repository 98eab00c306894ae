"""`har fleet`: a live table of every device publishing with `har run --mqtt`. No TensorFlow."""

from __future__ import annotations

import json
import sys
import threading

import click


@click.command("fleet")
@click.option("--mqtt", "mqtt", metavar="HOST[:PORT]", required=True, help="The MQTT broker the devices publish to.")
@click.option("--topic-prefix", "prefix", default="har", show_default=True, metavar="PREFIX",
              help="Devices publish to PREFIX/<device>/activity (har run's default topic is har/<hostname>/activity).")
@click.option("--stale-after", "stale_after", type=click.FloatRange(0.0, min_open=True), default=30.0,
              show_default=True, metavar="SECONDS", help="Mark a device stale after this long without a message.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="PATH",
              help="Append every event (change, online, offline, stale) to a CSV file.")
@click.option("--jsonl", "jsonl", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="PATH",
              help="Append every event as one JSON object per line.")
@click.option("--duration", type=click.FloatRange(0.0, min_open=True), default=None, metavar="SECONDS",
              help="Stop after this long (default: until Ctrl-C).")
@click.option("--refresh", type=click.FloatRange(0.05), default=1.0, show_default=True, metavar="SECONDS",
              help="Redraw the table (and check for stale devices) this often.")
@click.option("--json", "as_json", is_flag=True, help="Print the final table and counts as JSON at exit.")
def fleet_cmd(mqtt: str, prefix: str, stale_after: float, csv_path: str | None, jsonl: str | None,
              duration: float | None, refresh: float, as_json: bool) -> None:
    """Watch a fleet of devices: device, activity, since, confidence, last seen, online/offline/stale.

    In a terminal the table is redrawn every --refresh seconds; otherwise one line per event is
    printed. Malformed messages are counted and skipped; a broker that restarts is reconnected to
    and subscribed again. Ctrl-C or SIGTERM ends with a summary.
    """
    from dataclasses import asdict

    from har.cli.cmd_record import stop_on_signals
    from har.fleet import FleetConfig, watch_fleet

    tty = sys.stdout.isatty() and not as_json
    stop = threading.Event()

    def show(text: str) -> None:
        click.echo("\x1b[H\x1b[2J" + text)

    def warn(msg: str) -> None:
        click.echo(f"Warning: {msg}", err=True)

    with stop_on_signals(stop.set):
        mon = watch_fleet(
            FleetConfig(mqtt, prefix, stale_after), csv_path=csv_path, jsonl_path=jsonl, duration_s=duration,
            refresh_s=refresh, stop=stop, show=show if tty else None,
            on_line=None if (tty or as_json) else click.echo, warn=warn,
        )
    c = mon.table.counts
    if as_json:
        rows = [asdict(r) for r in mon.table.rows()]
        click.echo(json.dumps({"devices": rows, "counts": c.to_dict()}))
        return
    click.echo(mon.render())
    if c.malformed:
        click.echo(f"Warning: {c.malformed} malformed message(s) skipped, e.g. {c.malformed_examples[0]}", err=True)


COMMANDS = [fleet_cmd]
