"""`har evaluate`: metrics of a bundle (its live model by default) or a model directory on recordings."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("evaluate")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.  [default: off]")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write report.txt and report.json into this directory.  [default: write nothing]",
)
@click.option(
    "--model",
    "which",
    type=click.Choice(["live", "replay"]),
    default="live",
    show_default=True,
    help="Bundle model to score: live = model.tflite (what `har run` uses, int8 when so exported); "
    "replay = model_batch.tflite (the float batched model `har replay` uses; refused for an adapted bundle, "
    "whose personal head applies to the live model only).",
)
@click.option("--overwrite", is_flag=True, help="Replace report.txt / report.json in --out.  [default: refuse]")
@click.option("--force", is_flag=True,
              help="Evaluate on recordings that fail the plausibility checks (units, timestamps, sidecar vs CSV) "
              "as they are.  [default: refuse]")
def evaluate_cmd(model: Path, data: tuple[Path, ...], as_json: bool, out: Path | None, which: str = "live",
                 overwrite: bool = False, force: bool = False) -> None:
    """Evaluate MODEL (a bundle from `har deploy`, or a model directory from `har train`) on
    recordings DATA (files, or directories searched recursively). A bundle is scored with its
    live model unless --model replay; the report names the model file it scored. Windows use the
    model's own window length, hop, rate (resampling if needed) and purity."""
    from har.artifacts.layout import REPORT_JSON, REPORT_TXT
    from har.errors import DataError
    from har.recording.checks import check_files
    from har.scoring.evaluate import evaluate, is_bundle

    if out is not None and not overwrite:
        for name in (REPORT_TXT, REPORT_JSON):
            if (out / name).exists():
                raise DataError(f"{out / name} exists (choose another --out or pass --overwrite)")
    check_files(data, force=force, warn=lambda m: click.echo(f"Warning: {m}", err=True))  # before any window
    predictor = None
    if which == "live" and model.is_dir() and not is_bundle(model):
        from har.training.predict import keras_predictor  # TensorFlow only for model directories

        predictor = keras_predictor(model)
    echo = (lambda s: click.echo(s, err=True)) if as_json else click.echo
    result = evaluate(model, list(data), echo=echo, out=out, progress=not as_json, which=which, predictor=predictor)
    if as_json:
        click.echo(json.dumps({k: v for k, v in result.items() if k != "report"}))
    else:
        click.echo(result["report"], nl=False)


COMMANDS = [evaluate_cmd]
