"""The one place that imports TensorFlow (training and conversion only, never the runtime).

We use tf-keras (Keras 2) rather than Keras 3: only tf-keras models at a fixed batch of 1 convert
to the fused builtin UNIDIRECTIONAL_SEQUENCE_LSTM op that the small runtimes can run
(see README, "Why tf-keras")."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from har.errors import MissingDependencyError


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ logging) unless HAR_DEBUG is set."""
    if os.environ.get("HAR_DEBUG", "") not in ("", "0"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tf() -> tuple[Any, Any]:
    """Return ``(tensorflow, tf_keras)``, quietly; a clear error when the extra is missing."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide CUDA-probe and graph noise
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        with _quiet_stderr():  # TF 2.21 prints absl/CUDA-probe lines on import whatever the log level
            import tensorflow as tf
            import tf_keras

            tf.config.list_physical_devices()  # the CUDA probe, while stderr is quiet
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"training and export need the 'train' extra ({e.name} is missing): pip install 'har-edge[train]'"
        ) from None
    tf.get_logger().setLevel("ERROR")
    return tf, tf_keras
