"""Augmentation (har.training.augment): shapes, norms, seeding, bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from har.config import AugmentConfig
from har.errors import ConfigError
from har.training.augment import augment, jitter, rotate, rotation_matrices, scale, time_warp


def _windows(n: int = 16, w: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.5, (n, w, 3)) + np.array([0.0, 0.0, 1.0])).astype(np.float32)


def test_shapes_and_dtype_preserved() -> None:
    x = _windows()
    for f in (
        lambda a, r: rotate(a, 30, r),
        lambda a, r: scale(a, 0.2, r),
        lambda a, r: jitter(a, 0.05, r),
        lambda a, r: time_warp(a, 0.2, r),
        lambda a, r: augment(a, AugmentConfig(p=1.0, rotation_z_deg=180.0), r),
    ):
        y = f(x, np.random.default_rng(1))
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert not np.shares_memory(x, y)
    assert np.array_equal(x, _windows())  # input untouched


@settings(max_examples=25, deadline=None)
@given(max_deg=st.floats(0.0, 180.0), seed=st.integers(0, 2**16))
def test_rotation_preserves_norms_and_is_a_rotation(max_deg: float, seed: int) -> None:
    x = _windows(8, 20, seed)
    y = rotate(x, max_deg, np.random.default_rng(seed))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5, atol=1e-6)
    r = rotation_matrices(5, max_deg, np.random.default_rng(seed))
    np.testing.assert_allclose(r @ np.transpose(r, (0, 2, 1)), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    angle = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert (angle <= max_deg + 1e-6).all()


def test_seeded() -> None:
    x = _windows()
    cfg = AugmentConfig(p=0.7, rotation_deg=30, rotation_z_deg=180.0)
    a = augment(x, cfg, np.random.default_rng(5))
    b = augment(x, cfg, np.random.default_rng(5))
    c = augment(x, cfg, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bounds_and_off_switches() -> None:
    x = _windows()
    y = scale(x, 0.1, np.random.default_rng(0))
    ratio = (y / x).reshape(x.shape[0], -1)
    assert np.allclose(ratio, ratio[:, :1], atol=1e-5) and (np.abs(ratio - 1) <= 0.1 + 1e-6).all()
    assert np.array_equal(augment(x, AugmentConfig(enabled=False), np.random.default_rng(0)), x)
    assert np.array_equal(augment(x, AugmentConfig(p=0.0), np.random.default_rng(0)), x)
    tw = time_warp(x, 0.2, np.random.default_rng(0))
    np.testing.assert_allclose(tw[:, 0], x[:, 0], atol=1e-6)  # ends stay in place
    np.testing.assert_allclose(tw[:, -1], x[:, -1], atol=1e-5)
    assert np.array_equal(time_warp(x, 0.0, np.random.default_rng(0)), x)
    noisy = jitter(x, 0.05, np.random.default_rng(0))
    assert 0.03 < float((noisy - x).std()) < 0.07


def test_time_warp_of_constant_is_constant() -> None:
    x = np.ones((4, 30, 3), dtype=np.float32)
    np.testing.assert_allclose(time_warp(x, 0.3, np.random.default_rng(0)), x, atol=1e-6)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        AugmentConfig(p=1.5)
    with pytest.raises(ConfigError):
        AugmentConfig(rotation_deg=-1)
    with pytest.raises(ConfigError):
        AugmentConfig(time_warp=0.6)


@pytest.mark.slow
def test_batches_are_seeded_per_epoch_and_batch() -> None:
    from har.training.augment import make_batches

    x = _windows(10, 12)
    y = np.arange(10) % 2
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    a = make_batches(x, y, 4, AugmentConfig(p=1.0, rotation_z_deg=180.0), 3, mean, std)
    b = make_batches(x, y, 4, AugmentConfig(p=1.0, rotation_z_deg=180.0), 3, mean, std)
    assert len(a) == 3
    np.testing.assert_array_equal(a[2][0], b[2][0])
    np.testing.assert_array_equal(a[0][0], b[0][0])
    first = a[0][0]
    a.on_epoch_end()
    assert not np.array_equal(a[0][0], first)
    seen = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(seen.tolist()) == sorted(y.tolist())


def test_rotate_z_keeps_z_and_norms() -> None:
    from har.training.augment import rotate_z

    x = _windows()
    y = rotate_z(x, 180.0, np.random.default_rng(2))
    np.testing.assert_array_equal(y[:, :, 2], x[:, :, 2])
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    assert not np.allclose(y, x)
    assert np.array_equal(rotate_z(x, 0.0, np.random.default_rng(2)), x)
    with pytest.raises(ConfigError):
        AugmentConfig(rotation_z_deg=181)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_mix_batch_mixes_windows_targets_and_weights_alike(mode: str) -> None:
    """Window i is constant i with one-hot class i: after mixing, each window's mean over time is
    its targets' expected class index, the partner's share is at most one half, and the sample
    weights are mixed in the same proportion."""
    from har.training.augment import mix_batch

    n, w = 12, 50
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], w, axis=1).repeat(3, axis=2)
    y = np.eye(n, dtype=np.float32)
    sw = np.arange(1, n + 1, dtype=np.float32)
    xo, yo, wo = mix_batch(x, y, mode, 1.0, np.random.default_rng(3), sw)
    assert xo.shape == x.shape and xo.dtype == np.float32 and yo.shape == y.shape
    np.testing.assert_allclose(yo.sum(axis=1), 1.0, rtol=1e-6)
    assert (np.diag(yo) >= 0.5 - 1e-6).all() and (yo < 1.0).any()
    np.testing.assert_allclose(xo.mean(axis=1)[:, 0], yo @ np.arange(n), rtol=1e-5, atol=1e-5)
    assert wo is not None
    np.testing.assert_allclose(wo, yo @ sw, rtol=1e-5)
    if mode == "cutmix":  # every sample is one window's or the other's, never a blend
        assert set(np.unique(xo).tolist()) <= set(range(n))
    again = mix_batch(x, y, mode, 1.0, np.random.default_rng(3), sw)
    np.testing.assert_array_equal(again[0], xo)
    same = mix_batch(x, y, "none", 1.0, np.random.default_rng(3), None)
    np.testing.assert_array_equal(same[0], x)
    assert same[2] is None


def test_mix_config_validation() -> None:
    assert AugmentConfig(p=0.0, rotation_z_deg=0.0, rotation_deg=0, scale=0, jitter_g=0, time_warp=0).active is False
    assert AugmentConfig(p=0.0, mix="mixup").active is True
    assert AugmentConfig(enabled=False, mix="mixup").active is False
    with pytest.raises(ConfigError, match="mix"):
        AugmentConfig(mix="blend")
    with pytest.raises(ConfigError, match="mix_alpha"):
        AugmentConfig(mix="cutmix", mix_alpha=0.0)


@pytest.mark.slow
def test_batches_with_mix_serve_mixed_one_hot_targets() -> None:
    from har.training.augment import make_batches

    x = _windows(10, 12)
    y = np.arange(10) % 3
    mean, std = np.zeros(3, np.float32), np.ones(3, np.float32)
    cfg = AugmentConfig(p=0.0, rotation_z_deg=0.0, mix="mixup", mix_alpha=1.0)
    b = make_batches(x, y, 4, cfg, 3, mean, std, n_classes=3)
    xb, yb = b[0]
    assert xb.shape == (4, 12, 3) and yb.shape == (4, 3)
    np.testing.assert_allclose(yb.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="classes"):
        make_batches(x, y, 4, AugmentConfig(mix="mixup"), 3, mean, std)
