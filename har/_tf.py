"""The one place that imports TensorFlow (training and conversion only, never the runtime).

We use tf-keras (Keras 2) rather than Keras 3: only tf-keras models at a fixed batch of 1 convert
to the fused builtin UNIDIRECTIONAL_SEQUENCE_LSTM op that the small runtimes can run
(see README, "Why tf-keras")."""

from __future__ import annotations

import os
from typing import Any

from .errors import MissingDependencyError


def import_tf() -> tuple[Any, Any]:
    """Return ``(tensorflow, tf_keras)``, quietly; a clear error when the extra is missing."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
        import tf_keras
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"training and export need the 'train' extra ({e.name} is missing): pip install 'har-edge[train]'"
        ) from None
    tf.get_logger().setLevel("ERROR")
    return tf, tf_keras
