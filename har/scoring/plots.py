"""PNG figures: training reports and `har plot` (a recording with its true and predicted labels).
matplotlib (Agg backend) is imported inside each function, so importing this module costs nothing
and never needs a display."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from har.errors import DataError
from har.signal import BREAK_PERIODS, make_windows

if TYPE_CHECKING:
    from har.recording.format import Recording


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(
    cm: Sequence[Sequence[int]] | np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike[str],
    title: str = "Confusion matrix",
) -> Path:
    """Counts in the cells, colours normalised per row (recall); rows true, columns predicted."""
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    k = len(classes)
    size = max(4.0, 0.6 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike[str]) -> Path:
    """Loss and accuracy per epoch, training vs validation (keys as in a Keras History); a dashed
    line marks the best epoch (lowest validation loss, whose weights were kept)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    monitor = history.get("val_loss") or history.get("loss") or []
    best = int(np.argmin(monitor)) + 1 if len(monitor) else None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, name in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            vals = history.get(prefix + key)
            if vals:
                ax.plot(np.arange(1, len(vals) + 1), vals, marker="o", markersize=3, label=label)
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_per_class_f1(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """A bar chart of the test F1 per class (from :func:`har.scoring.metrics.compute_metrics`)."""
    plt = _pyplot()
    classes = list(metrics["classes"])
    f1 = [metrics["per_class"][c]["f1"] for c in classes]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(classes) + 2), 3.5))
    ax.bar(range(len(classes)), f1, color="tab:blue")
    ax.set_xticks(range(len(classes)), labels=classes, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(f"per-class F1 (macro-F1 {metrics['macro_f1']:.3f})")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _class_colors(names: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(sorted(names))}


def _spans(time_s: np.ndarray, labels: np.ndarray) -> list[tuple[float, float, str]]:
    """Runs of equal non-empty labels as ``(start s, end s, label)``."""
    out: list[tuple[float, float, str]] = []
    if time_s.size == 0:
        return out
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [labels.size]])
    dt = float(np.median(np.diff(time_s))) if time_s.size > 1 else 0.0
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        lab = str(labels[s])
        if lab:
            out.append((float(time_s[s]), float(time_s[e - 1]) + dt, lab))
    return out


def plot_recording(
    time_s: np.ndarray,
    xyz: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike[str],
    title: str = "",
    pred_start_s: np.ndarray | None = None,
    pred_labels: np.ndarray | None = None,
    pred_span_s: float = 0.0,
) -> Path:
    """The signal (x, y, z in g over time in s) with the true label spans shaded, and below it a
    timeline of true and (when ``pred_labels`` is given) predicted labels; each prediction covers
    ``[start, start + pred_span_s)`` seconds (use the hop so adjacent windows tile)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    t = np.asarray(time_s, dtype=np.float64)
    a = np.asarray(xyz, dtype=np.float64)
    labs = np.asarray(labels).astype(str)
    names = set(labs.tolist()) - {""}
    if pred_labels is not None:
        names |= set(np.asarray(pred_labels).astype(str).tolist()) - {""}
    colors = _class_colors(sorted(names))
    fig, (ax, tl) = plt.subplots(
        2, 1, figsize=(12, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True
    )
    true_spans = _spans(t, labs)
    for s, e, lab in true_spans:
        ax.axvspan(s, e, color=colors[lab], alpha=0.15, linewidth=0)
    if t.size > 1:  # break the lines at gaps and breaks (time jumps) instead of joining them
        dt = np.diff(t)
        cut = np.flatnonzero((dt <= 0) | (dt > BREAK_PERIODS * float(np.median(dt)))) + 1
        t_plot = np.insert(t, cut, np.nan)
        a_plot = np.insert(a, cut, np.nan, axis=0)
    else:
        t_plot, a_plot = t, a
    for i, (axis, c) in enumerate(zip("xyz", ("tab:red", "tab:green", "tab:blue"), strict=True)):
        ax.plot(t_plot, a_plot[:, i], color=c, linewidth=0.6, label=axis)
    ax.set_ylabel("acceleration (g)")
    ax.set_title(title or "recording")
    ax.legend(loc="upper right", ncol=3, fontsize=8)
    ax.grid(True, alpha=0.3)
    rows = [("true", true_spans)]
    if pred_labels is not None and pred_start_s is not None:
        ps = np.asarray(pred_start_s, dtype=np.float64)
        pl = np.asarray(pred_labels).astype(str)
        span = pred_span_s if pred_span_s > 0 else (float(np.median(np.diff(ps))) if ps.size > 1 else 1.0)
        rows.append(("predicted", [(float(s), float(s) + span, str(lab)) for s, lab in zip(ps, pl, strict=True)]))
    for r, (_, spans) in enumerate(rows):
        for s, e, lab in spans:
            tl.broken_barh([(s, e - s)], (r + 0.1, 0.8), facecolors=colors.get(lab, "lightgrey"), linewidth=0)
    tl.set_yticks([r + 0.5 for r in range(len(rows))], labels=[name for name, _ in rows])
    tl.set_ylim(0, len(rows))
    tl.invert_yaxis()
    tl.set_xlabel("time (s)")
    tl.legend(
        handles=[Patch(color=colors[n], label=n) for n in sorted(names)],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.45),
        ncol=min(len(names), 8) or 1,
        fontsize=8,
    )
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


@dataclass(frozen=True)
class WindowPredictions:
    """A model's predicted label per window of one recording (:func:`predict_recording`)."""

    start_s: np.ndarray  # float64 (n,): start of the span each prediction covers (its window's last hop)
    labels: np.ndarray  # str (n,)
    span_s: float  # seconds each prediction covers (the hop)
    correct: int  # predictions equal to the window's label, over the labelled windows
    labelled: int  # windows with a training label (pure, no unlabelled sample)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def predict_recording(
    rec: Recording, model: str | os.PathLike[str], predictor: Callable[[np.ndarray], np.ndarray] | None = None
) -> WindowPredictions:
    """Every window of ``rec`` on the model's grid (:func:`har.signal.make_windows`), classified by
    a bundle's live model (or ``predictor``: a model directory's, har.training.predict.keras_predictor);
    each prediction labels its window's last hop."""
    from har.artifacts.metadata import load_metadata  # noqa: PLC0415
    from har.scoring.evaluate import predict_proba  # noqa: PLC0415

    meta = load_metadata(model)
    w = make_windows(rec, meta.window, labelled_only=False)
    if len(w) == 0:
        name = rec.path or "the recording"
        raise DataError(f"{name} is shorter than one {meta.window.window_s:g} s window of the model")
    _, probs = predict_proba(model, w.x, predictor=predictor)
    pred = np.asarray(meta.classes)[np.asarray(probs).argmax(axis=1)]
    known = w.y != ""
    return WindowPredictions(
        start_s=w.start_s + meta.window.window_s - meta.window.hop_s,
        labels=pred,
        span_s=meta.window.hop_s,
        correct=int((pred[known] == w.y[known]).sum()),
        labelled=int(known.sum()),
    )


def plot_recording_file(
    recording: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    predictor: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Path:
    """`har plot`: write ``out`` (default: the recording with the suffix .png) showing the recording
    and, with ``model``, its predicted labels and window accuracy. DataError on bad input or when
    ``out`` exists and not ``overwrite``."""
    from har.recording.format import read_recording  # noqa: PLC0415

    rec = read_recording(recording)
    if len(rec) == 0:
        raise DataError(f"{recording} holds no samples")
    path = Path(out) if out is not None else Path(recording).with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise DataError(f"--out must end in .png, got {path}")
    if path.exists() and not overwrite:
        raise DataError(f"{path} exists (choose another --out or pass --overwrite)")
    title = f"{Path(recording).name}  (subject {rec.subject}, {rec.rate_hz:g} Hz)"
    pred: WindowPredictions | None = None
    if model is not None:
        pred = predict_recording(rec, model, predictor)
        if pred.accuracy is not None:
            title += f"  -  {Path(model).name}: window accuracy {pred.accuracy:.3f} on {pred.labelled} labelled windows"
    path.parent.mkdir(parents=True, exist_ok=True)
    return plot_recording(
        rec.time, rec.xyz, rec.labels, path, title=title,
        pred_start_s=None if pred is None else pred.start_s,
        pred_labels=None if pred is None else pred.labels,
        pred_span_s=0.0 if pred is None else pred.span_s,
    )
