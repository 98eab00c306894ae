"""Augmentation for body-worn accelerometer windows (numpy only, no TensorFlow).

All transforms take raw windows ``x`` float32 (n, window, 3) in g (gravity included, before
normalisation) and a seeded :class:`numpy.random.Generator`, and return a new array of the same
shape and dtype. Each transform is applied to each window independently with probability ``p``.

* :func:`rotate`: a random 3-D rotation (uniform random axis, angle uniform in
  ``[-max_deg, max_deg]`` degrees): the device sits at a slightly different orientation on the
  wrist. It preserves every sample's vector norm.
* :func:`rotate_z`: a random rotation about the device z axis only (strap twist; 180 degrees also
  covers the other wrist's x/y sign flip); off by default.
* :func:`scale`: multiply a window by a factor in ``[1 - s, 1 + s]`` (sensor gain, intensity).
* :func:`jitter`: add Gaussian noise of standard deviation ``sigma_g`` g.
* :func:`time_warp`: resample a window along a smooth random time axis whose local speed varies
  by at most ``+-max_rel`` (cadence differences); the window length is unchanged.

* :func:`mix_batch` (batch level, ``AugmentConfig.mix``): "mixup" blends each window with a
  partner from the same batch, "cutmix" replaces a contiguous time segment of it by the partner's;
  the one-hot targets (and sample weights) are mixed in the same proportion, at most one half.

:class:`AugmentedBatches` (in :func:`make_batches`) serves shuffled, augmented, normalised
training batches to Keras; batch ``i`` of epoch ``e`` uses the generator seeded with
``(seed, e, i)``, so ``--seed`` reproduces training regardless of prefetching order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from har.config import AugmentConfig
from har.errors import ConfigError

TIME_WARP_KNOTS = 4  # random speed values across a window, linearly interpolated


def _mask(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    return rng.random(n) < p


def rotation_matrices(n: int, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotation matrices float64 (n, 3, 3): uniform random axes, angles uniform in
    ``[-max_deg, max_deg]`` degrees (Rodrigues' formula)."""
    axis = rng.normal(size=(n, 3))
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
    theta = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))
    kx, ky, kz = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros(n)
    k = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1), np.stack([-ky, kx, zero], -1)], 1)
    s = np.sin(theta)[:, None, None]
    c = np.cos(theta)[:, None, None]
    return np.eye(3)[None] + s * k + (1.0 - c) * (k @ k)


def rotate(x: np.ndarray, max_deg: float, rng: np.random.Generator, p: float = 1.0) -> np.ndarray:
    """Rotate each selected window (n, window, 3) by a random rotation of at most ``max_deg``
    degrees; vector norms are preserved."""
    out = np.array(x, dtype=np.float32, copy=True)
    sel = np.flatnonzero(_mask(out.shape[0], p, rng))
    if sel.size and max_deg > 0:
        r = rotation_matrices(sel.size, max_deg, rng)
        out[sel] = np.einsum("nij,ntj->nti", r, out[sel].astype(np.float64)).astype(np.float32)
    return out


def rotate_z(x: np.ndarray, max_deg: float, rng: np.random.Generator, p: float = 1.0) -> np.ndarray:
    """Rotate each selected window about the device z axis by an angle uniform in
    ``[-max_deg, max_deg]`` degrees (a watch worn twisted on the strap; 180 also covers the x/y
    sign flip of the other wrist). Preserves vector norms and the z component."""
    out = np.array(x, dtype=np.float32, copy=True)
    sel = np.flatnonzero(_mask(out.shape[0], p, rng))
    if sel.size and max_deg > 0:
        th = np.deg2rad(rng.uniform(-max_deg, max_deg, size=sel.size))
        c, s = np.cos(th)[:, None], np.sin(th)[:, None]
        xs, ys = out[sel, :, 0].astype(np.float64), out[sel, :, 1].astype(np.float64)
        out[sel, :, 0] = (c * xs - s * ys).astype(np.float32)
        out[sel, :, 1] = (s * xs + c * ys).astype(np.float32)
    return out


def scale(x: np.ndarray, s: float, rng: np.random.Generator, p: float = 1.0) -> np.ndarray:
    """Multiply each selected window by one factor drawn uniformly from ``[1 - s, 1 + s]``."""
    out = np.array(x, dtype=np.float32, copy=True)
    sel = np.flatnonzero(_mask(out.shape[0], p, rng))
    if sel.size and s > 0:
        f = rng.uniform(1.0 - s, 1.0 + s, size=sel.size).astype(np.float32)
        out[sel] *= f[:, None, None]
    return out


def jitter(x: np.ndarray, sigma_g: float, rng: np.random.Generator, p: float = 1.0) -> np.ndarray:
    """Add Gaussian noise (standard deviation ``sigma_g`` g) to each selected window."""
    out = np.array(x, dtype=np.float32, copy=True)
    sel = np.flatnonzero(_mask(out.shape[0], p, rng))
    if sel.size and sigma_g > 0:
        out[sel] += rng.normal(0.0, sigma_g, size=out[sel].shape).astype(np.float32)
    return out


def time_warp(x: np.ndarray, max_rel: float, rng: np.random.Generator, p: float = 1.0) -> np.ndarray:
    """Resample each selected window along a smooth random time axis.

    The local playback speed is a piecewise-linear curve through ``TIME_WARP_KNOTS`` values drawn
    from ``[1 - max_rel, 1 + max_rel]``; positions are its cumulative sum, rescaled to span the
    window, and samples are linearly interpolated. Shape is preserved."""
    out = np.array(x, dtype=np.float32, copy=True)
    sel = np.flatnonzero(_mask(out.shape[0], p, rng))
    w = out.shape[1]
    if not sel.size or max_rel <= 0 or w < 2:
        return out
    knots = rng.uniform(1.0 - max_rel, 1.0 + max_rel, size=(sel.size, TIME_WARP_KNOTS))
    grid = np.linspace(0.0, TIME_WARP_KNOTS - 1, w)
    lo = np.floor(grid).astype(np.int64).clip(0, TIME_WARP_KNOTS - 2)
    frac = grid - lo
    speed = knots[:, lo] * (1 - frac) + knots[:, lo + 1] * frac  # (m, w)
    pos = np.concatenate([np.zeros((sel.size, 1)), np.cumsum(speed[:, :-1], axis=1)], axis=1)
    pos *= (w - 1) / pos[:, -1:]
    i0 = np.floor(pos).astype(np.int64).clip(0, w - 2)
    t = (pos - i0)[:, :, None]
    src = out[sel]
    rows = np.arange(sel.size)[:, None]
    out[sel] = (src[rows, i0] * (1 - t) + src[rows, i0 + 1] * t).astype(np.float32)
    return out


def augment(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Apply the enabled transforms of ``cfg`` in order: time warp, z rotation, rotation, scaling, jitter."""
    if not cfg.active:
        return np.array(x, dtype=np.float32, copy=True)
    out = time_warp(x, cfg.time_warp, rng, cfg.p)
    if isinstance(cfg.rotation_z_deg, str):
        raise ConfigError("rotation_z_deg 'auto' is resolved by har.training.fit.fit_model before augmenting")
    if cfg.rotation_z_deg > 0:  # only then, so configs without it keep their random stream
        out = rotate_z(out, cfg.rotation_z_deg, rng, cfg.p)
    out = rotate(out, cfg.rotation_deg, rng, cfg.p)
    out = scale(out, cfg.scale, rng, cfg.p)
    return jitter(out, cfg.jitter_g, rng, cfg.p)


def mix_batch(
    x: np.ndarray,
    y: np.ndarray,
    mode: str,
    alpha: float,
    rng: np.random.Generator,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Mix each window of a batch ``x`` (n, window, channels) with a random partner of the batch.

    ``y`` are one-hot (or soft) targets (n, classes); returns new ``(x, y, sample_weight)`` where
    the partner's share ``lam = min(l, 1 - l)``, ``l ~ Beta(alpha, alpha)`` per window, goes into
    targets and weights alike. "mixup": ``(1 - lam) * x + lam * x_partner``; "cutmix": a contiguous
    segment of ``round(lam * window)`` samples at a random start is the partner's (its share is
    that segment's length over the window); "none": unchanged copies."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    n, w = x.shape[0], x.shape[1]
    w_out = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32).copy()
    if mode == "none" or n < 2:
        return x.copy(), y.copy(), w_out
    if mode not in ("mixup", "cutmix"):
        raise ConfigError(f"mix must be none, mixup or cutmix, got {mode!r}")
    partner = rng.permutation(n)
    lam = rng.beta(alpha, alpha, size=n)
    lam = np.minimum(lam, 1.0 - lam)
    if mode == "mixup":
        lam32 = lam.astype(np.float32)
        out = (1.0 - lam32)[:, None, None] * x + lam32[:, None, None] * x[partner]
    else:
        cut = np.rint(lam * w).astype(np.int64)
        start = (rng.random(n) * (w - cut + 1)).astype(np.int64)
        t = np.arange(w)[None, :]
        inside = (t >= start[:, None]) & (t < (start + cut)[:, None])  # (n, w)
        out = np.where(inside[:, :, None], x[partner], x)
        lam = cut / w
    lam32 = lam.astype(np.float32)
    y_out = (1.0 - lam32)[:, None] * y + lam32[:, None] * y[partner]
    if w_out is not None:
        w_out = (1.0 - lam32) * w_out + lam32 * w_out[partner]
    return out.astype(np.float32), y_out.astype(np.float32), w_out


def make_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    cfg: AugmentConfig,
    seed: int,
    mean: np.ndarray,
    std: np.ndarray,
    sample_weight: np.ndarray | None = None,
    n_classes: int = 0,
) -> Any:
    """A ``tf_keras.utils.Sequence`` of shuffled training batches, augmented with ``cfg`` (raw g)
    and then normalised ``(x - mean) / std``; yields ``(x, y)`` or ``(x, y, sample_weight)``.
    With ``cfg.mix`` the windows are mixed after the per-window transforms (:func:`mix_batch`)
    and ``y`` are mixed one-hot targets over ``n_classes``.

    Imports tf_keras lazily (only training calls this)."""
    from har.training._tf import import_tf

    _, keras = import_tf()
    if cfg.mixing and n_classes < 2:
        raise ConfigError(f"mix {cfg.mix!r} needs the number of classes (got {n_classes})")

    class AugmentedBatches(keras.utils.Sequence):  # type: ignore[misc, name-defined]
        """Per epoch: a permutation seeded by ``(seed, epoch)``; per batch: augmentation seeded by
        ``(seed, epoch, batch)``."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(x.shape[0])

        def __len__(self) -> int:
            return -(-x.shape[0] // batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, ...]:
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            rng = np.random.default_rng([seed, self.epoch, i])
            xb = augment(x[idx], cfg, rng)
            yb: np.ndarray = y[idx]
            wb = None if sample_weight is None else sample_weight[idx].astype(np.float32)
            if cfg.mixing:
                onehot = np.eye(n_classes, dtype=np.float32)[yb]
                xb, yb, wb = mix_batch(xb, onehot, cfg.mix, cfg.mix_alpha, rng, wb)
            xb = ((xb - mean) / std).astype(np.float32)
            if wb is None:
                return xb, yb
            return xb, yb, wb

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(x.shape[0])

    return AugmentedBatches()
