"""`har deploy`: model directory -> verified TFLite bundle. TensorFlow is imported only inside
the command (through har.training.convert, in a conversion subprocess)."""

from __future__ import annotations

from pathlib import Path

import click

from har.config import ExportConfig
from har.runtime.smoothing import DEFAULT_SPEC


@click.command("deploy")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(path_type=str), help="Bundle directory to write.")
@click.option(
    "--quantize",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default=None,
    help="[default: fp32; int8 with --target mcu] fp32: exact and fastest; fp16: half the file, same speed; "
    "int8: full integer, smallest file but ~8x slower per window on CPUs without a fast int8 LSTM kernel.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0.0, 1.0),
    default=0.98,
    show_default=True,
    help="Fail unless TFLite and Keras pick the same class on at least this fraction of heldout windows "
    "(or the labelled heldout accuracy holds: see --max-accuracy-loss).",
)
@click.option(
    "--max-accuracy-loss",
    type=click.FloatRange(0.0, 1.0),
    default=0.005,
    show_default=True,
    help="Below --min-agreement (but above 90%), keep the model if its accuracy on the labelled heldout "
    "windows is at most this much (fraction) below Keras's.",
)
@click.option("--calibration-windows", type=click.IntRange(1), default=300, show_default=True,
              help="Training windows used to calibrate int8 quantisation.")
@click.option("--batch", "batch", type=click.IntRange(0), default=128, show_default=True,
              help="Also export model_batch.tflite, the float32 replay model with this fixed batch "
                   "(windows per call; 0: skip).")
@click.option("--smooth", "smooth", metavar="SPEC", default=DEFAULT_SPEC, show_default=True,
              help="Default smoothing of the bundle's live predictions (`har run`, `har replay`): none, vote:K/N, "
              "avg:N[,enter=P][,margin=M], ema:ALPHA (,min=S). Stored in metadata.json.")
@click.option("--min-duration", "min_duration", type=click.FloatRange(0.0), default=None, metavar="SECONDS",
              help="Default minimum duration (s) of a reported activity change, stored with --smooth.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--target", type=click.Choice(["host", "mcu"]), default="host", show_default=True,
              help="mcu: also write the int8 model as C sources for TensorFlow Lite Micro into the bundle "
              "(har_model_data.h/.cc, har_model_config.h).")
@click.option("--to", "to", metavar="[USER@]HOST:/PATH", default=None,
              help="Push the bundle to a device over ssh (rsync, else scp; honours ~/.ssh/config) and run "
              "`har doctor` there.")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="OPT",
              help="With --to: extra ssh option, e.g. '-p 2222' or '-i KEY' (repeatable).")
@click.option("--service", is_flag=True,
              help="With --to: install a systemd unit that runs `har run` at boot and restarts it on failure.")
@click.option("--port", "device_port", default=None, metavar="PATH",
              help="With --service: the device's serial port (e.g. /dev/ttyACM0).")
@click.option("--install", "install", is_flag=True,
              help="With --to: also install har on the device (venv under PATH, wheel built here, the TFLite runtime "
              "that works there), keep bundles side by side (PATH/bundles, PATH/current) and roll back on failure.")
@click.option("--offline", is_flag=True,
              help="With --install: download the wheels here for the device's platform and Python (pip download); "
              "the device installs with --no-index.")
@click.option("--runtime", "runtime", type=click.Choice(["ai-edge-litert", "tflite-runtime"]), default=None,
              help="With --install: use this runtime only.")
def deploy_cmd(
    model_dir: str, out: str, quantize: str | None, min_agreement: float, calibration_windows: int, batch: int,
    overwrite: bool, target: str, to: str | None, ssh_options: tuple[str, ...], service: bool,
    device_port: str | None, smooth: str = DEFAULT_SPEC, min_duration: float | None = None,
    install: bool = False, offline: bool = False, runtime: str | None = None, max_accuracy_loss: float = 0.005,
) -> None:
    """Convert MODEL_DIR (from `har train`) to a TFLite bundle, verified against Keras.

    The bundle (model.tflite, model_batch.tflite, metadata.json, report.txt, manifest.json with
    SHA-256 checksums) is all `har run` needs on the device.
    """
    from har.errors import DeployError
    from har.runtime.smoothing import resolve_smoothing
    from har.training.convert import export_bundle

    if quantize is None:
        quantize = "int8" if target == "mcu" else "fp32"
    if target == "mcu" and quantize != "int8":
        raise DeployError("--target mcu needs --quantize int8 (TensorFlow Lite Micro runs the full-integer model)")
    if (service or device_port) and not to:
        raise DeployError("--service and --port go with --to [USER@]HOST:/PATH")
    if install and not to:
        raise DeployError("--install goes with --to [USER@]HOST:/PATH")
    if (offline or runtime) and not install:
        raise DeployError("--offline and --runtime go with --install")
    if target == "mcu":  # a model too large for a microcontroller is refused before the (slow) conversion
        from har.deploy.mcu import check_model_dir

        check_model_dir(model_dir)
    cfg = ExportConfig(quantize=quantize, calibration_windows=calibration_windows)
    smoothing = resolve_smoothing(None, smooth, min_duration)  # checked before the (slow) conversion
    export_bundle(
        model_dir, out, cfg, echo=click.echo, overwrite=overwrite, min_agreement=min_agreement,
        max_accuracy_loss=max_accuracy_loss, batch_size=batch if batch > 1 else 1,
        smoothing=smoothing.to_dict() if smoothing.active else {},
    )
    click.echo(f"Smoothing stored in the bundle: {smoothing.spec} (override with `har run --smooth SPEC`)")
    if target == "mcu":
        from har.artifacts.bundle import write_manifest
        from har.deploy.mcu import export_mcu

        written = export_mcu(Path(out), Path(out), overwrite=True)  # the bundle was written in this run
        write_manifest(Path(out))
        click.echo("TensorFlow Lite Micro sources: " + ", ".join(str(p) for p in written))
    _report_cost(Path(out))
    if to and install:
        from har.deploy.install import install as do_install

        res = do_install(Path(out), to, ssh_options, offline=offline, service=service, port=device_port,
                         runtime=runtime, echo=click.echo)
        bad = [c for c in (res.doctor or {}).get("checks", []) if c.get("status") == "fail"]
        click.echo(f"Installed on the device: {res.home}/current = {res.bundle} ({res.runtime}); har doctor "
                   + ("passes" if not bad else "fails: " + "; ".join(f"{c['name']}: {c['detail']}" for c in bad)))
    elif to:
        from har.deploy.push import push_bundle

        push_bundle(Path(out), to, ssh_options=ssh_options, service=service, port=device_port, echo=click.echo)


def _report_cost(bundle: Path) -> None:
    """The live model's MACs and its time per window here (never fails the deploy)."""
    from har.artifacts.bundle import MODEL_FILE
    from har.errors import HarError

    try:
        from har.deploy.macs import model_cost

        click.echo(model_cost(bundle / MODEL_FILE).line())
    except HarError as e:
        click.echo(f"live model cost not measured: {e}")


COMMANDS = [deploy_cmd]
