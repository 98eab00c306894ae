"""Fitting shared by train and cv (har.training.fit): validation never the training data, the
automatic schedule, the model variants (representation, pooling, dilation) and `har train --config`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings

from har.config import AugmentConfig, ModelConfig, TrainConfig, WindowConfig, config_from_dict, config_to_dict
from har.errors import ConfigError
from har.recording.format import Recording, RecordingMeta
from har.signal import Windows
from har.training.fit import holdout_recordings, holdout_windows, resolve_schedule


def _rec(label: str, n: int = 100, subject: str = "unknown", session: str = "") -> Recording:
    meta = RecordingMeta(subject=subject, session_id=session, rate_hz=25.0, complete=True)
    return Recording(np.arange(n) / 25.0, np.zeros((n, 3), np.float32), np.full(n, label), np.arange(n), meta)


def test_auto_schedule_follows_optimizer_steps() -> None:
    cfg = TrainConfig()
    assert cfg.epochs == "auto" and cfg.patience == "auto"
    small, big = resolve_schedule(cfg, 240), resolve_schedule(cfg, 25_000)
    assert small.epochs >= 200 and small.patience >= 20  # 140 short cases: hundreds of cheap epochs
    assert 10 <= big.epochs <= 40 and big.patience >= 5  # tens of thousands of windows: tens
    assert small.lr_patience < small.patience
    fixed = resolve_schedule(dataclasses.replace(cfg, epochs=7, patience=3, lr_patience=2), 240)
    assert (fixed.epochs, fixed.patience, fixed.lr_patience) == (7, 3, 2)


def test_auto_values_round_trip_and_bad_values_fail() -> None:
    cfg = TrainConfig(
        augment=AugmentConfig(rotation_z_deg="auto", mix="cutmix", mix_alpha=1.0),
        model=ModelConfig(conv_multiscale=(1, 2, 4)),
        label_smoothing=0.1,
        weight_decay=0.05,
    )
    assert config_from_dict(TrainConfig, json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    with pytest.raises(ConfigError, match="conv_multiscale"):
        ModelConfig(conv_filters=0, conv_multiscale=(2,))
    for bad in ({"epochs": "many"}, {"patience": -1}, {"label_smoothing": 1.0}, {"weight_decay": 1.0}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        AugmentConfig(rotation_z_deg="sometimes")
    with pytest.raises(ConfigError):
        ModelConfig(representation="fft")
    with pytest.raises(ConfigError):
        ModelConfig(pooling="max")
    old = config_from_dict(ModelConfig, {"lstm_units": [64], "dropout": 0.2, "dense_units": 0})
    assert (old.representation, old.pooling, old.conv_dilation) == ("raw", "last", 1)  # old models rebuild


def test_holdout_recordings_is_stratified_and_disjoint() -> None:
    recs = [_rec(lab, session=f"r{i}") for i, lab in enumerate(["a"] * 5 + ["b"] * 5 + ["c"])]
    idx = list(range(len(recs)))
    train, val = holdout_recordings(recs, idx, 0.2, seed=1)
    assert set(train) | set(val) == set(idx) and not set(train) & set(val)
    labels = [recs[i].labels[0] for i in val]
    assert labels.count("a") == 1 and labels.count("b") == 1 and "c" not in labels  # a lone "c" stays in training
    assert holdout_recordings(recs, idx, 0.2, seed=1) == (train, val)


def test_holdout_windows_share_no_sample() -> None:
    n = 40
    w = Windows(
        x=np.zeros((n, 10, 3), np.float32),
        y=np.array(["a"] * 20 + ["b"] * 20),
        subject=np.full(n, "s"),
        start_s=np.arange(n) * 0.5,
        file_index=np.zeros(n, np.int64),
    )
    train, val = holdout_windows(w, 0.25, window_s=1.0)
    assert val.sum() == 10 and not (train & val).any()
    gaps = np.abs(w.start_s[train][:, None] - w.start_s[val][None, :])
    assert gaps.min() >= 1.0  # no training window overlaps a validation window


@pytest.mark.slow
@pytest.mark.parametrize(
    "mc",
    [
        ModelConfig(
            lstm_units=(8,),
            conv_filters=4,
            conv_layers=2,
            conv_dilation=2,
            representation="gravity_body_magnitude",
            pooling="attention",
        ),
        ModelConfig(lstm_units=(8,), conv_filters=0, representation="raw_magnitude", pooling="mean"),
        ModelConfig(lstm_units=(8,), conv_filters=4, conv_multiscale=(1, 2, 4), ensemble=2),
    ],
    ids=["gravity_body_magnitude-attention-dilated", "raw_magnitude-mean", "multiscale-ensemble"],
)
def test_variants_convert_to_int8_builtin_ops(mc: ModelConfig) -> None:
    from har.training._convert_worker import convert, patch_and_list_ops
    from har.training._tf import import_tf
    from har.training.model import build_model, set_normalization

    tf, _ = import_tf()
    m = build_model(mc, 50, 3, 4, batch_size=1)
    set_normalization(m, [0.1, 0.2, 0.9], [0.5, 0.5, 0.4])
    calib = np.random.default_rng(0).normal(size=(16, 50, 3)).astype(np.float32)
    blob, ops, patched = patch_and_list_ops(convert(tf, m, "int8", calib, 1, False))
    names = {o["name"] for o in ops}
    assert all(o["builtin"] for o in ops), names
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names and patched == mc.ensemble


@pytest.mark.slow
def test_magnitude_channel_is_physical() -> None:
    """The magnitude channel undoes the normalisation in the graph: |a|^2 - 1 in g^2."""
    from har.training._tf import import_tf
    from har.training.model import build_model, set_normalization

    _, keras = import_tf()
    mc = ModelConfig(lstm_units=(4,), conv_filters=0, representation="raw_magnitude")
    m = build_model(mc, 20, 3, 2)
    mean, std = np.array([0.1, -0.2, 0.9]), np.array([0.5, 0.3, 0.4])
    set_normalization(m, mean, std)
    raw = np.random.default_rng(1).normal(size=(2, 20, 3)).astype(np.float32)
    rep = keras.Model(m.input, m.get_layer("representation").output)((raw - mean) / std).numpy()
    np.testing.assert_allclose(rep[..., 3], (raw**2).sum(-1) - 1.0, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_no_subject_ids_validate_on_held_out_recordings(tmp_path: Path) -> None:
    """One subject, several recordings per class, a given test set: validation comes from held-out
    training recordings (never the training loss) and the epochs follow the data size."""
    from har.training.train import train

    rng = np.random.default_rng(0)
    from conftest import tiny_signal

    def write(d: Path, k: int) -> None:
        from har.recording.format import write_recording

        d.mkdir(parents=True)
        for i in range(k):
            for c in ("still", "shake"):
                xyz = tiny_signal(c, 50, 25.0, rng)
                meta = RecordingMeta(subject="unknown", session_id=f"{c}{i}", rate_hz=25.0, complete=True)
                write_recording(
                    d / f"{c}{i}.csv", Recording(np.arange(50) / 25.0, xyz, np.full(50, c), np.arange(50), meta)
                )

    write(tmp_path / "train", 5)
    write(tmp_path / "test", 2)
    lines: list[str] = []
    cfg = TrainConfig(
        window=WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5),
        model=ModelConfig(lstm_units=(4,), conv_filters=0, dropout=0.0),
        epochs="auto",
        patience=2,
        batch_size=32,
        augment=AugmentConfig(enabled=False),
    )
    res = train(
        [tmp_path / "train"], tmp_path / "m", cfg, test_data=[tmp_path / "test"], progress=True, echo=lines.append
    )
    assert any("training recordings held out" in ln for ln in lines), lines
    assert res.metrics["history"]["val_loss"], "early stopping must watch a validation loss"
    assert res.metrics["data_summary"]["windows"]["val"] > 0
    assert res.metrics["history"]["epochs_planned"][0] == 300  # a few windows: many cheap epochs


@pytest.mark.slow
def test_run_cv_calls_on_fold_and_rotation_auto(tmp_path: Path) -> None:
    from har.dataset import load_recordings
    from har.training.cv import run_cv

    recs = load_recordings(make_tiny_recordings(tmp_path / "d", subjects=4, seconds_per_class=4.0))
    cfg = TrainConfig(
        window=WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5),
        model=ModelConfig(lstm_units=(4,), conv_filters=0, dropout=0.0),
        epochs=2,
        patience=1,
        batch_size=32,
        augment=AugmentConfig(rotation_z_deg="auto"),
    )
    seen: list[tuple[int, float]] = []
    classes = sorted({v for r in recs for v in r.labels.tolist()})
    res = run_cv(
        recs,
        list(range(4)),
        classes,
        cfg,
        echo=lambda s: None,
        on_fold=lambda i, f: seen.append((i, f["accuracy"])),
        folds=2,
    )
    assert [i for i, _ in seen] == [0, 1] and res["k"] == 2
    assert all(f["rotation_z_deg"] in (0.0, 180.0) for f in res["folds"])


def test_cli_train_config_file_errors(tmp_path: Path) -> None:
    from har.cli import cli

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m"), "--config", str(bad)])
    assert r.exit_code != 0 and "not valid JSON" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"config": {"epochz": 3}}))
    r = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m"), "--config", str(unknown)])
    assert r.exit_code != 0 and "epochz" in r.stderr


@pytest.mark.slow
def test_cli_train_config_file_with_overrides(tmp_path: Path) -> None:
    """A leaderboard entry is trained as stored; options given on the command line win."""
    from har.artifacts.metadata import load_metadata
    from har.cli import cli

    data = make_tiny_recordings(tmp_path / "d", subjects=4, seconds_per_class=4.0)
    stored = TrainConfig(
        window=WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5),
        model=ModelConfig(pooling="attention", lstm_units=(4,), conv_filters=0, representation="gravity_body"),
        epochs=1,
        batch_size=32,
        label_smoothing=0.1,
    )
    f = tmp_path / "entry.json"
    f.write_text(json.dumps({"trial": 3, "config": config_to_dict(stored)}))
    out = tmp_path / "m"
    args = ["train", *map(str, data), "--out", str(out), "--config", str(f), "--seed", "5"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.stderr
    assert load_metadata(out).train_config == dataclasses.replace(stored, seed=5)


@pytest.mark.slow
def test_fit_with_mix_and_weight_decay_and_mix_refuses_distillation() -> None:
    """cutmix (mixed one-hot targets, categorical loss) and AdamW train and validate; batch mixing
    with distillation targets is a clear ConfigError."""
    from har.artifacts.metadata import Normalization
    from har.training.fit import fit_model

    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    x = (rng.normal(0, 0.1, (48, 20, 3)) + y[:, None, None] * 0.5).astype(np.float32)
    cfg = TrainConfig(
        window=WindowConfig(rate_hz=10.0, window_s=2.0, hop_s=1.0),
        model=ModelConfig(lstm_units=(4,), conv_filters=4, representation="raw"),
        augment=AugmentConfig(rotation_z_deg=0.0, mix="cutmix", mix_alpha=1.0),
        weight_decay=0.1,
        epochs=2,
        batch_size=16,
    )
    norm = Normalization.fit(x[:36])
    model, hist = fit_model(cfg, norm, x[:36], y[:36], x[36:], y[36:], 3)
    assert len(hist["val_accuracy"]) >= 1 and model.optimizer.__class__.__name__ == "AdamW"
    with pytest.raises(ConfigError, match="mix"):
        fit_model(cfg, norm, x[:36], y[:36], x[36:], y[36:], 3, soft=np.full((36, 3), 1 / 3, np.float32))
