"""`har plot`: a recording's signal with its label spans and, with --model, predicted labels."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plot")
@click.argument("recording", type=click.Path(path_type=Path))
@click.option(
    "--model",
    "model",
    type=click.Path(path_type=Path),
    default=None,
    help="Model directory (`har train`) or bundle (`har deploy`): add its predicted label per window "
    "(window, hop and rate from the model).  [default: no predictions]",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="PNG to write.  [default: RECORDING with the suffix .png]",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing PNG at --out.  [default: refuse]")
def plot_cmd(recording: Path, model: Path | None, out: Path | None, overwrite: bool = False) -> None:
    """Plot RECORDING (a har CSV): x, y, z in g over time in seconds, true label spans shaded,
    and a timeline of true vs predicted labels when --model is given."""
    from har.scoring.plots import plot_recording_file

    click.echo(f"wrote {plot_recording_file(recording, out=out, model=model, overwrite=overwrite)}")


COMMANDS = [plot_cmd]
