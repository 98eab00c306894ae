"""`har deploy`: model directory -> verified TFLite bundle. TensorFlow is imported only inside
the command (through har.export, in a conversion subprocess)."""

from __future__ import annotations

import click

from ..config import ExportConfig


@click.command("deploy")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str), help="Bundle directory to write.")
@click.option(
    "--quantize",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="fp32: exact and fastest (default); fp16: half the file, same speed; "
    "int8: full integer, smallest file but ~8x slower per window on CPUs without a fast int8 LSTM kernel.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0.0, 1.0),
    default=0.98,
    show_default=True,
    help="Fail unless TFLite and Keras pick the same class on at least this fraction of heldout windows.",
)
@click.option("--calibration-windows", type=click.IntRange(1), default=300, show_default=True,
              help="Training windows used to calibrate int8 quantisation.")
@click.option("--batch", "batch", type=click.IntRange(0), default=64, show_default=True,
              help="Also export model_batch.tflite with this fixed batch for fast replay (0: skip).")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
def deploy_cmd(
    model_dir: str, out: str, quantize: str, min_agreement: float, calibration_windows: int, batch: int,
    overwrite: bool,
) -> None:
    """Convert MODEL_DIR (from `har train`) to a TFLite bundle, verified against Keras.

    The bundle (model.tflite, model_batch.tflite, metadata.json, report.txt, manifest.json with
    SHA-256 checksums) is all `har run` needs on the device.
    """
    from ..export import export_bundle

    cfg = ExportConfig(quantize=quantize, calibration_windows=calibration_windows)
    export_bundle(
        model_dir, out, cfg, echo=click.echo, overwrite=overwrite, min_agreement=min_agreement,
        batch_size=batch if batch > 1 else 1,
    )


COMMANDS = [deploy_cmd]
