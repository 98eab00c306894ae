"""Leave-subjects-out K-fold cross-validation (``har train --cv K``).

The development subjects (every subject of DATA that is not a test subject) are partitioned into
K folds with a seeded shuffle (:func:`make_folds`: disjoint, each subject in exactly one fold).
For fold k the fold's subjects are the test set; validation subjects are carved from the others
exactly as in a normal run (:func:`har.dataset.carve_validation`), windows are cut per recording
*after* the split, normalisation is fitted on the fold's training windows only, and a fresh model
is trained with the same config. The final model (``har train``'s output) is then trained as
usual; the CV numbers estimate how that recipe generalises to new people.

Fitting is :func:`har.training.fit.fit_model` (shared with har.training.train, which imports
this module, never the other way); TensorFlow is imported lazily when :func:`run_cv` trains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from har.config import TrainConfig
from har.dataset import carve_validation, windows_for
from har.errors import TrainingError
from har.recording.format import Recording
from har.scoring.metrics import compute_metrics, group_accuracy, mean_std


def make_folds(subjects: Sequence[str], k: int, seed: int, strata: dict[str, str] | None = None) -> list[list[str]]:
    """Partition distinct ``subjects`` into ``k`` folds (sizes differ by at most one), seeded.

    ``strata`` (key -> label, e.g. each recording's majority label when folds are over recordings):
    keys are dealt round-robin within each stratum, so every fold gets a share of every label.
    Raises TrainingError when there are fewer subjects than folds."""
    subs = sorted(set(subjects))
    if k < 2:
        raise TrainingError(f"cross-validation needs at least 2 folds, got {k}")
    if len(subs) < k:
        raise TrainingError(f"--cv {k} needs at least {k} training subjects, the data has {len(subs)}")
    order = [subs[i] for i in np.random.default_rng(seed).permutation(len(subs))]
    if strata:
        order = sorted(order, key=lambda s: strata.get(s, ""))  # stable: shuffled within a stratum
    return [sorted(order[i::k]) for i in range(k)]


def run_cv(
    recordings: Sequence[Recording],
    indices: Sequence[int],
    classes: Sequence[str],
    config: TrainConfig,
    key: Callable[[Recording], str] = lambda r: r.subject,
    echo: Callable[[str], None] = print,
    on_fold: Callable[[int, dict[str, Any]], None] | None = None,
    grouped_by: str = "subject",
    folds: int | None = None,
    windows: Callable[..., Any] = windows_for,
) -> dict[str, Any]:
    """Cross-validate ``config`` over the recordings at ``indices``, grouped by ``key`` (subject).

    ``classes`` fixes the label set (windows of other labels are ignored). ``folds`` overrides
    ``config.cv_folds``. ``grouped_by="recording"`` (data without subject ids; ``key`` names
    the recording) makes the folds stratified by each recording's majority label. Validation
    inside a fold: held-out subjects (``config.val_fraction``), or with a single remaining subject
    a label-stratified fraction of its recordings (har.training.fit). ``on_fold(fold_index,
    fold_dict)`` is called after each fold (0-based index; the dict as in ``folds`` below) and may
    raise to stop early (e.g. an Optuna pruner). ``windows``: how windows are cut for a list of
    recordings (har.dataset.windows_for; har.training.stream.CachedWindowsFor reads a window cache).

    Returns a JSON-ready dict: ``folds`` (per fold: test subjects, accuracy, macro_f1, windows,
    per_subject, epochs; with the MiniRocket branch ``beta_sweep``, har.training.rocket.beta_sweep),
    ``accuracy_mean``, ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std``
    (sample std over folds), ``k``, ``per_subject`` (accuracy of each subject when it was held out)."""
    from har.training.distill import teacher_groups
    from har.training.fit import (
        _majority_label,
        encode,
        fit_model,
        fit_normalization,
        holdout_recordings,
        predict_proba,
        validation_groups,
    )

    k = folds if folds is not None else config.cv_folds
    keys = sorted({key(recordings[i]) for i in indices})
    strata = None
    if grouped_by == "recording":
        strata = {key(recordings[i]): _majority_label(recordings[i]) for i in indices}
    vf = config.val_fraction or 0.2
    parts = make_folds(keys, k, config.seed, strata)
    wc = config.window
    out_folds: list[dict[str, Any]] = []
    per_subject: dict[str, dict[str, float]] = {}
    for fi, fold in enumerate(parts):
        rest = [s for s in keys if s not in fold]
        pick = lambda ks: [i for i in indices if key(recordings[i]) in set(ks)]  # noqa: E731
        if grouped_by == "recording":
            tr_idx, va_idx = holdout_recordings(recordings, pick(rest), vf, config.seed + 1 + fi)
            va_keys = sorted({key(recordings[i]) for i in va_idx})
        else:
            tr_keys, va_keys = carve_validation(rest, config.val_fraction, config.seed + 1 + fi)
            tr_idx, va_idx = pick(tr_keys), pick(va_keys)
            if not va_idx:
                tr_idx, va_idx = holdout_recordings(recordings, tr_idx, vf, config.seed + 1 + fi)
        tr = windows(recordings, tr_idx, wc)
        va = windows(recordings, va_idx, wc)
        te = windows(recordings, pick(fold), wc)
        tr, va, te = (w.select(np.isin(w.y, list(classes))) for w in (tr, va, te))
        if len(tr) == 0 or len(te) == 0:
            raise TrainingError(f"cross-validation fold {fi + 1}: no labelled training or test windows")
        norm = fit_normalization(tr.x)
        model, hist = fit_model(
            config,
            norm,
            tr.x,
            encode(tr.y, classes),
            va.x,
            encode(va.y, classes),
            len(classes),
            False,
            echo,
            groups=teacher_groups(config.distill, tr),
            val_groups=validation_groups(va),
        )
        yte = encode(te.y, classes)
        pred = predict_proba(model, te.x, norm).argmax(axis=1)
        m = compute_metrics(yte, pred, classes)
        subj = group_accuracy(yte, pred, te.subject)
        per_subject.update(subj)
        fold_out: dict[str, Any] = {
            "fold": fi + 1,
            "test_subjects": fold,
            "val_subjects": va_keys,
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "windows": {"train": len(tr), "val": len(va), "test": len(te)},
            "epochs_run": len(hist.get("loss", [])),
            "per_subject": subj,
        }
        for name in ("rotation_z_deg", "distill_temperature", "distill_teacher_accuracy", "distill_chosen",
                     "rocket_beta", "rocket_lstm"):
            if name in hist:
                fold_out[name] = hist[name][0]
        if config.model.rocket_features > 0:  # the head at other betas, no training (har tune's CV choice)
            from har.training.fit import normalize
            from har.training.rocket import beta_sweep

            sweep = beta_sweep(model, normalize(te.x, norm), yte, hist, list(classes))
            if sweep is not None:
                fold_out["beta_sweep"] = sweep
        out_folds.append(fold_out)
        echo(
            f"cv fold {fi + 1}/{k}: test {', '.join(fold)}  accuracy {m['accuracy']:.4f}  "
            f"macro-F1 {m['macro_f1']:.4f}  ({len(te)} windows, {len(hist.get('loss', []))} epochs)"
        )
        if on_fold is not None:
            on_fold(fi, fold_out)
    acc_m, acc_s = mean_std([f["accuracy"] for f in out_folds])
    f1_m, f1_s = mean_std([f["macro_f1"] for f in out_folds])
    echo(f"cv {k}-fold: accuracy {acc_m:.4f} +- {acc_s:.4f}  macro-F1 {f1_m:.4f} +- {f1_s:.4f}")
    return {
        "k": k,
        "grouped_by": grouped_by,
        "folds": out_folds,
        "accuracy_mean": acc_m,
        "accuracy_std": acc_s,
        "macro_f1_mean": f1_m,
        "macro_f1_std": f1_s,
        "per_subject": dict(sorted(per_subject.items())),
    }


def format_cv(cv: dict[str, Any]) -> str:
    """The cross-validation section of report.txt."""
    lines = [
        "",
        f"leave-{cv.get('grouped_by', 'subject')}s-out cross-validation ({cv['k']} folds over the non-test data)",
        f"{'fold':>4}  {'accuracy':>8}  {'macro-F1':>8}  {'windows':>7}  test subjects",
    ]
    for f in cv["folds"]:
        lines.append(
            f"{f['fold']:>4}  {f['accuracy']:8.4f}  {f['macro_f1']:8.4f}  {f['windows']['test']:7d}  "
            + ", ".join(f["test_subjects"])
        )
    lines.append(
        f"mean  accuracy {cv['accuracy_mean']:.4f} +- {cv['accuracy_std']:.4f}   "
        f"macro-F1 {cv['macro_f1_mean']:.4f} +- {cv['macro_f1_std']:.4f}  (+- = sample std over folds)"
    )
    lines.append("the saved model is trained afterwards on all training subjects (not one of the fold models)")
    return "\n".join(lines) + "\n"
