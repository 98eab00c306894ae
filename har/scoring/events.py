"""Event-level scoring of per-window label sequences (numpy only, no TensorFlow; the runtime uses it).

Window accuracy says how many windows are right; it does not say whether the *activities* were
found: a prediction that flickers walking/stairs/walking inside one walk has high window accuracy
but reports three events where there was one. These metrics compare segments instead.

* **Segments** (:func:`segments`): runs of consecutive windows with the same label, in window
  order. A segment spans from its first window's start to its last window's end (window spans as
  in `har replay`: each window owns the hop that ends at its last sample). Windows whose label is
  ``""`` (unlabeled) end a run and belong to no segment.
* **Segmental F1@IoU** (:func:`segment_f1`, after Lea et al. 2017, "F1@k"): predicted segments
  are taken in time order; each is a true positive when the true segment *of the same label* with
  which it has the highest temporal IoU (intersection over union of the time extents) reaches
  ``iou`` (default 0.5) and that true segment was not already matched; otherwise a false positive.
  True segments left unmatched are false negatives. F1 = 2PR / (P + R) with P = TP / predicted,
  R = TP / true.
* **Edit score** (:func:`edit_score`): 1 - Levenshtein(predicted labels, true labels) / max(len)
  over the segment label sequences with consecutive repeats collapsed (1.0 = the same sequence of
  activities, order only, timing ignored).
* **Changes** (fragmentation): label changes between consecutive segments, predicted vs true.

:func:`event_metrics` scores a predicted against a true per-window label sequence; windows whose
true label is ``""`` are left out of both (they are not scored), so a prediction during an
unlabeled stretch is neither right nor wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Segment:
    label: str
    start: float  # seconds
    end: float  # seconds
    windows: int


def segments(labels: Sequence[str], spans: Sequence[tuple[float, float]]) -> list[Segment]:
    """Runs of equal consecutive labels (``""`` ends a run and is dropped) with their time extent."""
    if len(labels) != len(spans):
        raise ValueError(f"labels and spans lengths differ ({len(labels)} vs {len(spans)})")
    out: list[Segment] = []
    i, n = 0, len(labels)
    while i < n:
        if not labels[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and labels[j + 1] == labels[i]:
            j += 1
        out.append(Segment(str(labels[i]), float(spans[i][0]), float(spans[j][1]), j - i + 1))
        i = j + 1
    return out


def iou(a: Segment, b: Segment) -> float:
    """Temporal intersection over union of two segments (0.0 when disjoint or both empty)."""
    inter = min(a.end, b.end) - max(a.start, b.start)
    if inter <= 0:
        return 0.0
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def segment_f1(pred: Sequence[Segment], true: Sequence[Segment], threshold: float = 0.5) -> dict[str, Any]:
    """Segmental precision / recall / F1 at an IoU threshold (see the module docstring)."""
    used = [False] * len(true)
    tp = 0
    for p in pred:
        best, best_j = 0.0, -1
        for j, t in enumerate(true):
            if t.label == p.label:
                v = iou(p, t)
                if v > best:
                    best, best_j = v, j
        if best_j >= 0 and best >= threshold and not used[best_j]:
            used[best_j] = True
            tp += 1
    n_p, n_t = len(pred), len(true)
    precision = tp / n_p if n_p else 0.0
    recall = tp / n_t if n_t else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    if not n_p and not n_t:
        precision = recall = f1 = 1.0  # nothing to find, nothing found
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": n_p - tp, "fn": n_t - tp}


def levenshtein(a: Sequence[str], b: Sequence[str]) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1).

    The classic dynamic programme, one numpy row at a time: the in-row dependency
    ``cur[j] = min(..., cur[j - 1] + 1)`` is a running minimum of ``tmp[k] + (j - k)``, i.e.
    ``minimum.accumulate(tmp - j) + j``. O(len(a) * len(b)) work, O(len(a)) Python steps."""
    if not a or not b:
        return max(len(a), len(b))
    codes = {x: i for i, x in enumerate(dict.fromkeys([*a, *b]))}
    bb = np.array([codes[y] for y in b], dtype=np.int64)
    j = np.arange(len(b) + 1, dtype=np.int64)
    prev = j.copy()
    for i, x in enumerate(a, 1):
        tmp = np.empty_like(prev)
        tmp[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (bb != codes[x]), out=tmp[1:])
        prev = np.minimum.accumulate(tmp - j) + j
    return int(prev[-1])


def _collapse(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for x in labels:
        if not out or out[-1] != x:
            out.append(x)
    return out


def edit_score(pred: Sequence[str], true: Sequence[str]) -> float:
    """1 - Levenshtein / max(len) on the label sequences with consecutive repeats collapsed."""
    a, b = _collapse(pred), _collapse(true)
    m = max(len(a), len(b))
    return 1.0 - levenshtein(a, b) / m if m else 1.0


def event_metrics(
    pred: Sequence[str], true: Sequence[str], spans: Sequence[tuple[float, float]], iou_threshold: float = 0.5
) -> dict[str, Any]:
    """Event-level agreement of per-window ``pred`` with per-window ``true`` labels on window
    ``spans`` (seconds). Windows with ``true == ""`` are left out of both. Returns a JSON-ready
    dict: ``segment_f1``, ``segment_precision``, ``segment_recall`` (at ``iou``), ``edit_score``,
    ``edit_distance``, ``pred_segments``, ``true_segments``, ``pred_changes``, ``true_changes``."""
    if not (len(pred) == len(true) == len(spans)):
        raise ValueError(f"pred, true and spans lengths differ ({len(pred)}, {len(true)}, {len(spans)})")
    keep = [i for i, t in enumerate(true) if t]
    p_lab = [pred[i] or "?" for i in keep]
    t_lab = [true[i] for i in keep]
    sp = [spans[i] for i in keep]
    ps, ts = segments(p_lab, sp), segments(t_lab, sp)
    f = segment_f1(ps, ts, iou_threshold)
    pl, tl = _collapse([s.label for s in ps]), _collapse([s.label for s in ts])
    return {
        "iou": iou_threshold,
        "segment_f1": f["f1"],
        "segment_precision": f["precision"],
        "segment_recall": f["recall"],
        "edit_score": edit_score(pl, tl),
        "edit_distance": levenshtein(pl, tl),
        "pred_segments": len(ps),
        "true_segments": len(ts),
        "pred_changes": max(len(pl) - 1, 0),
        "true_changes": max(len(tl) - 1, 0),
    }
