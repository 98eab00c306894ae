"""Export: a tiny real model directory -> fp32 / fp16 / int8 bundles, run in the real TFLite runtime.

The helpers here (``make_tiny_model_dir``, ``tiny_model_dir``, ``get_bundle``) are shared by the
other runtime tests (imported from this module); exports are cached for the whole session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_CLASSES, tiny_signal

from har.artifacts.metadata import ModelMetadata, Normalization, load_metadata, save_metadata
from har.config import ExportConfig, ModelConfig, TrainConfig, WindowConfig
from har.errors import ExportError, ModelError

RATE_HZ = 25.0
WINDOW = WindowConfig(rate_hz=RATE_HZ, window_s=1.0, hop_s=0.4, purity=0.9)  # 25 samples, hop 10

_CACHE: dict[str, Path] = {}
_LOGS: dict[str, str] = {}  # export progress output per quantization


def _windows(label: str, n_windows: int, rng: np.random.Generator) -> np.ndarray:
    w = WINDOW.window_samples
    sig = tiny_signal(label, n_windows * w, RATE_HZ, rng)
    return sig.reshape(n_windows, w, 3)


def make_tiny_model_dir(out: Path, seed: int = 0, epochs: int = 6) -> Path:
    """A real model directory (layout of docs/architecture.md) with an LSTM(8), 25-sample
    windows at 25 Hz, trained for a few epochs on the three easy test classes."""
    from har.training._tf import import_tf
    from har.training.model import build_model

    tf, keras = import_tf()
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for ci, c in enumerate(TINY_CLASSES):
        for _ in range(8):  # several "sessions" so offsets / gravity vary
            xw = _windows(c, 20, rng)
            xs.append(xw)
            ys.append(np.full(xw.shape[0], ci))
    x = np.concatenate(xs).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    perm = rng.permutation(x.shape[0])
    x, y = x[perm], y[perm]
    n_test = 120
    xt, yt, xh, yh = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
    mean = xt.reshape(-1, 3).mean(axis=0)
    std = xt.reshape(-1, 3).std(axis=0) + 1e-6
    mcfg = ModelConfig(lstm_units=(8,), dropout=0.0)
    model = build_model(mcfg, WINDOW.window_samples, 3, len(TINY_CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit((xt - mean) / std, yt, epochs=epochs, batch_size=32, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out / "model.weights.h5"))
    meta = ModelMetadata(
        classes=TINY_CLASSES,
        window=WINDOW,
        normalization=Normalization(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std)),
        train_config=TrainConfig(window=WINDOW, model=mcfg, epochs=epochs),
        data_fingerprint="tiny-test",
    )
    save_metadata(out, meta)
    np.savez(out / "deploy_windows.npz", calib_x=xt[:200], heldout_x=xh, heldout_y=yh)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "model" not in _CACHE:
        _CACHE["model"] = make_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")
    return _CACHE["model"]


def get_bundle(tmp_path_factory: pytest.TempPathFactory, quantize: str) -> Path:
    """Export (once per session) and return the bundle for ``quantize``."""
    from har.training.convert import export_bundle

    key = f"bundle-{quantize}"
    if key not in _CACHE:
        if "model" not in _CACHE:
            _CACHE["model"] = make_tiny_model_dir(tmp_path_factory.mktemp("model") / "tiny")
        out = tmp_path_factory.mktemp("bundles") / quantize
        lines: list[str] = []
        export_bundle(_CACHE["model"], out, ExportConfig(quantize=quantize), echo=lines.append)
        _CACHE[key] = out
        _LOGS[quantize] = "\n".join(lines)
    return _CACHE[key]


@pytest.fixture(scope="session")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return get_bundle(tmp_path_factory, "fp32")


_WORKER_RUNS: dict[tuple[str, ExportConfig, int, bool], tuple[Path, tuple[set[str], int, str]]] = {}


@pytest.fixture
def convert_once(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """For tests of what export_bundle does AFTER converting (agreement rules, smoothing stored): the conversion
    worker runs for real the first time a (model, options) pair is exported and its output (the real
    TFLite files, Keras reference predictions) is kept; a later export of the same model with the
    same options gets a copy instead of the same conversion again (a TensorFlow start-up + convert)."""
    import shutil

    import har.training.convert as ex

    real = ex._run_worker

    def once(model_dir: Path, work: Path, cfg: ExportConfig, batch: int, int8_io: bool,
             *rest: Any) -> tuple[set[str], int, str]:
        key = (str(Path(model_dir).resolve()), cfg, max(batch, 1), int8_io)  # batch 0 or 1: no batched model
        if key in _WORKER_RUNS:
            kept, res = _WORKER_RUNS[key]
            shutil.copytree(kept, work, dirs_exist_ok=True)
            return res
        res = real(model_dir, work, cfg, batch, int8_io, *rest)
        if res[1] == 0:
            kept = tmp_path_factory.mktemp("converted")
            shutil.copytree(work, kept, dirs_exist_ok=True)
            _WORKER_RUNS[key] = (kept, res)
        return res

    monkeypatch.setattr(ex, "_run_worker", once)


def v_head_ok(v: dict) -> bool:
    return v.get("head_agreement") is not None and v["head_agreement"] >= 0.98


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["fp32", "fp16", "int8"])
def test_export_quantizations(tmp_path_factory: pytest.TempPathFactory, quantize: str) -> None:
    from har.artifacts.bundle import verify_bundle
    from har.runtime.classifier import WindowClassifier

    b = get_bundle(tmp_path_factory, quantize)
    names = sorted(p.name for p in b.iterdir())
    assert names == ["head.npz", "manifest.json", "metadata.json", "model.tflite", "model_batch.tflite", "report.txt"]
    meta = verify_bundle(b)
    # the live model also outputs the embedding feeding the head (har adapt); head.npz reproduces it
    clf = WindowClassifier.from_bundle(b)
    assert clf.has_embedding and v_head_ok(meta.verification)
    assert meta.export == ExportConfig(quantize=quantize)
    v = meta.verification
    assert v["agreement"] >= 0.98
    assert v["n_windows"] == 120
    assert v["size_kb"] > 0 and v["latency_ms"] > 0
    assert v["keras_accuracy"] >= 0.9
    assert v["batch_model"]["agreement"] >= 0.98
    assert v["batch_model"]["agreement_live"] >= 0.97 and v["batch_model"]["precision"] == "fp32"
    if quantize != "int8":
        assert v["max_prob_diff"] < 0.02
    report = (b / "report.txt").read_text()
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in report and "agreement" in report
    log = _LOGS[quantize]
    assert "converting to TFLite" in log and "agreement with Keras" in log

    # builtin ops only, cell_clip patched, re-checked from the flatbuffer with TF's schema classes
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    for f in ("model.tflite", "model_batch.tflite"):
        m = flatbuffer_utils.read_model(str(b / f))
        codes = {max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in m.operatorCodes}
        assert schema.BuiltinOperator.CUSTOM not in codes
        # the live model has the fused LSTM; the replay model is float32 with the LSTM unrolled
        fused = schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM in codes
        assert fused == (f == "model.tflite")
        for g in m.subgraphs:
            for op in g.operators:
                oc = m.operatorCodes[op.opcodeIndex]
                if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM:
                    assert op.builtinOptions.cellClip == 0.0

    clf = WindowClassifier.from_bundle(b)
    assert clf.runtime_name == "ai-edge-litert"
    with np.load(_CACHE["model"] / "deploy_windows.npz", allow_pickle=False) as z:
        hx, hy = z["heldout_x"], z["heldout_y"]
    p1 = clf.predict_proba(hx[:40], batched=False)
    pb = clf.predict_proba(hx[:40], batched=True)
    assert p1.dtype == np.float32 and p1.shape == (40, 3)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=0.02)
    assert np.mean(p1.argmax(1) == pb.argmax(1)) >= 0.97
    assert np.mean(p1.argmax(1) == hy[:40]) >= 0.85
    # The state reset matters: the same window twice gives the same answer.
    np.testing.assert_allclose(clf.predict_one(hx[0]), clf.predict_one(hx[0]), atol=1e-6)


@pytest.mark.slow
def test_export_refuses_existing_and_bad_inputs(tmp_path: Path, tiny_model_dir: Path, fp32_bundle: Path) -> None:
    from har.training.convert import export_bundle

    with pytest.raises(ExportError, match="exists"):
        export_bundle(tiny_model_dir, fp32_bundle, ExportConfig(), echo=lambda s: None)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not part of a bundle"):
        export_bundle(tiny_model_dir, foreign, ExportConfig(), echo=lambda s: None, overwrite=True)
    with pytest.raises(ModelError, match="no such model directory"):
        export_bundle(tmp_path / "nope", tmp_path / "out", ExportConfig(), echo=lambda s: None)
    with pytest.raises(ModelError, match="bundle, not a model directory"):
        export_bundle(fp32_bundle, tmp_path / "out", ExportConfig(), echo=lambda s: None)
    broken = tmp_path / "broken"
    broken.mkdir()
    save_metadata(broken, load_metadata(tiny_model_dir))
    (broken / "model.weights.h5").write_bytes((tiny_model_dir / "model.weights.h5").read_bytes())
    with pytest.raises(ModelError, match="deploy_windows.npz"):
        export_bundle(broken, tmp_path / "out", ExportConfig(), echo=lambda s: None)


@pytest.mark.slow
def test_converter_failure_is_one_line_export_error(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Corrupt weights: the worker fails; the parent reports its last stderr line."""
    from har.training.convert import export_bundle

    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("metadata.json", "deploy_windows.npz"):
        (bad / f).write_bytes((tiny_model_dir / f).read_bytes())
    (bad / "model.weights.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelError, match=r"model\.weights\.h5: not an HDF5 weights file"):  # caught before the worker
        export_bundle(bad, tmp_path / "out", ExportConfig(), echo=lambda s: None, batch_size=1)
    import h5py

    with h5py.File(bad / "model.weights.h5", "w") as h5:  # a readable HDF5 file without the model's weights
        h5.create_dataset("unrelated", data=np.zeros(4, dtype=np.float32))
    with pytest.raises(ExportError) as ei:
        export_bundle(bad, tmp_path / "out", ExportConfig(), echo=lambda s: None, batch_size=1)
    msg = str(ei.value)
    assert "TFLite conversion failed" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_min_agreement_enforced(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                convert_once: None) -> None:
    """A model that disagrees with Keras is refused and no bundle is left behind."""
    import har.training.convert as ex

    real = ex._compare

    def worse(p: np.ndarray, keras: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
        agree, diff, acc = real(p, keras, y)
        return 0.5, diff, acc

    monkeypatch.setattr(ex, "_compare", worse)
    with pytest.raises(ExportError, match="agrees with Keras on only 50.0%"):
        ex.export_bundle(tiny_model_dir, tmp_path / "out", ExportConfig(), echo=lambda s: None, batch_size=1)
    assert not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".har-export-") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_low_agreement_kept_when_heldout_accuracy_holds(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, convert_once: None
) -> None:
    """Under --min-agreement but above the floor, a model whose labelled heldout accuracy equals
    Keras's is kept, with a warning that says why; over the allowed accuracy loss it is refused."""
    import har.training.convert as ex

    real = ex._compare
    lost = {"points": 0.0}

    def flips(p: np.ndarray, keras: np.ndarray, y: np.ndarray):  # type: ignore[no-untyped-def]
        _, diff, _ = real(p, keras, y)
        return 0.95, diff, ex._accuracy(keras, y) - lost["points"]

    monkeypatch.setattr(ex, "_compare", flips)
    lines: list[str] = []
    res = ex.export_bundle(tiny_model_dir, tmp_path / "kept", ExportConfig(), echo=lines.append, batch_size=1)
    assert (tmp_path / "kept" / "model.tflite").is_file()
    assert any("heldout accuracy holds" in w and "kept" in w for w in res.warnings), res.warnings
    lost["points"] = 0.02
    with pytest.raises(ExportError, match=r"agrees with Keras on only 95.0%.*accuracy"):
        ex.export_bundle(tiny_model_dir, tmp_path / "refused", ExportConfig(), echo=lambda s: None, batch_size=1)
    assert not (tmp_path / "refused").exists()


def test_equalization_scales_balance_activations_and_weights() -> None:
    """Channel i scaled by c_i (kernel row divided by c_i) has the same range in both, and the
    largest scaled activation peak is 1."""
    from har.training.model import equalization_scales

    peaks = np.array([2.3, 1.8, 2.0, 6.0, 2.1, 3.0, 15.4])
    rows = np.array([0.4, 0.9, 0.2, 0.3, 0.6, 0.5, 0.05])
    c = equalization_scales(peaks, rows)
    assert c.dtype == np.float32 and c.shape == (7,)
    assert np.max(c * peaks) == pytest.approx(1.0, rel=1e-6)
    ratio = (c * peaks) / (rows / c)  # scaled activation range / scaled weight range: one constant
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("ensemble", [1, 2])
def test_equalized_channels_compute_the_same_function(ensemble: int) -> None:
    """The export graph with the representation channels scaled (and the first Conv1D's kernel
    rows divided to match) computes what the training graph computes."""
    from har.training.model import (
        build_model,
        channel_peaks,
        copy_weights,
        equalization_scales,
        first_conv_rows,
        set_normalization,
    )

    cfg = ModelConfig(lstm_units=(8,), conv_filters=6, ensemble=ensemble)
    plain = build_model(cfg, 50, 3, 4, batch_size=1)
    set_normalization(plain, [0.1, -0.3, 0.9], [0.5, 0.4, 0.3])
    x = np.random.default_rng(0).normal(size=(3, 50, 3)).astype(np.float32)
    peaks = channel_peaks(plain, x)
    assert peaks is not None and peaks.shape == (7,) and len(set(np.round(peaks, 4))) > 1
    scales = equalization_scales(peaks, first_conv_rows(plain))
    eq = build_model(cfg, 50, 3, 4, batch_size=1, channel_scales=scales)
    assert {"gravity_scale", "body_scale", "magnitude_scale"} <= {layer.name for layer in eq.layers}
    copy_weights(plain, eq, channel_scales=scales)
    np.testing.assert_allclose(channel_peaks(eq, x), peaks * scales, rtol=1e-5)
    outs = [np.concatenate([m(x[i : i + 1]).numpy() for i in range(3)]) for m in (plain, eq)]
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
    # a config stored before the field existed exports the old graph
    from har.config import config_from_dict

    legacy = config_from_dict(ModelConfig, {"lstm_units": [8], "conv_filters": 6})
    assert legacy.equalize_channels is False and ModelConfig().equalize_channels is True


@pytest.mark.slow
def test_int8_export_gives_every_representation_channel_the_int8_range(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """In the int8 live model the concatenated representation spans about [-1, 1] (the channels
    scaled, the largest scaled peak 1), while gravity, body and magnitude before the scaling keep
    their own, different int8 scales; still builtin ops with the fused LSTM."""
    from har.runtime.interpreter import load_interpreter

    b = get_bundle(tmp_path_factory, "int8")
    assert load_metadata(b).train_config.model.equalize_channels
    interp, _ = load_interpreter(b / "model.tflite")
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = [o for o in interp._get_ops_details() if o.get("op_name")]
    names = [o["op_name"] for o in ops]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names
    (cat,) = [o for o in ops if o["op_name"] == "CONCATENATION"]
    scale, zero = tensors[cat["outputs"][0]]["quantization"]
    # the largest scaled |peak| is 1: one end of the int8 range, the other end within it
    assert max(scale * (127 - zero), scale * (zero + 128)) == pytest.approx(1.0, abs=0.02)
    assert min(scale * (127 - zero), scale * (zero + 128)) <= 1.02
    producer = {o["outputs"][0]: o for o in ops}

    def unscaled(i: int) -> float:  # the input of the scaling DEPTHWISE_CONV_2D (through RESHAPEs)
        while producer[i]["op_name"] == "RESHAPE":
            i = producer[i]["inputs"][0]
        assert producer[i]["op_name"] == "DEPTHWISE_CONV_2D"
        return round(float(tensors[producer[i]["inputs"][0]]["quantization"][0]), 9)

    before = {unscaled(i) for i in cat["inputs"]}
    assert len(before) == 3  # gravity, body, magnitude: three int8 scales before the common range


@pytest.mark.slow
def test_float_representation_keeps_it_float_and_quantises_it_on_its_own_grid(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """With ModelConfig.float_representation the int8 live model computes the representation
    (gravity/body split, |a|^2 - 1, the equalizing scales, their concatenation) in float32 from the
    float input and quantises it once, where it enters the first Conv1D, on a grid that spans about
    [-1, 1] (the largest scaled peak is 1); the Conv1D, the fused LSTM and the head are int8."""
    import dataclasses
    import shutil

    from har.artifacts.metadata import save_metadata
    from har.runtime.interpreter import load_interpreter
    from har.training.convert import export_bundle

    md = tmp_path / "model"
    shutil.copytree(tiny_model_dir, md)
    meta = load_metadata(md)
    model = dataclasses.replace(meta.train_config.model, float_representation=True)
    save_metadata(md, dataclasses.replace(meta, train_config=dataclasses.replace(meta.train_config, model=model)))
    b = tmp_path / "bundle"
    export_bundle(md, b, ExportConfig(quantize="int8"), echo=lambda s: None)
    v = load_metadata(b).verification
    assert v["agreement"] >= 0.98 and "representation" in v["float_layers"]
    interp, _ = load_interpreter(b / "model.tflite")
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = [o for o in interp._get_ops_details() if o.get("op_name") and o["op_name"] != "DELEGATE"]
    dtype = {i: np.dtype(tensors[i]["dtype"]).name for i in tensors}
    (cat,) = [o for o in ops if o["op_name"] == "CONCATENATION"]
    assert all(dtype[o["outputs"][0]] == "float32" for o in ops[: ops.index(cat) + 1])
    (q,) = [o for o in ops if o["op_name"] == "QUANTIZE"]  # the one step from float to int8
    assert q["inputs"][0] == cat["outputs"][0]
    scale, zero = tensors[q["outputs"][0]]["quantization"]
    assert max(scale * (127 - zero), scale * (zero + 128)) == pytest.approx(1.0, abs=0.02)
    for o in ops:
        if o["op_name"] in ("CONV_2D", "UNIDIRECTIONAL_SEQUENCE_LSTM"):
            assert dtype[o["outputs"][0]] == "int8"


def test_patch_reports_custom_ops(tmp_path: Path) -> None:
    """_check_ops names every non-builtin (Flex / custom) op."""
    from har.training.convert import _check_ops

    (tmp_path / "ops.json").write_text(
        json.dumps({"ops": [{"name": "FULLY_CONNECTED", "builtin": True}, {"name": "FlexTensorListReserve",
                                                                          "builtin": False}]})
    )
    with pytest.raises(ExportError, match="FlexTensorListReserve"):
        _check_ops(tmp_path, "ops.json", "model.tflite")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
