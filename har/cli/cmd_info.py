"""`har info PATH`."""

from __future__ import annotations

import json

import click


@click.command("info")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--force", is_flag=True,
              help="Describe data that fails a check (implausible units or rate, a bundle failing its checksums) "
              "anyway, with warnings, instead of an error.")
def info(path: str, as_json: bool, force: bool) -> None:
    """What a recording (.csv), model directory or bundle holds.

    Recordings: samples, duration (s), nominal and measured rate (Hz), labels with sample
    counts, gaps, dropped/corrupt counts, and whether the file ends in a truncated row.
    Model directories and bundles: classes, rate, window and hop (s), metrics; bundles are
    checked against their manifest (sha256). Exits 1 with one line when the data fails a check
    (plausibility of units, rate and timestamps; checksums; missing manifest or weights)."""
    from har.artifacts.info import describe, format_info, info_warnings

    def warn(message: str) -> None:
        click.echo(f"Warning: {message}", err=True)

    d = describe(path, force=force, warn=warn)
    click.echo(json.dumps(d, indent=2) if as_json else format_info(d))
    for w in info_warnings(d):
        warn(w)


COMMANDS = [info]
