"""Evaluate a model directory (tf-keras weights) or a bundle (TFLite) on recordings.

Windows are cut with the model's own WindowConfig (resampling when the data rate differs);
windows whose label is not one of the model's classes are counted and excluded."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.layout import REPORT_JSON, REPORT_TXT, WEIGHTS_FILE, is_bundle
from har.artifacts.metadata import ModelMetadata, load_metadata
from har.dataset import load_recordings, windows_for
from har.errors import DataError, ModelError
from har.scoring.metrics import compute_metrics, format_report, group_accuracy


def _predict_model_dir(path: Path, meta: ModelMetadata, x: np.ndarray) -> np.ndarray:
    from har.training.model import build_model
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{path} has no {WEIGHTS_FILE}: not a complete har model directory")
    model = build_model(meta.train_config.model, meta.window.window_samples, meta.n_channels, len(meta.classes))
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as e:
        raise ModelError(f"{weights}: cannot load weights ({str(e).splitlines()[0] if str(e) else e})") from None
    return np.asarray(model.predict(meta.normalization.apply(x), batch_size=256, verbose=0))


def _predict_bundle(path: Path, x: np.ndarray) -> np.ndarray:
    try:
        from har.runtime.classifier import WindowClassifier
    except ImportError as e:
        raise ModelError(f"bundle evaluation needs har.runtime.classifier ({e})") from None
    clf = WindowClassifier.from_bundle(path)
    return np.asarray(clf.predict_proba(x))


def predict_proba(model_path: str | os.PathLike[str], x: np.ndarray) -> tuple[ModelMetadata, np.ndarray]:
    """``(metadata, class probabilities float (n, n_classes))`` of a model directory or bundle for
    raw windows ``x`` float32 (n, window, 3) in g."""
    p = Path(model_path)
    meta = load_metadata(p)
    if x.shape[0] == 0:
        return meta, np.zeros((0, len(meta.classes)), dtype=np.float32)
    probs = _predict_bundle(p, x) if is_bundle(p) else _predict_model_dir(p, meta, x)
    return meta, probs


def evaluate(
    model_path: str | os.PathLike[str],
    data: Sequence[str | os.PathLike[str]],
    echo: Callable[[str], None] = print,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of a model directory or bundle on ``data`` (recording files or directories).

    Returns a JSON-ready dict: ``metrics`` (as :func:`har.scoring.metrics.compute_metrics`: accuracy,
    macro_f1, per-class P/R/F1, confusion), ``accuracy``, ``macro_f1``, ``n_windows``,
    ``per_subject``, ``excluded`` ({label: windows} not in the model's classes), ``model``,
    ``kind`` ("model" | "bundle"), ``report`` (the text report). Writes ``report.txt`` and
    ``report.json`` into ``out`` only when it is given."""
    p = Path(model_path)
    meta = load_metadata(p)
    bundle = is_bundle(p)
    recs = load_recordings(list(data), progress=progress)
    w = windows_for(recs, range(len(recs)), meta.window)
    if len(w) == 0:
        wc = meta.window
        raise DataError(
            f"no labelled windows of {wc.window_s:g} s at {wc.rate_hz:g} Hz (purity {wc.purity:g}) in the data"
        )
    classes = list(meta.classes)
    known = np.isin(w.y, classes)
    excluded = {k: int(v) for k, v in sorted(Counter(w.y[~known].tolist()).items())}
    if excluded:
        echo(
            "warning: label(s) not among the model's classes are excluded: "
            + ", ".join(f"{k} ({v} windows)" for k, v in excluded.items())
        )
    w = w.select(known)
    if len(w) == 0:
        raise DataError(f"no windows with the model's classes ({', '.join(classes)}) in the data")
    probs = _predict_bundle(p, w.x) if bundle else _predict_model_dir(p, meta, w.x)
    if probs.ndim != 2 or probs.shape != (len(w), len(classes)):
        raise ModelError(f"model output shape {probs.shape} does not match {len(w)} windows x {len(classes)} classes")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in w.y.tolist()], dtype=np.int64)
    pred = probs.argmax(axis=1)
    metrics = compute_metrics(y, pred, classes)
    per_subject = group_accuracy(y, pred, w.subject)
    kind = "bundle" if bundle else "model"
    text = format_report(metrics, title=f"har evaluate: {kind} {p}", per_group=per_subject)
    if excluded:
        text += "\nexcluded (not model classes): " + ", ".join(f"{k} {v}" for k, v in excluded.items()) + "\n"
    result: dict[str, Any] = {
        "model": str(p),
        "kind": kind,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "n_windows": len(w),
        "n_files": len(recs),
        "metrics": metrics,
        "per_subject": per_subject,
        "excluded": excluded,
        "report": text,
    }
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / REPORT_TXT).write_text(text, encoding="utf-8")
        (o / REPORT_JSON).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
