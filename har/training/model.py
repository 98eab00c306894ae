"""The many-to-one LSTM classifier (tf-keras). Imported only by training and export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from har.config import ModelConfig
from har.training._tf import import_tf

DENORM_LAYER = "denorm"  # fixed (non-trainable) x * std + mean, set from the Normalization
PARTS = ("raw", "gravity", "body", "magnitude")  # representation parts, in concatenation order
SCALE_LAYERS = tuple(f"{p}_scale" for p in PARTS)  # fixed per-channel factors (build_model's channel_scales)
# The fixed layers that compute the representation from the input window (before the first Conv1D)
REPRESENTATION_LAYERS = (
    "gravity_lowpass", "centre_crop", "body", DENORM_LAYER, "squared", "norm_sq_minus_1", *SCALE_LAYERS,
    "representation",
)


def gravity_samples(window_samples: int) -> int:
    """Length (odd, >= 3) of the moving average that estimates gravity: a fifth of the window
    (1 s for the 5 s default), so no sample rate is needed to rebuild the graph."""
    k = max(3, window_samples // 5)
    return k if k % 2 else k + 1


def input_channels(cfg: ModelConfig, n_channels: int = 3) -> int:
    """Channels the LSTM front end sees for ``cfg.representation``."""
    rep = cfg.representation
    n = 2 * n_channels if rep.startswith("gravity_body") else n_channels
    return n + (1 if rep.endswith("magnitude") else 0)


def _representation_parts(
    cfg: ModelConfig, x: Any, window_samples: int, n_channels: int, keras: Any
) -> list[tuple[str, Any]]:
    """Normalised windows -> the model's input channels as named parts (``gravity``, ``body``,
    ``magnitude`` or ``raw``), in the order they are concatenated, with builtin TFLite ops only.

    The moving average is a fixed DepthwiseConv1D ("valid": no zero-padded edges, so the sequence
    is ``gravity_samples - 1`` shorter; the body part is the centred crop minus the average).
    Normalisation is affine per axis, so the split of normalised data is the normalised split."""
    layers = keras.layers
    rep = cfg.representation
    if rep == "raw":
        return [("raw", x)]
    parts: list[tuple[str, Any]] = []
    k = gravity_samples(window_samples)
    split = rep.startswith("gravity_body") and window_samples > k
    if split:
        gravity = layers.DepthwiseConv1D(
            k,
            padding="valid",
            use_bias=False,
            depthwise_initializer=keras.initializers.Constant(1.0 / k),
            trainable=False,
            name="gravity_lowpass",
        )(x)
        crop = layers.Cropping1D((k // 2, k // 2), name="centre_crop")(x)
        body = layers.Subtract(name="body")([crop, gravity])
        parts += [("gravity", gravity), ("body", body)]
        x_ref = crop
    else:
        parts.append(("raw", x))
        x_ref = x
    if rep.endswith("magnitude"):
        # back to g: x * std + mean, a fixed per-axis affine (weights stored with the model)
        raw = layers.DepthwiseConv1D(1, use_bias=True, trainable=False, name=DENORM_LAYER)(x_ref)
        sq = layers.Multiply(name="squared")([raw, raw])
        sumsq = layers.Dense(
            1,
            use_bias=True,
            kernel_initializer="ones",
            bias_initializer=keras.initializers.Constant(-1.0),
            trainable=False,
            name="norm_sq_minus_1",  # |a|^2 - 1 g^2: 0 at rest, orientation-free
        )(sq)
        parts.append(("magnitude", sumsq))
    return parts


def _scaled(parts: list[tuple[str, Any]], scales: Sequence[float], keras: Any) -> list[tuple[str, Any]]:
    """Each part times fixed per-channel ``scales`` (a 1x1 DepthwiseConv1D ``{part}_scale``)."""
    out, start = [], 0
    for name, t in parts:
        n = int(t.shape[-1])
        c = np.asarray(scales[start : start + n], dtype=np.float32).reshape(1, n, 1)
        start += n
        layer = keras.layers.DepthwiseConv1D(
            1, use_bias=False, depthwise_initializer=keras.initializers.Constant(c), trainable=False,
            name=f"{name}_scale",
        )
        out.append((name, layer(t)))
    if start != len(scales):
        raise ValueError(f"{len(scales)} channel scales for {start} representation channels")
    return out


def equalization_scales(peaks: np.ndarray, kernel_rows: np.ndarray) -> np.ndarray:
    """Per-channel factors for the int8 export's representation (build_model's ``channel_scales``),
    balanced between the channel's activations and the first Conv1D's weights that read it
    (cross-layer equalization, Nagel et al. 2019, "Data-Free Quantization"): scaling channel i by
    c_i = sqrt(w_i / a_i) (``a_i`` its peak |value|, ``w_i`` the peak |weight| of its kernel row)
    gives it the range sqrt(a_i w_i) in both, so no channel has a few int8 steps in either; then
    all are divided so that the largest scaled peak is 1."""
    a = np.maximum(np.asarray(peaks, dtype=np.float64), 1e-6)
    w = np.maximum(np.asarray(kernel_rows, dtype=np.float64), 1e-6)
    c = np.sqrt(w / a)
    return (c / np.max(c * a)).astype(np.float32)


def first_conv_rows(model: Any) -> np.ndarray:
    """Peak |weight| of each input channel's kernel row over every first Conv1D (``conv_0``, one
    per ensemble member) of ``model``."""
    rows = [np.abs(layer.get_weights()[0]).max(axis=(0, 2)) for layer in model.layers if layer.name.endswith("conv_0")]
    return np.max(rows, axis=0)


def channel_peaks(model: Any, x: np.ndarray) -> np.ndarray | None:
    """Largest |value| of each representation channel of ``model`` on normalised windows ``x``
    (None when the model has no concatenated representation)."""
    _, keras = import_tf()
    try:
        rep = model.get_layer("representation").output
    except ValueError:
        return None
    out = keras.Model(model.input, rep).predict(x, batch_size=256, verbose=0)
    return np.asarray(np.abs(out).max(axis=(0, 1)), dtype=np.float32)


def _concat(parts: list[tuple[str, Any]], keras: Any) -> Any:
    tensors = [t for _, t in parts]
    return keras.layers.Concatenate(axis=-1, name="representation")(tensors) if len(tensors) > 1 else tensors[0]


def set_normalization(model: Any, mean: Sequence[float], std: Sequence[float]) -> None:
    """Store the per-axis normalisation in the fixed de-normalisation layers (x * std + mean) the
    model has: the magnitude representation's and the MiniRocket branch's
    (har.training.rocket.DENORM_LAYER) and the window features' (har.training.window_features);
    their weights are saved with the others."""
    from har.training.rocket import DENORM_LAYER as ROCKET_DENORM_LAYER
    from har.training.window_features import DENORM_LAYER as WFEAT_DENORM_LAYER

    for name in (DENORM_LAYER, ROCKET_DENORM_LAYER, WFEAT_DENORM_LAYER):
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        kernel, bias = layer.get_weights()
        layer.set_weights(
            [np.asarray(std, np.float32).reshape(kernel.shape), np.asarray(mean, np.float32).reshape(bias.shape)]
        )


def build_model(
    cfg: ModelConfig,
    window_samples: int,
    n_channels: int,
    n_classes: int,
    batch_size: int | None = None,
    unroll: bool = False,
    channel_scales: Sequence[float] | None = None,
    rate_hz: float | None = None,
) -> Any:
    """Input(window, channels) -> representation -> [Conv1D relu x conv_layers] -> LSTM stack ->
    pooling -> [Dropout] -> [Dense relu] -> Dense softmax ("probs").

    ``cfg.representation`` (see har.config.REPRESENTATIONS) derives gravity / body / magnitude
    channels inside the graph with fixed weights, so runtime and bundle are unchanged. The
    optional Conv1D front end (``cfg.conv_filters > 0``; kernel ``cfg.conv_kernel`` samples, the
    first layer with stride ``cfg.conv_stride``, layer i >= 1 with dilation
    ``cfg.conv_dilation ** i``, "same" padding) converts to CONV_2D; ``cfg.conv_multiscale`` adds
    parallel dilated Conv1D layers on its output, summed with it. ``cfg.pooling``: "last"
    (the LSTM's final state), "mean" (average over time) or "attention" (softmax-weighted sum of
    the outputs with learned scores).

    ``batch_size=1`` gives the fixed-batch graph that converts to the fused TFLite LSTM op;
    weights are interchangeable between batch sizes (same layer names and shapes). ``unroll=True``
    (with a fixed batch) unrolls the LSTM into per-step matrix products and elementwise ops: a
    bigger file, but XNNPACK runs it several times faster per window at large batches (the
    replay model).

    ``cfg.ensemble > 1``: that many branches (conv front end to embedding, layer names prefixed
    ``m0_``, ``m1_``, ...) share the fixed representation layers; their embeddings are concatenated
    and one Dense softmax head ``probs`` reads them (har.training.ensemble sets it to the average
    of the members' logits). Still builtin TFLite ops only.

    ``cfg.rocket_features > 0``: MiniRocket's PPV features of the input window, computed by fixed
    layers (har.training.rocket.rocket_branch), are concatenated to the embedding that ``probs``
    reads (``rocket_embedding``); har.training.rocket sets the head to LSTM + beta * ridge.

    ``cfg.window_features`` (hidden units; needs ``rate_hz``, the band edges are in Hz): 63 fixed
    float32 window features (har.training.window_features, shared by ensemble members) -> a
    trainable Dense relu MLP per member, concatenated to the member's embedding
    (``{member}wfeat_embedding``) before the head.

    ``channel_scales`` (the TFLite export of a model whose ``cfg.equalize_channels`` is set; one
    factor per representation channel, :func:`equalization_scales`) multiplies each part by fixed
    per-channel factors (a 1x1 DepthwiseConv1D ``{part}_scale``) before the concatenation;
    :func:`copy_weights` divides the first Conv1D's kernel rows by the same factors, so the
    function is unchanged. An int8 CONCATENATION forces one scale on all its inputs: scaled, the
    small channels are no longer left with a few int8 steps. Training and the saved weights use
    the unscaled graph. Without a conv front end or with one part it is the same graph."""
    _, keras = import_tf()
    inp = keras.Input(shape=(window_samples, n_channels), batch_size=batch_size, name="window")
    parts = _representation_parts(cfg, inp, window_samples, n_channels, keras)
    if channel_scales is not None and cfg.conv_filters > 0 and len(parts) > 1:
        parts = _scaled(parts, channel_scales, keras)
    x = _concat(parts, keras)
    wf = None
    if cfg.window_features:  # fixed features beside the LSTM (har.training.window_features)
        from har.training.window_features import PREFIX, feature_branch, mlp

        if rate_hz is None:
            raise ValueError("build_model: window_features needs the sample rate (rate_hz)")
        wf = feature_branch(inp, window_samples, n_channels, rate_hz, keras)

    def member(prefix: str) -> Any:
        e = _branch(cfg, x, prefix, unroll, keras)
        if wf is None:
            return e
        h = mlp(cfg.window_features, wf, prefix, keras)
        return keras.layers.Concatenate(axis=-1, name=f"{prefix}{PREFIX}embedding")([e, h])

    if cfg.ensemble == 1:
        emb = member("")
    else:  # one branch per member, one head over the concatenated embeddings (har.training.ensemble)
        emb = keras.layers.Concatenate(axis=-1, name="ensemble_embedding")(
            [member(member_prefix(j)) for j in range(cfg.ensemble)]
        )
    if cfg.rocket_features > 0:  # MiniRocket's features, fixed, beside the LSTM (har.training.rocket)
        from har.training.rocket import rocket_branch

        ppv = rocket_branch(cfg.rocket_features, inp, window_samples, n_channels, keras)
        emb = keras.layers.Concatenate(axis=-1, name="rocket_embedding")([emb, ppv])
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(emb)
    return keras.Model(inp, out, name="har_lstm")


def member_prefix(j: int) -> str:
    """Layer-name prefix of ensemble member ``j`` (a single model has none)."""
    return f"m{j}_"


def copy_weights(src: Any, dst: Any, channel_scales: Sequence[float] | None = None) -> None:
    """Copy the weights of ``src`` into ``dst`` (the same config; ``dst`` may be built with
    ``channel_scales``) by layer name. With ``channel_scales`` the rows of every first Conv1D
    kernel (``conv_0``, ``m{j}_conv_0``) are divided by them: the scaled channels times the
    divided kernel is the original product, so ``dst`` computes what ``src`` computes."""
    src_layers = {layer.name: layer for layer in src.layers}
    for layer in dst.layers:
        if not layer.weights or layer.name in SCALE_LAYERS:  # the channel scales are set when built
            continue
        w = src_layers[layer.name].get_weights()
        if channel_scales is not None and layer.name.endswith("conv_0"):
            c = np.asarray(channel_scales, dtype=np.float32).reshape(1, -1, 1)
            w = [w[0] / c, *w[1:]]
        layer.set_weights(w)


def _branch(cfg: ModelConfig, x: Any, prefix: str, unroll: bool, keras: Any) -> Any:
    """[Conv1D relu x conv_layers] -> LSTM stack -> pooling -> [Dropout] -> [Dense relu]: the
    embedding that the softmax head reads. Layer names carry ``prefix``."""
    layers = keras.layers
    if cfg.conv_filters > 0:
        for i in range(cfg.conv_layers):
            x = layers.Conv1D(
                cfg.conv_filters,
                cfg.conv_kernel,
                strides=cfg.conv_stride if i == 0 else 1,
                dilation_rate=cfg.conv_dilation**i if i > 0 else 1,
                padding="same",
                activation="relu",
                name=f"{prefix}conv_{i}",
            )(x)
        if cfg.conv_multiscale:  # parallel dilated convs on the front end's output, summed with it
            x = layers.Add(name=f"{prefix}multiscale_sum")(
                [x]
                + [
                    layers.Conv1D(
                        cfg.conv_filters,
                        cfg.conv_kernel,
                        dilation_rate=d,
                        padding="same",
                        activation="relu",
                        name=f"{prefix}multiscale_d{d}",
                    )(x)
                    for d in cfg.conv_multiscale
                ]
            )
    for i, units in enumerate(cfg.lstm_units):
        last = i == len(cfg.lstm_units) - 1
        seq = not last or cfg.pooling != "last"
        x = layers.LSTM(units, return_sequences=seq, unroll=unroll, name=f"{prefix}lstm_{i}")(x)
    if cfg.pooling == "mean":
        x = layers.GlobalAveragePooling1D(name=f"{prefix}mean_pool")(x)
    elif cfg.pooling == "attention":
        steps = int(x.shape[1])
        score = layers.Dense(1, use_bias=False, name=f"{prefix}attention_score")(x)  # (b, t, 1)
        score = layers.Reshape((steps,), name=f"{prefix}attention_flat")(score)
        weight = layers.Softmax(name=f"{prefix}attention_weight")(score)
        weight = layers.Reshape((steps, 1), name=f"{prefix}attention_col")(weight)
        x = layers.Multiply(name=f"{prefix}attention_apply")([x, weight])
        x = layers.GlobalAveragePooling1D(name=f"{prefix}attention_sum")(x)  # mean = sum / steps: a fixed scale
    if cfg.dropout > 0:
        x = layers.Dropout(cfg.dropout, name=f"{prefix}dropout")(x)
    if cfg.dense_units > 0:
        x = layers.Dense(cfg.dense_units, activation="relu", name=f"{prefix}dense_hidden")(x)
    return x
