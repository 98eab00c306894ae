"""Personalisation (`har adapt`): refit a bundle's classifier head for one wearer, numpy only.

A bundle written by `har deploy` carries what this needs: the live model's second output, the
embedding that feeds the classifier head (``model.tflite``), and the head's weights
(``head.npz``: ``W`` (d, classes), ``b`` (classes), float32). Adaptation:

1. cut the calibration recordings into windows and split each activity in time: the first
   ``1 - holdout`` of its samples fit the head, the last ``holdout`` only judge it (a window
   never spans both parts);
2. run the interpreter once over all windows for embeddings and the base model's probabilities;
3. fit a multinomial logistic regression on the embeddings, L2-regularised TOWARDS the base head
   (``strength``: 30 s per activity cannot pull it far), by Newton's method; activities without
   calibration keep their base weights;
4. keep the new head only if it beats the base model on the held-out windows (accuracy; a tie
   keeps the base), and write a new bundle: the base files, ``head_adapted.npz`` when kept,
   ``metadata.adaptation`` (person, base bundle sha256, calibration fingerprint, held-out scores)
   and a manifest over every file. It is assembled in a temporary directory and renamed into place.

``head.npz`` always holds the BASE head, so adapting an adapted bundle starts from the base model.
No TensorFlow, no scipy."""

from __future__ import annotations

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

DEFAULT_STRENGTH = 0.003  # L2 towards the base head; chosen on validation subjects (bench/bench_adapt.py)
ANCHOR_WEIGHT = 10.0  # weight of a skipped activity's anchors vs a calibrated activity (chosen likewise)
DEFAULT_HOLDOUT = 0.3  # last fraction of each activity held out to judge the new head
DEFAULT_HOP_S = 0.5  # calibration window hop (s): more windows from 30 s than the model's hop
REFIT_ALL = True  # a kept head is refit on all calibration windows (chosen on training subjects)
MIN_FIT_WINDOWS = 2  # per activity
MIN_HOLDOUT_WINDOWS = 1  # per activity


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

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        z = self.logits(emb)
        if z.shape[0] == 1:  # the live path: one window per hop (scalar reductions are cheaper)
            z = np.exp(z - z.max())
            return z / z.sum()
        z -= z.max(axis=-1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=-1, keepdims=True)
        return z


def load_head(path: str | os.PathLike[str], dim: int | None = None, n_classes: int | None = None) -> LinearHead:
    """Read ``W``, ``b`` from an ``.npz`` (no pickle); BundleError when missing or the wrong shape."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            w = np.asarray(z["W"], dtype=np.float32)
            b = np.asarray(z["b"], dtype=np.float32)
            anchors = np.asarray(z["anchors"], dtype=np.float32) if "anchors" in z.files else None
            anchor_y = np.asarray(z["anchor_y"], dtype=np.int64) if "anchor_y" in z.files else None
    except (OSError, ValueError, KeyError) as e:
        raise BundleError(f"{p}: not a classifier head ({' '.join(str(e).split())[:120]})") from None
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise BundleError(f"{p}: head shapes W {w.shape} / b {b.shape} do not fit")
    if (dim is not None and w.shape[0] != dim) or (n_classes is not None and w.shape[1] != n_classes):
        raise BundleError(f"{p}: head is {w.shape}, the model needs ({dim}, {n_classes})")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise BundleError(f"{p}: head has non-finite weights")
    if anchors is not None and anchor_y is not None:
        bad = anchors.ndim != 2 or anchors.shape[1] != w.shape[0] or anchor_y.shape != (anchors.shape[0],)
        if bad or np.any((anchor_y < 0) | (anchor_y >= w.shape[1])):
            raise BundleError(f"{p}: anchors do not fit the head")
        return LinearHead(w, b, anchors, anchor_y)
    return LinearHead(w, b)


def save_head(path: str | os.PathLike[str], head: LinearHead) -> Path:
    """Write ``W``, ``b`` (float32) to an ``.npz`` (anchors are not written: a personal head has none)."""
    p = Path(path)
    with open(p, "wb") as f:
        np.savez(f, W=head.w.astype(np.float32), b=head.b.astype(np.float32))
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
) -> LinearHead:
    """Multinomial logistic regression on ``emb`` (n, d) with labels ``y`` (n,) (class indices),
    minimising ``mean_c(mean CE over class c's windows) + strength/2 * |theta - theta_base|^2``
    (each calibrated class weighs the same), by Newton's method with backtracking.

    Only the columns of ``classes`` (default: the classes present in ``y``) move; the others keep
    the base head's weights. ``strength`` > 0 makes the problem strictly convex. ``class_weight``
    multiplies the weight of a class (default 1 each)."""
    if strength <= 0:
        raise AdaptError(f"strength must be positive, got {strength}")
    x = np.asarray(emb, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, d = x.shape
    k = base.w.shape[1]
    free = np.array(sorted(set(y.tolist()) if classes is None else set(classes)), dtype=np.int64)
    xb = np.concatenate([x, np.ones((n, 1))], axis=1)  # (n, d+1)
    theta0 = np.concatenate([base.w, base.b[None, :]], axis=0).astype(np.float64)  # (d+1, k)
    theta = theta0.copy()
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    counts = np.bincount(y, minlength=k).astype(np.float64)
    mult = np.ones(k)
    for c, v in (class_weight or {}).items():
        mult[int(c)] = float(v)
    sw = mult[y] / counts[y]
    sw /= sw.sum()  # per-window weights: each class weighs the same (times its multiplier); sum 1
    m = free.size
    p_dim = (d + 1) * m

    def loss_grad(th: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        z = xb @ th
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


def with_anchors(
    emb: np.ndarray, y: np.ndarray, base: LinearHead, weight: float = ANCHOR_WEIGHT
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """``(embeddings, labels, class_weight)`` for :func:`fit_head`: the calibration plus the base
    head's anchors of every class the calibration lacks (labelled with the base model's own
    prediction, each such class weighing ``weight``), so a skipped activity keeps the base
    behaviour (on WISDM validation subjects: weight 1 lost 4 points on the skipped activity, 10 none)."""
    if base.anchors is None or base.anchor_y is None:
        return emb, y, {}
    missing = np.isin(base.anchor_y, np.unique(y), invert=True)
    if not missing.any():
        return emb, y, {}
    extra = base.anchor_y[missing]
    return (np.concatenate([emb, base.anchors[missing]]), np.concatenate([y, extra]),
            {int(c): weight for c in np.unique(extra)})


def scores(probs: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(accuracy, mean log-loss)`` of probabilities (n, classes) against class indices ``y``."""
    if y.size == 0:
        return 0.0, float("inf")
    acc = float(np.mean(np.argmax(probs, axis=1) == y))
    ll = float(-np.mean(np.log(np.clip(probs[np.arange(y.size), y], 1e-7, 1.0))))
    return acc, ll


def beats(new: tuple[float, float], base: tuple[float, float]) -> bool:
    """The never-worse rule: a strictly higher held-out accuracy (a tie keeps the base model: on
    WISDM, heads kept on a lower log-loss at equal accuracy lost 1-2 points on the rest)."""
    return new[0] > base[0] + 1e-9


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
    strength: float = DEFAULT_STRENGTH,
    holdout: float = DEFAULT_HOLDOUT,
    hop_s: float = DEFAULT_HOP_S,
    overwrite: bool = False,
    echo: Callable[[str], Any] = print,
    refit_all: bool = REFIT_ALL,
) -> AdaptResult:
    """Adapt ``bundle`` to ``person`` with labelled calibration ``recordings``; write ``out_dir``.

    ``refit_all``: once the head fitted on the first part of each activity has beaten the base
    model on the held-out part, the head written is refit (same strength) on all the windows."""
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
    split = split_calibration(recs, meta, holdout=holdout, hop_s=hop_s)
    clf = WindowClassifier.from_bundle(src, verify=False)  # verified above
    if not clf.has_embedding:
        raise AdaptError(f"{src}/{MODEL_FILE} has no embedding output: redeploy with a har that writes it")
    base = load_head(src / HEAD_FILE, clf.embedding_dim, len(clf.classes))
    t_fit = time.monotonic()
    _, fe = clf.predict_with_embedding(split.fit_x)
    hp, he = clf.predict_with_embedding(split.hold_x)
    ax, ay, aw = with_anchors(fe, split.fit_y, base)
    head = fit_head(ax, ay, base, strength=strength, class_weight=aw)
    fit_s = time.monotonic() - t_fit
    s_base = scores(hp, split.hold_y)
    s_new = scores(head(he), split.hold_y)
    kept = beats(s_new, s_base)
    if kept and refit_all:
        t1 = time.monotonic()
        ax, ay, aw = with_anchors(np.concatenate([fe, he]), np.concatenate([split.fit_y, split.hold_y]), base)
        head = fit_head(ax, ay, base, strength=strength, class_weight=aw)
        fit_s += time.monotonic() - t1
    skipped = [c for c in meta.classes if c not in split.activities]
    files = [Path(p).name for p in recordings]
    adaptation = {
        "person": person,
        "created": utc_now_iso(),
        "kept": kept,
        "method": "classifier head refit: multinomial logistic regression on the embedding, L2 towards the base "
        "head (Newton, numpy)",
        "strength": strength,
        "refit_all": refit_all,
        "base_bundle": {"path": str(src.resolve()), "sha256": base_sha},
        "calibration": {
            "fingerprint": fingerprint(recordings),
            "files": files,
            "activities": split.activities,
            "skipped": skipped,
            "seconds": split.seconds,
            "holdout_fraction": holdout,
            "hop_s": hop_s,
        },
        "holdout": {
            "windows": int(split.hold_y.size),
            "fit_windows": int(split.fit_y.size),
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
        if kept:
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
        base_log_loss=s_base[1], adapted_log_loss=s_new[1], n_fit=int(split.fit_y.size),
        n_holdout=int(split.hold_y.size), activities=split.activities, skipped=skipped, fit_seconds=fit_s,
        seconds=time.monotonic() - t0,
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
    verdict = "personal head kept" if adaptation.get("kept") else "base head kept (the personal head was not better)"
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
    return f"calibrated for {a.get('person')} ({date}): base model kept (the personal head was not better)"
