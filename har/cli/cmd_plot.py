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
    import numpy as np

    from har.errors import DataError
    from har.recording.format import read_recording
    from har.scoring.plots import plot_recording

    rec = read_recording(recording)
    if len(rec) == 0:
        raise DataError(f"{recording} holds no samples")
    out = out or Path(recording).with_suffix(".png")
    if out.suffix.lower() != ".png":
        raise DataError(f"--out must end in .png, got {out}")
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists (choose another --out or pass --overwrite)")
    pred_t = pred_y = None
    span = 0.0
    title = f"{Path(recording).name}  (subject {rec.subject}, {rec.rate_hz:g} Hz)"
    if model is not None:
        from har.artifacts.metadata import load_metadata
        from har.scoring.evaluate import predict_proba
        from har.signal import make_windows

        meta = load_metadata(model)
        w = make_windows(rec, meta.window, labelled_only=False)
        if len(w) == 0:
            raise DataError(f"{recording} is shorter than one {meta.window.window_s:g} s window of the model")
        _, probs = predict_proba(model, w.x)
        pred = np.asarray(probs).argmax(axis=1)
        pred_y = np.asarray(meta.classes)[pred]
        pred_t = w.start_s + meta.window.window_s - meta.window.hop_s  # each window labels its last hop
        span = meta.window.hop_s
        known = w.y != ""
        if known.any():
            acc = float((pred_y[known] == w.y[known]).mean())
            title += f"  -  {Path(model).name}: window accuracy {acc:.3f} on {int(known.sum())} labelled windows"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_recording(
        rec.time, rec.xyz, rec.labels, out, title=title, pred_start_s=pred_t, pred_labels=pred_y, pred_span_s=span
    )
    click.echo(f"wrote {out}")


COMMANDS = [plot_cmd]
