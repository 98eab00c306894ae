"""Training: DATA -> model directory (see docs/architecture.md, "Model directory").

Steps: load recordings, split by subject (validation subjects carved from the training ones),
cut windows per recording, fit per-axis normalisation on the training windows only, optionally
cross-validate over subjects (``config.cv_folds``, har.training.cv), train the (Conv1D +) LSTM with
on-the-fly augmentation of training batches (har.training.augment), class weights, a learning-rate
schedule and early stopping on the validation subjects, evaluate on the test subjects and write
``metadata.json``, ``model.weights.h5``, ``deploy_windows.npz``, reports and figures.

TensorFlow is imported only through :func:`har.training._tf.import_tf`, inside :func:`train`."""

from __future__ import annotations

import dataclasses
import json
import os
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
from har.scoring.metrics import compute_metrics, format_report, group_accuracy, subject_spread
from har.signal import Windows
from har.training.cv import format_cv, run_cv
from har.training.fit import (  # noqa: F401  (re-exported: the public names lived here before fit.py)
    MIN_STD,
    class_weights,
    encode,
    fit_model,
    fit_normalization,
    holdout_recordings,
    holdout_windows,
    lr_callbacks,
    normalize,
    validation_groups,
)

MAX_CALIB_WINDOWS = 500
MAX_HELDOUT_WINDOWS = 1000


@dataclass
class TrainResult:
    """What :func:`train` produced: the model directory, its metadata and the test metrics."""

    out_dir: Path
    metadata: ModelMetadata
    metrics: dict[str, Any]


def _per_class_counts(w: Windows) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(Counter(w.y.tolist()).items())}


def _session_key(rec: Recording) -> str:
    return rec.meta.session_id or (rec.path.stem if rec.path else "")


def cv_grouping(
    recs: Sequence[Any], dev: Sequence[int], split_by: str, folds: int, echo: Callable[[str], None]
) -> tuple[Callable[[Any], Any], str]:
    """The cross-validation fold key over the development recordings ``dev``: by subject (by session
    when the split was by session), else, with fewer groups than ``folds`` (no subject ids),
    stratified by recording. Says which on ``echo``."""
    key: Callable[[Any], Any] = (lambda r: r.subject) if split_by != "session" else _session_key
    grouped_by = "subject"
    if len({key(recs[i]) for i in dev}) < folds:  # no subject ids: stratified recordings
        key, grouped_by = _recording_key, "recording"
    echo(f"cross-validation: {folds} folds over {len({key(recs[i]) for i in dev})} {grouped_by}(s)")
    return key, grouped_by


def _recording_key(rec: Recording) -> str:
    return str(rec.path) if rec.path else f"{rec.subject}/{rec.meta.session_id}"


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


def _validation_without_subjects(
    recs: Sequence[Recording], split: Split, tr: Windows, config: TrainConfig, echo: Callable[[str], None]
) -> tuple[Windows, Windows, Split]:
    """No validation subjects (one training subject, or ``--test`` data from one subject): hold
    out a label-stratified fraction of the training recordings, or with a single recording the
    tail of each label's windows (:func:`har.training.fit.holdout_windows`)."""
    fraction = config.val_fraction if config.val_fraction > 0 else 0.2
    keep, val = holdout_recordings(recs, split.train, fraction, config.seed + 1)
    wc = config.window
    if val:
        echo(f"validation: {len(val)} of {len(split.train)} training recordings held out (stratified by label)")
        split = dataclasses.replace(split, train=keep, val=val)
        return windows_for(recs, keep, wc), windows_for(recs, val, wc), split
    mt, mv = holdout_windows(tr, fraction, wc.window_s)
    if mv.any() and mt.any():
        echo(f"validation: the last {fraction:g} of each label's windows (overlapping training windows dropped)")
        return tr.select(mt), tr.select(mv), split
    return tr, Windows.empty(wc.window_samples, tr.x.shape[-1]), split


def train(
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    test_data: Sequence[str | os.PathLike[str]] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    force: bool = False,
    reference: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    rocket_named: bool = False,
) -> TrainResult:
    """Train a model on ``data`` (recording files or directories) and write it to ``out_dir``.

    ``test_data`` given: it is the test set and all of ``data`` trains (minus validation
    subjects); otherwise subjects are split (``config.test_subjects`` or ``config.test_fraction``).
    ``progress`` prints one line per epoch through ``echo``. Existing files in ``out_dir`` are
    overwritten (the CLI refuses non-empty directories without --overwrite). Before any training,
    har.training.preflight checks ``out_dir``, the data's plausibility and the classes per split
    (``force`` accepts implausible data and classes without test windows, with warnings).
    ``reference`` also fits MiniRocket (har.training.reference, needs aeon) on the same windows and
    reports it beside har. ``cache_dir`` given: the windows are read through the window cache in
    that directory (har.training.stream: recordings converted once, never all windows in memory).
    ``rocket_named``: the user named ``config.model.rocket_features`` (`har train --rocket-features
    N`); where the MiniRocket branch cannot be trained (window cache, several workers, windows under
    9 samples, no aeon, a class with one training window) it is then refused in one line, while the
    default's branch is dropped with a note and ``rocket_features`` 0 saved (har.training.rocket.settle)."""
    from har.training import distributed, preflight
    from har.training import rocket as rocket_branch

    if cache_dir is not None:
        from har.training.stream import train_streaming

        return train_streaming(data, out_dir, config, cache_dir, test_data=test_data, progress=progress, echo=echo,
                               force=force, reference=reference, rocket_named=rocket_named)

    t_start = time.monotonic()
    if reference:
        from har.training.reference import require_aeon

        require_aeon()
    if config.distill != "none":
        from har.training.distill import require_teacher

        require_teacher(config.distill)
    config = rocket_branch.settle(config, rocket_named, echo, distributed=distributed.active() is not None)
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

    if len(va) == 0:
        tr, va, split = _validation_without_subjects(all_recs, split, tr, config, echo)
        va = va.select(np.isin(va.y, classes))
    if config.model.rocket_features > 0:  # the ridge fits on the training + validation windows
        few = rocket_branch.too_few_windows(np.concatenate([encode(tr.y, classes), encode(va.y, classes)]))
        if few:
            config = rocket_branch.without_branch(config, few, rocket_named, echo)
    ytr, yte = encode(tr.y, classes), encode(te.y, classes)
    yva = encode(va.y, classes)
    norm = fit_normalization(tr.x)
    echo(
        f"data: {len(all_recs)} recording(s); split by {split.by}; windows train {len(tr)} "
        f"({', '.join(split.train_subjects)}), val {len(va)} ({', '.join(split.val_subjects) or '-'}), "
        f"test {len(te)} ({', '.join(split.test_subjects)}); classes: {', '.join(classes)}"
    )
    if len(va) == 0:
        echo("warning: no validation windows: training runs its full length without early stopping")

    cv_result: dict[str, Any] | None = None
    if config.cv_folds:
        dev = split.train + split.val
        key, grouped_by = cv_grouping(all_recs, dev, split.by, config.cv_folds, echo)
        cv_result = run_cv(all_recs, dev, classes, config, key=key, echo=echo, grouped_by=grouped_by)
        echo("final model: training on all training subjects")
    from har.training.distill import teacher_groups  # the cross-fitted teacher splits by subject

    groups = teacher_groups(config.distill, tr)
    model, hist = fit_model(config, norm, tr.x, ytr, va.x, yva, len(classes), progress, echo, groups=groups,
                            val_groups=validation_groups(va))
    probs = model.predict(normalize(te.x, norm), batch_size=256, verbose=0)
    pred = np.asarray(probs).argmax(axis=1)
    metrics = compute_metrics(yte, pred, classes)
    per_subject = group_accuracy(yte, pred, te.subject)
    ref: dict[str, Any] | None = None
    if reference:
        from har.training.reference import minirocket_reference

        echo("reference: fitting MiniRocket (aeon) on the same training windows")
        ref = minirocket_reference(
            np.concatenate([tr.x, va.x]), np.concatenate([ytr, yva]), te.x, yte, classes, te.subject, config.seed
        )
        echo(f"reference: MiniRocket accuracy {ref['accuracy']:.4f}, macro-F1 {ref['macro_f1']:.4f}")

    rng = np.random.default_rng(config.seed)
    ci = _subset(len(tr), MAX_CALIB_WINDOWS, rng)
    hi = _subset(len(te), MAX_HELDOUT_WINDOWS, rng)
    return write_model_dir(
        out_dir, model, hist, config, classes, norm, split,
        summary=_data_summary(all_recs, split, tr, va, te),
        data_fingerprint=fingerprint([r.path for r in all_recs if r.path is not None]),
        deploy_windows=(tr.x[ci], te.x[hi], yte[hi]),
        metrics=metrics, per_subject=per_subject, n_test=len(te), cv_result=cv_result, ref=ref, t_start=t_start,
    )


def write_model_dir(
    out_dir: str | os.PathLike[str],
    model: Any,
    hist: dict[str, list[float]],
    config: TrainConfig,
    classes: Sequence[str],
    norm: Normalization,
    split: Split,
    *,
    summary: dict[str, Any],
    data_fingerprint: str,
    deploy_windows: tuple[np.ndarray, np.ndarray, np.ndarray],
    metrics: dict[str, Any],
    per_subject: dict[str, Any],
    n_test: int,
    cv_result: dict[str, Any] | None,
    ref: dict[str, Any] | None,
    t_start: float,
) -> TrainResult:
    """Write the model directory (weights, deploy windows, metadata, reports, figures) of a fitted
    model; shared by the in-memory path and the cache path (har.training.stream).
    ``deploy_windows``: (calibration windows from training, held-out test windows, their labels)."""
    wc = config.window
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out / WEIGHTS_FILE))
    calib_x, heldout_x, heldout_y = deploy_windows
    np.savez(
        out / DEPLOY_WINDOWS_FILE,
        calib_x=np.asarray(calib_x, dtype=np.float32),
        heldout_x=np.asarray(heldout_x, dtype=np.float32),
        heldout_y=np.asarray(heldout_y).astype(np.int32),
    )
    # what the "auto" settings resolved to (the stored train_config keeps "auto")
    summary["resolved"] = {"epochs_planned": int(hist.get("epochs_planned", [0])[0])}
    if "rotation_z_deg" in hist:
        summary["resolved"]["rotation_z_deg"] = float(hist["rotation_z_deg"][0])
    if "rocket_beta" in hist:  # MiniRocket branch (har.training.rocket): the head's combination
        summary["resolved"]["rocket_beta"] = float(hist["rocket_beta"][0])
        summary["resolved"]["rocket_lstm"] = bool(hist["rocket_lstm"][0])
    if cv_result is not None:
        cv_keys = ("k", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")
        summary["cv"] = {k: cv_result[k] for k in cv_keys}
    meta = ModelMetadata(
        classes=tuple(classes),
        window=wc,
        normalization=norm,
        train_config=config,
        data_fingerprint=data_fingerprint,
        metrics={"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n_test_windows": n_test},
        data_summary=summary,
        created=utc_now_iso(),
    )
    save_metadata(out, meta)
    epochs_run = len(hist.get("loss", []))
    best_epoch = int(np.argmin(hist["val_loss"])) + 1 if hist.get("val_loss") else epochs_run
    title = f"har model {out.name}: test set ({split.by} split)"
    text = format_report(metrics, title=title, per_group=per_subject, group_name="subject")
    text += (
        f"\ntrain subjects: {', '.join(split.train_subjects)}\nval subjects:   {', '.join(split.val_subjects) or '-'}\n"
        f"test subjects:  {', '.join(split.test_subjects)}\nepochs run:     {epochs_run} (best {best_epoch}, "
        f"at most {summary['resolved']['epochs_planned']})\n"
    )
    if "rotation_z_deg" in summary["resolved"]:
        text += f"z rotation:     {summary['resolved']['rotation_z_deg']:g} degrees (auto, by validation accuracy)\n"
    if "rocket_beta" in summary["resolved"]:
        r = summary["resolved"]
        how = f"LSTM + {r['rocket_beta']:g} x ridge" if r["rocket_lstm"] else f"ridge only (x{r['rocket_beta']:g})"
        text += f"MiniRocket:     {config.model.rocket_features} features in the model; head {how} " + (
            "(by validation)\n" if isinstance(config.model.rocket_beta, str) else "(fixed beta)\n")
    if cv_result is not None:
        text += format_cv(cv_result)
    if ref is not None:
        from har.training.reference import format_reference

        text += format_reference(ref, metrics["accuracy"], metrics["macro_f1"])
    (out / REPORT_TXT).write_text(text, encoding="utf-8")
    report = {
        "metrics": metrics,
        "per_subject": per_subject,
        "subject_spread": subject_spread(per_subject),
        "reference": ref,
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
