"""Hand-made features of one accelerometer window (numpy, no TensorFlow): the reference of the
model's fixed "window features" branch (``ModelConfig.window_features``, har.training.window_features).

Per window (samples, 3) in g, N_FEATURES = 63 numbers that carry posture and the small motions
that tell sitting from standing when the forearm posture does not (postural sway, breathing,
micro-motion; bench/sim_sit_stand_ceiling.py, models/README.md):

* log band energies (BANDS_HZ, Hann window, one DFT) of the detrended window per axis, along the
  window's own mean gravity direction (micro-motion + sensor noise) and across it (tilt: sway);
* their ratios to the 6.5-12.5 Hz band (the wearer's white sensor noise) and across / along;
* quiet-part statistics over SUB_WINDOWS pieces (a fidget or a gesture spoils some pieces, not all);
* |mean| and the unit mean gravity vector, tilt trend and curvature (a 0.2-0.3 Hz breath),
  the largest and median tilt from the mean direction, spikiness, the spread of |a|.

The band edges are in Hz, so the rate is an argument. The DFT and band sums are matrices
(:func:`dft_matrix`, :func:`band_mask`) that the Keras branch uses as they are."""

from __future__ import annotations

import numpy as np

BANDS_HZ = ((0.3, 0.9), (0.9, 1.7), (1.7, 3.3), (3.3, 6.5), (6.5, 12.5), (12.5, 25.1))
NOISE_BAND = 4  # 6.5-12.5 Hz: the ratios are taken to this band
SUB_WINDOWS = 5  # quiet-part statistics over this many pieces (0.5 s each in a 2.5 s window)
# signals whose band energies are computed: the 3 detrended axes, along gravity, 3 across it
SPECTRA = 7
N_FEATURES = 63
MIN_SAMPLES = 2 * SUB_WINDOWS  # every piece needs two samples (its sample-to-sample differences)
EPS = 1e-12  # inside every log


def _log(v: np.ndarray) -> np.ndarray:
    return np.log(v + EPS)


def time_axis(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``t`` (linear, -1 to 1) and ``q`` (Legendre P2 of ``t``: the curvature a 0.2-0.3 Hz breath
    leaves in 2.5 s) over ``length`` samples, float64."""
    t = np.linspace(-1.0, 1.0, length)
    return t, 1.5 * t * t - 0.5


def dft_matrix(length: int) -> np.ndarray:
    """(length, 2 F) float64: ``s @ W`` is the real and imaginary parts of the real DFT (F = length
    // 2 + 1 bins) of ``s`` times a Hann window (numpy.hanning)."""
    n = np.arange(length)[:, None]
    f = np.arange(length // 2 + 1)[None, :]
    hann = np.hanning(length)[:, None]
    ang = 2.0 * np.pi * n * f / length
    return np.concatenate([hann * np.cos(ang), -hann * np.sin(ang)], axis=1)


def band_mask(length: int, rate_hz: float) -> np.ndarray:
    """(2 F, bands) float64: ``(s @ dft_matrix) ** 2 @ mask`` is the energy of each band of BANDS_HZ
    (a bin counts where lo <= f < hi)."""
    freqs = np.fft.rfftfreq(length, 1.0 / rate_hz)
    m = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in BANDS_HZ], axis=1).astype(np.float64)
    return np.concatenate([m, m], axis=0)


def window_features(x: np.ndarray, rate_hz: float) -> np.ndarray:
    """Features of windows ``x`` (n, samples, 3) in g at ``rate_hz`` -> (n, N_FEATURES) float32."""
    x = np.asarray(x, dtype=np.float64)
    n, length, _ = x.shape
    m = x.mean(axis=1)
    gnorm = np.linalg.norm(m, axis=1)
    u = m / gnorm[:, None]
    t, q = time_axis(length)
    slope = np.einsum("nlc,l->nc", x, t) / (t @ t)
    d = x - m[:, None, :] - slope[:, None, :] * t[None, :, None]  # detrended: wander removed
    curv = np.einsum("nlc,l->nc", d, q) / (q @ q)
    curv_perp = np.linalg.norm(curv - np.einsum("nc,nc->n", curv, u)[:, None] * u, axis=1)
    par = np.einsum("nlc,nc->nl", d, u)  # along gravity: micro-motion + noise (sway is 2nd order)
    perp = d - par[..., None] * u[:, None, :]  # across gravity: tilt (sway, breathing, events)
    s = np.concatenate([d, par[..., None], perp], axis=2)  # (n, length, SPECTRA)
    e = np.einsum("nls,lk->nsk", s, dft_matrix(length)) ** 2 @ band_mask(length, rate_hz)  # (n, SPECTRA, bands)
    e_axis = _log(e[:, 0:3, :]).transpose(0, 2, 1).reshape(n, -1)  # band-major: band 0 x, y, z, band 1 ...
    e_par, e_perp = _log(e[:, 3, :]), _log(e[:, 4:, :].sum(axis=1))
    nb = NOISE_BAND
    ratios = [e_perp[:, :nb] - e_perp[:, [nb]], e_par[:, :nb] - e_par[:, [nb]], e_perp - e_par]
    # quiet parts: a fidget or gesture spoils some pieces, not all
    k = length // SUB_WINDOWS
    pieces = d[:, : k * SUB_WINDOWS].reshape(n, SUB_WINDOWS, k, 3)
    piece_sd = _log(pieces.std(axis=2).sum(axis=2))  # (n, pieces)
    piece_diff = _log(np.diff(pieces, axis=2).std(axis=2).sum(axis=2))  # noise level per piece
    quiet = [
        piece_sd.min(1), np.median(piece_sd, 1), piece_sd.max(1),
        piece_diff.min(1), np.median(piece_diff, 1), piece_diff.max(1),
        np.sort(piece_sd - piece_diff, axis=1)[:, 1],
    ]
    dd = np.diff(x, axis=1)
    tilt_deg = np.degrees(np.linalg.norm(perp, axis=2))  # small-angle tilt from the window's mean
    other = [
        gnorm, u[:, 0], u[:, 1], u[:, 2],
        _log(np.linalg.norm(slope - np.einsum("nc,nc->n", slope, u)[:, None] * u, axis=1)),  # tilt trend
        _log(np.abs(np.einsum("nc,nc->n", slope, u))),
        _log(curv_perp), _log(np.abs(np.einsum("nc,nc->n", curv, u))),
        _log(tilt_deg.max(1)), _log(np.median(tilt_deg, 1)),
        _log(np.abs(dd).max(axis=(1, 2)) / (dd.std(axis=(1, 2)) + 1e-9)),  # spikiness (events)
        _log(np.linalg.norm(x, axis=2).std(1)),
    ]
    cols = [e_axis, e_par, e_perp, *ratios, *quiet, *other]
    return np.column_stack([c.reshape(n, -1) for c in cols]).astype(np.float32)


def mean_tilt_deg(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pitch and roll (degrees) of the mean gravity direction of windows ``x`` (n, samples, 3)."""
    m = np.asarray(x, dtype=np.float64).mean(axis=1)
    u = m / np.linalg.norm(m, axis=1)[:, None]
    return np.degrees(np.arcsin(np.clip(u[:, 0], -1, 1))), np.degrees(np.arctan2(-u[:, 1], u[:, 2]))


def feature_stats(x: np.ndarray, rate_hz: float, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (floored at ``floor``) over windows ``x``, float32."""
    f = window_features(x, rate_hz).astype(np.float64)
    return f.mean(axis=0).astype(np.float32), np.maximum(f.std(axis=0), floor).astype(np.float32)
