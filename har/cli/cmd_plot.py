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
    from har.artifacts.layout import is_bundle
    from har.scoring.plots import plot_recording_file

    predictor = None
    if model is not None and model.is_dir() and not is_bundle(model):
        from har.training.predict import keras_predictor  # TensorFlow only for a model directory

        predictor = keras_predictor(model)
    path = plot_recording_file(recording, out=out, model=model, overwrite=overwrite, predictor=predictor)
    click.echo(f"wrote {path}")


COMMANDS = [plot_cmd]
