"""TFLite conversion, run in a child process by har.training.convert (a converter crash kills its process).

Usage: ``python -m har.training._convert_worker MODEL_DIR WORK_DIR --quantize fp32|fp16|int8 [--batch N]``

Reads the model directory, rebuilds the tf_keras graph at a fixed batch of 1 (the only form that
converts to the fused builtin UNIDIRECTIONAL_SEQUENCE_LSTM op), loads the weights, converts, sets
``cell_clip`` to 0 in every fused LSTM op (the converter writes 10.0; Keras has no clip), lists
the operators, and writes into WORK_DIR:

* ``model.tflite`` and ``ops.json`` (after stage ``single``; ``ops.json`` also lists the layers an
  int8 export kept float32, ``float_layers``: the MiniRocket branch, see FLOAT_LAYER_PREFIXES; with the config's
  ``equalize_channels``, every representation channel scaled by a factor balanced between its
  peak on the calibration windows and the first Conv1D's weights that read it, and those kernel
  rows divided to match, see har.training.model.equalization_scales): two outputs, the probabilities
  (``probs``) and the embedding that feeds the classifier head (the input of the last Dense
  layer: the LSTM's last output, or the hidden Dense layer's) so that `har adapt` can refit the
  head on the device with numpy,
* ``head.npz``: the classifier head's weights ``W`` (embedding, classes) and ``b`` (classes), float32,
* ``keras_probs.npy``: Keras probabilities on the normalised heldout windows,
* ``model_batch.tflite`` and ``ops_batch.json`` when ``--batch`` > 1 (stage ``batch``): the replay
  model, float32 with the LSTM unrolled, at a fixed batch of ``--batch``.

Progress goes to stdout as ``STEP <name>`` / ``DONE <name>`` lines; errors to stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from har.config import ModelConfig

LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def _say(tag: str, name: str) -> None:
    print(f"{tag} {name}", flush=True)


def patch_and_list_ops(tflite: bytes) -> tuple[bytes, list[dict[str, Any]], int]:
    """Set cell_clip = 0 in every fused LSTM op; return (new bytes, operator list, patched count).

    Each operator entry: ``{"name": str, "builtin": bool, "subgraph": int}``; custom ops (Flex
    included) carry their custom code as name and ``builtin`` False."""
    from tensorflow.lite.python import schema_py_generated as schema  # noqa: PLC0415
    from tensorflow.lite.tools import flatbuffer_utils  # noqa: PLC0415

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    custom = schema.BuiltinOperator.CUSTOM
    ops: list[dict[str, Any]] = []
    patched = 0
    for gi, graph in enumerate(model.subgraphs or []):
        for op in graph.operators or []:
            oc = model.operatorCodes[op.opcodeIndex]
            code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
            if code == custom:
                cc = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
                ops.append({"name": cc, "builtin": False, "subgraph": gi})
                continue
            name = names.get(code, f"BUILTIN_{code}")
            ops.append({"name": name, "builtin": True, "subgraph": gi})
            if code == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM and op.builtinOptions is not None:
                op.builtinOptions.cellClip = 0.0
                patched += 1
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return out, ops, patched


def with_embedding(keras: Any, model: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """``model`` with a second output, the input of its ``probs`` layer (the embedding), and that
    layer's weights ``(W, b)`` as float32."""
    head = model.get_layer("probs")
    two = keras.Model(model.input, [model.output, head.input], name=model.name)
    w, b = head.get_weights()
    return two, np.asarray(w, dtype=np.float32), np.asarray(b, dtype=np.float32)


def export_graph(
    keras: Any, cfg: ModelConfig, model: Any, reference: Any, calib: np.ndarray, rate_hz: float | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """The batch-1 graph that `har deploy` converts, from ``model`` (built by
    har.training.model.build_model from ``cfg`` at batch 1, trained weights loaded), as
    :func:`with_embedding` returns it (the graph with the embedding as second output, head ``W``, ``b``).

    With ``cfg.equalize_channels`` (a first Conv1D and calibration windows given), every
    representation channel gets its own int8 resolution: its peak is measured by ``reference`` (the
    same weights at any batch size) on the normalised calibration windows ``calib``, the graph is
    rebuilt with the scales of har.training.model.equalization_scales and the first Conv1D's kernel
    rows divided to match (the same function). ``rate_hz``: the data's sample rate (the window
    features branch needs it, har.training.window_features)."""
    from har.training.model import (  # noqa: PLC0415
        build_model,
        channel_peaks,
        copy_weights,
        equalization_scales,
        first_conv_rows,
    )

    single = model
    equalize = cfg.equalize_channels and cfg.conv_filters > 0 and calib.shape[0] > 0
    peaks = channel_peaks(reference, calib) if equalize else None
    if peaks is not None:
        scales = equalization_scales(peaks, first_conv_rows(model))
        (_, w, c), k = model.input_shape, model.output_shape[-1]
        single = build_model(cfg, w, c, k, batch_size=1, channel_scales=scales, rate_hz=rate_hz)
        copy_weights(model, single, channel_scales=scales)
    return with_embedding(keras, single)


# Layers kept float32 in an int8 export (float input): the MiniRocket branch (har.training.rocket)
# and the window features branch (har.training.window_features: log band energies and ratios of
# micro-motion, not for an int8 grid; only its MLP's output is quantised, where it enters the head).
# It reads the raw window, and its PPV counts how often a conv output exceeds a threshold: one int8
# scale for the whole input window (a step of ~0.08 sigma) and int8 conv outputs move values across
# the thresholds. Kept float, only the PPV in [0, 1] is quantised (into the int8 head). Chosen on
# validation subjects inside the training data (seglearn watch w03/w05: agreement with Keras 99.0% ->
# 100%; held-out w08-w10 95.2% -> 99.3%; docs/training.md, "The int8 export of the MiniRocket branch").
FLOAT_LAYER_PREFIXES = (
    "rocket_denorm", "rocket_same_", "rocket_valid_", "rocket_crop_", "rocket_step_", "rocket_mean_",
    "rocket_features", "rocket_ppv", "wfeat_",
)


def float_layers(model: Any, representation: bool = False) -> list[str]:
    """Names of ``model``'s layers that an int8 export keeps float32: FLOAT_LAYER_PREFIXES and, with
    ``representation`` (ModelConfig.float_representation), the input representation
    (har.training.model.REPRESENTATION_LAYERS: gravity/body split, |a|^2 - 1, the equalizing scales
    and their concatenation). The representation is then quantised where it enters
    the first Conv1D, on its own int8 grid: on the int8 input grid (a step of 0.042 sigma on the
    simulated wearers) the postural sway that separates sitting from standing was lost (worst
    validation wearer 93.2% float -> 89.7% from the input rounding alone; models/README.md)."""
    import re  # noqa: PLC0415

    from har.training.model import REPRESENTATION_LAYERS  # noqa: PLC0415

    return [
        layer.name for layer in model.layers
        if re.sub(r"^m\d+_", "", layer.name).startswith(FLOAT_LAYER_PREFIXES)  # an ensemble member's too
        or (representation and layer.name in REPRESENTATION_LAYERS)
    ]


def nodes_of_layers(tflite: bytes, layers: list[str]) -> list[str]:
    """Output tensor names of the operators of ``tflite`` (main subgraph) that belong to one of the
    Keras ``layers`` (a tensor name is ``/``- and ``;``-separated scopes, one of which is the layer's
    name), and of the shape-only operators (RESHAPE) that read the model input: the converter shares
    one reshape of the input between branches, and a quantised one would put the float branch back
    on the int8 input grid."""
    import re  # noqa: PLC0415

    from tensorflow.lite.python import schema_py_generated as schema  # noqa: PLC0415
    from tensorflow.lite.tools import flatbuffer_utils  # noqa: PLC0415

    wanted = set(layers)
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    graph = model.subgraphs[0]
    inputs = set(int(i) for i in graph.inputs)
    out = []
    for op in graph.operators or []:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        reads_input = code == schema.BuiltinOperator.RESHAPE and int(op.inputs[0]) in inputs
        for t in op.outputs:
            name = graph.tensors[t].name
            name = name.decode() if isinstance(name, bytes) else str(name)
            if reads_input or wanted & set(re.split(r"[/;:]", name)):
                out.append(name)
    return out


def convert(
    tf: Any, model: Any, quantize: str, calib: np.ndarray, batch: int, int8_io: bool,
    keep_float: list[str] | None = None,
) -> bytes:
    """Convert a fixed-batch tf_keras model; ``calib`` = normalised windows (int8 only).

    int8 with float I/O keeps the layers ``keep_float`` (default: :func:`float_layers`) float32: the
    model is calibrated, then quantised with those layers' operators denylisted (what
    ``tf.lite.experimental.QuantizationDebugger.get_nondebug_quantized_model`` does with
    ``denylisted_nodes``): builtin float ops with QUANTIZE / DEQUANTIZE at their borders. With
    ``int8_io`` every op is int8 (an int8 input cannot feed a float branch without its grid)."""
    keep = float_layers(model) if keep_float is None else list(keep_float)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        n = calib.shape[0]
        if n < batch:
            calib = np.concatenate([calib] * (batch // max(n, 1) + 1))[:batch]
            n = batch

        def rep() -> Any:
            for s in range(0, n - batch + 1, batch):
                yield [calib[s : s + batch]]

        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        elif keep:
            from tensorflow.lite.python import convert as lite_convert  # noqa: PLC0415

            conv._experimental_calibrate_only = True  # noqa: SLF001 - as QuantizationDebugger does
            calibrated = bytes(conv.convert())
            deny = nodes_of_layers(calibrated, keep)
            if not deny:
                raise RuntimeError(f"no operators of the layers to keep float ({', '.join(keep[:3])}...) found")
            return bytes(lite_convert.mlir_quantize(calibrated, denylisted_nodes=deny))
    return bytes(conv.convert())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="har.training._convert_worker")
    ap.add_argument("model_dir")
    ap.add_argument("work_dir")
    ap.add_argument("--quantize", choices=("fp32", "fp16", "int8"), default="fp32")
    ap.add_argument("--calibration-windows", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--int8-io", action="store_true", help="int8 model input/output (default: float I/O)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    from har.artifacts.layout import (  # noqa: PLC0415
        BATCH_MODEL_FILE,
        BATCH_OPS_FILE,
        DEPLOY_WINDOWS_FILE,
        HEAD_FILE,
        KERAS_PROBS_FILE,
        MODEL_FILE,
        OPS_FILE,
        WEIGHTS_FILE,
    )
    from har.artifacts.metadata import load_metadata  # noqa: PLC0415
    from har.training.model import build_model  # noqa: PLC0415

    model_dir, work = Path(args.model_dir), Path(args.work_dir)
    meta = load_metadata(model_dir)
    with np.load(model_dir / DEPLOY_WINDOWS_FILE, allow_pickle=False) as z:
        calib_x = np.asarray(z["calib_x"], dtype=np.float32)
        heldout_x = np.asarray(z["heldout_x"], dtype=np.float32)
    norm = meta.normalization
    rng = np.random.default_rng(args.seed)
    if calib_x.shape[0] > args.calibration_windows:
        calib_x = calib_x[np.sort(rng.choice(calib_x.shape[0], args.calibration_windows, replace=False))]
    calib = norm.apply(calib_x)
    held = norm.apply(heldout_x)

    _say("STEP", "build")
    from har.training._tf import import_tf  # noqa: PLC0415

    tf, keras = import_tf()
    tf.random.set_seed(args.seed)
    cfg = meta.train_config.model
    w, c, k = meta.window.window_samples, meta.n_channels, len(meta.classes)
    rate = meta.window.rate_hz
    weights = str(model_dir / WEIGHTS_FILE)
    m1 = build_model(cfg, w, c, k, batch_size=1, rate_hz=rate)
    m1.load_weights(weights)
    _say("DONE", "build")

    _say("STEP", "keras")
    keras_model = build_model(cfg, w, c, k, batch_size=None, rate_hz=rate)
    keras_model.set_weights(m1.get_weights())
    probs = keras_model.predict(held, batch_size=256, verbose=0) if held.shape[0] else np.zeros((0, k))
    np.save(work / KERAS_PROBS_FILE, np.asarray(probs, dtype=np.float32), allow_pickle=False)
    _say("DONE", "keras")

    _say("STEP", "single")
    m1e, head_w, head_b = export_graph(keras, cfg, m1, keras_model, calib, rate)
    np.savez(work / HEAD_FILE, W=head_w, b=head_b)
    kept = float_layers(m1e, cfg.float_representation) if args.quantize == "int8" and not args.int8_io else []
    raw = convert(tf, m1e, args.quantize, calib, 1, args.int8_io, keep_float=kept)
    data, ops, patched = patch_and_list_ops(raw)
    (work / MODEL_FILE).write_bytes(data)
    (work / OPS_FILE).write_text(
        json.dumps({"ops": ops, "cell_clip_patched": patched, "float_layers": kept}), encoding="utf-8"
    )
    _say("DONE", "single")

    if args.batch > 1:
        _say("STEP", "batch")
        # The replay model: float32 whatever --quantize says, LSTM unrolled (per-step matrix
        # products that XNNPACK runs fast at a large batch; the fused LSTM kernel does not get
        # faster per window with the batch size).
        mb = build_model(cfg, w, c, k, batch_size=args.batch, unroll=True, rate_hz=rate)
        mb.set_weights(m1.get_weights())
        raw = convert(tf, with_embedding(keras, mb)[0], "fp32", calib, args.batch, False)
        data, ops, patched = patch_and_list_ops(raw)
        (work / BATCH_MODEL_FILE).write_bytes(data)
        (work / BATCH_OPS_FILE).write_text(json.dumps({"ops": ops, "cell_clip_patched": patched}), encoding="utf-8")
        _say("DONE", "batch")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - reported to the parent as the last stderr line
        msg = " ".join(str(e).split())[:400] or type(e).__name__
        print(f"{type(e).__name__}: {msg}", file=sys.stderr, flush=True)
        sys.exit(2)
