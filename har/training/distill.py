"""Knowledge distillation from MiniRocket, a training-time-only teacher (``TrainConfig.distill``).

``distill="minirocket"``: before the LSTM trains, aeon's MiniRocket (10,000 random convolution
kernels, scaler, ridge classifier, as in har.training.reference) is fitted on the very windows the
student trains on (never its validation windows: those stay plain labels for early stopping), and
its ridge decision values become soft targets ``softmax(decision / distill_temperature)``. The
student's loss per training window is

    distill_alpha * CE(label, student)  +  (1 - distill_alpha) * CE(soft target, student)

(label smoothing, when configured, applies to the first term; augmented windows keep their
source window's soft target). Validation windows carry the label only, so the validation loss that
early stopping watches is the ordinary cross-entropy. The teacher is gone after training: the model
directory, the bundle and the device never need aeon.

Targets are passed to Keras as one array ``(n, 2 + n_classes)``: ``[label, distill weight,
soft target...]`` (weight 0 for validation windows); :func:`make_loss` and :func:`accuracy_metric`
read it. TensorFlow is imported lazily by the callers' Keras objects only."""

from __future__ import annotations

from typing import Any

import numpy as np

from har.errors import ConfigError

DISTILL_CHOICES = ("none", "minirocket")
INSTALL_HINT = "pip install 'har-edge[reference]' (or: pip install aeon)"


def require_teacher(distill: str) -> None:
    """ConfigError (one line) when ``distill`` needs a package that is not installed."""
    if distill == "minirocket":
        try:
            import aeon  # noqa: F401
        except ImportError:
            raise ConfigError(f"--distill minirocket needs aeon for the MiniRocket teacher: {INSTALL_HINT}") from None


def teacher_soft_targets(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    temperature: float,
    seed: int,
    max_train: int | None = None,
) -> np.ndarray:
    """Fit MiniRocket on raw windows ``x_train`` (n, window, channels, g) with class indices
    ``y_train`` and return its soft targets float32 (n, n_classes) for the same windows.

    At most ``max_train`` windows (default har.training.reference.MAX_TRAIN_WINDOWS, a seeded
    class-stratified subset) fit the teacher; all windows get targets."""
    require_teacher("minirocket")
    from aeon.classification.convolution_based import MiniRocketClassifier
    from threadpoolctl import threadpool_limits

    from har.training.reference import MAX_TRAIN_WINDOWS, MIN_LENGTH, stratified_subset

    if x_train.shape[1] < MIN_LENGTH:
        raise ConfigError(f"--distill minirocket: MiniRocket needs windows of at least {MIN_LENGTH} samples")
    cap = MAX_TRAIN_WINDOWS if max_train is None else max_train
    sel = stratified_subset(y_train, cap, seed) if cap > 0 else np.arange(len(y_train))
    xt = np.ascontiguousarray(np.transpose(x_train, (0, 2, 1)), dtype=np.float32)
    clf = MiniRocketClassifier(random_state=seed, n_jobs=1)
    with threadpool_limits(1):  # one BLAS thread: faster on a small shared machine (see reference.py)
        clf.fit(xt[sel], np.asarray(y_train)[sel])
        d = np.asarray(clf.pipeline_.decision_function(xt), dtype=np.float64)
    present = np.asarray(clf.classes_, dtype=np.int64)
    if d.ndim == 1:  # two classes: sklearn gives the second class's score only
        d = np.stack([-d, d], axis=1)
    logits = np.full((x_train.shape[0], n_classes), -np.inf)
    logits[:, present] = d / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def pack_targets(y: np.ndarray, soft: np.ndarray | None, n_classes: int) -> np.ndarray:
    """``[label, weight, soft...]`` rows float32 (n, 2 + n_classes); ``soft=None`` (validation):
    weight 0 and a one-hot placeholder that the loss ignores."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((y.size, 2 + n_classes), dtype=np.float32)
    out[:, 0] = y
    if soft is None:
        out[np.arange(y.size), 2 + y] = 1.0
    else:
        out[:, 1] = 1.0
        out[:, 2:] = soft
    return out


def make_loss(tf: Any, keras: Any, n_classes: int, alpha: float, label_smoothing: float) -> Any:
    """The Keras loss over packed targets (see the module docstring)."""
    eps = 1e-7

    def distill_loss(y_true: Any, y_pred: Any) -> Any:
        label = tf.cast(y_true[:, 0], tf.int32)
        w = y_true[:, 1]
        soft = y_true[:, 2:]
        hard = keras.losses.categorical_crossentropy(
            tf.one_hot(label, n_classes), y_pred, label_smoothing=label_smoothing
        )
        soft_ce = -tf.reduce_sum(soft * tf.math.log(tf.clip_by_value(y_pred, eps, 1.0)), axis=-1)
        return (1.0 - w * (1.0 - alpha)) * hard + w * (1.0 - alpha) * soft_ce

    return distill_loss


def accuracy_metric(tf: Any) -> Any:
    """Accuracy against the label column of packed targets (reported as ``accuracy``)."""

    def accuracy(y_true: Any, y_pred: Any) -> Any:
        label = tf.cast(y_true[:, 0], tf.int64)
        return tf.cast(tf.equal(label, tf.argmax(y_pred, axis=-1)), tf.float32)

    return accuracy
