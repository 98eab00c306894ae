"""Distillation from MiniRocket (TrainConfig.distill) and ensembles exported as one model
(ModelConfig.ensemble): config, loss, assembly, `har train` flags, int8 export, one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings

from har.cli import cli
from har.config import DEFAULT_ENSEMBLE, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from har.errors import ConfigError

TINY = ["--window", "1", "--hop", "0.5", "--rate", "25", "--lstm-units", "8", "--batch-size", "32",
        "--rocket-features", "0"]


def test_config_knobs_validate_and_round_trip() -> None:
    cfg = TrainConfig(distill="minirocket", distill_alpha=0.3, distill_temperature=0.2, model=ModelConfig(ensemble=3))
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg
    for bad in ({"distill": "bert"}, {"distill_alpha": 1.5}, {"distill_temperature": 0.0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ensemble"):
        ModelConfig(ensemble=0)
    # a config stored before these knobs existed means no distillation and a single model
    old = config_to_dict(TrainConfig())
    del old["distill"], old["distill_alpha"], old["distill_temperature"], old["model"]["ensemble"]
    back = config_from_dict(TrainConfig, old)
    assert back.distill == "none" and back.model.ensemble == 1
    # the default recipe is an ensemble (chosen by CV, docs/training.md); a bare ModelConfig is one model
    assert TrainConfig().model.ensemble == DEFAULT_ENSEMBLE > 1 and ModelConfig().ensemble == 1
    assert TrainConfig().distill == "none"
    r = CliRunner().invoke(cli, ["train", "--help"])
    assert f"[default: {DEFAULT_ENSEMBLE};" in " ".join(r.output.split())


def test_distill_loss_is_plain_cross_entropy_on_validation_rows() -> None:
    from har.training._tf import import_tf
    from har.training.distill import make_loss, pack_targets

    tf, keras = import_tf()
    y = np.array([0, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]], dtype=np.float32)
    loss = make_loss(tf, keras, 3, alpha=0.25, label_smoothing=0.0)
    ce = -np.log(p[np.arange(3), y])
    val = loss(tf.constant(pack_targets(y, None, 3)), tf.constant(p)).numpy()
    np.testing.assert_allclose(val, ce, rtol=1e-5)
    soft = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.6, 0.2]], dtype=np.float32)
    tr = loss(tf.constant(pack_targets(y, soft, 3)), tf.constant(p)).numpy()
    soft_ce = -(soft * np.log(p)).sum(axis=1)
    np.testing.assert_allclose(tr, 0.25 * ce + 0.75 * soft_ce, rtol=1e-5)


def test_teacher_soft_targets_are_distributions_that_know_the_labels() -> None:
    pytest.importorskip("aeon")
    from conftest import TINY_CLASSES, tiny_signal

    from har.training.distill import teacher_soft_targets

    rng = np.random.default_rng(0)
    x = np.stack([tiny_signal(TINY_CLASSES[i % 3], 25, 25.0, rng) for i in range(30)])
    y = np.arange(30) % 3
    soft = teacher_soft_targets(x, y, 4, temperature=0.5, seed=0)  # class 3 has no windows
    assert soft.shape == (30, 4) and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(soft[:, 3] == 0.0)
    assert np.mean(soft.argmax(axis=1) == y) >= 0.9
    assert soft.max(axis=1).min() < 0.999  # soft, not one-hot


def test_ensemble_head_averages_the_members_logits() -> None:
    from har.training._tf import import_tf
    from har.training.ensemble import assemble
    from har.training.model import build_model, set_normalization

    _, keras = import_tf()
    mc = ModelConfig(lstm_units=(6,), conv_filters=4)
    members = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        m = build_model(mc, 30, 3, 4)
        set_normalization(m, [0.1, 0.0, 0.9], [0.4, 0.5, 0.3])
        members.append(m)
    ens = assemble(TrainConfig(model=mc), members, 30, 3, 4)
    x = np.random.default_rng(0).normal(size=(5, 30, 3)).astype(np.float32)
    logp = np.mean([np.log(m.predict(x, verbose=0)) for m in members], axis=0)
    want = np.exp(logp) / np.exp(logp).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ens.predict(x, verbose=0), want, rtol=1e-4, atol=1e-5)
    # the saved weights load into the graph that build_model makes for the stored config
    rebuilt = build_model(ModelConfig(lstm_units=(6,), conv_filters=4, ensemble=3), 30, 3, 4, batch_size=1)
    rebuilt.set_weights(ens.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x[:1], verbose=0), want[:1], rtol=1e-4, atol=1e-5)


def test_distill_without_aeon_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tiny_recordings(tmp_path / "data", subjects=3, seconds_per_class=4.0)
    data = tmp_path / "data"
    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon -> ImportError
    r = CliRunner().invoke(cli, ["train", str(data), "--out", str(tmp_path / "m"), *TINY, "--distill", "minirocket"])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert r.exit_code != 0 and len(lines) == 1, r.stderr
    assert "aeon" in lines[0] and "pip install" in lines[0]
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


@pytest.mark.slow
def test_distilled_ensemble_trains_exports_int8_and_runs(tmp_path: Path) -> None:
    """`har train --ensemble 2 --distill minirocket` -> a normal model directory -> int8 bundle with
    builtin ops only, verified against Keras, run by the runtime."""
    pytest.importorskip("aeon")
    from har.artifacts.bundle import verify_bundle
    from har.artifacts.metadata import load_metadata
    from har.config import ExportConfig
    from har.runtime.classifier import WindowClassifier
    from har.training.convert import export_bundle

    make_tiny_recordings(tmp_path / "data", subjects=4, seconds_per_class=12.0)
    data = tmp_path / "data"
    out = tmp_path / "m"
    args = ["train", str(data), "--out", str(out), *TINY, "--epochs", "4", "--ensemble", "2"]
    r = CliRunner().invoke(cli, [*args, "--distill", "minirocket", "--rotation-z", "0"])
    assert r.exit_code == 0, r.output
    assert "distillation: fitting the minirocket teacher" in r.output and "ensemble: member 2/2" in r.output
    meta = load_metadata(out)
    assert meta.train_config.distill == "minirocket" and meta.train_config.model.ensemble == 2
    b = tmp_path / "bundle"
    # a 4-epoch model on tiny data is unsure of some windows: int8 may flip a few of them
    export_bundle(out, b, ExportConfig(quantize="int8"), echo=lambda s: None, min_agreement=0.9)
    v = verify_bundle(b).verification
    assert v["agreement"] >= 0.9
    report = (b / "report.txt").read_text()
    assert report.count("UNIDIRECTIONAL_SEQUENCE_LSTM") >= 1
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model(str(b / "model.tflite"))
    codes = [max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in m.operatorCodes]
    assert schema.BuiltinOperator.CUSTOM not in codes
    lstm_ops = sum(
        1
        for g in m.subgraphs
        for op in g.operators
        if max(m.operatorCodes[op.opcodeIndex].builtinCode, m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
        == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    )
    assert lstm_ops == 2  # one fused LSTM per member
    clf = WindowClassifier.from_bundle(b)
    x = np.zeros((2, meta.window.window_samples, 3), dtype=np.float32)
    x[..., 2] = 1.0
    p = clf.predict_proba(x, batched=False)
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=0.02)
