"""Predictions of a model directory (tf-keras weights), and one entry point for any model path.

The scoring side (har.scoring.evaluate) never imports training code; it takes a predictor. This
module makes the predictor for a model directory: the Keras model is rebuilt from the stored
``ModelConfig`` and its weights loaded (no pickle, no full-model deserialisation). TensorFlow is
imported only when a model directory is actually used."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from har.artifacts.metadata import ModelMetadata, load_metadata
from har.errors import ModelError
from har.scoring.evaluate import Predictor, bundle_predictor, is_bundle

PREDICT_BATCH = 256


def keras_predictor(path: str | os.PathLike[str], meta: ModelMetadata | None = None) -> Predictor:
    """A predictor (raw windows in g -> probabilities) for the model directory ``path``.
    The model is built and its weights loaded once, here."""
    from har.artifacts.layout import WEIGHTS_FILE
    from har.training.model import build_model

    p = Path(path)
    meta = meta if meta is not None else load_metadata(p)
    weights = p / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{p} has no {WEIGHTS_FILE}: not a complete har model directory")
    model = build_model(
        meta.train_config.model, meta.window.window_samples, meta.n_channels, len(meta.classes),
        rate_hz=meta.window.rate_hz,
    )
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as e:
        raise ModelError(f"{weights}: cannot load weights ({str(e).splitlines()[0] if str(e) else e})") from None
    norm = meta.normalization

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(norm.apply(x), batch_size=PREDICT_BATCH, verbose=0))

    return predict


def predictor_for(path: str | os.PathLike[str], which: str = "live") -> Predictor:
    """The predictor of a bundle (its ``which`` TFLite model) or of a model directory (Keras)."""
    if is_bundle(path):
        return bundle_predictor(path, which)[0]
    return keras_predictor(path)


def predict_proba(path: str | os.PathLike[str], x: np.ndarray, which: str = "live") -> tuple[ModelMetadata, np.ndarray]:
    """``(metadata, probabilities float (n, n_classes))`` of a bundle or model directory for raw
    windows ``x`` float32 (n, window, 3) in g."""
    meta = load_metadata(path)
    if x.shape[0] == 0:
        return meta, np.zeros((0, len(meta.classes)), dtype=np.float32)
    return meta, np.asarray(predictor_for(path, which)(x))
