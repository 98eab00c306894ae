"""Classification metrics (numpy only): accuracy, macro-F1, per-class precision / recall / F1 /
support, confusion matrix, a text report and a JSON-ready dict.

Labels are integer class indices into ``classes``. Macro-F1 averages the F1 of the classes that
occur in the true or the predicted labels (a class absent from both does not count); the metrics
name the classes that had no test windows (``no_test_windows``) and the report prints them beside
the macro-F1, so a score over fewer classes is never mistaken for one over all."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 (n_classes, n_classes): rows = true class, columns = predicted class."""
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred lengths differ ({t.shape[0]} vs {p.shape[0]})")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct predictions (0.0 for no samples)."""
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    return float((t == p).mean()) if t.size else 0.0


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(precision, recall, f1, support)`` per class from a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    pred = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, pred)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    _, _, f1, _ = per_class(cm)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Everything in one JSON-ready dict: ``accuracy``, ``macro_f1``, ``n``, ``classes``,
    ``per_class`` ({class: {precision, recall, f1, support}}), ``confusion`` (list of rows)."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    precision, recall, f1, support = per_class(cm)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, k),
        "n": int(cm.sum()),
        "classes": list(classes),
        "per_class": {
            c: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion": cm.tolist(),
        "no_test_windows": [c for i, c in enumerate(classes) if support[i] == 0],
        "macro_f1_classes": int(((cm.sum(axis=0) + cm.sum(axis=1)) > 0).sum()),  # the classes macro-F1 averages
    }


def macro_f1_note(metrics: Mapping[str, Any]) -> str:
    """`` (over 2 of 3 classes; no test windows: c)`` when some classes had no test windows, else ""."""
    absent = list(metrics.get("no_test_windows") or [])
    if not absent:
        return ""
    k = len(metrics.get("classes") or [])
    over = int(metrics.get("macro_f1_classes", k - len(absent)))
    return f" (over {over} of {k} classes; no test windows: {', '.join(absent)})"


def paired_gain(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``(mean gain, standard error)`` of scores ``a`` over ``b`` paired by position (the same CV
    folds): the mean of ``a - b`` and the sample standard deviation of the differences over
    sqrt(n). Standard error 0 with fewer than 2 pairs."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
    return float(d.mean()), se


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), as fold scores are reported."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> dict[str, dict[str, float]]:
    """Accuracy per group (e.g. subject): {group: {"accuracy": a, "n": count}}."""
    out: dict[str, dict[str, float]] = {}
    g = np.asarray(groups).astype(str)
    for name in sorted(set(g.tolist())):
        m = g == name
        out[name] = {"accuracy": accuracy(np.asarray(y_true)[m], np.asarray(y_pred)[m]), "n": int(m.sum())}
    return out


LOW_SUBJECT_ACCURACY = 0.8  # subjects under this accuracy are counted in the spread


def subject_spread(
    per_group: Mapping[str, Mapping[str, float]], threshold: float = LOW_SUBJECT_ACCURACY
) -> dict[str, Any]:
    """The spread of per-subject accuracy (``per_group`` as :func:`group_accuracy`): ``n_subjects``,
    ``worst_subject``, ``worst_accuracy``, ``best_accuracy``, ``mean_accuracy`` (unweighted mean
    over subjects), ``threshold`` and ``fraction_below`` (subjects under ``threshold``).
    Empty ``per_group`` gives ``n_subjects`` 0 and None for the rest."""
    accs = {str(g): float(v["accuracy"]) for g, v in per_group.items()}
    if not accs:
        return {"n_subjects": 0, "worst_subject": None, "worst_accuracy": None, "best_accuracy": None,
                "mean_accuracy": None, "threshold": threshold, "fraction_below": None}
    worst = min(accs, key=lambda g: (accs[g], g))
    vals = np.array(list(accs.values()))
    return {
        "n_subjects": len(accs),
        "worst_subject": worst,
        "worst_accuracy": accs[worst],
        "best_accuracy": float(vals.max()),
        "mean_accuracy": float(vals.mean()),
        "threshold": threshold,
        "fraction_below": float((vals < threshold).mean()),
    }


def format_spread(spread: Mapping[str, Any], group_name: str = "subject") -> str:
    """One line: worst subject, mean over subjects and the fraction under the threshold."""
    if not spread.get("n_subjects"):
        return f"per-{group_name} spread: no {group_name}s"
    n = int(spread["n_subjects"])
    below = round(float(spread["fraction_below"]) * n)
    return (
        f"worst {group_name}: {spread['worst_subject']} {spread['worst_accuracy']:.3f}   "
        f"mean over {n} {group_name}s: {spread['mean_accuracy']:.3f}   "
        f"under {spread['threshold']:.0%}: {below} of {n} ({spread['fraction_below']:.0%})"
    )


def format_confusion(cm: Sequence[Sequence[int]] | np.ndarray, classes: Sequence[str]) -> str:
    """The confusion matrix as an aligned text table (rows true, columns predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    names = [str(c) for c in classes]
    cw = max([len(n) for n in names] + [len(str(int(cm.max()))) if cm.size else 1, 4])
    rw = max([len(n) for n in names] + [len("true \\ pred")])
    lines = ["true \\ pred".ljust(rw) + "  " + "  ".join(n.rjust(cw) for n in names)]
    for i, n in enumerate(names):
        lines.append(n.ljust(rw) + "  " + "  ".join(str(int(v)).rjust(cw) for v in cm[i]))
    return "\n".join(lines)


def format_report(
    metrics: Mapping[str, Any],
    title: str = "",
    per_group: Mapping[str, Mapping[str, float]] | None = None,
    group_name: str = "subject",
    header: Sequence[str] = (),
) -> str:
    """A human report: ``header`` lines, headline numbers (with the per-group spread), per-class
    table, confusion matrix, per-group accuracy."""
    classes = list(metrics["classes"])
    lines = []
    if title:
        lines += [title, "=" * len(title), ""]
    lines += list(header)
    lines.append(f"windows:   {metrics['n']}")
    lines.append(f"accuracy:  {metrics['accuracy']:.4f}")
    lines.append(f"macro-F1:  {metrics['macro_f1']:.4f}{macro_f1_note(metrics)}")
    if per_group:
        lines.append(format_spread(subject_spread(per_group), group_name))
    lines.append("")
    w = max([len(c) for c in classes] + [5])
    lines.append(f"{'class'.ljust(w)}  precision  recall      f1  support")
    for c in classes:
        pc = metrics["per_class"][c]
        lines.append(f"{c.ljust(w)}  {pc['precision']:9.3f}  {pc['recall']:6.3f}  {pc['f1']:6.3f}  {pc['support']:7d}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)", format_confusion(metrics["confusion"], classes)]
    if per_group:
        gw = max([len(g) for g in per_group] + [len(group_name)])
        lines += ["", f"{group_name.ljust(gw)}  accuracy  windows"]
        for g, v in per_group.items():
            lines.append(f"{g.ljust(gw)}  {v['accuracy']:8.3f}  {int(v['n']):7d}")
    return "\n".join(lines) + "\n"
