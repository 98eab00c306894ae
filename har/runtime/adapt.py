"""Personalisation (`har adapt`): refit a bundle's classifier head for one wearer, numpy only.

A bundle written by `har deploy` carries what this needs: the live model's second output, the
embedding that feeds the classifier head (``model.tflite``), and the head's weights
(``head.npz``: ``W`` (d, classes), ``b`` (classes), float32). Adaptation:

1. cut the calibration recordings into windows (hop 0.5 s) and run the LIVE model (``model.tflite``,
   batch 1: what `har run` applies the personal head to) once over them for embeddings and the base
   model's probabilities; never the float batched replay model, whose embeddings an int8 live
   model's differ from (the anchors in ``head.npz`` come from the live model too, `har deploy`);
2. a personal head for the CALIBRATED activities only: a multinomial logistic regression over those
   classes on the embeddings, L2-regularised TOWARDS the base head (``strength``: 30 s per activity
   cannot pull it far) and rehearsing the base model's anchors (embeddings of its training windows
   stored in ``head.npz``, weight ``ANCHOR_WEIGHT``), by Newton's method, blended with the base
   head (``blend``: logits ``base + blend * (personal - base)``). Activities the calibration skips
   keep the base model's behaviour exactly: their probabilities are the base model's, and a window
   the base model gives to one of them keeps the base output (:class:`PersonalHead`);
3. strength and blend are chosen per person by k-fold cross-validation over the calibration (each
   activity cut in time into ``folds`` blocks; a window is scored by heads fitted without any
   window that overlaps it), and the personal head is kept only if its cross-validated accuracy
   beats the base model's on the same windows by more than ``margin`` (the never-worse rule); it is
   then refit on all of the calibration;
4. a new bundle: the base files, ``head_adapted.npz`` when kept, ``metadata.adaptation`` (person,
   base bundle sha256, calibration fingerprint, held-out scores) and a manifest over every file,
   assembled in a temporary directory and renamed into place.

The grids, folds and margin are set once for all users, chosen on development subjects that are
neither the base model's training nor its test subjects (``bench/select_adapt.py``).
``head.npz`` always holds the BASE head, so adapting an adapted bundle starts from the base model.
No TensorFlow, no scipy."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.bundle import sha256_file, verify_bundle, write_manifest
from har.artifacts.layout import (
    ADAPTED_HEAD_FILE,
    BATCH_MODEL_FILE,
    HEAD_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    REPORT_FILE,
)
from har.artifacts.metadata import ModelMetadata, save_metadata
from har.config import WindowConfig
from har.errors import AdaptError, BundleError, DataError, HarError

# Set once for all users, chosen on development subjects (bench/select_adapt.py), never test subjects:
STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # candidate pulls towards the base head (L2), chosen per person by CV
BLENDS = (0.25, 0.5, 0.75, 1.0)  # candidate weights of the personal head against the base head, likewise
DEFAULT_FOLDS = 5  # cross-validation folds over each activity's calibration (blocks in time)
DEFAULT_MARGIN = 0.05  # the personal head must beat the base by more than this (CV accuracy) to be kept
ANCHOR_WEIGHT = 1.0  # rehearsal of the base model's training windows (head.npz anchors) vs the calibration
DEFAULT_STRENGTH = 0.003  # --strength: the pull for split_calibration users (`--full`'s rule) and tests
DEFAULT_HOLDOUT = 0.3  # `--full`: last fraction of each activity held out to judge the fine-tuned model
DEFAULT_HOP_S = 0.5  # calibration window hop (s): more windows from 30 s than the model's hop
MIN_FIT_WINDOWS = 2  # per activity
MIN_HOLDOUT_WINDOWS = 1  # per activity
# Newton's method solves a p x p system, p = (embedding rows refit + 1) x calibrated classes (float64,
# built twice): at most this p (~140 MB). A MiniRocket model's embedding is 10,000+ wide: its
# MiniRocket rows keep the base head's weights and only the LSTM embedding's rows are refit (:func:`head_rows`)
MAX_NEWTON_PARAMS = 3000


# --- the head -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearHead:
    """``softmax(embedding @ W + b)``: the classifier head, applied after the interpreter.

    ``anchors`` / ``anchor_y`` (base bundles only): embeddings of training windows and the base
    model's own class for each, fitted for activities the calibration skips."""

    w: np.ndarray  # float32 (d, classes)
    b: np.ndarray  # float32 (classes,)
    anchors: np.ndarray | None = None  # float32 (m, d)
    anchor_y: np.ndarray | None = None  # int64 (m,)

    def logits(self, emb: np.ndarray) -> np.ndarray:
        return np.asarray(emb, dtype=np.float32) @ self.w + self.b

    def __call__(self, emb: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        """Probabilities (n, classes) of embeddings (n, d); ``probs`` (the model's own, see
        :class:`PersonalHead`) is not needed by a head that scores every class."""
        z = self.logits(emb)
        if z.shape[0] == 1:  # the live path: one window per hop (scalar reductions are cheaper)
            z = np.exp(z - z.max())
            return z / z.sum()
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def blend_probs(base_probs: np.ndarray, logits: np.ndarray, calibrated: np.ndarray) -> np.ndarray:
    """Probabilities of a personal head that knows only the ``calibrated`` classes (bool mask, k):
    a window the base model gives to an uncalibrated class keeps ``base_probs``; otherwise the
    uncalibrated classes keep their base probabilities exactly and the calibrated classes share the
    rest by the softmax of ``logits`` over them. With every class calibrated: ``softmax(logits)``."""
    if calibrated.all():
        return _softmax(np.array(logits))
    out = np.array(base_probs, copy=True)
    q = _softmax(np.array(logits[:, calibrated]))
    out[:, calibrated] = q * base_probs[:, calibrated].sum(axis=1, keepdims=True)
    gate = ~calibrated[np.argmax(base_probs, axis=1)]
    out[gate] = base_probs[gate]
    return out


@dataclass(frozen=True)
class PersonalHead:
    """A personal head for some classes only (`har adapt` with skipped activities): ``w``, ``b``
    (already blended with the base) score the ``calibrated`` classes, the base model keeps the
    others' behaviour (:func:`blend_probs`).

    Called with the model's own probabilities for the same windows (``probs``: what the runtime's
    interpreter output, as WindowClassifier does), the skipped classes keep exactly those. Without
    them the base head (``base_w``, ``base_b``) recomputes them from the embedding: the model's
    output again only up to its arithmetic (an int8 model's head differed by up to 0.2 on WISDM, a
    float model's 10,000-wide MiniRocket head by ~6e-5 of float32 rounding)."""

    w: np.ndarray  # float32 (d, classes); uncalibrated columns equal the base's
    b: np.ndarray  # float32 (classes,)
    calibrated: np.ndarray  # bool (classes,)
    base_w: np.ndarray  # float32 (d, classes)
    base_b: np.ndarray  # float32 (classes,)

    def logits(self, emb: np.ndarray) -> np.ndarray:
        return np.asarray(emb, dtype=np.float32) @ self.w + self.b

    def __call__(self, emb: np.ndarray, probs: np.ndarray | None = None) -> np.ndarray:
        e = np.asarray(emb, dtype=np.float32)
        base = _softmax(e @ self.base_w + self.base_b) if probs is None else np.asarray(probs, dtype=np.float32)
        return blend_probs(base, e @ self.w + self.b, self.calibrated)


def load_head(
    path: str | os.PathLike[str], dim: int | None = None, n_classes: int | None = None
) -> LinearHead | PersonalHead:
    """Read ``W``, ``b`` from an ``.npz`` (no pickle); BundleError when missing or the wrong shape.
    A personal head for some classes only (``calibrated``, ``base_W``, ``base_b``) is a :class:`PersonalHead`."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            w = np.asarray(z["W"], dtype=np.float32)
            b = np.asarray(z["b"], dtype=np.float32)
            anchors = np.asarray(z["anchors"], dtype=np.float32) if "anchors" in z.files else None
            anchor_y = np.asarray(z["anchor_y"], dtype=np.int64) if "anchor_y" in z.files else None
            cal = np.asarray(z["calibrated"], dtype=bool) if "calibrated" in z.files else None
            bw = np.asarray(z["base_W"], dtype=np.float32) if "base_W" in z.files else None
            bb = np.asarray(z["base_b"], dtype=np.float32) if "base_b" in z.files else None
    except (OSError, ValueError, KeyError) as e:
        raise BundleError(f"{p}: not a classifier head ({' '.join(str(e).split())[:120]})") from None
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise BundleError(f"{p}: head shapes W {w.shape} / b {b.shape} do not fit")
    if (dim is not None and w.shape[0] != dim) or (n_classes is not None and w.shape[1] != n_classes):
        raise BundleError(f"{p}: head is {w.shape}, the model needs ({dim}, {n_classes})")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise BundleError(f"{p}: head has non-finite weights")
    if cal is not None and not cal.all():
        if cal.shape != b.shape or bw is None or bb is None or bw.shape != w.shape or bb.shape != b.shape:
            raise BundleError(f"{p}: personal head without a matching base head / class mask")
        if not (np.all(np.isfinite(bw)) and np.all(np.isfinite(bb))):
            raise BundleError(f"{p}: head has non-finite weights")
        return PersonalHead(w, b, cal, bw, bb)
    if anchors is not None and anchor_y is not None:
        bad = anchors.ndim != 2 or anchors.shape[1] != w.shape[0] or anchor_y.shape != (anchors.shape[0],)
        if bad or np.any((anchor_y < 0) | (anchor_y >= w.shape[1])):
            raise BundleError(f"{p}: anchors do not fit the head")
        return LinearHead(w, b, anchors, anchor_y)
    return LinearHead(w, b)


def save_head(path: str | os.PathLike[str], head: LinearHead | PersonalHead) -> Path:
    """Write ``W``, ``b`` (float32) to an ``.npz``, plus ``calibrated``, ``base_W``, ``base_b`` for a
    :class:`PersonalHead` (anchors are not written: a personal head has none)."""
    p = Path(path)
    arrays = {"W": head.w.astype(np.float32), "b": head.b.astype(np.float32)}
    if isinstance(head, PersonalHead):
        arrays.update(calibrated=head.calibrated.astype(bool), base_W=head.base_w.astype(np.float32),
                      base_b=head.base_b.astype(np.float32))
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    return p


def fit_head(
    emb: np.ndarray,
    y: np.ndarray,
    base: LinearHead,
    strength: float = DEFAULT_STRENGTH,
    classes: Sequence[int] | None = None,
    max_iter: int = 30,
    tol: float = 1e-7,
    class_weight: dict[int, float] | None = None,
    init: LinearHead | None = None,
    anchors: tuple[np.ndarray, np.ndarray] | None = None,
    anchor_weight: float = 0.0,
    offset: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> LinearHead:
    """Multinomial logistic regression on ``emb`` (n, d) with labels ``y`` (n,) (class indices),
    minimising ``mean_c(mean CE over class c's windows) + strength/2 * |theta - theta_base|^2``
    (each calibrated class weighs the same), by Newton's method with backtracking.

    Only the columns of ``classes`` (default: the classes present in ``y``) move; the others keep
    the base head's weights. ``strength`` > 0 makes the problem strictly convex. ``class_weight``
    multiplies the weight of a class (default 1 each); ``init`` starts Newton there (same solution).
    ``anchors`` ``(embeddings, labels)`` add ``anchor_weight * mean CE over the anchors`` to the loss
    (rehearsal of the base model's own training windows, so the head keeps fitting them).
    ``offset`` ``(per window, per anchor)`` logits (n, classes) added to ``emb @ W + b``: the part of
    the logits from embedding rows that are not refit (:func:`fit_calibrated`'s ``free_rows``)."""
    if strength <= 0:
        raise AdaptError(f"strength must be positive, got {strength}")
    x = np.asarray(emb, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, d = x.shape
    k = base.w.shape[1]
    free = np.array(sorted(set(y.tolist()) if classes is None else set(classes)), dtype=np.int64)
    xb = np.concatenate([x, np.ones((n, 1))], axis=1)  # (n, d+1)
    theta0 = np.concatenate([base.w, base.b[None, :]], axis=0).astype(np.float64)  # (d+1, k)
    theta = theta0.copy() if init is None else np.concatenate([init.w, init.b[None, :]], axis=0).astype(np.float64)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    off = np.zeros((n, k)) if offset is None else np.asarray(offset[0], dtype=np.float64)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    mult = np.ones(k)
    for c, v in (class_weight or {}).items():
        mult[int(c)] = float(v)
    sw = mult[y] / counts[y]
    sw /= sw.sum()  # per-window weights: each class weighs the same (times its multiplier); sum 1
    if anchors is not None and anchor_weight > 0 and len(anchors[1]):
        ax = np.asarray(anchors[0], dtype=np.float64)
        ay = np.asarray(anchors[1], dtype=np.int64)
        xb = np.concatenate([xb, np.concatenate([ax, np.ones((ay.size, 1))], axis=1)])
        oh = np.zeros((ay.size, k))
        oh[np.arange(ay.size), ay] = 1.0
        onehot = np.concatenate([onehot, oh])
        sw = np.concatenate([sw, np.full(ay.size, anchor_weight / ay.size)])
        a_off = None if offset is None else offset[1]
        off = np.concatenate([off, np.zeros((ay.size, k)) if a_off is None else np.asarray(a_off, np.float64)])
    m = free.size
    p_dim = (d + 1) * m

    def loss_grad(th: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        z = xb @ th + off
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        delta = th[:, free] - theta0[:, free]
        loss = float(-(sw * (onehot * logp).sum(axis=1)).sum() + 0.5 * strength * np.sum(delta**2))
        g = xb.T @ (sw[:, None] * (p - onehot))[:, free] + strength * delta  # (d+1, m)
        return loss, g, p

    loss, g, p = loss_grad(theta)
    for _ in range(max_iter):
        # Hessian blocks (c, c') = X^T diag(sw * (p_c [c=c'] - p_c p_c')) X + strength I
        pf = p[:, free]
        h = np.empty((m, d + 1, m, d + 1))
        for i in range(m):
            for j in range(i, m):
                coef = sw * (pf[:, i] * ((i == j) - pf[:, j]))
                blk = (xb * coef[:, None]).T @ xb
                h[i, :, j, :] = blk
                h[j, :, i, :] = blk.T
        hm = h.reshape(p_dim, p_dim)
        hm[np.diag_indices(p_dim)] += strength
        gv = g.T.reshape(-1)  # column (class) major, like hm
        step = np.linalg.solve(hm, gv).reshape(m, d + 1).T
        t = 1.0
        while True:
            cand = theta.copy()
            cand[:, free] -= t * step
            new_loss, new_g, new_p = loss_grad(cand)
            if new_loss <= loss - 1e-4 * t * float(gv @ step.T.reshape(-1)) or t < 1e-4:
                break
            t *= 0.5
        decrease = loss - new_loss
        theta, loss, g, p = cand, new_loss, new_g, new_p
        if decrease < tol or float(np.max(np.abs(g))) < 1e-6:
            break
    return LinearHead(theta[:-1].astype(np.float32), theta[-1].astype(np.float32))


def fit_calibrated(
    emb: np.ndarray, y: np.ndarray, base: LinearHead, calibrated: np.ndarray, strength: float,
    init: LinearHead | None = None, anchor_weight: float = 0.0, free_rows: int | None = None,
) -> LinearHead:
    """:func:`fit_head` with the softmax over the ``calibrated`` classes only (bool mask): the
    uncalibrated columns are the base head's, untouched, and do not enter the fit. With
    ``anchor_weight`` > 0 and anchors in ``base``, the anchors of calibrated classes are rehearsed.
    ``free_rows`` (:func:`head_rows`): only the first rows of the head (and its bias) are refit, the
    others keep the base head's weights (their part of the logits is a fixed offset)."""
    cols = np.flatnonzero(calibrated)
    pos = np.full(calibrated.size, -1, dtype=np.int64)
    pos[cols] = np.arange(cols.size)
    r = base.w.shape[0] if free_rows is None else int(free_rows)
    e = np.asarray(emb, dtype=np.float32)
    fixed_w = base.w[r:, cols].astype(np.float64)
    sub = LinearHead(base.w[:r, cols], base.b[cols])
    sub_init = None if init is None else LinearHead(init.w[:r, cols], init.b[cols])
    anchors, a_off = None, None
    if anchor_weight > 0 and base.anchors is not None and base.anchor_y is not None:
        keep = calibrated[base.anchor_y]
        anchors = (base.anchors[keep][:, :r], pos[base.anchor_y[keep]])
        a_off = base.anchors[keep][:, r:].astype(np.float64) @ fixed_w
    offset = None if r == base.w.shape[0] else (e[:, r:].astype(np.float64) @ fixed_w, a_off)
    h = fit_head(e[:, :r], pos[np.asarray(y, dtype=np.int64)], sub, strength=strength, classes=range(cols.size),
                 init=sub_init, anchors=anchors, anchor_weight=anchor_weight, offset=offset)
    w, b = base.w.copy(), base.b.copy()
    w[:r, cols], b[cols] = h.w, h.b
    return LinearHead(w, b)


def head_rows(meta: ModelMetadata, embedding_dim: int, n_classes: int, rocket_width: int) -> int | None:
    """How many leading rows of the head `har adapt` refits: None (all) when Newton's system stays
    within MAX_NEWTON_PARAMS; for a model with the MiniRocket branch (embedding = [LSTM embedding,
    MiniRocket features]) the LSTM embedding's rows only. ``rocket_width``: how many of the
    embedding's columns the bundle's graph holds as MiniRocket features
    (:attr:`~har.runtime.classifier.WindowClassifier.rocket_width`, 0 without the branch); the
    LSTM embedding is the rest (with the window features branch, each member's MLP output is part
    of it: har.training.window_features). AdaptError (one line) when that disagrees with the training config
    (ensemble x last LSTM / dense units, with or without the branch), or when even those rows are
    too many."""
    if (embedding_dim + 1) * n_classes <= MAX_NEWTON_PARAMS:
        return None
    m = meta.train_config.model
    # per member: the LSTM's (or its dense layer's) units, then the window features' MLP's last layer
    wfeat = getattr(m, "window_features", ())
    config_lstm = m.ensemble * ((m.dense_units or m.lstm_units[-1]) + (wfeat[-1] if wfeat else 0))
    has_branch = getattr(m, "rocket_features", 0) > 0
    if has_branch or rocket_width > 0:
        lstm = embedding_dim - rocket_width
        if not (has_branch and rocket_width > 0 and lstm == config_lstm):
            said = f"rocket_features {m.rocket_features}, {config_lstm} LSTM embedding columns" if has_branch else \
                "no MiniRocket branch"
            raise AdaptError(
                f"the model's embedding holds {lstm} LSTM embedding columns and {rocket_width} MiniRocket features "
                f"but its training config says {said}: the bundle and its metadata disagree (redeploy it)"
            )
        if 0 < lstm and (lstm + 1) * n_classes <= MAX_NEWTON_PARAMS:
            return lstm
    raise AdaptError(
        f"the head reads a {embedding_dim}-wide embedding: refitting it for {n_classes} classes needs a "
        f"{(embedding_dim + 1) * n_classes}-square system (at most {MAX_NEWTON_PARAMS}); adapt with --full, "
        "or train a smaller model"
    )


def personal_head(
    base: LinearHead, fitted: LinearHead, calibrated: np.ndarray, blend: float
) -> LinearHead | PersonalHead:
    """The head written to the bundle: logits ``base + blend * (fitted - base)`` (a linear head
    again), a :class:`PersonalHead` when some classes are not calibrated."""
    w = (base.w + blend * (fitted.w - base.w)).astype(np.float32)
    b = (base.b + blend * (fitted.b - base.b)).astype(np.float32)
    if calibrated.all():
        return LinearHead(w, b)
    return PersonalHead(w, b, calibrated.copy(), base.w.astype(np.float32), base.b.astype(np.float32))


def scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(accuracy, mean log-loss)`` of probabilities (n, classes) against class indices ``y``."""
    if y.size == 0:
        return 0.0, float("inf")
    acc = float(np.mean(np.argmax(probs, axis=1) == y))
    ll = float(-np.mean(np.log(np.clip(probs[np.arange(y.size), y], 1e-7, 1.0))))
    return acc, ll


def beats(new: tuple[float, float], base: tuple[float, float], margin: float = 0.0) -> bool:
    """The never-worse rule: a held-out accuracy higher than the base model's by more than
    ``margin`` (a tie keeps the base model: on WISDM, heads kept on a lower log-loss at equal
    accuracy lost 1-2 points on the rest)."""
    return new[0] > base[0] + margin + 1e-9


# --- calibration data ---------------------------------------------------------------------------
@dataclass
class CalibrationSplit:
    """Windows (raw, g) and class indices: ``fit`` trains the head, ``holdout`` judges it."""

    fit_x: np.ndarray
    fit_y: np.ndarray
    hold_x: np.ndarray
    hold_y: np.ndarray
    activities: list[str]  # calibrated, in class order
    seconds: dict[str, float] = field(default_factory=dict)  # labelled seconds per activity


def _recordings(paths: Sequence[str | os.PathLike[str]]) -> list[Any]:
    from har.recording.format import read_recording  # noqa: PLC0415

    recs = []
    for p in paths:
        try:
            recs.append(read_recording(p))
        except HarError as e:
            raise DataError(f"{p}: {e}") from None
    return recs


def min_seconds(meta: ModelMetadata, holdout: float = DEFAULT_HOLDOUT, hop_s: float = DEFAULT_HOP_S) -> float:
    """About the shortest calibration per activity (s) that gives a held-out window and two fit windows."""
    w = float(meta.window.window_s)
    return max(w / holdout, (w + (MIN_FIT_WINDOWS - 1) * hop_s) / (1.0 - holdout)) + hop_s


def _labelled(recordings: Sequence[Any], classes: list[str]) -> tuple[dict[str, int], dict[str, float]]:
    """Labelled samples and seconds per activity; AdaptError for labels the model does not know or
    fewer than two activities."""
    seen: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for r in recordings:
        for lab, c in zip(*np.unique(r.labels.astype(str), return_counts=True), strict=True):
            if lab:
                seen[str(lab)] = seen.get(str(lab), 0) + int(c)
                seconds[str(lab)] = seconds.get(str(lab), 0.0) + int(c) / r.rate_hz
    unknown = sorted(set(seen) - set(classes))
    if unknown:
        raise AdaptError(
            f"calibration label(s) {', '.join(unknown)} unknown to the model (it knows {', '.join(classes)})"
        )
    if len(seen) < 2:
        what = next(iter(seen), "none")
        raise AdaptError(
            f"calibration covers one activity ({what}): adapting needs at least two, or the head learns one answer"
        )
    return seen, seconds


def split_calibration(
    recordings: Sequence[Any], meta: ModelMetadata, holdout: float = DEFAULT_HOLDOUT, hop_s: float = DEFAULT_HOP_S
) -> CalibrationSplit:
    """Cut labelled recordings into fit / held-out windows: per activity, the last ``holdout`` of
    its labelled samples (in recording order) are held out. AdaptError for unusable calibration:
    labels the model does not know, fewer than two activities, too little of one."""
    from har.signal import make_windows  # noqa: PLC0415

    if not 0.0 < holdout < 1.0:
        raise AdaptError(f"holdout must be in (0, 1), got {holdout}")
    classes = list(meta.classes)
    seen, seconds = _labelled(recordings, classes)
    # per activity: the sample index (running over all recordings) where its held-out part begins
    cut = {lab: int(round(n * (1.0 - holdout))) for lab, n in seen.items()}
    done = dict.fromkeys(seen, 0)
    wc = WindowConfig(rate_hz=meta.window.rate_hz, window_s=meta.window.window_s, hop_s=hop_s,
                      purity=meta.window.purity)
    fit_parts, hold_parts = [], []
    for r in recordings:
        labels = r.labels.astype(str)
        part = np.zeros(len(labels), dtype=bool)  # True = held out
        for lab in seen:
            idx = np.flatnonzero(labels == lab)
            k = max(0, cut[lab] - done[lab])
            part[idx[k:]] = True
            done[lab] += idx.size
        for held, parts in ((False, fit_parts), (True, hold_parts)):
            lab2 = np.where(part == held, labels, "")
            rr = dataclasses.replace(r, labels=lab2)
            parts.append(make_windows(rr, wc, labelled_only=True))
    lookup = {c: i for i, c in enumerate(classes)}

    def stack(parts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        xs = [p.x for p in parts if len(p)]
        ys = [p.y for p in parts if len(p)]
        if not xs:
            return np.zeros((0, wc.window_samples, 3), np.float32), np.zeros(0, np.int64)
        return np.concatenate(xs), np.array([lookup[v] for v in np.concatenate(ys).tolist()], dtype=np.int64)

    fx, fy = stack(fit_parts)
    hx, hy = stack(hold_parts)
    for lab in seen:
        i = lookup[lab]
        nf, nh = int(np.sum(fy == i)), int(np.sum(hy == i))
        if nf < MIN_FIT_WINDOWS or nh < MIN_HOLDOUT_WINDOWS:
            need = min_seconds(meta, holdout, hop_s)
            raise AdaptError(
                f"too little usable calibration for {lab} ({nf} fit / {nh} held-out windows of "
                f"{meta.window.window_s:g} s): record at least {need:.0f} s of it without gaps"
            )
    acts = [c for c in classes if c in seen]
    secs = {lab: round(seconds[lab], 1) for lab in acts}
    return CalibrationSplit(fx, fy, hx, hy, acts, secs)


@dataclass
class Calibration:
    """All calibration windows (raw, g), their class indices and the cross-validation folds:
    ``fold[i]`` is the fold that scores window i; ``train[f]`` (bool, n) the windows a head scoring
    fold f may be fitted on (no window overlapping one of fold f's in time)."""

    x: np.ndarray
    y: np.ndarray
    fold: np.ndarray  # int64 (n,)
    train: list[np.ndarray]  # per fold, bool (n,)
    activities: list[str]  # calibrated, in class order
    seconds: dict[str, float] = field(default_factory=dict)  # labelled seconds per activity


def calibration_windows(
    recordings: Sequence[Any], meta: ModelMetadata, folds: int = DEFAULT_FOLDS, hop_s: float = DEFAULT_HOP_S
) -> Calibration:
    """Cut labelled recordings into windows (``hop_s``) and ``folds`` folds: each activity's windows,
    in recording order, in ``folds`` consecutive blocks. AdaptError for unusable calibration: labels
    the model does not know, fewer than two activities, too little of one."""
    from har.signal import make_windows  # noqa: PLC0415

    if folds < 2:
        raise AdaptError(f"folds must be at least 2, got {folds}")
    classes = list(meta.classes)
    seen, seconds = _labelled(recordings, classes)
    wc = WindowConfig(rate_hz=meta.window.rate_hz, window_s=meta.window.window_s, hop_s=hop_s,
                      purity=meta.window.purity)
    parts = [make_windows(r, wc, labelled_only=True) for r in recordings]
    lookup = {c: i for i, c in enumerate(classes)}
    xs = [p.x for p in parts if len(p)]
    if xs:
        x = np.concatenate(xs)
        y = np.array([lookup[v] for v in np.concatenate([p.y for p in parts if len(p)]).tolist()], dtype=np.int64)
        start = np.concatenate([p.start_s for p in parts if len(p)])
        rec = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts) if len(p)])
    else:
        x, y = np.zeros((0, wc.window_samples, 3), np.float32), np.zeros(0, np.int64)
        start, rec = np.zeros(0), np.zeros(0, np.int64)
    fold = np.zeros(y.size, dtype=np.int64)
    for lab in seen:
        idx = np.flatnonzero(y == lookup[lab])  # already in recording order, then time
        fold[idx] = np.arange(idx.size) * folds // max(idx.size, 1)
    overlap = (rec[:, None] == rec[None, :]) & (np.abs(start[:, None] - start[None, :]) < wc.window_s - 1e-9)
    train = [~np.any(overlap[:, fold == f], axis=1) for f in range(folds)]
    for lab in seen:  # every fold scores some windows of each activity and is fitted on a few others
        i = lookup[lab]
        n_scored = min(int(np.sum((y == i) & (fold == f))) for f in range(folds))
        n_fit = min(int(np.sum((y == i) & tr)) for tr in train)
        if n_scored < 1 or n_fit < MIN_FIT_WINDOWS:
            raise AdaptError(
                f"too little usable calibration for {lab} ({int(np.sum(y == i))} windows of "
                f"{meta.window.window_s:g} s): record at least {min_seconds(meta, hop_s=hop_s):.0f} s of it "
                "without gaps"
            )
    acts = [c for c in classes if c in seen]
    return Calibration(x, y, fold, train, acts, {lab: round(seconds[lab], 1) for lab in acts})


def cross_validate(
    emb: np.ndarray, cal: Calibration, base: LinearHead, calibrated: np.ndarray,
    strengths: Sequence[float] = STRENGTHS, blends: Sequence[float] = BLENDS, anchor_weight: float = 0.0,
    free_rows: int | None = None, base_probs: np.ndarray | None = None,
) -> dict[tuple[float, float], np.ndarray]:
    """Out-of-fold probabilities (n, classes) of the personal head for every (strength, blend):
    window i is scored by a head fitted on ``cal.train[cal.fold[i]]`` only. ``base_probs``: the
    model's own probabilities of the windows, which skipped classes keep (default: the base head's)."""
    zb = base.logits(emb).astype(np.float64)
    pb = _softmax(zb.copy()) if base_probs is None else np.asarray(base_probs, dtype=np.float64)
    out = {(s, a): np.zeros_like(pb) for s in strengths for a in blends}
    for f, tr in enumerate(cal.train):
        te = cal.fold == f
        prev = None
        for s in sorted(strengths, reverse=True):  # strong to weak: each fit starts at the last
            h = fit_calibrated(emb[tr], cal.y[tr], base, calibrated, s, init=prev, anchor_weight=anchor_weight,
                               free_rows=free_rows)
            prev = h
            zp = h.logits(emb[te]).astype(np.float64)
            for a in blends:
                out[(s, a)][te] = blend_probs(pb[te], zb[te] + a * (zp - zb[te]), calibrated)
    return out


def choose(
    oof: dict[tuple[float, float], np.ndarray], y: np.ndarray, base_probs: np.ndarray, margin: float = DEFAULT_MARGIN
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float], bool]:
    """``((strength, blend), adapted scores, base scores, kept)``: the candidate with the best
    cross-validated accuracy (then log-loss, then the weaker blend), kept if it :func:`beats` the base."""
    sc = {key: scores(p, y) for key, p in oof.items()}
    best = max(sc, key=lambda key: (sc[key][0], -sc[key][1], -key[1]))
    s_base = scores(base_probs, y)
    return best, sc[best], s_base, beats(sc[best], s_base, margin)


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Numpy's BLAS limited to one thread while it is entered (threadpoolctl, when installed). The
    refit's matrices are small (a few hundred rows): on a busy machine a multi-threaded BLAS spends
    far longer waiting for its threads than computing (a 1.7 s refit took 58 s here at load 20)."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415 - optional
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --- the whole adaptation -----------------------------------------------------------------------
@dataclass
class AdaptResult:
    out_dir: Path
    person: str
    kept: bool
    base_accuracy: float
    adapted_accuracy: float
    base_log_loss: float
    adapted_log_loss: float
    n_fit: int
    n_holdout: int
    activities: list[str]
    skipped: list[str]
    fit_seconds: float  # embeddings + head fit (what the device spends)
    seconds: float
    strength: float | None = None  # chosen by cross-validation (head refit only)
    blend: float | None = None
    holdout_scheme: str = "last 30% of each activity"
    margin: float = 0.0  # the kept head had to beat the base by more than this


def not_better(margin: float) -> str:
    """Why the base model was kept."""
    if margin > 0:
        return f"not better by more than {100 * margin:g} points"
    return "not better"


def base_bundle_of(bundle: str | os.PathLike[str]) -> tuple[ModelMetadata, str]:
    """Verify ``bundle``; return its metadata and the sha256 naming its BASE bundle (the manifest's
    hash, or the recorded base of an adapted bundle)."""
    d = Path(bundle)
    meta = verify_bundle(d)
    if not (d / HEAD_FILE).is_file():
        raise AdaptError(f"{d} has no {HEAD_FILE} / embedding output: redeploy with a har that writes it")
    if meta.adaptation.get("mode") == "full" and meta.adaptation.get("kept"):
        raise AdaptError(
            f"{d} was fine-tuned with --full (its model is not the base): adapt its base bundle "
            f"{meta.adaptation.get('base_bundle', {}).get('path', '')} instead"
        )
    base = meta.adaptation.get("base_bundle", {}) if meta.adaptation else {}
    sha = str(base.get("sha256") or sha256_file(d / MANIFEST_FILE))
    return meta, sha


def adapt_bundle(
    bundle: str | os.PathLike[str],
    recordings: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    person: str,
    strength: float | None = None,
    overwrite: bool = False,
    echo: Callable[[str], Any] = print,
    folds: int = DEFAULT_FOLDS,
    margin: float = DEFAULT_MARGIN,
    hop_s: float = DEFAULT_HOP_S,
    strengths: Sequence[float] = STRENGTHS,
    blends: Sequence[float] = BLENDS,
    anchor_weight: float = ANCHOR_WEIGHT,
) -> AdaptResult:
    """Adapt ``bundle`` to ``person`` with labelled calibration ``recordings``; write ``out_dir``.

    ``strength`` fixes the pull towards the base head (default: chosen per person among
    ``strengths`` by ``folds``-fold cross-validation, with the blend among ``blends``)."""
    from har.dataset import fingerprint  # noqa: PLC0415
    from har.recording.format import utc_now_iso  # noqa: PLC0415
    from har.runtime.classifier import WindowClassifier  # noqa: PLC0415

    t0 = time.monotonic()
    src, out = Path(bundle), Path(out_dir)
    if not person.strip():
        raise AdaptError("--person must not be empty")
    meta, base_sha = base_bundle_of(src)
    _check_out(out, src, overwrite)
    if not recordings:
        raise AdaptError("no calibration recordings")
    recs = _recordings(recordings)
    cal = calibration_windows(recs, meta, folds=folds, hop_s=hop_s)
    # the live model only: the personal head is fitted on the embeddings it will be applied to
    clf = WindowClassifier.from_bundle(src, verify=False, use_batch_model=False)  # verified above
    if not clf.has_embedding:
        raise AdaptError(f"{src}/{MODEL_FILE} has no embedding output: redeploy with a har that writes it")
    base = load_head(src / HEAD_FILE, clf.embedding_dim, len(clf.classes))
    if isinstance(base, PersonalHead):
        raise BundleError(f"{src}/{HEAD_FILE} is a personal head, not the base head")
    calibrated = np.isin(np.arange(len(meta.classes)), np.unique(cal.y))
    rows = head_rows(meta, clf.embedding_dim, int(calibrated.sum()), clf.rocket_width)
    if rows is not None:
        echo(f"  the MiniRocket features' {clf.embedding_dim - rows} head rows keep the base weights; "
             f"the LSTM embedding's {rows} are refit")
    t_fit = time.monotonic()
    clf.set_head(None)
    pb, emb = clf.predict_with_embedding(cal.x, batched=False)
    grid_s = tuple(strengths) if strength is None else (float(strength),)
    head: LinearHead | PersonalHead | None = None
    with one_blas_thread():
        oof = cross_validate(emb, cal, base, calibrated, grid_s, blends, anchor_weight=anchor_weight, free_rows=rows,
                             base_probs=pb)
        (s_best, a_best), s_new, s_base, kept = choose(oof, cal.y, pb, margin)
        if kept:
            fitted = fit_calibrated(emb, cal.y, base, calibrated, s_best, anchor_weight=anchor_weight,
                                    free_rows=rows)
            head = personal_head(base, fitted, calibrated, a_best)
    fit_s = time.monotonic() - t_fit
    skipped = [c for c in meta.classes if c not in cal.activities]
    files = [Path(p).name for p in recordings]
    scheme = f"{folds}-fold cross-validation in time blocks of each activity"
    adaptation = {
        "person": person,
        "created": utc_now_iso(),
        "kept": kept,
        "method": "classifier head refit for the calibrated activities: multinomial logistic regression on the "
        "embedding, L2 towards the base head and rehearsing the base model's own training windows (Newton, "
        "numpy), blended with the base head; skipped activities keep the base model's behaviour",
        "strength": s_best,
        "blend": a_best,
        "candidates": {"strengths": list(grid_s), "blends": list(blends), "margin": margin},
        "anchor_weight": anchor_weight if base.anchors is not None else 0.0,
        "base_bundle": {"path": str(src.resolve()), "sha256": base_sha},
        "calibration": {
            "fingerprint": fingerprint(recordings),
            "files": files,
            "activities": cal.activities,
            "skipped": skipped,
            "seconds": cal.seconds,
            "hop_s": hop_s,
        },
        "holdout": {
            "scheme": scheme,
            "folds": folds,
            "windows": int(cal.y.size),
            "base_accuracy": s_base[0],
            "adapted_accuracy": s_new[0],
            "base_log_loss": s_base[1],
            "adapted_log_loss": s_new[1],
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".har-adapt-", dir=out.parent) as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        for name in (MODEL_FILE, BATCH_MODEL_FILE, HEAD_FILE, REPORT_FILE):
            if (src / name).is_file():
                shutil.copy2(src / name, stage / name)
        if head is not None:
            save_head(stage / ADAPTED_HEAD_FILE, head)
        save_metadata(stage, dataclasses.replace(meta, adaptation=adaptation))
        with open(stage / REPORT_FILE, "a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(report_lines(adaptation)) + "\n")
        write_manifest(stage)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    return AdaptResult(
        out_dir=out, person=person, kept=kept, base_accuracy=s_base[0], adapted_accuracy=s_new[0],
        base_log_loss=s_base[1], adapted_log_loss=s_new[1], n_fit=int(cal.y.size),
        n_holdout=int(cal.y.size), activities=cal.activities, skipped=skipped, fit_seconds=fit_s,
        seconds=time.monotonic() - t0, strength=s_best, blend=a_best, holdout_scheme=scheme, margin=margin,
    )


def _check_out(out: Path, src: Path, overwrite: bool) -> None:
    if out.resolve() == src.resolve():
        raise AdaptError("--out must differ from the base bundle (adapting never changes it)")
    if out.exists():
        if not overwrite:
            raise AdaptError(f"{out} exists (choose another --out or pass --overwrite)")
        if not out.is_dir() or not (out / MANIFEST_FILE).is_file():
            raise AdaptError(f"{out} exists and is not a bundle: not overwriting")


def report_lines(adaptation: dict[str, Any]) -> list[str]:
    """The adaptation section of ``report.txt`` (and of `har adapt`'s summary)."""
    h = adaptation.get("holdout", {})
    cal = adaptation.get("calibration", {})
    why = not_better(float(adaptation.get("candidates", {}).get("margin", 0.0)))
    verdict = "personal head kept" if adaptation.get("kept") else f"base head kept (the personal head was {why})"
    return [
        f"adapted for {adaptation.get('person')} ({adaptation.get('created', '')[:10]}): {verdict}",
        f"  held-out accuracy base {100 * h.get('base_accuracy', 0):.1f}% -> adapted "
        f"{100 * h.get('adapted_accuracy', 0):.1f}% on {h.get('windows', 0)} windows "
        f"(log-loss {h.get('base_log_loss', 0):.3f} -> {h.get('adapted_log_loss', 0):.3f})",
        f"  calibrated: {', '.join(cal.get('activities', []))}; skipped (base behaviour): "
        f"{', '.join(cal.get('skipped', [])) or '-'}",
        f"  base bundle sha256 {adaptation.get('base_bundle', {}).get('sha256', '')[:16]}..., calibration "
        f"fingerprint {str(cal.get('fingerprint', ''))[:16]}...",
    ]


def adapted_line(meta: ModelMetadata) -> str | None:
    """``adapted for <person> (<date>)`` for `har run`'s start, None for a bundle never adapted."""
    a = meta.adaptation
    if not a:
        return None
    date = str(a.get("created", ""))[:10]
    if a.get("kept"):
        return f"adapted for {a.get('person')} ({date})"
    why = not_better(float(a.get("candidates", {}).get("margin", 0.0)))
    return f"calibrated for {a.get('person')} ({date}): base model kept (the personal head was {why})"
