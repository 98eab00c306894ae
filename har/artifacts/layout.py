"""Where a model lives on disk: the file names of a model directory (`har train`) and of a bundle
(`har deploy`), telling them apart, and opening a bundle's classifiers. No TensorFlow.

Model directory: ``metadata.json``, ``model.weights.h5`` (tf-keras weights), ``deploy_windows.npz``
(calibration and held-out windows for conversion), ``report.txt`` / ``report.json`` and PNG figures.

Bundle: ``model.tflite`` (batch 1, the live model), optional ``model_batch.tflite`` (float32 replay
model), ``head.npz`` (the classifier head, for `har adapt`), ``metadata.json``, ``report.txt`` and
``manifest.json`` (SHA-256 of every other file); an adapted bundle adds ``head_adapted.npz``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from har.runtime.classifier import WindowClassifier

# both
METADATA_FILE = "metadata.json"
REPORT_TXT = "report.txt"
# model directory
WEIGHTS_FILE = "model.weights.h5"
DEPLOY_WINDOWS_FILE = "deploy_windows.npz"
REPORT_JSON = "report.json"
CONFUSION_PNG = "confusion.png"
CURVES_PNG = "training_curves.png"
F1_PNG = "per_class_f1.png"
# bundle
MODEL_FILE = "model.tflite"
BATCH_MODEL_FILE = "model_batch.tflite"
MANIFEST_FILE = "manifest.json"
REPORT_FILE = REPORT_TXT
HEAD_FILE = "head.npz"  # the classifier head's weights W, b (float32), for `har adapt`
ADAPTED_HEAD_FILE = "head_adapted.npz"  # a personal head written by `har adapt`; `har run` applies it
# the MiniRocket branch's PPV layer (har.training.rocket names it; the runtime reads its width from the graph)
ROCKET_PPV_LAYER = "rocket_ppv"
# the files `har deploy` writes
BUNDLE_FILES = frozenset({MODEL_FILE, BATCH_MODEL_FILE, METADATA_FILE, REPORT_FILE, MANIFEST_FILE, HEAD_FILE})
# conversion work directory (har.training.convert <-> its worker process har.training._convert_worker)
OPS_FILE = "ops.json"
BATCH_OPS_FILE = "ops_batch.json"
KERAS_PROBS_FILE = "keras_probs.npy"
WORKER_STDERR_FILE = "worker.stderr"

Kind = Literal["bundle", "model", "recording"]


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """A bundle directory has ``manifest.json`` and ``model.tflite``."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST_FILE).is_file() and (p / MODEL_FILE).is_file()


def is_model_dir(path: str | os.PathLike[str]) -> bool:
    """A model directory has ``metadata.json`` and no ``manifest.json``."""
    p = Path(path)
    return p.is_dir() and (p / METADATA_FILE).is_file() and not (p / MANIFEST_FILE).exists()


def kind_of(path: str | os.PathLike[str]) -> Kind | None:
    """``"bundle"`` (a directory with ``manifest.json``), ``"model"`` (a directory with
    ``metadata.json``), ``"recording"`` (a ``.csv`` or ``.json`` file) or None."""
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST_FILE).exists():
            return "bundle"
        if (p / METADATA_FILE).exists():
            return "model"
        return None
    if p.suffix.lower() in (".csv", ".json") and p.exists():  # reading it says what is wrong with it
        return "recording"
    return None


def open_live_classifier(
    bundle: str | os.PathLike[str], num_threads: int = 1, prefer_runtime: str | None = None
) -> WindowClassifier:
    """The classifier `har run` uses: the bundle's checksums verified, its live model only, the
    runtime proven in a child process first (``runtime_choice``; ``prefer_runtime`` skips that)."""
    from har.runtime.classifier import WindowClassifier  # noqa: PLC0415

    return WindowClassifier.from_bundle(
        bundle, verify=True, num_threads=num_threads, prefer_runtime=prefer_runtime, use_batch_model=False,
        probe=prefer_runtime is None,
    )


def open_replay_classifier(
    bundle: str | os.PathLike[str], num_threads: int = 1, exact: bool = False
) -> WindowClassifier:
    """The classifier `har replay` uses: checksums verified; with the batched replay model unless
    ``exact`` (then the live model on every window, the numbers `har run` gives)."""
    from har.runtime.classifier import WindowClassifier  # noqa: PLC0415

    return WindowClassifier.from_bundle(bundle, verify=True, num_threads=num_threads, use_batch_model=not exact,
                                        probe=True)
