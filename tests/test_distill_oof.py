"""The cross-fitted MiniRocket teacher (TrainConfig.distill="minirocket_oof") and the temperature
search (distill_temperature="auto") of har.training.distill."""

from __future__ import annotations

import numpy as np
import pytest

from har.config import TrainConfig, config_from_dict, config_to_dict
from har.errors import ConfigError


def _subject_memory_windows(subjects: int = 4, classes: int = 3, per: int = 4, seed: int = 0):
    """Windows that only a teacher which saw the subject can label: every (subject, class) has its
    own random template (nothing carries over to another subject), each window is a template plus
    a little noise."""
    rng = np.random.default_rng(seed)
    xs, ys, gs = [], [], []
    for s in range(subjects):
        for c in range(classes):
            template = rng.normal(0.0, 1.0, (32, 3))
            for _ in range(per):
                xs.append(template + rng.normal(0.0, 0.05, template.shape))
                ys.append(c)
                gs.append(f"s{s}")
    return np.asarray(xs, np.float32), np.asarray(ys), np.asarray(gs)


def test_config_accepts_the_cross_fitted_teacher_and_auto_temperature() -> None:
    cfg = TrainConfig(distill="minirocket_oof", distill_temperature="auto")
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="distill_temperature"):
        TrainConfig(distill_temperature="hot")
    with pytest.raises(ConfigError, match="distill_temperature"):
        TrainConfig(distill_temperature=-1.0)


def test_temperature_search_recovers_the_temperature_that_made_the_labels() -> None:
    from har.training.distill import calibrate_temperature, soften

    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (4000, 4))
    p = soften(logits, 2.0).astype(np.float64)
    y = np.array([rng.choice(4, p=row / row.sum()) for row in p])
    assert calibrate_temperature(logits, y) == pytest.approx(2.0, rel=0.2)
    # confident and always right: as sharp as the grid allows; a class the teacher never saw (-inf) costs LOG_EPS
    sure = np.eye(3)[[0, 1, 2, 0]] * 5.0
    assert calibrate_temperature(sure, np.array([0, 1, 2, 0])) < 0.05
    unseen = np.array([[1.0, 0.0, -np.inf], [0.0, 1.0, -np.inf]])
    assert np.isfinite(calibrate_temperature(unseen, np.array([2, 1])))


def test_no_window_is_labelled_by_a_teacher_that_saw_its_subject() -> None:
    pytest.importorskip("aeon")
    from har.training.distill import oof_teacher_logits, soften, teacher_targets

    x, y, g = _subject_memory_windows()
    logits, parts = oof_teacher_logits(x, y, g, 3, seed=0, folds=3)
    # the teacher folds partition the subjects
    assert sorted(s for p in parts for s in p) == sorted(set(g.tolist())) and len(parts) == 3
    oof_acc = float(np.mean(logits.argmax(axis=1) == y))
    # an in-sample teacher memorises every subject's templates; one that never saw the subject guesses
    soft_in, info_in = teacher_targets("minirocket", x, y, 3, 0.5, 0, echo=lambda s: None)
    assert info_in["teacher"] == "in-sample" and info_in["teacher_accuracy"] == 1.0
    assert oof_acc < 0.7
    soft, info = teacher_targets("minirocket_oof", x, y, 3, "auto", 0, g, "subject", echo=lambda s: None)
    assert info["teacher"] == "cross-fitted" and info["teacher_folds"] == 3
    np.testing.assert_allclose(soft, soften(logits, info["temperature"]), atol=1e-6)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-5)
    # a guessing teacher is calibrated to soft targets, not to confident wrong ones
    assert soft.max(axis=1).mean() < soft_in.max(axis=1).mean()


def test_one_recording_falls_back_to_the_in_sample_teacher_and_says_so() -> None:
    pytest.importorskip("aeon")
    from har.signal import Windows
    from har.training.distill import teacher_targets, window_groups

    x, y, _ = _subject_memory_windows(subjects=1, per=3)
    w = Windows(x, y.astype(str), np.full(len(y), "unknown"), np.arange(len(y), dtype=float), np.zeros(len(y), int))
    groups, by = window_groups(w)
    assert by == "recording" and set(groups.tolist()) == {"0"}
    lines: list[str] = []
    soft, info = teacher_targets("minirocket_oof", x, y, 3, 0.5, 0, groups, by, echo=lines.append)
    assert info["teacher"] == "in-sample" and soft.shape == (len(y), 3)
    assert any("in-sample teacher" in ln for ln in lines)
    # two subjects: grouped by subject
    w2 = Windows(x, y.astype(str), np.where(np.arange(len(y)) % 2 == 0, "a", "b"), w.start_s, w.file_index)
    assert window_groups(w2)[1] == "subject"


@pytest.mark.slow
def test_har_train_distill_auto_chooses_by_validation_and_records_it(tmp_path) -> None:
    """`har train --distill auto --ensemble 2`: the first member is fitted without and with the
    cross-fitted teacher (3 folds over the training subjects), the teacher is kept only if significantly better,
    the second member follows it; the stored config says auto (what the user asked for)."""
    pytest.importorskip("aeon")
    from click.testing import CliRunner
    from conftest import make_tiny_recordings

    from har.artifacts.metadata import load_metadata
    from har.cli import cli

    make_tiny_recordings(tmp_path / "data", subjects=6, seconds_per_class=6.0)
    out = tmp_path / "m"
    tiny = ["--window", "1", "--hop", "0.5", "--rate", "25", "--lstm-units", "8", "--batch-size", "32",
            "--rocket-features", "0"]
    args = ["train", str(tmp_path / "data"), "--out", str(out), *tiny, "--epochs", "2", "--ensemble", "2"]
    r = CliRunner().invoke(cli, [*args, "--distill", "auto", "--distill-temperature", "auto", "--rotation-z", "0"])
    assert r.exit_code == 0, r.output
    assert "cross-fitted teacher (3 folds by subject)" in r.output and "(auto)" in r.output
    assert "distillation auto: none -> validation accuracy" in r.output
    assert "distillation auto: minirocket_oof -> validation accuracy" in r.output
    assert "distillation auto: minirocket_oof " in r.output and " groups, p=" in r.output
    assert "ensemble: member 2/2" in r.output
    assert r.output.count("cross-fitted teacher") == 1  # fitted once, its targets reused
    cfg = load_metadata(out).train_config
    assert cfg.distill == "auto" and cfg.distill_temperature == "auto" and cfg.model.ensemble == 2
