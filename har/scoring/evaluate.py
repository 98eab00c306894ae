"""Score a model on recordings: the live model of a bundle by default, or any predictor.

A bundle is scored through the TFLite runtime: ``model.tflite`` (the batch-1 model `har run`
uses, int8 when exported so) unless ``which="replay"`` asks for ``model_batch.tflite`` (the
float batched model `har replay` uses; refused for an adapted bundle, whose personal head applies
to the live model's embeddings only). A model directory (tf-keras weights) is scored with a
predictor passed in (``har.training.predict.keras_predictor``): this module never imports the
training side, so it runs where only the TFLite runtime is installed.

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

from har.artifacts.layout import (
    ADAPTED_HEAD_FILE,
    BATCH_MODEL_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_JSON,
    REPORT_TXT,
    is_bundle,
)
from har.artifacts.metadata import ModelMetadata, load_metadata
from har.dataset import load_recordings, windows_for
from har.errors import ConfigError, DataError, ModelError
from har.scoring.metrics import compute_metrics, format_report, group_accuracy, subject_spread

TFLITE_FILE = MODEL_FILE  # kept for callers of the old name
MODEL_CHOICES = ("live", "replay")

__all__ = ["MODEL_CHOICES", "Predictor", "bundle_predictor", "evaluate", "is_bundle", "predict_proba"]

Predictor = Callable[[np.ndarray], np.ndarray]
"""Raw windows float32 (n, window, channels) in g -> class probabilities float (n, n_classes)."""


def bundle_predictor(path: str | os.PathLike[str], which: str = "live") -> tuple[Predictor, str]:
    """``(predictor, description)`` for a bundle's TFLite model (checksums verified first).

    ``which="live"``: ``model.tflite``, one window per invoke, exactly what `har run` computes
    (with an adapted bundle's personal head, ``head_adapted.npz``, as `har run` applies it).
    ``which="replay"``: ``model_batch.tflite`` (ModelError when the bundle has none, or is adapted:
    its personal head was fitted on the live model's embeddings and is never applied to the batched
    model's, so an adapted bundle has no replay model to score)."""
    if which not in MODEL_CHOICES:
        raise ConfigError(f"model must be one of {', '.join(MODEL_CHOICES)}, got {which!r}")
    p = Path(path)
    try:
        from har.runtime.classifier import WindowClassifier
    except ImportError as e:
        raise ModelError(f"bundle evaluation needs the TFLite runtime ({e})") from None
    replay = which == "replay"
    if replay and not (p / BATCH_MODEL_FILE).is_file():
        raise ModelError(f"{p} has no {BATCH_MODEL_FILE} (the replay model): score the live model instead")
    if replay and (p / ADAPTED_HEAD_FILE).is_file():
        raise ModelError(
            f"{p} is adapted: its personal head ({ADAPTED_HEAD_FILE}) applies to the live model's embeddings only "
            "(`har replay` runs the live model for it too): score the live model instead (drop --model replay)"
        )
    clf = WindowClassifier.from_bundle(p, use_batch_model=replay)
    meta = clf.metadata
    quant = meta.export.quantize if meta.export is not None else "?"
    if replay:
        desc = f"{BATCH_MODEL_FILE} (replay model, float32, batch {clf.batch_size}; `har replay` uses it)"

        def predict(x: np.ndarray) -> np.ndarray:
            return clf.predict_proba(x, batched=True)
    else:
        desc = f"{MODEL_FILE} (live model, {quant}, batch 1; `har run` uses it)"
        if clf.head is not None:
            desc = (f"{MODEL_FILE} + {ADAPTED_HEAD_FILE} (live model, {quant}, batch 1, with the personal head "
                    "fitted on its embeddings; `har run` and `har replay` use them)")

        def predict(x: np.ndarray) -> np.ndarray:
            return clf.predict_proba(x, batched=False)

    return predict, desc


def _predictor_for(p: Path, which: str, predictor: Predictor | None) -> tuple[Predictor, str, str]:
    """``(predictor, description, kind)``; a model directory needs ``predictor``."""
    if is_bundle(p):
        if predictor is not None:
            return predictor, f"bundle {p} (caller's predictor)", "bundle"
        fn, desc = bundle_predictor(p, which)
        return fn, desc, "bundle"
    if which != "live":
        raise ConfigError(f"--model {which} applies to bundles; {p} is a model directory (scored with Keras)")
    if predictor is None:
        raise ModelError(
            f"{p} is not a bundle (no {MANIFEST_FILE} + {MODEL_FILE}); a model directory is scored with "
            "har.training.predict.keras_predictor (`har evaluate` does this)"
        )
    return predictor, "Keras float model (model.weights.h5)", "model"


def predict_proba(
    model_path: str | os.PathLike[str], x: np.ndarray, which: str = "live", predictor: Predictor | None = None
) -> tuple[ModelMetadata, np.ndarray]:
    """``(metadata, class probabilities float (n, n_classes))`` of a bundle (or of a model
    directory with ``predictor``) for raw windows ``x`` float32 (n, window, 3) in g."""
    p = Path(model_path)
    meta = load_metadata(p)
    if x.shape[0] == 0:
        return meta, np.zeros((0, len(meta.classes)), dtype=np.float32)
    fn, _, _ = _predictor_for(p, which, predictor)
    return meta, np.asarray(fn(x))


def evaluate(
    model_path: str | os.PathLike[str],
    data: Sequence[str | os.PathLike[str]],
    echo: Callable[[str], None] = print,
    out: str | os.PathLike[str] | None = None,
    progress: bool = True,
    which: str = "live",
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """Metrics of a bundle (or of a model directory, given its ``predictor``) on ``data``
    (recording files or directories).

    A bundle is scored with its live model (``which="live"``, the default) or its replay model
    (``which="replay"``). Returns a JSON-ready dict: ``metrics`` (as
    :func:`har.scoring.metrics.compute_metrics`: accuracy, macro_f1, per-class P/R/F1,
    confusion), ``accuracy``, ``macro_f1``, ``n_windows``, ``per_subject``, ``subject_spread``
    (worst subject, fraction under 80%), ``excluded`` ({label: windows} not in the model's
    classes), ``model``, ``kind`` ("model" | "bundle"), ``scored`` (which model file was scored),
    ``report`` (the text report). Writes ``report.txt`` and ``report.json`` into ``out`` only
    when it is given."""
    p = Path(model_path)
    meta = load_metadata(p)
    fn, scored, kind = _predictor_for(p, which, predictor)
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
    probs = np.asarray(fn(w.x))
    if probs.ndim != 2 or probs.shape != (len(w), len(classes)):
        raise ModelError(f"model output shape {probs.shape} does not match {len(w)} windows x {len(classes)} classes")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in w.y.tolist()], dtype=np.int64)
    pred = probs.argmax(axis=1)
    metrics = compute_metrics(y, pred, classes)
    per_subject = group_accuracy(y, pred, w.subject)
    text = format_report(
        metrics, title=f"har evaluate: {kind} {p}", per_group=per_subject, header=[f"scored:    {scored}"]
    )
    if excluded:
        text += "\nexcluded (not model classes): " + ", ".join(f"{k} {v}" for k, v in excluded.items()) + "\n"
    result: dict[str, Any] = {
        "model": str(p),
        "kind": kind,
        "scored": scored,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "n_windows": len(w),
        "n_files": len(recs),
        "metrics": metrics,
        "per_subject": per_subject,
        "subject_spread": subject_spread(per_subject),
        "excluded": excluded,
        "report": text,
    }
    if out is not None:
        o = Path(out)
        o.mkdir(parents=True, exist_ok=True)
        (o / REPORT_TXT).write_text(text, encoding="utf-8")
        (o / REPORT_JSON).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
