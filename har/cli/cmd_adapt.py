"""`har adapt`: fit a bundle to a new wearer (guided session on the device, or recordings)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

# The head refit multiplies matrices of a few hundred rows: a multi-threaded BLAS only waits for its
# threads (on a busy machine, 30x longer). Set before numpy is first imported (har.cli imports none);
# numpy's wheels use OpenBLAS (TensorFlow for --full has its own thread pools).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _labels(labels_opt: str | None, classes: tuple[str, ...]) -> list[str]:
    from har.errors import AdaptError

    if not labels_opt:
        return list(classes)
    names = [x.strip() for x in labels_opt.split(",") if x.strip()]
    unknown = [x for x in names if x not in classes]
    if unknown:
        raise AdaptError(f"--labels: {', '.join(unknown)} unknown to the model (it knows {', '.join(classes)})")
    if len(set(names)) < 2:
        raise AdaptError("--labels: calibration needs at least two activities")
    return list(dict.fromkeys(names))


@click.command("adapt")
@click.argument("bundle", type=str)
@click.argument("recordings", nargs=-1, type=str)
@click.option("--out", "out", type=str, required=True, help="The new (adapted) bundle directory. Required.")
@click.option("--port", type=str, default=None,
              help="Guided session on this device (serial port / pyserial URL) [default: use RECORDINGS].")
@click.option("--baud", type=click.IntRange(50), default=115200, show_default=True, help="Baud rate (bit/s).")
@click.option("--seconds", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Guided session: seconds recorded per activity.")
@click.option("--labels", "labels_opt", default=None,
              help="Guided session: comma-separated activities to calibrate, in order [default: all the model's].")
@click.option("--person", default=None,
              help="Who is wearing the sensor [default: the recordings' subject, or 'wearer'].")
@click.option("--strength", type=click.FloatRange(0, min_open=True), default=None,
              help="Pull towards the base head (L2) [default: chosen per person by cross-validation].")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out [default: refuse].")
@click.option("--full", is_flag=True,
              help="Workstation mode (TensorFlow): fine-tune every layer and re-export; needs --model [default: off].")
@click.option("--model", "model_dir", type=str, default=None,
              help="With --full: the model directory (from `har train`) BUNDLE was deployed from.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True,
              help="With --full: fine-tuning epochs.")
def adapt_cmd(
    bundle: str, recordings: tuple[str, ...], out: str, port: str | None, baud: int, seconds: float,
    labels_opt: str | None, person: str | None, strength: float | None, overwrite: bool, full: bool,
    model_dir: str | None, epochs: int,
) -> None:
    """Adapt BUNDLE to the person wearing the sensor and write a new bundle to --out.

    With --port: a guided session. For each activity you are asked to start it (Enter; 's' + Enter
    skips it: a skipped activity keeps the base model's behaviour), and the device is recorded for
    --seconds with the same capture path as `har record`. The recordings are kept in
    <out>-calibration/ next to the new bundle. With RECORDINGS (files or directories of labelled
    recordings) instead: the same adaptation from those.

    Only the classifier head is refit for the calibrated activities (numpy, on the device, in
    about a second), pulled towards the base model's head and blended with it; the pull and the
    blend are chosen by 5-fold cross-validation over the calibration, and the personal head is
    kept only if its cross-validated accuracy beats the base model's by more than 5 points (both
    numbers are printed).
    --full --model MODEL_DIR (a workstation with TensorFlow) fine-tunes every layer instead and
    re-exports the bundle, judged on the last 30% of each activity. Adapting again always starts
    from the base model.
    """
    from har.errors import AdaptError
    from har.runtime.adapt import adapt_bundle, base_bundle_of, min_seconds, not_better, report_lines

    meta, _ = base_bundle_of(bundle)  # a bad bundle fails before anyone starts walking
    if full and model_dir is None:
        raise AdaptError("--full needs --model MODEL_DIR (the model directory BUNDLE was deployed from)")
    out_dir = Path(out)
    if out_dir.exists() and not overwrite:
        raise AdaptError(f"{out_dir} exists (choose another --out or pass --overwrite)")
    if (port is None) == (not recordings):
        raise AdaptError("give either --port PATH (guided session) or RECORDING... (labelled recordings), not both")
    if port is not None:
        from har.cli.cmd_record import _Progress, stop_on_signals
        from har.recording.calibration import run_session

        who = person or "wearer"
        acts = _labels(labels_opt, meta.classes)
        if seconds < min_seconds(meta):
            raise AdaptError(
                f"--seconds {seconds:g} is too short for {meta.window.window_s:g} s windows: give at least "
                f"{min_seconds(meta):.0f} s per activity"
            )
        cal_dir = out_dir.parent / f"{out_dir.name}-calibration"
        click.echo(f"Calibrating {bundle} for {who}: {len(acts)} activities x {seconds:g} s from {port}; "
                   f"recordings -> {cal_dir}", err=True)
        show = _Progress()

        def ask(text: str) -> str:
            click.echo(text, err=True)
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line

        def progress(p: object) -> None:
            show(p)

        try:
            session = run_session(port, acts, cal_dir, who, seconds=seconds, baud=baud, ask=ask,
                                  echo=lambda s: click.echo(s, err=True), progress=progress,
                                  stop_signals=stop_on_signals, rate_hz=meta.window.rate_hz)
        except KeyboardInterrupt:  # Ctrl-C at a prompt (while recording, it ends that recording)
            from har.recording.calibration import CalibrationInterrupted

            n = len(list(cal_dir.glob("*.csv"))) if cal_dir.is_dir() else 0
            msg = f"interrupted: {n} recording(s) kept in {cal_dir}; no bundle written"
            raise CalibrationInterrupted(msg) from None
        finally:
            show.done()
        if len(session.recorded) < 2:
            raise AdaptError(
                f"calibration covers {len(session.recorded)} activity(ies) ({', '.join(session.recorded) or 'none'}): "
                f"adapting needs at least two; recordings kept in {cal_dir}"
            )
        files = [str(p) for p in session.recordings]
    else:
        from har.recording.format import find_recordings, read_recording

        paths = find_recordings(recordings)
        if not paths:
            raise AdaptError(f"no recordings found in {', '.join(recordings)}")
        files = [str(p) for p in paths]
        if person is None:
            subjects = {read_recording(p).subject for p in paths}
            person = subjects.pop() if len(subjects) == 1 else None
        who = person if person and person != "unknown" else "wearer"
    if full:
        from har.training.finetune import finetune_bundle

        res = finetune_bundle(bundle, str(model_dir), files, out_dir, who, epochs=epochs, overwrite=overwrite,
                              echo=lambda s: click.echo(s, err=True))
    else:
        res = adapt_bundle(bundle, files, out_dir, who, strength=strength, overwrite=overwrite,
                           echo=lambda s: click.echo(s, err=True))
    click.echo(
        f"held-out accuracy ({res.holdout_scheme}, {res.n_holdout} windows): base {100 * res.base_accuracy:.1f}% "
        f"-> adapted {100 * res.adapted_accuracy:.1f}%: "
        + (("fine-tuned model kept" if full else "personal head kept") if res.kept
           else f"base model kept (the adapted one was {not_better(res.margin)})")
    )
    from har.artifacts.metadata import load_metadata

    for line in report_lines(load_metadata(out_dir).adaptation)[2:]:
        click.echo(line.strip())
    what = "fine-tuning and export" if full else "head refit"
    click.echo(f"Adapted bundle written to {out_dir} ({what} {res.fit_seconds:.2f} s)")


COMMANDS = [adapt_cmd]
