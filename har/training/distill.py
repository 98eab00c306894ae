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

An in-sample teacher interpolates its training windows (ridge decisions +1 for the label, -1
elsewhere, below the 4,000-window cap), so its targets are uniform label smoothing, not "dark
knowledge". ``distill="minirocket_oof"`` cross-fits it instead (:func:`oof_teacher_logits`): each
training window's target comes from a MiniRocket fitted on the other subjects' (recordings')
windows. ``distill_temperature="auto"`` picks the temperature whose targets have the smallest
log-loss on the labels (:func:`calibrate_temperature`). ``distill="auto"`` (har.training.fit)
fits the first member without and with the cross-fitted teacher and keeps the better one by
validation accuracy. docs/training.md (stage 4) has the cross-validated numbers.

Targets are passed to Keras as one array ``(n, 2 + n_classes)``: ``[label, distill weight,
soft target...]`` (weight 0 for validation windows); :func:`make_loss` and :func:`accuracy_metric`
read it. TensorFlow is imported lazily by the callers' Keras objects only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from har.config import AUTO
from har.errors import ConfigError
from har.training.rocket import INSTALL_HINT, aeon_available

OOF_FOLDS = 3  # minirocket_oof: teacher folds (each one MiniRocket fit)
TEMPERATURES = np.geomspace(0.01, 100.0, 121)  # distill_temperature="auto": the grid searched
LOG_EPS = 1e-4  # calibrate_temperature: a probability of 0 costs -log(LOG_EPS)


def teacher_available() -> bool:
    """True when aeon (the MiniRocket teacher) is installed."""
    return aeon_available()


def require_teacher(distill: str) -> None:
    """ConfigError (one line) when ``distill`` needs a package that is not installed ("auto" does
    not: without aeon it trains without a teacher and says so)."""
    if distill in ("minirocket", "minirocket_oof") and not teacher_available():
        raise ConfigError(f"--distill {distill} needs aeon for the MiniRocket teacher: {INSTALL_HINT}")


def _fit_teacher(x: np.ndarray, y: np.ndarray, seed: int, cap: int) -> Any:
    """MiniRocket fitted on (at most ``cap``, a seeded class-stratified subset of) channels-first
    windows ``x`` with class indices ``y``."""
    from aeon.classification.convolution_based import MiniRocketClassifier
    from threadpoolctl import threadpool_limits

    from har.training.reference import stratified_subset

    sel = stratified_subset(y, cap, seed) if cap > 0 else np.arange(len(y))
    clf = MiniRocketClassifier(random_state=seed, n_jobs=1)
    with threadpool_limits(1):  # one BLAS thread: faster on a small shared machine (see reference.py)
        clf.fit(x[sel], np.asarray(y)[sel])
    return clf


def _teacher_logits(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Ridge decision values (n, n_classes) of a fitted teacher; ``-inf`` for classes it never saw."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        d = np.asarray(clf.pipeline_.decision_function(x), dtype=np.float64)
    present = np.asarray(clf.classes_, dtype=np.int64)
    if d.ndim == 1:  # two classes: sklearn gives the second class's score only
        d = np.stack([-d, d], axis=1)
    logits = np.full((x.shape[0], n_classes), -np.inf)
    logits[:, present] = d
    return logits


def _channels_first(x_train: np.ndarray) -> np.ndarray:
    from har.training.reference import MIN_LENGTH

    if x_train.shape[1] < MIN_LENGTH:
        raise ConfigError(f"--distill minirocket: MiniRocket needs windows of at least {MIN_LENGTH} samples")
    return np.ascontiguousarray(np.transpose(x_train, (0, 2, 1)), dtype=np.float32)


def soften(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` per row, float32 (``-inf`` logits get probability 0)."""
    z = logits / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def calibrate_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature of TEMPERATURES whose ``softmax(logits / T)`` has the smallest log-loss on
    the true class indices ``y`` (a 1-D grid search; a probability of 0 counts as LOG_EPS)."""
    y = np.asarray(y, dtype=np.int64)
    rows = np.arange(y.size)
    losses = []
    for t in TEMPERATURES:
        p = soften(logits, float(t))[rows, y].astype(np.float64)
        losses.append(float(-np.log(np.clip(p, LOG_EPS, 1.0)).mean()))
    return float(TEMPERATURES[int(np.argmin(losses))])


def teacher_soft_targets(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    temperature: float,
    seed: int,
    max_train: int | None = None,
) -> np.ndarray:
    """IN-SAMPLE teacher (``distill="minirocket"``): fit MiniRocket on raw windows ``x_train``
    (n, window, channels, g) with class indices ``y_train`` and return its soft targets float32
    (n, n_classes) for the same windows.

    At most ``max_train`` windows (default har.training.reference.MAX_TRAIN_WINDOWS, a seeded
    class-stratified subset) fit the teacher; all windows get targets."""
    require_teacher("minirocket")
    from har.training.reference import MAX_TRAIN_WINDOWS

    xt = _channels_first(x_train)
    cap = MAX_TRAIN_WINDOWS if max_train is None else max_train
    clf = _fit_teacher(xt, np.asarray(y_train), seed, cap)
    return soften(_teacher_logits(clf, xt, n_classes), temperature)


def window_groups(w: Any) -> tuple[np.ndarray, str]:
    """The teacher's cross-fitting groups of windows ``w`` (har.signal.Windows): ``(key per window,
    "subject")`` when they come from two or more subjects, else ``(recording index per window,
    "recording")``. Windows of different groups never share a sample (a group is whole recordings),
    so no window needs purging between a teacher and the windows it labels."""
    subjects = np.asarray(w.subject).astype(str)
    if np.unique(subjects).size >= 2:
        return subjects, "subject"
    return np.asarray(w.file_index).astype(str), "recording"


def teacher_groups(distill: str, w: Any) -> tuple[np.ndarray, str] | None:
    """:func:`window_groups` of the training windows ``w`` when ``distill`` names a teacher (the
    cross-fitted one splits by them), else None: what fit_model's ``groups`` takes."""
    return window_groups(w) if distill != "none" else None


def oof_teacher_logits(
    x_train: np.ndarray,
    y_train: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    seed: int,
    folds: int = OOF_FOLDS,
    grouped_by: str = "subject",
    max_train: int | None = None,
) -> tuple[np.ndarray, list[list[str]]] | None:
    """CROSS-FITTED teacher (``distill="minirocket_oof"``): the distinct ``groups`` (one key per
    window: subject, or recording when ``grouped_by="recording"``, then folds stratified by each
    recording's majority label) are split into ``min(folds, groups)`` folds by
    har.training.cv.make_folds; for each fold MiniRocket is fitted on the windows of the OTHER folds
    and gives the ridge decisions (logits) of the fold's windows, so no window is labelled by a
    teacher that saw its subject (recording). Returns ``(logits (n, n_classes), folds)`` or None
    with fewer than two groups (one recording) or when the other folds hold a single class: the
    caller falls back to the in-sample teacher."""
    require_teacher("minirocket")
    from collections import Counter

    from har.training.cv import make_folds
    from har.training.reference import MAX_TRAIN_WINDOWS

    groups = np.asarray(groups).astype(str)
    y_train = np.asarray(y_train, dtype=np.int64)
    keys = sorted(set(groups.tolist()))
    if len(keys) < 2:
        return None
    strata = None
    if grouped_by == "recording":
        strata = {g: str(Counter(y_train[groups == g].tolist()).most_common(1)[0][0]) for g in keys}
    parts = make_folds(keys, min(int(folds), len(keys)), seed, strata)
    xt = _channels_first(x_train)
    cap = MAX_TRAIN_WINDOWS if max_train is None else max_train
    logits = np.full((len(y_train), n_classes), -np.inf)
    for part in parts:
        held = np.isin(groups, part)
        if np.unique(y_train[~held]).size < 2:  # a teacher needs two classes to learn from
            return None
        clf = _fit_teacher(xt[~held], y_train[~held], seed, cap)
        logits[held] = _teacher_logits(clf, xt[held], n_classes)
    return logits, parts


def teacher_targets(
    distill: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    temperature: float | str,
    seed: int,
    groups: np.ndarray | None = None,
    grouped_by: str = "subject",
    echo: Callable[[str], None] = print,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The soft targets of ``distill`` ("minirocket": in-sample; "minirocket_oof": cross-fitted over
    ``groups``, see :func:`oof_teacher_logits`) at ``temperature`` ("auto": :func:`calibrate_temperature`
    on the teacher's own decisions for the training windows). Returns ``(soft, info)``; ``info``
    (JSON-ready) says which teacher ran, its temperature and its accuracy on the windows it labelled."""
    require_teacher(distill)
    from har.training.reference import MAX_TRAIN_WINDOWS

    y = np.asarray(y_train, dtype=np.int64)
    info: dict[str, Any] = {"teacher": "in-sample"}
    out = None
    if distill == "minirocket_oof":
        if groups is None:
            echo("distillation: no subject or recording of the training windows known: in-sample teacher")
        else:
            out = oof_teacher_logits(x_train, y, groups, n_classes, seed, grouped_by=grouped_by)
            if out is None:
                echo("distillation: too few training recordings or classes to cross-fit: in-sample teacher")
    if out is not None:
        logits, parts = out
        info = {"teacher": "cross-fitted", "teacher_folds": len(parts), "grouped_by": grouped_by}
    else:
        xt = _channels_first(x_train)
        logits = _teacher_logits(_fit_teacher(xt, y, seed, MAX_TRAIN_WINDOWS), xt, n_classes)
    t = calibrate_temperature(logits, y) if temperature == AUTO else float(temperature)
    soft = soften(logits, t)
    info["temperature"] = t
    info["teacher_accuracy"] = float(np.mean(soft.argmax(axis=1) == y))
    echo(
        f"distillation: {info['teacher']} teacher"
        + (f" ({info['teacher_folds']} folds by {grouped_by})" if out is not None else "")
        + f", temperature {t:.3g}{' (auto)' if temperature == AUTO else ''}, "
        f"accuracy on the windows it labelled {info['teacher_accuracy']:.3f}"
    )
    return soft, info


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
