"""The many-to-one LSTM classifier (tf-keras). Imported only by training and export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from har.config import ModelConfig
from har.training._tf import import_tf

DENORM_LAYER = "denorm"  # fixed (non-trainable) x * std + mean, set from the Normalization
PARTS = ("raw", "gravity", "body", "magnitude")  # representation parts, in concatenation order


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


def _concat(parts: list[tuple[str, Any]], keras: Any) -> Any:
    tensors = [t for _, t in parts]
    return keras.layers.Concatenate(axis=-1, name="representation")(tensors) if len(tensors) > 1 else tensors[0]


def set_normalization(model: Any, mean: Sequence[float], std: Sequence[float]) -> None:
    """Store the per-axis normalisation in the fixed de-normalisation layer, if the model has one
    (magnitude representations); its weights are saved with the others."""
    try:
        layer = model.get_layer(DENORM_LAYER)
    except ValueError:
        return
    kernel, bias = layer.get_weights()
    kernel = np.asarray(std, dtype=np.float32).reshape(kernel.shape)
    layer.set_weights([kernel, np.asarray(mean, dtype=np.float32).reshape(bias.shape)])


def build_model(
    cfg: ModelConfig,
    window_samples: int,
    n_channels: int,
    n_classes: int,
    batch_size: int | None = None,
    unroll: bool = False,
    split_parts: bool = False,
) -> Any:
    """Input(window, channels) -> representation -> [Conv1D relu x conv_layers] -> LSTM stack ->
    pooling -> [Dropout] -> [Dense relu] -> Dense softmax ("probs").

    ``cfg.representation`` (see har.config.REPRESENTATIONS) derives gravity / body / magnitude
    channels inside the graph with fixed weights, so runtime and bundle are unchanged. The
    optional Conv1D front end (``cfg.conv_filters > 0``; kernel ``cfg.conv_kernel`` samples, the
    first layer with stride ``cfg.conv_stride``, layer i >= 1 with dilation
    ``cfg.conv_dilation ** i``, "same" padding) converts to CONV_2D. ``cfg.pooling``: "last"
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

    ``split_parts=True`` (the TFLite export of a model whose ``cfg.split_parts`` is set) builds
    each branch's first Conv1D as one Conv1D per representation part (``{prefix}conv_0_gravity``,
    ``..._body``, ``..._magnitude``; the first carries the bias) whose outputs are ADDed before
    the relu: the same function as the Conv1D over the concatenation (its kernel split along the
    input channels, :func:`copy_weights`), but an int8 ADD lets every part keep its own scale
    where an int8 CONCATENATION forces one scale on all of them. Training and the saved weights
    use the concatenated graph. Without a conv front end or with one part it is the same graph."""
    _, keras = import_tf()
    inp = keras.Input(shape=(window_samples, n_channels), batch_size=batch_size, name="window")
    parts = _representation_parts(cfg, inp, window_samples, n_channels, keras)
    x = parts if split_parts and cfg.conv_filters > 0 and len(parts) > 1 else _concat(parts, keras)
    if cfg.ensemble == 1:
        emb = _branch(cfg, x, "", unroll, keras)
    else:  # one branch per member, one head over the concatenated embeddings (har.training.ensemble)
        emb = keras.layers.Concatenate(axis=-1, name="ensemble_embedding")(
            [_branch(cfg, x, member_prefix(j), unroll, keras) for j in range(cfg.ensemble)]
        )
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(emb)
    return keras.Model(inp, out, name="har_lstm")


def member_prefix(j: int) -> str:
    """Layer-name prefix of ensemble member ``j`` (a single model has none)."""
    return f"m{j}_"


def _split_conv(cfg: ModelConfig, parts: list[tuple[str, Any]], prefix: str, keras: Any) -> Any:
    """The first Conv1D (relu) of a branch as one Conv1D per representation part, summed."""
    layers = keras.layers
    pre = [
        layers.Conv1D(
            cfg.conv_filters,
            cfg.conv_kernel,
            strides=cfg.conv_stride,
            padding="same",
            use_bias=j == 0,
            name=f"{prefix}conv_0_{name}",
        )(t)
        for j, (name, t) in enumerate(parts)
    ]
    x = layers.Add(name=f"{prefix}conv_0_sum")(pre)
    return layers.Activation("relu", name=f"{prefix}conv_0_relu")(x)


def copy_weights(src: Any, dst: Any) -> None:
    """Copy the weights of ``src`` (a concatenated-representation graph) into ``dst``, the same
    config built with or without ``split_parts``: layers of the same name are copied, a split
    first Conv1D gets the slices of ``src``'s kernel along its input channels (in the parts'
    concatenation order) and the bias on its first part. Raises ValueError when a weighted layer
    of ``dst`` has no source."""
    src_layers = {layer.name: layer for layer in src.layers}
    by_conv: dict[str, list[Any]] = {}
    for layer in dst.layers:
        if not layer.weights:
            continue
        if layer.name in src_layers:
            layer.set_weights(src_layers[layer.name].get_weights())
            continue
        base = layer.name.rsplit("_", 1)[0]
        if base not in src_layers or not base.endswith("conv_0"):
            raise ValueError(f"no weights for layer {layer.name!r} in {src.name!r}")
        by_conv.setdefault(base, []).append(layer)
    for base, part_layers in by_conv.items():
        kernel, bias = src_layers[base].get_weights()
        start = 0
        part_layers.sort(key=lambda layer: PARTS.index(layer.name.rsplit("_", 1)[1]))
        for j, layer in enumerate(part_layers):
            n = int(layer.weights[0].shape[1])
            w = [kernel[:, start : start + n, :]] + ([bias] if j == 0 else [])
            layer.set_weights(w)
            start += n
        if start != kernel.shape[1]:
            raise ValueError(f"split {base!r}: {start} input channels, the source has {kernel.shape[1]}")


def _branch(cfg: ModelConfig, x: Any, prefix: str, unroll: bool, keras: Any) -> Any:
    """[Conv1D relu x conv_layers] -> LSTM stack -> pooling -> [Dropout] -> [Dense relu]: the
    embedding that the softmax head reads. Layer names carry ``prefix``. ``x`` is one tensor, or
    the named representation parts (split first Conv1D, see build_model)."""
    layers = keras.layers
    if cfg.conv_filters > 0:
        for i in range(cfg.conv_layers):
            if i == 0 and isinstance(x, list):
                x = _split_conv(cfg, x, prefix, keras)
                continue
            x = layers.Conv1D(
                cfg.conv_filters,
                cfg.conv_kernel,
                strides=cfg.conv_stride if i == 0 else 1,
                dilation_rate=cfg.conv_dilation**i if i > 0 else 1,
                padding="same",
                activation="relu",
                name=f"{prefix}conv_{i}",
            )(x)
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
