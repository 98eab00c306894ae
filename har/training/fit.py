"""Fitting one model, shared by `har train` (har.training.train) and cross-validation (har.training.cv).

* Normalisation: per-axis mean / std fitted on training windows only.
* Validation is never the training data: held-out subjects when the data has two or more
  (``har.dataset.carve_validation``), else a label-stratified held-out fraction of the training
  recordings (:func:`holdout_recordings`), else (a single recording) a per-class tail of its
  windows with the overlapping training windows dropped (:func:`holdout_windows`). Early stopping
  and the plateau learning-rate schedule watch the validation loss.
* ``epochs="auto"`` (:func:`resolve_schedule`): the number of epochs follows the number of
  optimizer steps per epoch, so 140 short cases get hundreds of cheap epochs and 20,000 windows
  tens; ``patience="auto"`` and ``lr_patience="auto"`` scale with it.
* ``augment.rotation_z_deg="auto"`` (:func:`fit_model`): 0 and 180 degrees are both fitted and
  the one with the higher validation accuracy is kept (ties: 0 degrees; the z rotation helps
  watches worn at any strap position and hurts where the movement direction relative to the
  forearm is the class). The paired sign test of har.training.paired is printed beside it but
  does not decide: requiring significance kept 0 degrees in CV folds where 180 was 7 points
  better on the simulator and 2.6 on WISDM (docs/training.md, stage 7). ``distill="auto"``
  keeps a teacher only when it is significantly better (exact sign test over the groups of
  validation windows, recording x activity, that each model wins).

TensorFlow is imported inside :func:`fit_model` only."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from har.artifacts.metadata import MIN_STD, Normalization  # noqa: F401 (MIN_STD re-exported)
from har.config import AUTO, TrainConfig
from har.recording.format import Recording
from har.signal import Windows
from har.training.paired import PairedComparison, compare_paired

TARGET_STEPS = 2000  # epochs="auto": about this many optimizer steps at most ...
MIN_EPOCHS, MAX_EPOCHS = 20, 300  # ... within these bounds
MIN_DELTA = 1e-3  # early stopping: smaller validation-loss improvements do not count
ROTATION_CHOICES = (0.0, 180.0)  # rotation_z_deg="auto" picks one of these
AUTO_ROTATION_MAX_WINDOWS = 6000  # above this, the z-rotation choice is made on a stratified subsample
AUTO_DISTILL_TEACHER = "minirocket_oof"  # distill="auto" chooses between no teacher and this one


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The resolved training length: epochs, early-stopping patience, plateau patience."""

    epochs: int
    patience: int
    lr_patience: int
    steps_per_epoch: int


def fit_normalization(x: np.ndarray) -> Normalization:
    """Per-axis mean and standard deviation (g) over windows x (n, window, channels); windows of
    the cache (har.training.stream.CachedWindows) are streamed."""
    if not isinstance(x, np.ndarray):
        return x.normalization()  # type: ignore[no-any-return]
    return Normalization.fit(x)


def predict_proba(model: Any, x: np.ndarray, norm: Normalization, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of ``model`` for raw windows ``x`` (normalised here); windows of the
    cache are predicted chunk by chunk."""
    if not isinstance(x, np.ndarray):
        return x.predict(model, norm, batch_size)  # type: ignore[no-any-return]
    return np.asarray(model.predict(normalize(x, norm), batch_size=batch_size, verbose=0))


def normalize(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(x - mean) / std`` per axis, float32."""
    return norm.apply(x)


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (n_classes * count_k)`` for class indices ``y``."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    n = float(counts.sum())
    return {k: (n / (n_classes * counts[k]) if counts[k] > 0 else 0.0) for k in range(n_classes)}


def encode(y: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Labels -> class indices into ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in y.tolist()], dtype=np.int64)


def resolve_schedule(config: TrainConfig, n_train: int) -> Schedule:
    """Epochs, patience and plateau patience for ``n_train`` training windows.

    ``epochs="auto"``: ``ceil(TARGET_STEPS / steps per epoch)`` within [MIN_EPOCHS, MAX_EPOCHS]
    (25,000 windows at batch 64: 20 epochs; 240 windows: 300). ``patience="auto"``: a fifth of
    the epochs, 5 to 30. ``lr_patience="auto"``: half the patience, at least 2."""
    steps = max(1, -(-int(n_train) // config.batch_size))
    if config.epochs == AUTO:
        epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps))))
    else:
        epochs = int(config.epochs)
    patience = int(min(30, max(5, round(epochs / 5)))) if config.patience == AUTO else int(config.patience)
    lr_pat = max(2, patience // 2) if config.lr_patience == AUTO else int(config.lr_patience)
    return Schedule(epochs=epochs, patience=patience, lr_patience=lr_pat, steps_per_epoch=steps)


def _majority_label(rec: Recording) -> str:
    labels = [v for v in np.asarray(rec.labels).tolist() if v]
    return Counter(labels).most_common(1)[0][0] if labels else ""


def holdout_recordings(
    recordings: Sequence[Recording], indices: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split recordings (``indices``) into ``(train, validation)`` stratified by each recording's
    majority label: from every label with two or more recordings a seeded ``fraction`` (at least
    one) is held out. Used when there are no distinct subjects to hold out."""
    by_label: dict[str, list[int]] = {}
    for i in indices:
        by_label.setdefault(_majority_label(recordings[i]), []).append(i)
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for label in sorted(by_label):
        group = by_label[label]
        if len(group) < 2 or fraction <= 0:
            continue
        k = min(len(group) - 1, max(1, int(round(fraction * len(group)))))
        val += [group[j] for j in rng.permutation(len(group))[:k]]
    vs = set(val)
    return [i for i in indices if i not in vs], sorted(val)


def holdout_windows(w: Windows, fraction: float, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """For a single recording: boolean masks ``(train, validation)`` over ``w``. The last
    ``fraction`` of each label's windows (in time) is validation; training windows overlapping a
    validation window in time are dropped (no sample in both)."""
    n = len(w)
    val = np.zeros(n, dtype=bool)
    for label in np.unique(w.y):
        idx = np.flatnonzero(w.y == label)
        idx = idx[np.argsort(w.start_s[idx], kind="stable")]
        k = int(round(fraction * idx.size))
        if idx.size >= 2 and k >= 1:
            val[idx[-k:]] = True
    train = ~val
    for f in np.unique(w.file_index[val]):
        vs = w.start_s[val & (w.file_index == f)]
        same = train & (w.file_index == f)
        near = np.abs(w.start_s[same][:, None] - vs[None, :]).min(axis=1) < window_s
        train[np.flatnonzero(same)[near]] = False
    return train, val


def lr_callbacks(config: TrainConfig, keras: Any, monitor: str, schedule: Schedule | None = None) -> list[Any]:
    """Keras callbacks for ``config.lr_schedule``: "plateau" = ReduceLROnPlateau on ``monitor``
    (factor ``lr_factor`` after the plateau patience, floor ``min_lr``); "cosine" = per-epoch
    cosine decay from ``learning_rate`` to ``min_lr`` over the epochs; "constant" = none."""
    sched = schedule or resolve_schedule(config, config.batch_size)
    if config.lr_schedule == "plateau":
        return [
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                factor=config.lr_factor,
                patience=sched.lr_patience,
                min_lr=config.min_lr,
                verbose=0,
            )
        ]
    if config.lr_schedule == "cosine":
        lr0, lr_min, n = config.learning_rate, min(config.min_lr, config.learning_rate), max(1, sched.epochs)

        def cosine(epoch: int, lr: float) -> float:
            return float(lr_min + 0.5 * (lr0 - lr_min) * (1.0 + math.cos(math.pi * min(epoch, n) / n)))

        return [keras.callbacks.LearningRateScheduler(cosine, verbose=0)]
    return []


def _stratified_subset(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    if y.size <= k:
        return np.arange(y.size)
    rng = np.random.default_rng(seed)
    keep = rng.random(y.size) < k / y.size
    return np.flatnonzero(keep)


def fit_model(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool = False,
    echo: Callable[[str], None] = print,
    soft: np.ndarray | None = None,
    groups: tuple[np.ndarray, str] | None = None,
    val_groups: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Seeded, deterministic Keras training on raw windows (g) with integer labels.

    ``config.distill`` (har.training.distill): the teacher's soft targets for ``x_train`` are
    computed here once (or passed as ``soft``); ``groups`` = ``(subject or recording key per
    training window, "subject" | "recording")`` (har.training.distill.window_groups) is what the
    cross-fitted teacher ("minirocket_oof") splits by. ``val_groups`` (the recording or subject of
    each validation window, :func:`validation_groups`): the "auto" choices count won groups of
    validation windows (recording x activity) rather than windows (har.training.paired); None:
    groups by activity only. ``config.model.ensemble > 1``: the members
    are fitted and assembled by har.training.ensemble.

    Returns ``(model, history as plain floats)``; the history also holds ``"epochs_planned"``,
    when the z rotation was chosen here ``"rotation_z_deg"``, and with a teacher fitted here
    ``"distill_temperature"`` and ``"distill_teacher_accuracy"`` (one value each).

    ``config.model.rocket_features > 0`` (har.training.rocket.fit_with_rocket): the LSTM is fitted
    as without it, then MiniRocket's fixed branch and ridge head are added; the history says which
    ``rocket_beta`` the validation windows chose."""
    if config.model.rocket_features > 0:
        from har.training.rocket import fit_with_rocket

        return fit_with_rocket(config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, fit_model,
                               soft=soft, groups=groups, val_groups=val_groups)
    if config.distill == AUTO:
        return _fit_auto_distill(config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft, groups,
                                 val_groups)
    teacher: dict[str, Any] = {}
    if config.distill != "none" and soft is None:
        echo(f"distillation: fitting the {config.distill} teacher on the {len(y_train)} training windows")
        soft, teacher = _teacher(config, config.distill, x_train, y_train, n_classes, groups, echo)
    model, hist = _fit_with_targets(config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft,
                                    val_groups)
    return model, _with_teacher(hist, teacher)


def _teacher(
    config: TrainConfig,
    distill: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    groups: tuple[np.ndarray, str] | None,
    echo: Callable[[str], None],
) -> tuple[np.ndarray, dict[str, Any]]:
    """The soft targets of teacher ``distill`` for the training windows and what it said about
    itself (har.training.distill.teacher_targets)."""
    from har.training.distill import teacher_targets

    g, by = groups if groups is not None else (None, "subject")
    return teacher_targets(distill, x_train, y_train, n_classes, config.distill_temperature, config.seed, g, by, echo)


def _with_teacher(hist: dict[str, list[float]], teacher: dict[str, Any]) -> dict[str, list[float]]:
    """``hist`` plus the temperature and accuracy of a teacher fitted here (none: unchanged)."""
    if teacher:
        hist["distill_temperature"] = [float(teacher["temperature"])]
        hist["distill_teacher_accuracy"] = [float(teacher["teacher_accuracy"])]
    return hist


def _fit_auto_distill(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    soft: np.ndarray | None,
    groups: tuple[np.ndarray, str] | None,
    val_groups: np.ndarray | None,
) -> tuple[Any, dict[str, list[float]]]:
    """distill="auto": the first (or only) member is fitted without a teacher and with the
    cross-fitted one (AUTO_DISTILL_TEACHER); the teacher is kept only when its student is
    significantly better on the same validation windows (:func:`_paired_choice`), and the other
    ensemble members are fitted the same way. Without validation windows: no teacher."""
    single = dataclasses.replace(config, model=dataclasses.replace(config.model, ensemble=1))
    plain = dataclasses.replace(single, distill="none")
    from har.training.distill import INSTALL_HINT, teacher_available

    why_not = (
        f"aeon is not installed, training without a teacher ({INSTALL_HINT})" if not teacher_available()
        else "no validation windows, training without a teacher" if x_val.shape[0] == 0 else ""
    )
    if why_not:
        echo(f"distillation auto: {why_not}")
        return fit_model(dataclasses.replace(config, distill="none"), norm, x_train, y_train, x_val, y_val,
                         n_classes, progress, echo, val_groups=val_groups)
    taught = dataclasses.replace(single, distill=AUTO_DISTILL_TEACHER)
    teacher: dict[str, Any] = {}
    if soft is None:  # the teacher is fitted once; its targets serve every taught member
        soft, teacher = _teacher(config, taught.distill, x_train, y_train, n_classes, groups, echo)
    fits = []
    for cfg in (plain, taught):
        model, hist = fit_model(cfg, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo,
                                soft=soft if cfg is taught else None, val_groups=val_groups)
        pred = _val_predictions(model, x_val, norm)
        echo(f"distillation auto: {cfg.distill} -> validation accuracy {np.mean(pred == y_val):.4f}")
        fits.append((pred, model, hist))
    cmp = _paired_choice("distillation auto", ("none", taught.distill), y_val, fits[0][0], fits[1][0], echo,
                         val_groups)
    cfg = taught if cmp.complex_wins else plain
    _, model, hist = fits[1] if cmp.complex_wins else fits[0]
    chosen_soft = soft if cfg is taught else None
    if config.model.ensemble > 1:
        from har.training.ensemble import fit_ensemble

        full = dataclasses.replace(config, distill=cfg.distill)
        model, hist = fit_ensemble(full, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo,
                                   fit_model, first=(model, hist), soft=chosen_soft, val_groups=val_groups)
    hist = _with_teacher(hist, teacher)
    hist["distill_chosen"] = [1.0 if cmp.complex_wins else 0.0]
    hist.update(cmp.history("distill"))
    return model, hist


def _val_predictions(model: Any, x_val: np.ndarray, norm: Normalization) -> np.ndarray:
    """The class ``model`` predicts for each validation window (taken right after its fit)."""
    return np.argmax(predict_proba(model, x_val, norm), axis=-1)


def validation_groups(w: Any) -> np.ndarray:
    """The recording of each validation window of ``w`` (har.signal.Windows or the cache's
    window set): what the "auto" choices group validation windows by (with the label)."""
    return np.asarray(w.file_index).astype(str)


def _paired_choice(
    what: str, names: tuple[str, str], y_val: np.ndarray, pred_simple: np.ndarray, pred_complex: np.ndarray,
    echo: Callable[[str], None], val_groups: np.ndarray | None, by_accuracy: bool = False,
) -> PairedComparison:
    """The "auto" rule shared by the z rotation and the teacher: compare the simpler and the
    complex model on the same validation windows (har.training.paired), counting groups of
    windows (recording x activity: one person's one activity is one piece of evidence, not as many
    as it has windows), and say why one is kept. ``complex_wins`` of the result: keep the complex one.
    ``by_accuracy``: the decision is ``complex_more_accurate`` instead (the test is only printed)."""
    labels = np.asarray(y_val).astype(str)
    keys = labels if val_groups is None else np.char.add(np.char.add(np.asarray(val_groups).astype(str), "|"), labels)
    cmp = compare_paired(y_val, pred_simple, pred_complex, clusters=keys)
    echo(f"{what}: {cmp.describe(*names, chosen=cmp.complex_more_accurate if by_accuracy else None)}")
    return cmp


def _fit_with_targets(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    soft: np.ndarray | None,
    val_groups: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    if config.model.ensemble > 1:
        from har.training.ensemble import fit_ensemble

        return fit_ensemble(
            config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, fit_model, soft=soft,
            val_groups=val_groups,
        )
    aug = config.augment
    if aug.enabled and aug.rotation_z_deg == AUTO:
        return _fit_auto_rotation(config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft,
                                  val_groups)
    return _fit_once(config, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft)


def _fit_auto_rotation(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    soft: np.ndarray | None = None,
    val_groups: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """rotation_z_deg="auto": fit with each of ROTATION_CHOICES (0 and 180 degrees) and keep the
    one with the higher validation accuracy (ties: 0; :func:`_paired_choice` prints the paired sign
    test beside it, see the module docstring for why it does not decide). With more than
    AUTO_ROTATION_MAX_WINDOWS training windows the choice is made on a stratified subsample and
    the chosen configuration is then fitted on all windows."""
    if x_val.shape[0] == 0:
        echo("z rotation auto: no validation windows, using 0 degrees")
        cfg = dataclasses.replace(config, augment=dataclasses.replace(config.augment, rotation_z_deg=0.0))
        model, hist = _fit_once(cfg, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft)
        hist["rotation_z_deg"] = [0.0]
        return model, hist
    sub = _stratified_subset(y_train, AUTO_ROTATION_MAX_WINDOWS, config.seed)
    full = sub.size == y_train.size
    fits = []
    for deg in ROTATION_CHOICES:
        cfg = dataclasses.replace(config, augment=dataclasses.replace(config.augment, rotation_z_deg=deg))
        if progress:
            echo(f"z rotation auto: fitting with {deg:g} degrees" + ("" if full else f" ({sub.size} windows)"))
        s_sub = soft[sub] if soft is not None else None
        model, hist = _fit_once(cfg, norm, x_train[sub], y_train[sub], x_val, y_val, n_classes, progress, echo, s_sub)
        pred = _val_predictions(model, x_val, norm)
        echo(f"z rotation auto: {deg:g} degrees -> validation accuracy {np.mean(pred == y_val):.4f}")
        fits.append((pred, model, hist, cfg))
    simple, complex_ = (f"{d:g} degrees" for d in ROTATION_CHOICES)
    cmp = _paired_choice("z rotation auto", (simple, complex_), y_val, fits[0][0], fits[1][0], echo, val_groups,
                         by_accuracy=True)
    _, model, hist, cfg = fits[1] if cmp.complex_more_accurate else fits[0]
    deg = cfg.augment.rotation_z_deg
    if not full:
        model, hist = _fit_once(cfg, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, soft)
    hist["rotation_z_deg"] = [float(deg)]
    hist.update(cmp.history("rotation_z"))
    return model, hist


def _optimizer(config: TrainConfig, keras: Any) -> Any:
    """Adam, or AdamW when ``config.weight_decay > 0``; gradient-norm clipping when ``clipnorm > 0``."""
    kw: dict[str, Any] = {"learning_rate": config.learning_rate}
    if config.clipnorm > 0:
        kw["clipnorm"] = config.clipnorm
    if config.weight_decay > 0:
        return keras.optimizers.AdamW(weight_decay=config.weight_decay, **kw)
    return keras.optimizers.Adam(**kw)


def _fit_once(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    soft: np.ndarray | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    from har.training._tf import import_tf
    from har.training.model import build_model, set_normalization

    tf, keras = import_tf()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    wc = config.window
    from har.training import distributed

    dist = distributed.active()  # `har train --distributed`: build and compile inside the strategy's scope
    scope = dist.scope() if dist is not None else contextlib.nullcontext()

    wstats = None
    if config.model.window_features:  # the fixed standardisation of the window features (har.training.window_features)
        from har.training.window_features import training_stats

        wstats = training_stats(x_train, wc.rate_hz)

    def build() -> Any:
        m = build_model(config.model, wc.window_samples, x_train.shape[-1], n_classes, rate_hz=wc.rate_hz)
        set_normalization(m, norm.mean, norm.std)
        if wstats is not None:
            from har.training.window_features import set_feature_stats

            set_feature_stats(m, *wstats)
        return m

    smoothing = float(config.label_smoothing)

    def loss(y_true: Any, y_pred: Any) -> Any:
        onehot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), n_classes)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=smoothing)

    loss_fn: Any = loss if smoothing > 0 else "sparse_categorical_crossentropy"
    metric: Any = "accuracy"
    labels = y_train
    if config.augment.mixing:  # batch mixing (har.training.augment.mix_batch): mixed one-hot targets
        from har.errors import ConfigError

        if soft is not None or dist is not None or not isinstance(x_train, np.ndarray):
            raise ConfigError(
                f"mix {config.augment.mix} works with in-memory training only (not with --distill, "
                "--distributed or the window cache): train without one of them"
            )

        def mixed_loss(y_true: Any, y_pred: Any) -> Any:
            return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=smoothing)

        loss_fn = mixed_loss
        y_val = np.eye(n_classes, dtype=np.float32)[y_val]
    if soft is not None:  # distillation: packed [label, weight, soft...] targets (har.training.distill)
        from har.training.distill import accuracy_metric, make_loss, pack_targets

        if dist is not None:
            from har.errors import ConfigError

            raise ConfigError("--distill does not work with --distributed yet: train without one of them")
        loss_fn = make_loss(tf, keras, n_classes, config.distill_alpha, smoothing)
        metric = accuracy_metric(tf)
        y_train, y_val = pack_targets(y_train, soft, n_classes), pack_targets(y_val, None, n_classes)
    with scope:
        model = build()
        model.compile(
            optimizer=_optimizer(config, keras),
            loss=loss_fn,
            metrics=[metric],
            **(dist.compile_kwargs() if dist is not None else {}),
        )
    has_val = x_val.shape[0] > 0
    sched = resolve_schedule(config, x_train.shape[0])
    epochs, steps = sched.epochs, sched.steps_per_epoch
    if progress:
        echo(
            f"schedule: {epochs} epochs max ({steps} steps each), early-stopping patience {sched.patience}, "
            f"plateau patience {sched.lr_patience}"
        )
    tty = progress and sys.stdout.isatty()

    class EpochLine(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        """One line per epoch through ``echo``; on a terminal also a live batch counter."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._t = self._shown = time.monotonic()
            self._epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            now = time.monotonic()
            if tty and now - self._shown > 0.5:
                self._shown = now
                loss = (logs or {}).get("loss", float("nan"))
                sys.stdout.write(f"\repoch {self._epoch + 1}/{epochs}  batch {batch + 1}/{steps}  loss {loss:.4f}")
                sys.stdout.flush()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            if tty:
                sys.stdout.write("\r\033[K")
                sys.stdout.flush()
            parts = [f"epoch {epoch + 1}/{epochs}", f"loss {logs.get('loss', float('nan')):.4f}"]
            parts.append(f"acc {logs.get('accuracy', float('nan')):.3f}")
            if "val_loss" in logs:
                parts.append(f"val_loss {logs['val_loss']:.4f}")
                parts.append(f"val_acc {logs.get('val_accuracy', float('nan')):.3f}")
            parts.append(f"{time.monotonic() - self._t:.1f}s")
            echo("  ".join(parts))

    callbacks: list[Any] = []
    if has_val:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=sched.patience, min_delta=MIN_DELTA, restore_best_weights=True
            )
        )
        callbacks += lr_callbacks(config, keras, "val_loss", sched)
    elif config.lr_schedule == "cosine":  # no validation data: fixed length, never the training loss
        callbacks += lr_callbacks(config, keras, "val_loss", sched)
    if progress:
        callbacks.append(EpochLine())
    weights = class_weights(labels, n_classes) if config.class_weights else None
    if dist is not None:  # `har train --distributed` (har.training.distributed): arrays or cached windows
        cw = None if weights is None else np.array([weights[k] for k in range(n_classes)], np.float32)
        hist = dist.fit_windows(
            model, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
            sample_weight=None if cw is None else cw[y_train],
            global_batch=config.batch_size, seed=config.seed, augment=config.augment, mean=norm.mean, std=norm.std,
            epochs=epochs, callbacks=callbacks,
        )
        model = dist.local_model(model, build)
    elif not isinstance(x_train, np.ndarray):  # windows read through the cache (har.training.stream)
        from har.training.stream import fit_datasets

        train_ds, val_ds = fit_datasets(config, norm, x_train, y_train, x_val, y_val, weights)
        hist = model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, callbacks=callbacks)
    elif config.augment.active:
        from har.training.augment import make_batches

        sw = None
        if weights is not None:
            sw = np.array([weights[int(k)] for k in range(n_classes)], dtype=np.float32)[labels]
        batches = make_batches(
            x_train,
            y_train,
            config.batch_size,
            config.augment,
            config.seed,
            np.asarray(norm.mean, dtype=np.float32),
            np.asarray(norm.std, dtype=np.float32),
            sample_weight=sw,
            n_classes=n_classes,
        )
        val = (normalize(x_val, norm), y_val) if has_val else None
        hist = model.fit(batches, validation_data=val, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    else:
        val = (normalize(x_val, norm), y_val) if has_val else None
        weight_kw: dict[str, Any] = {"class_weight": weights}
        if soft is not None and weights is not None:  # Keras reads class_weight off 1-D labels only
            weight_kw = {"sample_weight": np.array([weights[k] for k in range(n_classes)], dtype=np.float32)[labels]}
        hist = model.fit(
            normalize(x_train, norm),
            y_train,
            validation_data=val,
            epochs=epochs,
            batch_size=config.batch_size,
            **weight_kw,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    history["epochs_planned"] = [float(epochs)]
    return model, history
