"""The window features branch (ModelConfig.window_features, har.training.window_features): the
Keras branch and its TFLite conversion compute the numpy reference (har.signal_features) on
simulated wearers; `har train --window-features` trains an ensemble with it, `har deploy` exports
it int8 with builtin ops only and the branch float32, in agreement with Keras in the real TFLite
runtime, and `har adapt` refits the wider head; the config round-trips, bad values are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from har import signal_features as sf
from har.config import ModelConfig, TrainConfig, config_from_dict
from har.errors import ConfigError


def _sim_windows(rate_hz: float, window_s: float, wearers: int = 2) -> np.ndarray:
    from har.config import WindowConfig
    from har.recording.simulate import ACTIVITIES, simulate_recording
    from har.signal import concat_windows, make_windows

    wc = WindowConfig(rate_hz=rate_hz, window_s=window_s, hop_s=1.0, purity=0.9)
    parts = []
    for i in range(wearers):
        rec = simulate_recording([(a, 8.0) for a in ACTIVITIES], subject=f"w{i}", subject_seed=100 + i,
                                 rate_hz=rate_hz, seed=100 + i)
        parts.append(make_windows(rec, wc))
    return concat_windows(parts, wc.window_samples).x.astype(np.float32)


@pytest.mark.parametrize(("rate_hz", "window_s"), [(50.0, 2.5), (25.0, 2.0)])  # odd and even window lengths
def test_keras_and_tflite_branch_compute_the_numpy_reference(rate_hz: float, window_s: float) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from har.training._tf import import_tf
    from har.training.model import build_model, set_normalization
    from har.training.window_features import FEATURES_LAYER, set_feature_stats

    tf, keras = import_tf()
    x = _sim_windows(rate_hz, window_s)
    n = x.shape[1]
    mean, std = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)
    fmean, fstd = sf.feature_stats(x, rate_hz)
    want = (sf.window_features(x, rate_hz) - fmean) / fstd  # standardised units
    cfg = ModelConfig(lstm_units=(4,), conv_filters=0, window_features=(8,))
    model = build_model(cfg, n, 3, 6, batch_size=1, rate_hz=rate_hz)
    set_normalization(model, mean, std)
    set_feature_stats(model, fmean, fstd)
    branch = keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
    xn = ((x - mean) / std).astype(np.float32)
    got = np.concatenate([branch(xn[i : i + 1]).numpy() for i in range(len(xn))])
    assert got.shape == want.shape == (len(x), sf.N_FEATURES)
    assert np.abs(got - want).max() < 0.02, np.abs(got - want).max(0)
    it = Interpreter(model_content=tf.lite.TFLiteConverter.from_keras_model(branch).convert())
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    lite = []
    for i in range(len(xn)):
        it.set_tensor(i_in, xn[i : i + 1])
        it.invoke()
        lite.append(it.get_tensor(i_out)[0])
    assert np.abs(np.asarray(lite) - want).max() < 0.02


def test_config_round_trip_and_bad_values(tmp_path: Path) -> None:
    import dataclasses

    cfg = TrainConfig(model=ModelConfig(window_features=(128, 64)))
    back = config_from_dict(TrainConfig, json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back.model.window_features == (128, 64) and back == cfg
    assert ModelConfig().window_features == () and TrainConfig().model.window_features == ()  # off by default
    for bad in [(0,), (16, -1), (8, 8, 8, 8, 8), (100000,)]:
        with pytest.raises(ConfigError, match="window_features"):
            ModelConfig(window_features=bad)
    from har.training.model import build_model

    with pytest.raises(ValueError, match="rate"):
        build_model(ModelConfig(window_features=(4,)), 50, 3, 2)
    from har.cli import cli

    (tmp_path / "d").mkdir()
    for text, needle in [("a,b", "--window-features must be"), ("16,0", "window_features must be")]:
        r = CliRunner().invoke(cli, ["train", str(tmp_path / "d"), "--out", str(tmp_path / "m"),
                                     "--window-features", text])
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.stderr


def _float_and_int8_ops(model: Path) -> tuple[set[str], set[str], set[str]]:
    """(dtypes of the window features' operators' outputs, dtypes of the fused LSTM's outputs, op names)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    tensors = {int(d["index"]): d for d in it.get_tensor_details()}
    branch, lstm, names = set(), set(), set()
    for op in it._get_ops_details():  # noqa: SLF001
        names.add(op["op_name"])
        for t in op["outputs"]:
            d = tensors[int(t)]
            if "wfeat_features" in d["name"] and op["op_name"] != "QUANTIZE":
                branch.add(np.dtype(d["dtype"]).name)
            if op["op_name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                lstm.add(np.dtype(d["dtype"]).name)
    return branch, lstm, names


def test_train_deploy_int8_and_adapt_with_the_branch(tmp_path: Path) -> None:
    from har.artifacts.bundle import verify_bundle
    from har.artifacts.metadata import load_metadata
    from har.cli import cli
    from har.runtime.classifier import WindowClassifier

    runner = CliRunner()
    r = runner.invoke(cli, ["simulate", "--out", str(tmp_path / "sim"), "--subjects", "5", "--seconds", "12",
                            "--seed", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, [
        "train", str(tmp_path / "sim"), "--out", str(tmp_path / "m"), "--window", "2.5", "--hop", "0.5",
        "--rate", "50", "--lstm-units", "8", "--conv-filters", "4", "--epochs", "6", "--ensemble", "2",
        "--rocket-features", "0", "--distill", "none", "--no-augment", "--window-features", "16",
        "--test-subjects", "sim05",
    ])
    assert r.exit_code == 0, r.output
    assert load_metadata(tmp_path / "m").train_config.model.window_features == (16,)
    r = runner.invoke(cli, ["deploy", str(tmp_path / "m"), "--out", str(tmp_path / "b"), "--quantize", "int8"])
    assert r.exit_code == 0, r.output
    v = verify_bundle(tmp_path / "b").verification
    assert v["agreement"] >= 0.95, v
    assert {"wfeat_features", "m0_wfeat_dense_0", "m1_wfeat_dense_0"} <= set(v["float_layers"]), v
    branch, lstm, names = _float_and_int8_ops(tmp_path / "b" / "model.tflite")
    assert branch - {"bool"} == {"float32"} and lstm == {"int8"}, (branch, lstm)  # bool: comparisons
    assert "CUSTOM" not in names and "FlexRFFT" not in names
    clf = WindowClassifier.from_bundle(tmp_path / "b")
    assert clf.embedding_dim == 2 * (8 + 16)  # per member: LSTM units + the MLP's last layer
    from har.recording.format import read_recording, write_recording

    rec = read_recording(sorted((tmp_path / "sim").glob("*sim05*"))[0])
    cal = write_recording(tmp_path / "cal.csv", rec)
    r = runner.invoke(cli, ["adapt", str(tmp_path / "b"), str(cal), "--out", str(tmp_path / "bob")])
    assert r.exit_code == 0, r.output
