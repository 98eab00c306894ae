"""Training: DATA -> model directory (see docs/architecture.md, "Model directory").

Steps: load recordings, split by subject (validation subjects carved from the training ones),
cut windows per recording, fit per-axis normalisation on the training windows only, optionally
cross-validate over subjects (``config.cv_folds``, har.training.cv), train the (Conv1D +) LSTM with
on-the-fly augmentation of training batches (har.training.augment), class weights, a learning-rate
schedule and early stopping on the validation subjects, evaluate on the test subjects and write
``metadata.json``, ``model.weights.h5``, ``deploy_windows.npz``, reports and figures.

TensorFlow is imported only through :func:`har.training._tf.import_tf`, inside :func:`train`."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.layout import (  # noqa: F401 - file names re-exported for callers of this module
    CONFUSION_PNG,
    CURVES_PNG,
    DEPLOY_WINDOWS_FILE,
    F1_PNG,
    REPORT_JSON,
    REPORT_TXT,
    WEIGHTS_FILE,
)
from har.artifacts.metadata import ModelMetadata, Normalization, save_metadata
from har.config import TrainConfig
from har.dataset import Split, fingerprint, load_recordings, split_recordings, windows_for
from har.errors import TrainingError
from har.recording.format import Recording, utc_now_iso
from har.scoring.metrics import compute_metrics, format_report, group_accuracy
from har.signal import Windows

MAX_CALIB_WINDOWS = 500
MAX_HELDOUT_WINDOWS = 1000


@dataclass
class TrainResult:
    """What :func:`train` produced: the model directory, its metadata and the test metrics."""

    out_dir: Path
    metadata: ModelMetadata
    metrics: dict[str, Any]


def fit_normalization(x: np.ndarray) -> Normalization:
    """Per-axis mean and standard deviation (g) over windows x (n, window, channels)."""
    return Normalization.fit(x)


def normalize(x: np.ndarray, norm: Normalization) -> np.ndarray:
    """``(x - mean) / std`` per axis, float32."""
    return norm.apply(x)


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Balanced weights ``n / (n_classes * count_k)`` for class indices ``y``."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    n = float(counts.sum())
    return {k: (n / (n_classes * counts[k]) if counts[k] > 0 else 0.0) for k in range(n_classes)}


def _encode(y: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in y.tolist()], dtype=np.int64)


def _per_class_counts(w: Windows) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(Counter(w.y.tolist()).items())}


def _session_key(rec: Recording) -> str:
    return rec.meta.session_id or (rec.path.stem if rec.path else "")


def _no_windows_message(what: str, config: TrainConfig) -> str:
    wc = config.window
    return (
        f"no labelled {what} windows: every window of {wc.window_s:g} s at {wc.rate_hz:g} Hz contains unlabeled "
        f"samples, a gap, or is under {wc.purity:g} pure (label the data, or lower --window / --purity)"
    )


def _subset(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _data_summary(recs: Sequence[Recording], split: Split, tr: Windows, va: Windows, te: Windows) -> dict[str, Any]:
    def files(idx: Sequence[int]) -> list[str]:
        return [str(recs[i].path) if recs[i].path else recs[i].meta.session_id for i in idx]

    return {
        "split_by": split.by,
        "train_subjects": list(split.train_subjects),
        "val_subjects": list(split.val_subjects),
        "test_subjects": list(split.test_subjects),
        "windows": {"train": len(tr), "val": len(va), "test": len(te)},
        "windows_per_class": {
            "train": _per_class_counts(tr),
            "val": _per_class_counts(va),
            "test": _per_class_counts(te),
        },
        "files": {"train": files(split.train), "val": files(split.val), "test": files(split.test)},
    }


def train(
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    test_data: Sequence[str | os.PathLike[str]] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    force: bool = False,
) -> TrainResult:
    """Train a model on ``data`` (recording files or directories) and write it to ``out_dir``.

    ``test_data`` given: it is the test set and all of ``data`` trains (minus validation
    subjects); otherwise subjects are split (``config.test_subjects`` or ``config.test_fraction``).
    ``progress`` prints one line per epoch through ``echo``. Existing files in ``out_dir`` are
    overwritten (the CLI refuses non-empty directories without --overwrite). Before any training,
    har.training.preflight checks ``out_dir``, the data's plausibility and the classes per split
    (``force`` accepts implausible data and classes without test windows, with warnings)."""
    from har.training import preflight

    t_start = time.monotonic()
    data = list(data)
    if not data:
        raise TrainingError("no training data given")
    preflight.check_out_dir(out_dir)
    recs = load_recordings(data, progress=progress)
    test_recs = load_recordings(list(test_data), progress=progress) if test_data else []
    all_recs = recs + test_recs
    preflight.check_data(all_recs, config, force=force, echo=echo)
    split = split_recordings(all_recs, config, n_test_recordings=len(test_recs), echo=echo)
    wc = config.window
    tr = windows_for(all_recs, split.train, wc)
    va = windows_for(all_recs, split.val, wc)
    te = windows_for(all_recs, split.test, wc)
    preflight.check_classes(tr.y, te.y, split.test_subjects, force=force, echo=echo)
    if len(tr) == 0:
        raise TrainingError(_no_windows_message("training", config))
    classes = sorted(set(tr.y.tolist()))
    if len(classes) < 2:
        raise TrainingError(f"need at least 2 classes to train, the training windows have only {classes[0]!r}")
    missing = sorted(set(te.y.tolist()) - set(classes))
    if missing:
        raise TrainingError(
            f"test class(es) {', '.join(missing)} have no training windows (choose other --test-subjects or --seed)"
        )
    if len(te) == 0:
        raise TrainingError(_no_windows_message("test", config))
    extra_val = sorted(set(va.y.tolist()) - set(classes))
    if extra_val:
        echo(f"warning: validation class(es) {', '.join(extra_val)} not in training: those windows are ignored")
        va = va.select(np.isin(va.y, classes))

    ytr, yte = _encode(tr.y, classes), _encode(te.y, classes)
    yva = _encode(va.y, classes)
    norm = fit_normalization(tr.x)
    echo(
        f"data: {len(all_recs)} recording(s); split by {split.by}; windows train {len(tr)} "
        f"({', '.join(split.train_subjects)}), val {len(va)} ({', '.join(split.val_subjects) or '-'}), "
        f"test {len(te)} ({', '.join(split.test_subjects)}); classes: {', '.join(classes)}"
    )
    if len(va) == 0:
        echo("warning: no validation windows: early stopping watches the training loss")

    cv_result: dict[str, Any] | None = None
    if config.cv_folds:
        from har.training.cv import run_cv

        dev = split.train + split.val
        key = (lambda r: r.subject) if split.by != "session" else _session_key
        echo(f"cross-validation: {config.cv_folds} folds over {len({key(all_recs[i]) for i in dev})} subject(s)")
        cv_result = run_cv(all_recs, dev, classes, config, key=key, echo=echo)
        echo("final model: training on all training subjects")
    history = _fit(config, norm, tr.x, ytr, va.x, yva, len(classes), progress, echo)
    model, hist = history
    probs = model.predict(normalize(te.x, norm), batch_size=256, verbose=0)
    pred = np.asarray(probs).argmax(axis=1)
    metrics = compute_metrics(yte, pred, classes)
    per_subject = group_accuracy(yte, pred, te.subject)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out / WEIGHTS_FILE))
    rng = np.random.default_rng(config.seed)
    ci = _subset(len(tr), MAX_CALIB_WINDOWS, rng)
    hi = _subset(len(te), MAX_HELDOUT_WINDOWS, rng)
    np.savez(
        out / DEPLOY_WINDOWS_FILE,
        calib_x=tr.x[ci].astype(np.float32),
        heldout_x=te.x[hi].astype(np.float32),
        heldout_y=yte[hi].astype(np.int32),
    )
    summary = _data_summary(all_recs, split, tr, va, te)
    if cv_result is not None:
        cv_keys = ("k", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")
        summary["cv"] = {k: cv_result[k] for k in cv_keys}
    meta = ModelMetadata(
        classes=tuple(classes),
        window=wc,
        normalization=norm,
        train_config=config,
        data_fingerprint=fingerprint([r.path for r in all_recs if r.path is not None]),
        metrics={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n_test_windows": len(te)},
        data_summary=summary,
        created=utc_now_iso(),
    )
    save_metadata(out, meta)
    epochs_run = len(hist.get("loss", []))
    monitor = hist.get("val_loss") or hist.get("loss") or [0.0]
    best_epoch = int(np.argmin(monitor)) + 1
    title = f"har model {out.name}: test set ({split.by} split)"
    text = format_report(metrics, title=title, per_group=per_subject, group_name="subject")
    text += (
        f"\ntrain subjects: {', '.join(split.train_subjects)}\nval subjects:   {', '.join(split.val_subjects) or '-'}\n"
        f"test subjects:  {', '.join(split.test_subjects)}\nepochs run:     {epochs_run} (best {best_epoch})\n"
    )
    if cv_result is not None:
        from har.training.cv import format_cv

        text += format_cv(cv_result)
    (out / REPORT_TXT).write_text(text, encoding="utf-8")
    report = {
        "metrics": metrics,
        "per_subject": per_subject,
        "history": hist,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "data_summary": summary,
        "cv": cv_result,
        "train_seconds": round(time.monotonic() - t_start, 2),
    }
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    from har.scoring.plots import plot_confusion, plot_per_class_f1, plot_training_curves

    plot_confusion(metrics["confusion"], classes, out / CONFUSION_PNG)
    plot_training_curves(hist, out / CURVES_PNG)
    plot_per_class_f1(metrics, out / F1_PNG)
    return TrainResult(out_dir=out, metadata=meta, metrics=report)


def lr_callbacks(config: TrainConfig, keras: Any, monitor: str) -> list[Any]:
    """Keras callbacks for ``config.lr_schedule``: "plateau" = ReduceLROnPlateau on ``monitor``
    (factor ``lr_factor`` after ``lr_patience`` epochs, floor ``min_lr``); "cosine" = per-epoch
    cosine decay from ``learning_rate`` to ``min_lr`` over ``epochs``; "constant" = none."""
    if config.lr_schedule == "plateau":
        return [
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                factor=config.lr_factor,
                patience=config.lr_patience,
                min_lr=config.min_lr,
                verbose=0,
            )
        ]
    if config.lr_schedule == "cosine":
        lr0, lr_min, n = config.learning_rate, min(config.min_lr, config.learning_rate), max(1, config.epochs)

        def cosine(epoch: int, lr: float) -> float:
            return float(lr_min + 0.5 * (lr0 - lr_min) * (1.0 + math.cos(math.pi * min(epoch, n) / n)))

        return [keras.callbacks.LearningRateScheduler(cosine, verbose=0)]
    return []


def _fit(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[Any, dict[str, list[float]]]:
    """Seeded, deterministic Keras training. Returns ``(model, history as plain floats)``."""
    from har.training._tf import import_tf
    from har.training.model import build_model

    tf, keras = import_tf()
    keras.backend.clear_session()
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    wc = config.window
    model = build_model(config.model, wc.window_samples, x_train.shape[-1], n_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=config.learning_rate, **({"clipnorm": config.clipnorm} if config.clipnorm > 0 else {})
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    has_val = x_val.shape[0] > 0
    epochs = config.epochs
    steps = -(-x_train.shape[0] // config.batch_size)

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

    monitor = "val_loss" if has_val else "loss"
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience, restore_best_weights=True)
    ]
    callbacks += lr_callbacks(config, keras, monitor)
    if progress:
        callbacks.append(EpochLine())
    weights = class_weights(y_train, n_classes) if config.class_weights else None
    val = (normalize(x_val, norm), y_val) if has_val else None
    if config.augment.active:
        from har.training.augment import make_batches

        sw = None
        if weights is not None:
            sw = np.array([weights[int(k)] for k in range(n_classes)], dtype=np.float32)[y_train]
        batches = make_batches(
            x_train,
            y_train,
            config.batch_size,
            config.augment,
            config.seed,
            np.asarray(norm.mean, dtype=np.float32),
            np.asarray(norm.std, dtype=np.float32),
            sample_weight=sw,
        )
        hist = model.fit(batches, validation_data=val, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    else:
        hist = model.fit(
            normalize(x_train, norm),
            y_train,
            validation_data=val,
            epochs=epochs,
            batch_size=config.batch_size,
            class_weight=weights,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    return model, history
