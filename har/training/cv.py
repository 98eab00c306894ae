"""Leave-subjects-out K-fold cross-validation (``har train --cv K``).

The development subjects (every subject of DATA that is not a test subject) are partitioned into
K folds with a seeded shuffle (:func:`make_folds`: disjoint, each subject in exactly one fold).
For fold k the fold's subjects are the test set; validation subjects are carved from the others
exactly as in a normal run (:func:`har.dataset.carve_validation`), windows are cut per recording
*after* the split, normalisation is fitted on the fold's training windows only, and a fresh model
is trained with the same config. The final model (``har train``'s output) is then trained as
usual; the CV numbers estimate how that recipe generalises to new people.

TensorFlow is imported lazily (through :mod:`har.training.train`) when :func:`run_cv` trains."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from har.config import TrainConfig
from har.dataset import carve_validation, windows_for
from har.errors import TrainingError
from har.recording.format import Recording
from har.scoring.metrics import compute_metrics, group_accuracy


def make_folds(subjects: Sequence[str], k: int, seed: int) -> list[list[str]]:
    """Partition distinct ``subjects`` into ``k`` folds (sizes differ by at most one), seeded.

    Raises TrainingError when there are fewer subjects than folds."""
    subs = sorted(set(subjects))
    if k < 2:
        raise TrainingError(f"cross-validation needs at least 2 folds, got {k}")
    if len(subs) < k:
        raise TrainingError(f"--cv {k} needs at least {k} training subjects, the data has {len(subs)}")
    order = [subs[i] for i in np.random.default_rng(seed).permutation(len(subs))]
    return [sorted(order[i::k]) for i in range(k)]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def run_cv(
    recordings: Sequence[Recording],
    indices: Sequence[int],
    classes: Sequence[str],
    config: TrainConfig,
    key: Callable[[Recording], str] = lambda r: r.subject,
    echo: Callable[[str], None] = print,
    on_fold: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Cross-validate ``config`` over the recordings at ``indices``, grouped by ``key`` (subject).

    ``on_fold(fold_index, fold_metrics)`` (0-based index, the fold's entry of ``folds``) is called
    after each fold; an exception it raises (e.g. ``optuna.TrialPruned``) stops the run.

    ``classes`` fixes the label set (windows of other labels are ignored). Returns a JSON-ready
    dict: ``folds`` (per fold: test subjects, accuracy, macro_f1, windows, per_subject, epochs),
    ``accuracy_mean``, ``accuracy_std``, ``macro_f1_mean``, ``macro_f1_std`` (sample std over
    folds), ``k``, ``per_subject`` (accuracy of each subject when it was held out)."""
    from har.training.train import _encode, _fit, fit_normalization, normalize

    k = config.cv_folds
    keys = sorted({key(recordings[i]) for i in indices})
    folds = make_folds(keys, k, config.seed)
    wc = config.window
    out_folds: list[dict[str, Any]] = []
    per_subject: dict[str, dict[str, float]] = {}
    for fi, fold in enumerate(folds):
        rest = [s for s in keys if s not in fold]
        tr_keys, va_keys = carve_validation(rest, config.val_fraction, config.seed + 1 + fi)
        pick = lambda ks: [i for i in indices if key(recordings[i]) in set(ks)]  # noqa: E731
        tr = windows_for(recordings, pick(tr_keys), wc)
        va = windows_for(recordings, pick(va_keys), wc)
        te = windows_for(recordings, pick(fold), wc)
        tr, va, te = (w.select(np.isin(w.y, list(classes))) for w in (tr, va, te))
        if len(tr) == 0 or len(te) == 0:
            raise TrainingError(f"cross-validation fold {fi + 1}: no labelled training or test windows")
        norm = fit_normalization(tr.x)
        model, hist = _fit(
            config,
            norm,
            tr.x,
            _encode(tr.y, classes),
            va.x,
            _encode(va.y, classes),
            len(classes),
            False,
            echo,
        )
        yte = _encode(te.y, classes)
        pred = np.asarray(model.predict(normalize(te.x, norm), batch_size=256, verbose=0)).argmax(axis=1)
        m = compute_metrics(yte, pred, classes)
        subj = group_accuracy(yte, pred, te.subject)
        per_subject.update(subj)
        out_folds.append(
            {
                "fold": fi + 1,
                "test_subjects": fold,
                "val_subjects": va_keys,
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
                "windows": {"train": len(tr), "val": len(va), "test": len(te)},
                "epochs_run": len(hist.get("loss", [])),
                "per_subject": subj,
            }
        )
        echo(
            f"cv fold {fi + 1}/{k}: test {', '.join(fold)}  accuracy {m['accuracy']:.4f}  "
            f"macro-F1 {m['macro_f1']:.4f}  ({len(te)} windows, {len(hist.get('loss', []))} epochs)"
        )
        if on_fold is not None:
            on_fold(fi, out_folds[-1])
    acc_m, acc_s = _mean_std([f["accuracy"] for f in out_folds])
    f1_m, f1_s = _mean_std([f["macro_f1"] for f in out_folds])
    echo(f"cv {k}-fold: accuracy {acc_m:.4f} +- {acc_s:.4f}  macro-F1 {f1_m:.4f} +- {f1_s:.4f}")
    return {
        "k": k,
        "grouped_by": "subject",
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
        f"leave-subjects-out cross-validation ({cv['k']} folds over the non-test subjects)",
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
