"""`har import FORMAT SRC DEST` and `har export FORMAT RECORDING... DEST`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from har.recording.importers import EXPORTERS, IMPORTERS, HarImportWarning, run_export, run_import


def _formats(table: dict[str, Any]) -> str:
    return "\n".join(f"  {name:<13} {spec.summary}" for name, spec in table.items())


def _given(ctx: click.Context, names: list[str]) -> dict[str, Any]:
    """The options the user actually set (so each importer keeps its own defaults)."""
    out = {}
    for name in names:
        if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            value = ctx.params[name]
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def _run(fn: Callable[[], list[Path]]) -> list[Path]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HarImportWarning)
        try:
            return fn()
        finally:
            for w in caught:
                if issubclass(w.category, HarImportWarning):
                    click.echo(f"Warning: {w.message}", err=True)


def _report(paths: list[Path], dest: Path, what: str) -> None:
    click.echo(f"wrote {len(paths)} {what} to {dest}")


_IMPORT_HELP = f"""Convert a data set or file (SRC: file or directory) into recordings under DEST.

One recording (CSV + JSON sidecar) per session, in g, axes x,y,z, with subject, labels, rate and
the input named in the sidecar's `source`. Existing outputs are kept unless --overwrite.

\b
FORMAT:
{_formats(IMPORTERS)}

\b
Examples:
  har import csv logs/ data/ --time-col t --time-unit ms --units m/s2 --label-col activity
  har import wisdm WISDM_ar_v1.1_raw.txt data/wisdm
  har import wisdm2019 wisdm-dataset/raw/watch/accel data/wisdm2019
  har import uci-har "UCI HAR Dataset" data/ucihar --rename walking_upstairs=stairs
  har import ts BasicMotions_TRAIN.ts data/bm --rate 10
"""


@click.command("import", help=_IMPORT_HELP, no_args_is_help=True)
@click.argument("fmt", metavar="FORMAT", type=click.Choice(list(IMPORTERS)))
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="[all] Replace existing output files (default: refuse).")
@click.option("--force", is_flag=True,
              help="[all] Import values or timestamps that fail the plausibility checks (median |a| far from "
              "1 g, an implausible rate) as they are (default: refuse and name the likely --units / --time-unit).")
@click.option(
    "--rename",
    multiple=True,
    metavar="OLD=NEW",
    help="[all] Rename a label after import (repeatable), e.g. walking_upstairs=stairs.",
)
@click.option(
    "--rate",
    type=float,
    metavar="HZ",
    help="[csv, ts] sampling rate in Hz (csv: instead of --time-col; ts: required). "
    "[wisdm, wisdm2019] override the nominal 20 Hz.",
)
@click.option("--time-col", metavar="NAME", help="[csv] timestamp column (unit: --time-unit).")
@click.option(
    "--time-unit",
    type=click.Choice(["s", "ms", "us", "ns"]),
    default="s",
    show_default=True,
    help="[csv] unit of --time-col.",
)
@click.option("--x-col", default="x", show_default=True, metavar="NAME", help="[csv] x acceleration column.")
@click.option("--y-col", default="y", show_default=True, metavar="NAME", help="[csv] y acceleration column.")
@click.option("--z-col", default="z", show_default=True, metavar="NAME", help="[csv] z acceleration column.")
@click.option("--label-col", metavar="NAME", help="[csv] activity label column (default: none, unlabeled).")
@click.option("--subject-col", metavar="NAME", help="[csv] subject column (one session per subject and file).")
@click.option(
    "--subject-pattern", metavar="REGEX", help="[csv] regex with a group (?P<subject>...) searched in each file name."
)
@click.option(
    "--subject",
    metavar="NAME",
    help="[csv, ts, edge-impulse] subject of every session (default: csv the parent folder, "
    "ts 'ts-<file stem>', edge-impulse 'unknown').",
)
@click.option(
    "--units",
    type=click.Choice(["g", "m/s2", "mg"]),
    default="g",
    show_default=True,
    help="[csv, ts] unit of the acceleration values (converted to g; 1 g = 9.80665 m/s2).",
)
@click.option("--delimiter", default=",", show_default=True, help="[csv] field delimiter (one character or 'tab').")
@click.option(
    "--device",
    metavar="NAME",
    default="unknown",
    show_default=True,
    help="[csv, ts] device name written to the sidecar.",
)
@click.option(
    "--split", is_flag=True, help="[ts] one recording per case (default: one per file, a break between cases)."
)
@click.option(
    "--label", metavar="NAME", help="[edge-impulse] label for every file (default: file name up to its first dot)."
)
@click.pass_context
def import_cmd(ctx: click.Context, fmt: str, src: Path, dest: Path, **_: Any) -> None:
    options = _given(ctx, [p.name for p in import_cmd.params if isinstance(p, click.Option) and p.name])
    paths = _run(lambda: run_import(fmt, src, dest, **options))
    _report(paths, dest, "recording(s) (.csv + .json)")


_EXPORT_HELP = f"""Export recordings (files or directories) to DEST in another format.

\b
FORMAT:
{_formats(EXPORTERS)}

edge-impulse: one `<label>.<session>.<n>.json` per labelled run of each contiguous segment, values in
m/s2, interval_ms = 1000 / rate, signature "0"*64 with alg "none"; unlabeled samples are skipped.
"""


@click.command("export", help=_EXPORT_HELP, no_args_is_help=True)
@click.argument("fmt", metavar="FORMAT", type=click.Choice(list(EXPORTERS)))
@click.argument(
    "recordings", metavar="RECORDING...", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
)
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace existing output files (default: refuse).")
def export_cmd(fmt: str, recordings: tuple[Path, ...], dest: Path, overwrite: bool) -> None:
    out = _run(lambda: run_export(fmt, list(recordings), dest, overwrite=overwrite))
    _report(out, dest, "file(s)")


COMMANDS = [import_cmd, export_cmd]
