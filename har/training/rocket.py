"""MiniRocket inside the exported model: a fixed feature branch beside the LSTM (``ModelConfig.rocket_features``).

aeon's MiniRocket (Dempster et al. 2021) convolves each window with 84 fixed kernels of length 9
(weight -1 everywhere, +2 at three of the nine taps) at a few dilations, sums the kernel's output
over a random combination of channels, and keeps "the proportion of positive values" (PPV) of the
output minus a bias fitted as a quantile of the training outputs. Here the same features are a
fixed Keras sub-graph with builtin TFLite ops only (:func:`rocket_branch`), per dilation ``d``:

* ``rocket_same_{j}`` / ``rocket_valid_{j}``: Conv1D(kernel 9, dilation d, no bias) with
  ``weight[:, c, k]`` = kernel ``k``'s pattern if channel ``c`` is in its channel combination, else
  0. MiniRocket keeps the full zero-padded output for kernels with ``(j + k)`` even and the part
  without padding for the others: the first group is a "same" conv, the second a "valid" one.
* ``rocket_step_*``: DepthwiseConv1D(1, depth_multiplier = features of this dilation) with weight
  ``6 K`` and bias ``-6 K bias``, fused RELU6: a step from 0 to 6 at the bias, ``1 / K`` wide.
  Each kernel's weights (and its biases) are scaled so that its output peaks at 1 on the training
  windows (every kernel gets the whole int8 range of its conv output) and ``K`` = STEP_TARGET:
  in int8 the step is about one quantisation level wide, and within XNNPACK's limits.
* ``rocket_mean_*``: the mean over time; all are concatenated and divided by 6 into ``rocket_ppv``
  (in [0, 1], inside the LSTM embedding's range: an int8 CONCATENATION has one scale for all
  inputs, and the fused LSTM's output takes it) (feature order:
  per dilation the "same" kernels then the "valid" ones; :func:`feature_order` maps it to aeon's).

The input is the model's normalised window; a fixed ``rocket_denorm`` (x * std + mean) gives back g,
so the features are those of MiniRocket on raw windows (as `har train --reference`). The graph's
shape (dilations, features per dilation) follows from the window length and ``rocket_features``
alone (:func:`dilations_for`, aeon's rule); the channel combinations and biases are the fixed
layers' weights, saved with the others.

The head (:func:`fit_with_rocket`): the LSTM (or ensemble) is trained as without the branch;
MiniRocket -> StandardScaler -> RidgeClassifierCV (aeon's MiniRocketClassifier) is fitted on the
training windows' features (never the validation windows), the scaler folded into the ridge
weights; the single softmax head ``probs`` reads ``[LSTM embedding, PPV]`` with weights
``[LSTM head; beta * ridge]``, so logits = LSTM logits + beta * ridge scores. ``beta`` is chosen on
the validation windows (:func:`choose_beta`). aeon is needed to train such a model only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np

from har.artifacts.layout import ROCKET_PPV_LAYER
from har.errors import ConfigError
from har.scoring.metrics import paired_gain

KERNEL_LENGTH = 9
INDICES = np.array(list(combinations(range(KERNEL_LENGTH), 3)), dtype=np.int32)  # MiniRocket._indices
N_KERNELS = len(INDICES)  # 84
MAX_DILATIONS = 32  # aeon's max_dilations_per_kernel default
STEP_GAIN = 1e6  # the near-step K * (conv - bias) clipped to [0, 1] (times PPV_SCALE), when no peaks are known
# with each kernel's output scaled to peak |value| 1 on the training windows: K = STEP_TARGET, so the
# step is 1 / STEP_TARGET of the peak wide in float and the int8 requantisation multiplier of the
# step layer is about 2 * STEP_TARGET / 127 (XNNPACK refuses multipliers of 256 and more)
STEP_TARGET = 8000.0
PPV_SCALE = 6.0  # the step is a fused RELU6: from 0 to PPV_SCALE (the mean divides it out)
RIDGE_ALPHAS = np.logspace(-3, 3, 10)  # aeon's MiniRocketClassifier
# scaler floor: near-constant features get no huge weights (the int8 head has one weight scale per
# class). Chosen by 3-fold subject CV on the training subjects of the exercise set and BasicMotions'
# TRAIN split (numpy, ridge alone, docs/training.md): 0.01 / 0.03 / 0.1 / 0.3 -> watch accuracy
# 0.840 / 0.842 / 0.847 / 0.848, int8-weight agreement 98.0 / 99.7 / 99.6 / 99.8%; basic 1.0 for all
SIGMA_FLOOR = 0.3
MIN_WINDOWS_PER_CLASS = 2  # below this the ridge's leave-one-out choice of alpha is undefined
MAX_TRAIN_WINDOWS = 4000  # ridge fit on a stratified subset above this (as har.training.reference)
BETAS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # beta grid: logits = LSTM + beta * ridge
# betas scored on every cross-validation fold's test windows (:func:`beta_sweep`; `har tune` chooses
# among them by the folds, :func:`choose_cv_beta`): no extra training, the fold's
# LSTM and ridge are taken apart from the fitted head
SWEEP_BETAS = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
RIDGE_ONLY_SCALES = (1.0, 2.0, 4.0, 8.0, 16.0)  # "ridge only": LSTM head zeroed, ridge scaled by one of these
INSTALL_HINT = "pip install 'har-edge[train]' (or: pip install aeon)"
PPV_LAYER = ROCKET_PPV_LAYER
DENORM_LAYER = "rocket_denorm"


def require_aeon() -> None:
    """ConfigError (one line) when aeon (MiniRocket) is not installed."""
    if not aeon_available():
        raise ConfigError(f"--rocket-features needs aeon for MiniRocket: {INSTALL_HINT}")


def dilations_for(window_samples: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """MiniRocket's dilations and features per kernel at each, for windows of ``window_samples``
    and ``n_features`` features (aeon's ``_fit_dilations``, so the graph needs no aeon)."""
    per_kernel = max(1, n_features // N_KERNELS)
    true_max = min(per_kernel, MAX_DILATIONS)
    multiplier = per_kernel / true_max
    max_exponent = np.log2((window_samples - 1) / (KERNEL_LENGTH - 1))
    dil, counts = np.unique(
        np.logspace(0, max_exponent, true_max, base=2).astype(np.int32), return_counts=True
    )
    counts = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - int(np.sum(counts))
    i = 0
    while remainder > 0:
        counts[i] += 1
        remainder -= 1
        i = (i + 1) % len(counts)
    return dil.astype(np.int64), counts.astype(np.int64)


def check_window(window_samples: int) -> None:
    if window_samples < KERNEL_LENGTH:
        raise ConfigError(f"--rocket-features: MiniRocket needs windows of at least {KERNEL_LENGTH} samples")


def default_features() -> int:
    """``rocket_features`` of `har train`'s default model (``TrainConfig().model``)."""
    from har.config import TrainConfig

    return TrainConfig().model.rocket_features


def aeon_available() -> bool:
    try:
        import aeon  # noqa: F401
    except ImportError:
        return False
    return True


def cannot_train(config: Any, *, cache: bool = False, distributed: bool = False) -> str | None:
    """Why the branch of ``config`` (``model.rocket_features > 0``) cannot be trained here, before
    any data is read ("" / None when it can): MiniRocket and its ridge are fitted in one process on
    the training windows held in memory, on windows of at least KERNEL_LENGTH samples, with aeon."""
    if config.model.rocket_features <= 0:
        return None
    if cache:
        return "MiniRocket is fitted on the training windows held in memory, --cache streams them"
    if distributed:
        return "MiniRocket's ridge is fitted in one process on all training windows, not split across workers"
    if config.window.window_samples < KERNEL_LENGTH:
        return (f"MiniRocket needs windows of at least {KERNEL_LENGTH} samples, these have "
                f"{config.window.window_samples} ({config.window.window_s:g} s at {config.window.rate_hz:g} Hz)")
    if not aeon_available():
        return f"MiniRocket needs aeon, which is not installed: {INSTALL_HINT}"
    return None


def too_few_windows(y: np.ndarray) -> str | None:
    """Why the ridge cannot be fitted on training labels ``y`` (fewer than MIN_WINDOWS_PER_CLASS
    windows of a class: its leave-one-out choice of alpha is undefined), else None."""
    counts = np.bincount(np.asarray(y, dtype=np.int64)) if np.size(y) else np.zeros(0, np.int64)
    present = counts[counts > 0]
    if present.size and int(present.min()) >= MIN_WINDOWS_PER_CLASS:
        return None
    return f"MiniRocket's ridge needs at least {MIN_WINDOWS_PER_CLASS} training windows of every class"


def without_branch(config: Any, why: str, named: bool, echo: Callable[[str], None]) -> Any:
    """``config`` without the MiniRocket branch because of ``why`` (:func:`cannot_train`): when the
    user ``named`` the number of features (``--rocket-features N``, or a value other than the
    default) a one-line ConfigError; when it came from the default, ``rocket_features=0`` (what the
    saved config records) and a note on ``echo``."""
    n = config.model.rocket_features
    if named or n != default_features():
        raise ConfigError(f"--rocket-features {n}: {why} (train with --rocket-features 0)")
    echo(f"note: the default MiniRocket branch (--rocket-features {n}) is dropped: {why}; "
         "training the LSTM alone (rocket_features 0 recorded)")
    return dataclasses.replace(config, model=dataclasses.replace(config.model, rocket_features=0))


def settle(
    config: Any, named: bool, echo: Callable[[str], None], *, cache: bool = False, distributed: bool = False
) -> Any:
    """``config`` as it can be trained here: unchanged, or without the branch (:func:`without_branch`)."""
    why = cannot_train(config, cache=cache, distributed=distributed)
    return without_branch(config, why, named, echo) if why else config


def _groups(j: int) -> tuple[list[int], list[int]]:
    """Kernels of dilation index ``j`` whose full output counts ("same") and those whose output
    without the zero-padded ends counts ("valid")."""
    same = [k for k in range(N_KERNELS) if (j + k) % 2 == 0]
    valid = [k for k in range(N_KERNELS) if (j + k) % 2 == 1]
    return same, valid


def feature_order(window_samples: int, n_features: int) -> np.ndarray:
    """``order`` such that the graph's feature ``i`` is aeon's feature ``order[i]``."""
    _, fpd = dilations_for(window_samples, n_features)
    out, start = [], 0
    for j, f in enumerate(fpd):
        for group in _groups(j):
            for k in group:
                out.extend(range(start + k * int(f), start + (k + 1) * int(f)))
        start += N_KERNELS * int(f)
    return np.asarray(out, dtype=np.int64)


def n_features(window_samples: int, rocket_features: int) -> int:
    return N_KERNELS * int(np.sum(dilations_for(window_samples, rocket_features)[1]))


def rocket_branch(rocket_features: int, inp: Any, window_samples: int, n_channels: int, keras: Any) -> Any:
    """The PPV features (batch, n_features) of normalised windows ``inp`` (batch, window, channels)
    as fixed layers (weights set by :func:`set_rocket_weights`)."""
    layers = keras.layers
    dil, fpd = dilations_for(window_samples, rocket_features)
    x = layers.DepthwiseConv1D(1, use_bias=True, trainable=False, name=DENORM_LAYER)(inp)
    outs = []
    for j, (d, f) in enumerate(zip(dil.tolist(), fpd.tolist(), strict=True)):
        for kind, group in zip(("same", "valid"), _groups(j), strict=True):
            c = layers.Conv1D(
                len(group), KERNEL_LENGTH, dilation_rate=d, padding="same", use_bias=False,
                trainable=False, name=f"rocket_{kind}_{j}",
            )(x)
            if kind == "valid":  # the outputs that saw no zero padding (a "valid" dilated conv converts badly)
                c = layers.Cropping1D((4 * d, 4 * d), name=f"rocket_crop_{j}")(c)
            s = layers.DepthwiseConv1D(  # relu6 fuses into the op: a step from 0 to PPV_SCALE
                1, depth_multiplier=f, use_bias=True, activation="relu6", trainable=False,
                name=f"rocket_step_{kind}_{j}",
            )(c)
            outs.append(layers.GlobalAveragePooling1D(name=f"rocket_mean_{kind}_{j}")(s))
    ppv = layers.Concatenate(axis=-1, name="rocket_features")(outs)
    # / PPV_SCALE: the PPV in [0, 1], inside the range of the LSTM embedding it is concatenated with
    # (an int8 CONCATENATION has one scale for all inputs, and the fused LSTM's output takes it)
    return layers.Rescaling(1.0 / PPV_SCALE, name=PPV_LAYER)(ppv)


def rocket_weights(
    parameters: tuple[np.ndarray, ...], window_samples: int, n_channels: int, rocket_features: int,
    mean: np.ndarray, std: np.ndarray, peaks: dict[str, float] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Layer name -> weights of the branch from aeon's fitted ``MiniRocket.parameters``
    ``(n_channels_per_combination, channel_indices, dilations, n_features_per_dilation, biases)``
    and the model's normalisation. ``peaks`` (conv layer name -> peak |output| of each kernel on
    the training windows, :func:`conv_peaks`) scales each kernel (and its biases) to peak 1 and
    sets the steps' gain to STEP_TARGET (else: unscaled, gain STEP_GAIN)."""
    n_per, chan_idx, dil_a, fpd_a, biases = (np.asarray(p) for p in parameters)
    dil, fpd = dilations_for(window_samples, rocket_features)
    if not (np.array_equal(dil, dil_a) and np.array_equal(fpd, fpd_a)):
        raise ValueError(f"MiniRocket dilations {dil_a}/{fpd_a} differ from the graph's {dil}/{fpd}")
    starts = np.concatenate([[0], np.cumsum(n_per)])
    out: dict[str, list[np.ndarray]] = {
        DENORM_LAYER: [
            np.asarray(std, np.float32).reshape(1, n_channels, 1),
            np.asarray(mean, np.float32).reshape(n_channels),
        ]
    }
    f_start = 0
    for j, f in enumerate(fpd.tolist()):
        for kind, group in zip(("same", "valid"), _groups(j), strict=True):
            kern = np.zeros((KERNEL_LENGTH, n_channels, len(group)), np.float32)
            bias = np.zeros((len(group) * f,), np.float32)
            for i, k in enumerate(group):
                comb = j * N_KERNELS + k
                pattern = -np.ones(KERNEL_LENGTH, np.float32)
                pattern[INDICES[k]] = 2.0
                for ch in chan_idx[starts[comb] : starts[comb + 1]]:
                    kern[:, int(ch), i] = pattern
                bias[i * f : (i + 1) * f] = biases[f_start + k * f : f_start + (k + 1) * f]
            gain = np.full((len(group), f), STEP_GAIN, np.float32)
            if peaks is not None:  # each kernel's output scaled to peak 1: its own int8 range
                scale = 1.0 / np.maximum(np.asarray(peaks[f"rocket_{kind}_{j}"], np.float32), 1e-6)
                kern = kern * scale.reshape(1, 1, -1)
                bias = bias * np.repeat(scale, f)
                gain[:] = STEP_TARGET
            out[f"rocket_{kind}_{j}"] = [kern]
            out[f"rocket_step_{kind}_{j}"] = [
                (PPV_SCALE * gain).reshape(1, len(group), f),
                (-PPV_SCALE * gain.reshape(-1) * bias).astype(np.float32),
            ]
        f_start += N_KERNELS * f
    return out


def conv_peaks(model: Any, xn: np.ndarray) -> dict[str, np.ndarray]:
    """Peak |output| of each output channel of the branch's convolutions on normalised windows ``xn``
    (of the unscaled kernels: call it on a model set without ``peaks``)."""
    from har.training._tf import import_tf

    _, keras = import_tf()
    convs = [layer for layer in model.layers if layer.name.startswith(("rocket_same_", "rocket_valid_"))]
    sub = keras.Model(model.input, [layer.output for layer in convs])
    peaks = {layer.name: np.zeros(int(layer.output.shape[-1])) for layer in convs}
    for i in range(0, len(xn), 512):
        outs = sub.predict(xn[i : i + 512], verbose=0)
        outs = outs if isinstance(outs, list) else [outs]
        for layer, o in zip(convs, outs, strict=True):
            peaks[layer.name] = np.maximum(peaks[layer.name], np.abs(o).max(axis=(0, 1)))
    return peaks


def set_rocket_weights(model: Any, weights: dict[str, list[np.ndarray]]) -> None:
    for name, w in weights.items():
        model.get_layer(name).set_weights(w)


def fit_minirocket(x: np.ndarray, rocket_features: int, seed: int) -> Any:
    """aeon's MiniRocket fitted on raw windows ``x`` (n, window, channels)."""
    require_aeon()
    from aeon.transformations.collection.convolution_based import MiniRocket
    from threadpoolctl import threadpool_limits

    mr = MiniRocket(n_kernels=rocket_features, random_state=seed, n_jobs=1)
    with threadpool_limits(1):
        mr.fit(_channels_first(x))
    return mr


def transform(mr: Any, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """aeon's PPV features (n, n_features) of raw windows ``x`` (n, window, channels)."""
    parts = [np.asarray(mr.transform(_channels_first(x[i : i + chunk])), np.float32) for i in range(0, len(x), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def _channels_first(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(np.asarray(x), (0, 2, 1)), dtype=np.float32)


def fit_ridge(features: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """StandardScaler (no centring, std floored at SIGMA_FLOOR) -> RidgeClassifierCV on PPV
    ``features`` (aeon order); returns ``(W (n_features, n_classes), b (n_classes,), alpha)`` with
    the scaler folded in: scores = features @ W + b. Classes absent from ``y`` score -1 (the
    ridge target of "not this class")."""
    from sklearn.linear_model import RidgeClassifierCV
    from threadpoolctl import threadpool_limits

    sigma = np.maximum(features.std(axis=0), SIGMA_FLOOR)
    with threadpool_limits(1):
        clf = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit(features / sigma, y)
    coef = np.atleast_2d(clf.coef_)
    icpt = np.atleast_1d(clf.intercept_)
    present = np.asarray(clf.classes_, dtype=np.int64)
    if len(present) == 2:  # binary ridge: one score s for the second class; targets -1 / +1
        coef = np.vstack([-coef[0], coef[0]])
        icpt = np.array([-icpt[0], icpt[0]])
    w = np.zeros((features.shape[1], n_classes), np.float64)
    b = np.full((n_classes,), -1.0)
    if len(present) == 1:
        b[present[0]] = 1.0
    else:
        w[:, present] = (coef / sigma).T
        b[present] = icpt
    return w.astype(np.float32), b.astype(np.float32), float(clf.alpha_)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def choose_beta(lstm_logp: np.ndarray, ridge: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The combination by validation accuracy, ties to log-loss: ``beta`` from BETAS (LSTM logits
    + beta * ridge scores), or "ridge only" (LSTM head zeroed, ridge scaled by the best of
    RIDGE_ONLY_SCALES by log-loss). ``lstm_logp``: the LSTM's log-probabilities on the validation
    windows (logits up to a per-window constant). Returns ``beta``, ``lstm`` (1.0 keep, 0.0 zeroed)
    and ``table`` [(name, accuracy, log-loss)]. Without validation windows: beta 1 with the LSTM."""
    if y.size == 0:
        return {"beta": 1.0, "lstm": 1.0, "table": []}
    cands = [(b, 1.0, f"beta {b:g}") for b in BETAS] + [(s, 0.0, f"ridge only x{s:g}") for s in RIDGE_ONLY_SCALES]
    rows = []
    for beta, keep, name in cands:
        lp = _log_softmax(keep * lstm_logp + beta * ridge)
        acc = float(np.mean(lp.argmax(axis=1) == y))
        ll = float(-np.mean(lp[np.arange(y.size), y]))
        rows.append((name, acc, ll, beta, keep))
    best = max(rows, key=lambda r: (r[1], -r[2]))
    return {"beta": best[3], "lstm": best[4], "table": [(r[0], r[1], r[2]) for r in rows]}


def fit_with_rocket(
    config: Any,
    norm: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    fit_one: Callable[..., tuple[Any, dict[str, list[float]]]],
    **kwargs: Any,
) -> tuple[Any, dict[str, list[float]]]:
    """``config.model.rocket_features > 0``: the LSTM (ensemble) fitted by ``fit_one`` without the
    branch, MiniRocket + ridge fitted on all training windows and added with the fixed
    ``rocket_beta`` (or, with "auto", fitted without the validation windows and beta chosen on
    them: :func:`choose_beta`), all assembled into one model. The history gains ``rocket_beta``, ``rocket_lstm``
    (1 kept, 0 zeroed), ``rocket_alpha`` (the ridge's), ``rocket_val_accuracy`` (per candidate,
    BETAS then RIDGE_ONLY_SCALES)."""
    from har.training.model import build_model
    from har.training.reference import stratified_subset

    require_aeon()
    if not isinstance(x_train, np.ndarray) or not isinstance(x_val, np.ndarray):
        raise ConfigError("--rocket-features works with in-memory training only (not the window cache)")
    nf = config.model.rocket_features
    w_samples, n_ch = int(x_train.shape[1]), int(x_train.shape[2])
    check_window(w_samples)
    plain = dataclasses.replace(config, model=dataclasses.replace(config.model, rocket_features=0))
    lstm, hist = fit_one(plain, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, **kwargs)
    fixed = not isinstance(config.model.rocket_beta, str)
    # a fixed beta needs no validation windows: the ridge fits on all training windows (as MiniRocket
    # alone would); "auto" keeps the validation windows out of it to choose beta on them
    x_fit, y_fit = (np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])) if fixed else (x_train, y_train)
    sel = stratified_subset(y_fit, MAX_TRAIN_WINDOWS, config.seed)
    echo(f"rocket: fitting MiniRocket ({nf} features) and its ridge head on {len(sel)} training windows")
    mr = fit_minirocket(x_fit[sel], nf, config.seed)
    order = feature_order(w_samples, nf)
    w, b, alpha = fit_ridge(transform(mr, x_fit[sel]), y_fit[sel], n_classes)
    w = w[order]  # graph order
    model = build_model(config.model, w_samples, n_ch, n_classes, rate_hz=config.window.rate_hz)
    for layer in lstm.layers:
        if layer.get_weights() and layer.name != "probs":
            model.get_layer(layer.name).set_weights(layer.get_weights())
    set_rocket_weights(model, rocket_weights(mr.parameters, w_samples, n_ch, nf, norm.mean, norm.std))
    from har.training.fit import normalize

    peaks = conv_peaks(model, normalize(x_train, norm))  # the int8 export calibrates on training windows
    set_rocket_weights(model, rocket_weights(mr.parameters, w_samples, n_ch, nf, norm.mean, norm.std, peaks))
    lw, lb = lstm.get_layer("probs").get_weights()
    if fixed:
        beta, keep = float(config.model.rocket_beta), 1.0
        acc: dict[str, float] = {}
        echo(f"rocket: head = LSTM + {beta:g} x ridge (fixed; the ridge fitted on all {len(y_fit)} training windows)")
    else:
        if x_val.shape[0]:
            from har.training.fit import predict_proba

            logp = np.log(np.clip(predict_proba(lstm, x_val, norm), 1e-12, 1.0))
            ridge_val = transform(mr, x_val)[:, order] @ w + b
        else:
            logp, ridge_val = np.zeros((0, n_classes)), np.zeros((0, n_classes))
        choice = choose_beta(logp, ridge_val, np.asarray(y_val))
        beta, keep = choice["beta"], choice["lstm"]
        acc = {name: a for name, a, _ in choice["table"]}
        shown = ", ".join(
            f"{n} {a:.4f}" for n, a in acc.items() if not n.startswith("ridge only x") or n.endswith("x1")
        )
        what = f"LSTM + {beta:g} x ridge" if keep else f"ridge only (x{beta:g})"
        echo(f"rocket: validation accuracy {shown}" if shown else "rocket: no validation windows")
        echo(f"rocket: chose {what}")
    model.get_layer("probs").set_weights([np.concatenate([keep * lw, beta * w]), keep * lb + beta * b])
    hist = dict(hist)
    hist["rocket_beta"] = [float(beta)]
    hist["rocket_lstm"] = [float(keep)]
    hist["rocket_alpha"] = [alpha]
    hist["rocket_ridge_bias"] = [float(v) for v in b]  # beta_sweep takes the head apart with it
    if acc:
        hist["rocket_val_accuracy"] = [float(a) for a in acc.values()]
    return model, hist


def beta_sweep(
    model: Any, xn: np.ndarray, y: np.ndarray, hist: dict[str, list[float]], classes: list[str] | None = None,
    betas: tuple[float, ...] = SWEEP_BETAS,
) -> dict[str, dict[str, float]] | None:
    """Accuracy and macro-F1 on ``(xn, y)`` (normalised windows, encoded labels) of the head
    ``LSTM logits + beta * ridge scores`` for each of ``betas``, from a model fitted by
    :func:`fit_with_rocket` (``hist`` its history): the head's rows are split at the PPV features,
    the ridge's rows divided by the fitted beta and its bias (``rocket_ridge_bias``) taken out of the
    head's bias. No training; the fitted beta's entry is the model's own prediction. ``None`` when the
    head cannot be taken apart (beta 0, the LSTM zeroed, or no ridge bias in ``hist``)."""
    from har.scoring.metrics import compute_metrics
    from har.training._tf import import_tf

    beta0 = float(hist.get("rocket_beta", [0.0])[0])
    if beta0 <= 0 or float(hist.get("rocket_lstm", [1.0])[0]) != 1.0 or "rocket_ridge_bias" not in hist:
        return None
    _, keras = import_tf()
    n = int(model.get_layer(ROCKET_PPV_LAYER).output.shape[-1])
    emb = keras.Model(model.input, model.get_layer("rocket_embedding").output).predict(xn, batch_size=256, verbose=0)
    w, bias = model.get_layer("probs").get_weights()
    rb = np.asarray(hist["rocket_ridge_bias"], dtype=np.float64)
    lstm = emb[:, :-n].astype(np.float64) @ w[:-n] + (bias - beta0 * rb)
    ridge = emb[:, -n:].astype(np.float64) @ (w[-n:] / beta0) + rb
    names = classes if classes is not None else [str(i) for i in range(w.shape[1])]
    out: dict[str, dict[str, float]] = {}
    for beta in sorted({*betas, beta0}):
        m = compute_metrics(np.asarray(y), (lstm + beta * ridge).argmax(axis=1), names)
        out[f"{beta:g}"] = {"accuracy": float(m["accuracy"]), "macro_f1": float(m["macro_f1"])}
    return out


def choose_cv_beta(sweeps: list[dict[str, dict[str, float]]], configured: float) -> dict[str, Any]:
    """The head's beta chosen by cross-validation: ``sweeps`` holds one :func:`beta_sweep` per fold
    (the same folds for every beta). The beta with the best mean fold accuracy is chosen (ties:
    macro-F1, then the configured one), as RidgeCV chooses its alpha: every beta is scored on the
    same fold models (one fitted head, re-weighted; no training, no extra capacity), so a
    standard-error margin, which har.training.tune_final asks of trials that are trained apart,
    would only keep a worse weight. The paired gain over the configured beta and its standard
    error are reported beside the choice.

    Returns ``configured``, ``beta`` (the choice), ``gain`` and ``se`` (the choice over configured,
    in accuracy), ``fold_accuracy`` / ``fold_macro_f1`` of the choice, and ``table`` {beta: mean fold
    accuracy}."""
    keys = [k for k in sweeps[0] if all(k in s for s in sweeps)]
    conf = f"{float(configured):g}"
    if conf not in keys:
        raise ValueError(f"beta sweep has no entry for the configured beta {conf}")
    acc = {k: np.array([s[k]["accuracy"] for s in sweeps], dtype=np.float64) for k in keys}
    f1 = {k: np.array([s[k]["macro_f1"] for s in sweeps], dtype=np.float64) for k in keys}
    chosen = max(keys, key=lambda k: (acc[k].mean(), f1[k].mean(), k == conf))
    gain, se = paired_gain(acc[chosen], acc[conf])
    return {
        "configured": float(configured),
        "beta": float(chosen),
        "best": float(chosen),
        "gain": gain,
        "se": se,
        "fold_accuracy": [float(v) for v in acc[chosen]],
        "fold_macro_f1": [float(v) for v in f1[chosen]],
        "table": {k: float(acc[k].mean()) for k in keys},
    }
