"""A strong classical reference beside har's LSTM: MiniRocket (aeon) on the same windows.

``har train --reference`` fits aeon's MiniRocketClassifier (10,000 random convolution kernels,
ridge classifier) on the training windows har used and scores it on the same test windows, so a
user sees at once whether the LSTM underperforms. aeon is a training-time-only, optional
dependency (aeon, in the ``train`` extra); it is never needed to run a model.

Large data: ridge regression over 10,000 features grows with the square of the window count, so
at most ``max_train`` training windows (a seeded, class-stratified subset) are used; the report
says how many."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from har.errors import ConfigError
from har.scoring.metrics import compute_metrics, group_accuracy, subject_spread
from har.training.rocket import INSTALL_HINT, aeon_available

REFERENCE_NAME = "MiniRocket (aeon)"
MAX_TRAIN_WINDOWS = 4000
MIN_LENGTH = 9  # MiniRocket's kernels are 9 samples long


def require_aeon() -> None:
    """ConfigError (one line) when aeon is not installed."""
    if not aeon_available():
        raise ConfigError(f"--reference needs aeon for MiniRocket: {INSTALL_HINT}")


def stratified_subset(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``k`` items of ``y``, each class kept in proportion (at least
    one window of every class)."""
    y = np.asarray(y)
    n = len(y)
    if n <= k:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), 0x2EF])
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = max(1, int(round(k * len(idx) / n)))
        out.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


def minirocket_reference(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: Sequence[str],
    test_subjects: np.ndarray | None = None,
    seed: int = 0,
    max_train: int = MAX_TRAIN_WINDOWS,
) -> dict[str, Any]:
    """Fit MiniRocket on raw windows ``x_train`` float (n, window, channels) in g with class
    indices ``y_train``; score it on ``x_test`` / ``y_test``. Returns a JSON-ready dict: ``name``,
    ``accuracy``, ``macro_f1``, ``metrics``, ``per_subject``, ``subject_spread``,
    ``train_windows`` (used) of ``train_windows_total``, ``fit_seconds``, ``ms_per_window``,
    ``model_kb`` (kernels, scaler and ridge coefficients as stored). ``max_train`` 0: no cap."""
    require_aeon()
    from aeon.classification.convolution_based import MiniRocketClassifier
    from threadpoolctl import threadpool_limits

    if x_train.shape[1] < MIN_LENGTH:
        raise ConfigError(f"--reference: MiniRocket needs windows of at least {MIN_LENGTH} samples")
    sel = stratified_subset(y_train, max_train, seed) if max_train > 0 else np.arange(len(y_train))
    xt = np.ascontiguousarray(np.transpose(x_train[sel], (0, 2, 1)), dtype=np.float32)
    clf = MiniRocketClassifier(random_state=seed, n_jobs=1)
    # One BLAS thread: the ridge solve is faster that way on a small shared machine (measured).
    with threadpool_limits(1):
        t0 = time.monotonic()
        clf.fit(xt, np.asarray(y_train)[sel])
        fit_s = time.monotonic() - t0
        t1 = time.monotonic()
        pred = np.asarray(clf.predict(np.ascontiguousarray(np.transpose(x_test, (0, 2, 1)), dtype=np.float32)))
        pred_s = time.monotonic() - t1
    pred = pred.astype(np.int64)
    metrics = compute_metrics(np.asarray(y_test, dtype=np.int64), pred, classes)
    per_subject = group_accuracy(y_test, pred, test_subjects) if test_subjects is not None else {}
    return {
        "name": REFERENCE_NAME,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "metrics": metrics,
        "per_subject": per_subject,
        "subject_spread": subject_spread(per_subject),
        "train_windows": int(len(sel)),
        "train_windows_total": int(len(y_train)),
        "fit_seconds": round(fit_s, 2),
        "ms_per_window": round(1000.0 * pred_s / max(1, len(x_test)), 3),
        "model_kb": round(_fitted_bytes(clf) / 1024, 1),
    }


def _fitted_bytes(clf: Any) -> int:
    """Bytes of the fitted arrays a MiniRocket pipeline needs to predict (best effort: 0 if the
    aeon internals differ)."""
    total = 0
    for _, est in getattr(getattr(clf, "pipeline_", None), "steps", []):
        for k, v in vars(est).items():
            if k.endswith("_") or k == "parameters":
                for a in v if isinstance(v, tuple) else (v,):
                    if isinstance(a, np.ndarray) and k not in ("alphas", "classes_", "mean_", "var_"):
                        total += a.nbytes
    return total


def format_reference(ref: dict[str, Any], har_accuracy: float, har_macro_f1: float) -> str:
    """Lines for report.txt: har beside the reference, and the difference."""
    used = ref["train_windows"]
    total = ref["train_windows_total"]
    fit = f"fit on {used} of {total} training windows" if used < total else f"fit on all {total} training windows"
    lines = [
        "",
        f"reference: {ref['name']}, same windows ({fit}, {ref['fit_seconds']:.1f} s)",
        f"  {'':12}  accuracy  macro-F1",
        f"  {'har':12}  {har_accuracy:8.4f}  {har_macro_f1:8.4f}",
        f"  {'MiniRocket':12}  {ref['accuracy']:8.4f}  {ref['macro_f1']:8.4f}",
        f"  har - MiniRocket: accuracy {100 * (har_accuracy - ref['accuracy']):+.1f} points",
    ]
    sp = ref.get("subject_spread") or {}
    if sp.get("n_subjects"):
        lines.append(f"  MiniRocket worst subject: {sp['worst_subject']} {sp['worst_accuracy']:.3f}")
    return "\n".join(lines) + "\n"
