"""int8 export variants of ONE trained model, scored on its validation and test windows (ai-edge-litert).

For a model directory written by `har train` from a data set of bench_rocket.py (``basic``, ``sim``,
``watch``; data written by bench_rocket.py ``--work DIR``), converts the batch-1 graph the way
`har deploy` does (har.training._convert_worker.export_graph: equalized channels, embedding output;
cell_clip patched) in several variants and scores each one window at a time (state reset, as `har run`) on the
model's validation subjects (inside the training data: what a choice may look at) and on the test
windows: agreement with Keras (argmax), accuracy (int8 and Keras), size, ms per window (1 thread).

Variants: ``int8`` (full integer, float I/O: what `har deploy` did before), ``float_rocket`` (the
default now: the MiniRocket branch float32, har.training._convert_worker.FLOAT_LAYER_PREFIXES),
``float_rocket_conv`` (only the branch's convolutions float, its step int8), ``float_rocket_lstm_in``
(the branch and the LSTM side's representation + first conv float), ``float_lstm_in`` (only the
LSTM side's input layers float), ``16x8`` (int16 activations, int8 weights), ``fp32``.

    nice -n 10 python bench/bench_int8_variants.py WORK/watch/rocket10000_model watch \
        --data WORK/watch --variants int8,float_rocket --json bench/results/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_accuracy as ba  # noqa: E402

LSTM_INPUT_PARTS = ("denorm", "gravity_lowpass", "centre_crop", "body", "squared", "norm_sq", "_scale",
                    "representation", "conv_0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("name", help="data set key (for the JSON)")
    ap.add_argument("--data", type=Path, required=True, help="directory holding train/ and test/ recordings")
    ap.add_argument("--variants", default="int8,float_rocket")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    from ai_edge_litert.interpreter import Interpreter

    from har.artifacts.metadata import load_metadata
    from har.training._convert_worker import convert, export_graph, float_layers, patch_and_list_ops
    from har.training._tf import import_tf
    from har.training.model import build_model

    meta = load_metadata(a.model_dir)
    ds = ba.DataSet(a.name, meta.window.rate_hz, a.data / "train", a.data / "test", "")
    tr, te, classes, ytr, yte = ba.split_windows(ds, meta.window)
    assert list(classes) == list(meta.classes), (classes, meta.classes)
    val_subjects = list(meta.data_summary.get("val_subjects") or [])
    test_subjects = list(meta.data_summary.get("test_subjects") or [])
    # validation windows (inside the training data): the test subjects `har train` carved from the training
    # data when it was given no test set (the model never saw them; a fixed-beta ridge fits on the
    # validation subjects too), else its validation subjects
    here = set(tr.subject.tolist())
    inside = [s for s in test_subjects if s in here] or [s for s in val_subjects if s in here]
    vmask = np.isin(tr.subject, inside)
    xv, yv, xt = tr.x[vmask], ytr[vmask], te.x
    norm = meta.normalization
    with np.load(a.model_dir / "deploy_windows.npz", allow_pickle=False) as z:
        calib_x = z["calib_x"]
    rng = np.random.default_rng(0)
    if calib_x.shape[0] > 300:  # as `har deploy` (ExportConfig.calibration_windows, seed 0)
        calib_x = calib_x[np.sort(rng.choice(calib_x.shape[0], 300, replace=False))]
    calib = norm.apply(calib_x)

    tf, keras = import_tf()
    cfg = meta.train_config.model
    w, c, k = meta.window.window_samples, meta.n_channels, len(meta.classes)
    m1 = build_model(cfg, w, c, k, batch_size=1)
    m1.load_weights(str(a.model_dir / "model.weights.h5"))
    km = build_model(cfg, w, c, k, batch_size=None)
    km.set_weights(m1.get_weights())
    pv = km.predict(norm.apply(xv), batch_size=256, verbose=0) if len(xv) else np.zeros((0, k))
    pt = km.predict(norm.apply(xt), batch_size=256, verbose=0)
    m1e = export_graph(keras, cfg, m1, km, calib)[0]
    rocket = float_layers(m1e)
    lstm_in = [ly.name for ly in m1e.layers
               if not ly.name.startswith("rocket") and any(p in ly.name for p in LSTM_INPUT_PARTS)]
    rocket_conv = [n for n in rocket if n.startswith(("rocket_denorm", "rocket_same", "rocket_valid", "rocket_crop"))]

    def c16() -> bytes:
        conv = tf.lite.TFLiteConverter.from_keras_model(m1e)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(calib.shape[0]))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        return bytes(conv.convert())

    variants = {
        "int8": lambda: convert(tf, m1e, "int8", calib, 1, False, keep_float=[]),
        "float_rocket": lambda: convert(tf, m1e, "int8", calib, 1, False, keep_float=rocket),
        "float_rocket_conv": lambda: convert(tf, m1e, "int8", calib, 1, False, keep_float=rocket_conv),
        "float_rocket_lstm_in": lambda: convert(tf, m1e, "int8", calib, 1, False, keep_float=rocket + lstm_in),
        "float_lstm_in": lambda: convert(tf, m1e, "int8", calib, 1, False, keep_float=lstm_in),
        "16x8": c16,
        "fp32": lambda: convert(tf, m1e, "fp32", calib, 1, False),
    }
    print(f"{a.name}: {len(yv)} validation windows ({', '.join(inside)}), {len(yte)} test windows; Keras accuracy "
          f"val {np.mean(pv.argmax(1) == yv):.4f}, test {np.mean(pt.argmax(1) == yte):.4f}", flush=True)
    rows: list[dict[str, Any]] = []
    for v in a.variants.split(","):
        t0 = time.monotonic()
        try:
            blob, ops, _ = patch_and_list_ops(variants[v]())
        except Exception as e:  # noqa: BLE001 - a variant the converter refuses is a result
            row = {"variant": v, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}
            print(json.dumps(row), flush=True)
            rows.append(row)
            continue
        t_conv = time.monotonic() - t0
        path = a.model_dir / f"variant_{v}.tflite"
        path.write_bytes(blob)
        it = Interpreter(model_path=str(path), num_threads=1)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        probs = int(next(iter(it._get_full_signature_list().values()))["outputs"]["probs"])

        def run(x: np.ndarray, it: Any = it, inp: dict[str, Any] = inp, probs: int = probs) -> np.ndarray:
            xn = norm.apply(x).astype(np.float32)
            out = np.zeros((len(x), k), np.float32)
            for i in range(len(x)):
                it.reset_all_variables()
                it.set_tensor(inp["index"], xn[i : i + 1])
                it.invoke()
                out[i] = it.get_tensor(probs)[0]
            return out

        t1 = time.perf_counter()
        qt = run(xt)
        ms = 1000 * (time.perf_counter() - t1) / max(1, len(xt))
        qv = run(xv)
        row = {
            "variant": v,
            "val_agreement": float(np.mean(qv.argmax(1) == pv.argmax(1))) if len(xv) else None,
            "val_accuracy": float(np.mean(qv.argmax(1) == yv)) if len(xv) else None,
            "val_keras_accuracy": float(np.mean(pv.argmax(1) == yv)) if len(xv) else None,
            "test_agreement": float(np.mean(qt.argmax(1) == pt.argmax(1))),
            "test_accuracy": float(np.mean(qt.argmax(1) == yte)),
            "test_keras_accuracy": float(np.mean(pt.argmax(1) == yte)),
            "size_kb": round(path.stat().st_size / 1024, 1),
            "ms_per_window": round(ms, 3),
            "convert_s": round(t_conv, 1),
            "n_val": int(len(xv)),
            "n_test": int(len(xt)),
            "ops": sorted({o["name"] for o in ops}),
        }
        print(json.dumps({kk: vv for kk, vv in row.items() if kk != "ops"}), flush=True)
        rows.append(row)
    if a.json:
        a.json.write_text(json.dumps({"data": a.name, "model_dir": str(a.model_dir), "val_subjects": inside,
                                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
