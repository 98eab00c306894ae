"""MiniRocket inside the model (har.training.rocket): the fixed branch computes aeon's features, a
rocket model trains (beta chosen on validation windows, or the fixed 16); `har train`'s default
(with the branch) trains from the command line, exports to int8 with builtin ops, runs in the real
TFLite runtime and adapts; where the branch cannot be trained the default's is dropped with a note
and a named one refused; without aeon the option is one clear line."""

from __future__ import annotations

import builtins
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_CLASSES
from test_export import WINDOW, _windows

from har.artifacts.metadata import Normalization
from har.config import AugmentConfig, ModelConfig, TrainConfig
from har.errors import ConfigError

pytest.importorskip("aeon", reason="aeon (MiniRocket) is not installed: pip install 'har-edge[reference]'")


def test_dilations_match_aeon() -> None:
    from aeon.transformations.collection.convolution_based._minirocket import _fit_dilations

    from har.training.rocket import dilations_for

    for t, nf in [(25, 252), (40, 500), (250, 10_000), (128, 2000), (9, 84)]:
        d, f = dilations_for(t, nf)
        d2, f2 = _fit_dilations(t, nf, 32)
        assert np.array_equal(d, d2) and np.array_equal(f, f2)


@pytest.mark.parametrize("shape", [(40, 3, 300), (60, 1, 168), (50, 6, 500)])
def test_branch_features_equal_aeon(shape: tuple[int, int, int]) -> None:
    from har.training import rocket
    from har.training._tf import import_tf

    _, keras = import_tf()
    t, c, nf = shape
    rng = np.random.default_rng(1)
    x = (0.2 * rng.normal(size=(48, t, c)).cumsum(axis=1) + rng.normal(size=(48, 1, c))).astype(np.float32)
    mr = rocket.fit_minirocket(x[:32], nf, seed=3)
    want = rocket.transform(mr, x)[:, rocket.feature_order(t, nf)]
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    inp = keras.Input((t, c))
    model = keras.Model(inp, rocket.rocket_branch(nf, inp, t, c, keras))
    rocket.set_rocket_weights(model, rocket.rocket_weights(mr.parameters, t, c, nf, mean, std))
    got = model.predict((x - mean) / std, verbose=0)
    assert got.shape == want.shape == (48, rocket.n_features(t, nf))
    diff = np.abs(got - want)
    # the same features; a value exactly at a bias may land one time step either way (float order)
    assert diff.max() <= 2.0 / t + 1e-6
    assert np.mean(diff > 1e-6) < 1e-3


def test_choose_beta_by_validation_accuracy() -> None:
    from har.training.rocket import choose_beta

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.eye(3)[y] * 2 - 1 + 0.1 * rng.normal(size=(200, 3))
    noise = np.log(np.full((200, 3), 1 / 3)) + rng.normal(size=(200, 3))
    c = choose_beta(noise, good, y)  # useless LSTM, perfect ridge: the ridge must weigh
    assert c["beta"] > 0 and max(a for _, a, _ in c["table"]) == 1.0
    lstm = np.log(np.clip(np.eye(3)[y] * 0.9 + 0.05, 1e-6, 1))
    c = choose_beta(lstm, rng.normal(size=(200, 3)) * 3, y)  # perfect LSTM, noise ridge
    assert c["lstm"] == 1.0 and c["beta"] == 0.0
    assert choose_beta(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.int64))["beta"] == 1.0


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for ci, c in enumerate(TINY_CLASSES):
        for _ in range(4):
            xw = _windows(c, 12, rng)
            xs.append(xw)
            ys.append(np.full(len(xw), ci))
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)
    p = rng.permutation(len(y))
    return x[p], y[p]


@pytest.mark.slow
def test_rocket_model_with_beta_auto_trains_as_one_model() -> None:
    """An ensemble of 2 with the gravity / body / magnitude representation and the MiniRocket
    branch, beta chosen on the validation windows: one model, one head. (Its int8 export, builtin
    ops and agreement: the end-to-end test of the default below, which pays the export once.)"""
    from har.training.fit import fit_model, predict_proba

    ensemble = 2
    x, y = _data(0)
    n_tr, n_va = 100, 30
    mcfg = ModelConfig(lstm_units=(8,), dropout=0.0, conv_filters=8, ensemble=ensemble, rocket_features=252,
                       rocket_beta="auto")
    cfg = TrainConfig(window=WINDOW, model=mcfg, epochs=3, batch_size=32, augment=AugmentConfig(enabled=False))
    norm = Normalization.fit(x[:n_tr])
    lines: list[str] = []
    model, hist = fit_model(cfg, norm, x[:n_tr], y[:n_tr], x[n_tr : n_tr + n_va], y[n_tr : n_tr + n_va], 3,
                            echo=lines.append)
    assert hist["rocket_beta"][0] in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0) and hist["rocket_lstm"][0] in (0.0, 1.0)
    assert any(line.startswith("rocket: chose ") for line in lines)
    assert model.get_layer("rocket_embedding").output.shape[-1] == 8 * ensemble + 252
    probs = predict_proba(model, x[n_tr:], norm)
    assert np.mean(probs.argmax(1) == y[n_tr:]) >= 0.9


def _op_output_dtypes(model: Path) -> dict[str, set[str]]:
    """Output dtypes of the operators of ``model`` (reference kernels: no delegate merges them), keyed by
    op name and by the layer names that matter here; ``n_DEQUANTIZE``: the number of DEQUANTIZE ops."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    reference = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=reference)
    it.allocate_tensors()
    tensors = {int(d["index"]): d for d in it.get_tensor_details()}
    out: dict[str, set[str]] = {}
    ops = it._get_ops_details()
    out["n_DEQUANTIZE"] = {str(sum(op["op_name"] == "DEQUANTIZE" for op in ops))}
    for op in ops:
        for t in op["outputs"]:
            d = tensors[int(t)]
            keys = [op["op_name"]] + [k for k in ("rocket_same_", "rocket_step_", "probs") if k in d["name"]]
            for key in keys:
                out.setdefault(key, set()).add(np.dtype(d["dtype"]).name)
    return out


def test_fixed_beta_fits_the_ridge_on_all_training_windows() -> None:
    """The default rocket_beta (a number): logits = LSTM logits + beta x ridge, no choice made on
    the validation windows (they join the ridge's training windows), said on the console."""
    from har.training.fit import fit_model

    x, y = _data(0)
    mcfg = ModelConfig(lstm_units=(4,), dropout=0.0, conv_filters=0, representation="raw", rocket_features=84)
    assert mcfg.rocket_beta == 16.0
    cfg = TrainConfig(window=WINDOW, model=mcfg, epochs=1, batch_size=32, augment=AugmentConfig(enabled=False))
    norm = Normalization.fit(x[:60])
    lines: list[str] = []
    model, hist = fit_model(cfg, norm, x[:60], y[:60], x[60:90], y[60:90], 3, echo=lines.append)
    assert hist["rocket_beta"] == [16.0] and hist["rocket_lstm"] == [1.0] and "rocket_val_accuracy" not in hist
    assert any("on 90 training windows" in line for line in lines), lines
    assert any(line.startswith("rocket: head = LSTM + 16 x ridge (fixed") for line in lines), lines
    assert not any(line.startswith("rocket: chose") for line in lines)
    assert model.get_layer("rocket_embedding").output.shape[-1] == 4 + 84


def test_beta_sweep_takes_the_fitted_head_apart() -> None:
    """`har tune` scores other betas on each fold without training: the sweep's entry at the fitted
    beta is the model's own prediction, and other betas are LSTM logits + beta x ridge."""
    from har.training.fit import fit_model, normalize, predict_proba
    from har.training.rocket import SWEEP_BETAS, beta_sweep

    x, y = _data(1)
    mcfg = ModelConfig(lstm_units=(4,), dropout=0.0, conv_filters=0, representation="raw", rocket_features=84,
                       rocket_beta=3.0)
    cfg = TrainConfig(window=WINDOW, model=mcfg, epochs=1, batch_size=32, augment=AugmentConfig(enabled=False))
    norm = Normalization.fit(x[:60])
    model, hist = fit_model(cfg, norm, x[:60], y[:60], x[60:90], y[60:90], 3, echo=lambda _s: None)
    sweep = beta_sweep(model, normalize(x[90:], norm), y[90:], hist, list(TINY_CLASSES))
    assert sweep is not None and set(sweep) == {f"{b:g}" for b in (*SWEEP_BETAS, 3.0)}
    own = np.mean(predict_proba(model, x[90:], norm).argmax(1) == y[90:])
    assert sweep["3"]["accuracy"] == pytest.approx(own)
    assert beta_sweep(model, normalize(x[90:], norm), y[90:], {**hist, "rocket_lstm": [0.0]}) is None


def test_cv_beta_is_the_best_mean_over_the_folds() -> None:
    """The head's beta by the folds: the best mean fold accuracy wins (every beta is scored on the
    same fold models), with its paired gain and standard error over the configured beta reported;
    ties go to macro-F1, then to the configured beta."""
    from har.training.rocket import choose_cv_beta

    def sweep(a16: float, a4: float, f4: float | None = None) -> dict[str, dict[str, float]]:
        return {"16": {"accuracy": a16, "macro_f1": a16}, "4": {"accuracy": a4, "macro_f1": a4 if f4 is None else f4}}

    c = choose_cv_beta([sweep(0.80, 0.84), sweep(0.70, 0.73), sweep(0.90, 0.92)], 16.0)
    assert c["beta"] == 4.0 and c["gain"] > c["se"] and c["fold_accuracy"] == [0.84, 0.73, 0.92]
    noisy = choose_cv_beta([sweep(0.80, 0.90), sweep(0.70, 0.65), sweep(0.90, 0.88)], 16.0)
    assert noisy["beta"] == 4.0 and noisy["fold_accuracy"] == [0.90, 0.65, 0.88]
    assert noisy["gain"] == pytest.approx(0.01) and noisy["se"] > noisy["gain"]  # reported, not a veto
    worse = choose_cv_beta([sweep(0.80, 0.79), sweep(0.70, 0.70), sweep(0.90, 0.90)], 16.0)
    assert worse["beta"] == 16.0 and worse["gain"] == 0.0 and worse["fold_accuracy"] == [0.80, 0.70, 0.90]
    tie = choose_cv_beta([sweep(0.8, 0.8), sweep(0.7, 0.7)], 16.0)
    assert tie["beta"] == 16.0 and tie["best"] == 16.0
    by_f1 = choose_cv_beta([sweep(0.8, 0.8, 0.82), sweep(0.7, 0.7, 0.71)], 16.0)
    assert by_f1["beta"] == 4.0


def test_rocket_without_aeon_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from har.cli import cli
    from har.training.rocket import require_aeon

    real_import = builtins.__import__

    def no_aeon(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "aeon" or name.startswith("aeon."):
            raise ImportError("No module named 'aeon'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aeon)
    with pytest.raises(ConfigError, match="needs aeon"):
        require_aeon()
    (tmp_path / "data").mkdir()
    args = ["train", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--rocket-features", "500"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "--rocket-features 500: MiniRocket needs aeon" in r.output, r.output


def test_branch_the_default_asked_for_is_dropped_with_a_note_a_named_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the branch cannot be trained (window cache, several workers, windows under 9 samples):
    the default's branch is dropped with a note and rocket_features 0 kept; a named one is refused."""
    from har.config import WindowConfig
    from har.training import rocket

    monkeypatch.setattr(rocket, "default_features", lambda: 10000)  # as after the default flips to 10000
    cfg = TrainConfig(model=ModelConfig(ensemble=2, rocket_features=10000))
    said: list[str] = []
    assert rocket.settle(cfg, False, said.append) is cfg and not said  # in memory, 250-sample windows
    short = dataclasses.replace(cfg, window=WindowConfig(rate_hz=5.0, window_s=1.0, hop_s=0.5))  # 5 samples
    for kw, c, needle in (({"cache": True}, cfg, "--cache"), ({"distributed": True}, cfg, "workers"),
                          ({}, short, "at least 9 samples")):
        out = rocket.settle(c, False, said.append, **kw)
        assert out.model.rocket_features == 0 and out.model.ensemble == 2
        assert needle in said[-1] and "dropped" in said[-1] and "rocket_features 0" in said[-1]
        with pytest.raises(ConfigError, match=r"^--rocket-features 10000: .*\(train with --rocket-features 0\)$"):
            rocket.settle(c, True, said.append, **kw)  # named by the user: refused in one line
    assert len(said) == 3
    other = TrainConfig(model=ModelConfig(rocket_features=2000))  # not the default: the user chose it
    with pytest.raises(ConfigError, match="--rocket-features 2000"):
        rocket.settle(other, False, said.append, cache=True)
    plain = TrainConfig(model=ModelConfig(rocket_features=0))
    assert rocket.settle(plain, True, said.append, cache=True) is plain
    assert rocket.too_few_windows(np.array([0, 0, 1])) and rocket.too_few_windows(np.array([0, 0, 1, 1])) is None


def test_rocket_features_config() -> None:
    """`har train`'s default model has the MiniRocket branch (10000 features, beta 16); a bare
    ModelConfig and a stored config without the key have none."""
    from har.config import DEFAULT_ROCKET_FEATURES, config_to_dict
    from har.training.rocket import default_features

    assert TrainConfig().model.rocket_features == DEFAULT_ROCKET_FEATURES == default_features() == 10000
    assert TrainConfig().model.rocket_beta == 16.0 and TrainConfig().model.ensemble == 2
    assert ModelConfig().rocket_features == 0
    with pytest.raises(ConfigError, match="rocket_features"):
        ModelConfig(rocket_features=50)
    from har.config import config_from_dict

    old = {k: v for k, v in dataclasses.asdict(ModelConfig()).items() if k != "rocket_features"}
    assert config_from_dict(ModelConfig, old).rocket_features == 0
    stored = config_to_dict(TrainConfig())
    del stored["model"]["rocket_features"]  # saved before the branch existed: none
    assert config_from_dict(TrainConfig, stored).model.rocket_features == 0
    r = CliRunner().invoke(__import__("har.cli", fromlist=["cli"]).cli, ["train", "--help"])
    assert "--rocket-features" in r.output and "[default: 10000;" in " ".join(r.output.split())
    assert ModelConfig(rocket_beta="auto").rocket_beta == "auto"
    for bad in ("best", -1.0):
        with pytest.raises(ConfigError, match="rocket_beta"):
            ModelConfig(rocket_beta=bad)


# the real default of `har train` (ensemble 2, MiniRocket 10,000 features, beta 16) from the command
# line on tiny data, deployed int8 and run in ai-edge-litert, replayed and adapted to a new wearer:
# the one test that pays the rocket export (every other test that trains pins --rocket-features 0)
DEFAULT_E2E_ARGS = ["--window", "1", "--hop", "0.5", "--rate", "25", "--epochs", "3", "--lstm-units", "8",
                    "--test-subjects", "s3"]  # no --rocket-features: the default


def test_default_model_trains_deploys_runs_in_litert_replays_and_adapts(tmp_path: Path) -> None:
    import json

    from conftest import make_tiny_recordings

    from har.artifacts.metadata import load_metadata
    from har.cli import cli
    from har.recording.format import Recording, read_recording, write_recording
    from har.runtime.classifier import WindowClassifier
    from har.runtime.interpreter import load_interpreter

    make_tiny_recordings(tmp_path / "data", subjects=4, seconds_per_class=12.0)
    runner = CliRunner()
    r = runner.invoke(cli, ["train", str(tmp_path / "data"), "--out", str(tmp_path / "m"), *DEFAULT_E2E_ARGS])
    assert r.exit_code == 0, r.output
    assert "rocket: head = LSTM + 16 x ridge (fixed" in r.output
    meta = load_metadata(tmp_path / "m")
    assert meta.train_config.model.rocket_features == 10000 and meta.train_config.model.ensemble == 2
    r = runner.invoke(cli, ["deploy", str(tmp_path / "m"), "--out", str(tmp_path / "b"), "--quantize", "int8"])
    assert r.exit_code == 0, r.output
    from har.artifacts.bundle import verify_bundle

    assert verify_bundle(tmp_path / "b").verification["agreement"] >= 0.98  # int8 vs Keras
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(tmp_path / "b" / "model.tflite"))
    assert schema.BuiltinOperator.CUSTOM not in {max(o.builtinCode, o.deprecatedBuiltinCode) for o in m.operatorCodes}
    # the MiniRocket branch stays float32 and reads the float input; the LSTM side and the head are int8
    v = verify_bundle(tmp_path / "b").verification
    assert any(n.startswith("rocket_same_") for n in v["float_layers"]), v
    assert "quantization   int8 (float32 I/O; " in (tmp_path / "b" / "report.txt").read_text()
    kinds = _op_output_dtypes(tmp_path / "b" / "model.tflite")
    assert kinds["rocket_same_"] == {"float32"} and kinds["rocket_step_"] == {"float32"}, kinds
    assert kinds["UNIDIRECTIONAL_SEQUENCE_LSTM"] == {"int8"} and kinds["probs"] == {"int8"}, kinds
    assert kinds["QUANTIZE"] == {"int8"}  # into the int8 side (the input, the PPV), nothing else
    # DEQUANTIZE only for the two outputs: the branch reads the float input, not a dequantised int8 copy
    assert kinds["n_DEQUANTIZE"] == {"2"}, kinds
    _, runtime = load_interpreter(tmp_path / "b" / "model.tflite", prefer="ai-edge-litert", only=True)
    assert runtime == "ai-edge-litert"
    clf = WindowClassifier.from_bundle(tmp_path / "b")
    assert clf.embedding_dim > 10000 - 84  # [LSTM embedding, MiniRocket features]
    test = tmp_path / "data" / "s3.csv"
    r = runner.invoke(cli, ["replay", str(tmp_path / "b"), str(test), "--json"])
    assert r.exit_code == 0, r.output
    # a new wearer (x and y swapped, weaker shake): the head refit keeps the MiniRocket rows, refits the LSTM's
    rec = read_recording(make_tiny_recordings(tmp_path / "cal_src", subjects=1, seconds_per_class=12.0, seed=7)[0])
    xyz = rec.xyz[:, [1, 0, 2]].copy()
    xyz[:, :2] *= 0.6
    cal = write_recording(tmp_path / "bob_cal.csv", Recording(rec.time, xyz, rec.labels, rec.seq, rec.meta))
    r = runner.invoke(cli, ["adapt", str(tmp_path / "b"), str(cal), "--out", str(tmp_path / "bob")])
    assert r.exit_code == 0, r.output
    assert "MiniRocket features'" in r.output and "the LSTM embedding's 16 are refit" in r.output
    adapted = json.loads((tmp_path / "bob" / "metadata.json").read_text())["adaptation"]
    assert adapted["holdout"]["windows"] > 0
    # an activity bob skips keeps the base model's probability bit for bit, in the int8 live model
    # (`har run`): the personal head takes the model's own output for it, not head.npz's float
    # arithmetic (int8 head vs float: differences of 1/256). The adapted bundle never uses the
    # float batched model (the head was fitted on the live model's embeddings): replay's default
    # (batched=None) and batched=True give the live output too.
    from har.signal import make_windows

    x = make_windows(read_recording(test), clf.metadata.window).x
    kept = []
    for skip in clf.classes:
        part = write_recording(tmp_path / f"bob_{skip}.csv", Recording(rec.time, xyz, np.where(
            rec.labels == skip, "", rec.labels), rec.seq, rec.meta))
        r = runner.invoke(cli, ["adapt", str(tmp_path / "b"), str(part), "--out", str(tmp_path / f"bob_{skip}")])
        assert r.exit_code == 0, r.output
        ad = WindowClassifier.from_bundle(tmp_path / f"bob_{skip}")
        if ad.head is None:
            continue
        kept.append(skip)
        k = clf.classes.index(skip)
        pb, pa = clf.predict_proba(x, batched=False), ad.predict_proba(x, batched=False)
        assert np.array_equal(pa[:, k], pb[:, k]), (skip, float(np.abs(pa[:, k] - pb[:, k]).max()))
        said = pb.argmax(1) == k
        assert np.array_equal(pa[said], pb[said])
        assert x.shape[0] >= 8 and not ad.uses_batch_model
        for batched in (None, True):
            assert np.array_equal(ad.predict_proba(x, batched=batched), pa)
        rj = runner.invoke(cli, ["replay", str(tmp_path / f"bob_{skip}"), str(test), "--json"])
        assert rj.exit_code == 0, rj.output
        assert json.loads(rj.stdout.strip().splitlines()[-1])["model"] == "model.tflite + head_adapted.npz"
        break
    assert kept, "no personal head kept with any one activity skipped"
    # the rows refit are the LSTM embedding's as the bundle's graph holds it (its rocket_ppv width)
    assert clf.rocket_width == clf.embedding_dim - 16 > 9000
