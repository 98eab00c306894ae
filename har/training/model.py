"""The many-to-one LSTM classifier (tf-keras). Imported only by training and export."""

from __future__ import annotations

from typing import Any

from har.config import ModelConfig
from har.training._tf import import_tf


def build_model(
    cfg: ModelConfig,
    window_samples: int,
    n_channels: int,
    n_classes: int,
    batch_size: int | None = None,
    unroll: bool = False,
) -> Any:
    """Input(window, channels) -> [Conv1D relu x conv_layers] -> LSTM stack -> [Dropout] ->
    [Dense relu] -> Dense softmax.

    The optional Conv1D front end (``cfg.conv_filters > 0``; kernel ``cfg.conv_kernel`` samples,
    stride ``cfg.conv_stride`` samples, "same" padding) learns local motion features and, with a
    stride of 2, halves the sequence the LSTM has to run over; it converts to the builtin
    CONV_2D op.

    ``batch_size=1`` gives the fixed-batch graph that converts to the fused TFLite LSTM op;
    weights are interchangeable between batch sizes (same layer names and shapes). ``unroll=True``
    (with a fixed batch) unrolls the LSTM into per-step matrix products and elementwise ops: a
    bigger file, but XNNPACK runs it several times faster per window at large batches (the
    replay model)."""
    _, keras = import_tf()
    layers = keras.layers
    inp = keras.Input(shape=(window_samples, n_channels), batch_size=batch_size, name="window")
    x = inp
    if cfg.conv_filters > 0:
        for i in range(cfg.conv_layers):
            x = layers.Conv1D(
                cfg.conv_filters,
                cfg.conv_kernel,
                strides=cfg.conv_stride,
                padding="same",
                activation="relu",
                name=f"conv_{i}",
            )(x)
    for i, units in enumerate(cfg.lstm_units):
        last = i == len(cfg.lstm_units) - 1
        x = layers.LSTM(units, return_sequences=not last, unroll=unroll, name=f"lstm_{i}")(x)
    if cfg.dropout > 0:
        x = layers.Dropout(cfg.dropout, name="dropout")(x)
    if cfg.dense_units > 0:
        x = layers.Dense(cfg.dense_units, activation="relu", name="dense_hidden")(x)
    out = layers.Dense(n_classes, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="har_lstm")
