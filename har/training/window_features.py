"""The fixed "window features" branch beside the LSTM (``ModelConfig.window_features``).

From the model's normalised input window:

* ``wfeat_denorm``: a fixed x * std + mean (DepthwiseConv1D 1x1, set by
  har.training.model.set_normalization), back to g;
* ``wfeat_features``: the 63 features of har.signal_features.window_features (the numpy reference)
  with builtin TFLite ops only: the DFT and the band sums are matrix products with fixed matrices
  (no RFFT op), medians and order statistics count comparisons (no TOPK_V2: :func:`_order_stat`);
  then a fixed standardisation ``(f - mean) * scale`` whose per-feature mean and 1 / std are the layer's (non-trainable)
  weights, computed on the training windows with the reference (:func:`set_feature_stats`);
* ``{member}wfeat_dense_{i}``: the trainable MLP (Dense, ``window_features`` units each; relu, the
  last layer tanh: :func:`mlp`),
  whose output ``{member}wfeat_embedding`` concatenates to the member's LSTM embedding that the
  softmax head ``probs`` reads.

Every layer's name carries ``wfeat_`` (after an ensemble member's ``m{j}_``): an int8 export keeps
them float32 (har.training._convert_worker.FLOAT_LAYER_PREFIXES) and quantises the branch only
where it enters the int8 head. Band edges are in Hz: the graph needs the sample rate."""

from __future__ import annotations

from typing import Any

import numpy as np

from har import signal_features as sf
from har.errors import ConfigError

PREFIX = "wfeat_"
DENORM_LAYER = "wfeat_denorm"
FEATURES_LAYER = "wfeat_features"
MAX_STATS_WINDOWS = 50000  # feature mean / std over at most this many training windows (evenly spaced)


def check_window(window_samples: int) -> None:
    if window_samples < sf.MIN_SAMPLES:
        raise ConfigError(f"--window-features needs windows of at least {sf.MIN_SAMPLES} samples, got {window_samples}")


def training_stats(x: Any, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and std over the training windows ``x`` (raw g; an array or the cache's
    har.training.stream.CachedWindows), at most MAX_STATS_WINDOWS of them, evenly spaced."""
    n = len(x)
    idx = np.unique(np.linspace(0, max(n - 1, 0), min(n, MAX_STATS_WINDOWS)).astype(np.int64))
    sub = x[idx]
    if not isinstance(sub, np.ndarray):
        sub = sub.materialize()
    return sf.feature_stats(sub, rate_hz)


def set_feature_stats(model: Any, mean: np.ndarray, std: np.ndarray) -> None:
    """Store the standardisation of ``model``'s window features (no-op without the branch)."""
    try:
        layer = model.get_layer(FEATURES_LAYER)
    except ValueError:
        return
    layer.set_weights([np.asarray(mean, np.float32), 1.0 / np.asarray(std, np.float32)])


def _layer_class(tf: Any, keras: Any) -> type:
    class WindowFeatures(keras.layers.Layer):  # type: ignore[misc, name-defined]
        """(batch, samples, 3) in g -> (batch, 63) standardised window features."""

        def __init__(self, window_samples: int, rate_hz: float, **kw: Any) -> None:
            super().__init__(**kw)
            n = window_samples
            t, q = sf.time_axis(n)
            self.n = n
            self.t = t.astype(np.float32).reshape(1, n, 1)
            self.q = q.astype(np.float32).reshape(1, n, 1)
            self.tt, self.qq = float(t @ t), float(q @ q)
            self.dft = sf.dft_matrix(n).astype(np.float32)
            self.mask = sf.band_mask(n, rate_hz).astype(np.float32)
            self.k = n // sf.SUB_WINDOWS

        def build(self, input_shape: Any) -> None:
            self.mean = self.add_weight(name="mean", shape=(sf.N_FEATURES,), initializer="zeros", trainable=False)
            self.scale = self.add_weight(name="scale", shape=(sf.N_FEATURES,), initializer="ones", trainable=False)
            super().build(input_shape)

        def call(self, x: Any) -> Any:
            # fixed: nothing upstream trains (stop_gradient: no backward pass through the features)
            return tf.stop_gradient((features(tf, self, x) - self.mean) * self.scale)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return (input_shape[0], sf.N_FEATURES)

    return WindowFeatures


def _log(tf: Any, v: Any) -> Any:
    return tf.math.log(v + sf.EPS)


def _std(tf: Any, v: Any, axis: Any) -> Any:
    mu = tf.reduce_mean(v, axis=axis, keepdims=True)
    return tf.sqrt(tf.reduce_mean(tf.square(v - mu), axis=axis))


def _dot(tf: Any, a: Any, b: Any) -> Any:
    return tf.reduce_sum(a * b, axis=-1)


def _order_stat(tf: Any, v: Any, r: int) -> Any:
    """The ``r``-th smallest (from 0) of each row of ``v`` (batch, n), ties included, without a sort:
    the smallest value that at least ``r + 1`` values of its row are <= to. (TOPK_V2 would do, but the
    int8 export's quantiser quantises it even where it is told to keep it float.)"""
    rank = tf.reduce_sum(tf.cast(tf.expand_dims(v, 1) <= tf.expand_dims(v, 2), tf.float32), axis=2)
    return tf.reduce_min(v + tf.cast(rank < r + 1, tf.float32) * np.float32(1e30), axis=1)


def _median_last(tf: Any, v: Any, length: int) -> Any:
    """Median over the last axis (``length`` values), numpy's convention for even lengths."""
    k = length // 2
    return _order_stat(tf, v, k) if length % 2 else 0.5 * (_order_stat(tf, v, k - 1) + _order_stat(tf, v, k))


def features(tf: Any, c: Any, x: Any) -> Any:
    """The unstandardised features of windows ``x`` in g (float32), constants from layer ``c``."""
    n, k, sw = c.n, c.k, sf.SUB_WINDOWS
    m = tf.reduce_mean(x, axis=1)  # (b, 3)
    # |m| with a matrix product: the converter fuses m / sqrt(sum(m * m)) into L2_NORMALIZATION,
    # an op whose output the int8 quantiser forces onto a fixed int8 grid (u is needed exactly)
    gnorm = tf.sqrt(tf.matmul(tf.square(m), np.ones((3, 1), np.float32)))  # (b, 1)
    u = m / (gnorm + 1e-12)  # (no MAXIMUM: the quantiser puts its input on an int8 grid)
    gnorm = gnorm[:, 0]
    xc = x - tf.expand_dims(m, 1)
    slope = tf.reduce_sum(xc * c.t, axis=1) / c.tt
    d = xc - tf.expand_dims(slope, 1) * c.t
    curv = tf.reduce_sum(d * c.q, axis=1) / c.qq
    u1 = tf.expand_dims(u, 1)
    par = tf.reduce_sum(d * u1, axis=2)  # (b, n)
    perp = d - tf.expand_dims(par, 2) * u1
    s = tf.concat([d, tf.expand_dims(par, 2), perp], axis=2)  # (b, n, SPECTRA)
    s = tf.reshape(tf.transpose(s, [0, 2, 1]), [-1, n])
    e = tf.matmul(tf.square(tf.matmul(s, c.dft)), c.mask)  # (b * SPECTRA, bands)
    nbands = len(sf.BANDS_HZ)
    e = tf.reshape(e, [-1, sf.SPECTRA, nbands])
    e_axis = tf.reshape(tf.transpose(_log(tf, e[:, 0:3, :]), [0, 2, 1]), [-1, 3 * nbands])
    e_par = _log(tf, e[:, 3, :])
    e_perp = _log(tf, tf.reduce_sum(e[:, 4:, :], axis=1))
    nb = sf.NOISE_BAND
    ratios = [e_perp[:, :nb] - e_perp[:, nb : nb + 1], e_par[:, :nb] - e_par[:, nb : nb + 1], e_perp - e_par]
    pieces = tf.reshape(d[:, : k * sw, :], [-1, sw, k, 3])
    piece_sd = _log(tf, tf.reduce_sum(_std(tf, pieces, 2), axis=2))  # (b, pieces)
    diffs = pieces[:, :, 1:, :] - pieces[:, :, :-1, :]
    piece_diff = _log(tf, tf.reduce_sum(_std(tf, diffs, 2), axis=2))
    quiet = [
        tf.reduce_min(piece_sd, 1), _median_last(tf, piece_sd, sw), tf.reduce_max(piece_sd, 1),
        tf.reduce_min(piece_diff, 1), _median_last(tf, piece_diff, sw), tf.reduce_max(piece_diff, 1),
        _order_stat(tf, piece_sd - piece_diff, 1),
    ]
    dd = tf.reshape(xc[:, 1:, :] - xc[:, :-1, :], [-1, (n - 1) * 3])
    tilt_deg = tf.sqrt(tf.reduce_sum(tf.square(perp), axis=2)) * np.float32(180.0 / np.pi)
    slope_par = _dot(tf, slope, u)
    curv_par = _dot(tf, curv, u)
    slope_perp = slope - tf.expand_dims(slope_par, 1) * u
    curv_perp = curv - tf.expand_dims(curv_par, 1) * u
    other = [
        gnorm, u[:, 0], u[:, 1], u[:, 2],
        _log(tf, tf.sqrt(_dot(tf, slope_perp, slope_perp))),
        _log(tf, tf.abs(slope_par)),
        _log(tf, tf.sqrt(_dot(tf, curv_perp, curv_perp))),
        _log(tf, tf.abs(curv_par)),
        _log(tf, tf.reduce_max(tilt_deg, 1)), _log(tf, _median_last(tf, tilt_deg, n)),
        _log(tf, tf.reduce_max(tf.abs(dd), 1) / (_std(tf, dd, 1) + 1e-9)),
        _log(tf, _std(tf, tf.sqrt(tf.reduce_sum(tf.square(x), axis=2)), 1)),
    ]
    cols = [e_axis, e_par, e_perp, *ratios] + [tf.expand_dims(v, 1) for v in quiet + other]
    return tf.concat(cols, axis=1)


def feature_layer(window_samples: int, rate_hz: float) -> Any:
    """The fixed ``wfeat_features`` layer (standardisation at identity until :func:`set_feature_stats`)."""
    from har.training._tf import import_tf

    tf, keras = import_tf()
    return _layer_class(tf, keras)(window_samples, rate_hz, name=FEATURES_LAYER)


def feature_branch(inp: Any, window_samples: int, n_channels: int, rate_hz: float, keras: Any) -> Any:
    """Standardised window features (batch, 63) of normalised windows ``inp``: the shared fixed
    part of the branch (one per model, also in an ensemble)."""
    if n_channels != 3:
        raise ConfigError(f"--window-features needs 3 accelerometer axes, the data has {n_channels} channels")
    check_window(window_samples)
    g = keras.layers.DepthwiseConv1D(1, use_bias=True, trainable=False, name=DENORM_LAYER)(inp)
    return feature_layer(window_samples, rate_hz)(g)


def mlp(units: tuple[int, ...], f: Any, prefix: str, keras: Any) -> Any:
    """The trainable Dense layers ``{prefix}wfeat_dense_{i}`` on the standardised features: relu,
    the last one tanh. Its output in [-1, 1] is the LSTM output's range: in an int8 export the
    embedding's CONCATENATION has one scale for all inputs, and the fused LSTM's output (its
    recurrent state) takes it; an unbounded relu output there broke the LSTM (agreement with
    Keras 13% on a small simulated model)."""
    for i, u in enumerate(units):
        act = "tanh" if i == len(units) - 1 else "relu"
        f = keras.layers.Dense(u, activation=act, name=f"{prefix}{PREFIX}dense_{i}")(f)
    return f
