"""Honest scores: `har evaluate` scores the live model and says so, per-subject spread in reports,
`har train --reference` (MiniRocket) and its one-line error without aeon. No TensorFlow here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from har.cli import cli
from har.errors import ConfigError, ModelError
from har.scoring.metrics import compute_metrics, format_report, group_accuracy, subject_spread

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
SIM = ROOT / "data" / "sim"


def test_subject_spread_and_report_line() -> None:
    per = {"a": {"accuracy": 0.95, "n": 10}, "b": {"accuracy": 0.70, "n": 10}, "c": {"accuracy": 0.79, "n": 5}}
    sp = subject_spread(per)
    assert sp["worst_subject"] == "b" and sp["worst_accuracy"] == 0.70
    assert sp["n_subjects"] == 3 and sp["fraction_below"] == pytest.approx(2 / 3)
    assert sp["mean_accuracy"] == pytest.approx((0.95 + 0.70 + 0.79) / 3)
    assert subject_spread({})["n_subjects"] == 0
    y = np.array([0, 0, 1, 1])
    m = compute_metrics(y, np.array([0, 1, 1, 1]), ["x", "y"])
    text = format_report(m, per_group=group_accuracy(y, np.array([0, 1, 1, 1]), np.array(["s1", "s1", "s2", "s2"])))
    assert "worst subject: s1 0.500" in text and "under 80%: 1 of 2 (50%)" in text


def test_evaluate_scores_the_live_model_and_says_so(tmp_path: Path) -> None:
    """Real TFLite runtime on the shipped bundle: the default is model.tflite (int8), replay only on request."""
    r = CliRunner().invoke(cli, ["evaluate", str(DEFAULT), str(SIM / "sim08.csv"), "--out", str(tmp_path / "ev")])
    assert r.exit_code == 0, r.output
    assert "scored:    model.tflite (live model, int8" in r.output and "worst subject: sim08" in r.output
    saved = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert saved["scored"].startswith("model.tflite") and saved["subject_spread"]["worst_subject"] == "sim08"
    r2 = CliRunner().invoke(cli, ["evaluate", str(DEFAULT), str(SIM / "sim08.csv"), "--model", "replay", "--json"])
    assert r2.exit_code == 0, r2.output
    rep = json.loads(r2.stdout.strip().splitlines()[-1])
    assert rep["scored"].startswith("model_batch.tflite") and rep["n_windows"] == saved["n_windows"]


def test_live_scores_match_the_classifier_batch_one() -> None:
    from har.runtime.classifier import WindowClassifier
    from har.scoring.evaluate import bundle_predictor

    fn, desc = bundle_predictor(DEFAULT)
    clf = WindowClassifier.from_bundle(DEFAULT, use_batch_model=False)
    x = np.random.default_rng(0).normal(0, 0.5, (3, clf.window_samples, 3)).astype(np.float32)
    np.testing.assert_array_equal(fn(x), np.stack([clf.predict_one(w) for w in x]))
    assert "live model" in desc


def test_replay_model_missing_is_one_clear_error(tmp_path: Path) -> None:
    import shutil

    from har.artifacts.bundle import write_manifest
    from har.scoring.evaluate import bundle_predictor

    b = tmp_path / "b"
    shutil.copytree(DEFAULT, b)
    (b / "model_batch.tflite").unlink()
    write_manifest(b)
    with pytest.raises(ModelError, match="no model_batch.tflite"):
        bundle_predictor(b, "replay")
    r = CliRunner().invoke(cli, ["evaluate", str(b), str(SIM / "sim08.csv"), "--model", "replay"])
    assert r.exit_code != 0 and "model_batch.tflite" in r.output and "Traceback" not in r.output


def test_model_directory_needs_a_predictor(tmp_path: Path) -> None:
    from har.scoring.evaluate import evaluate

    d = tmp_path / "m"
    d.mkdir()
    (d / "metadata.json").write_text((DEFAULT / "metadata.json").read_text())
    with pytest.raises(ModelError, match="keras_predictor"):
        evaluate(d, [SIM / "sim08.csv"], echo=lambda s: None)
    with pytest.raises(ConfigError, match="applies to bundles"):
        evaluate(d, [SIM / "sim08.csv"], echo=lambda s: None, which="replay", predictor=lambda x: x)
    r = CliRunner().invoke(cli, ["evaluate", str(d), str(SIM / "sim08.csv"), "--model", "replay"])
    assert r.exit_code != 0 and "applies to bundles" in r.output


def test_scoring_never_imports_training() -> None:
    code = (
        "import sys\n"
        "import har.scoring.evaluate, har.scoring.metrics, har.cli.cmd_evaluate\n"
        "bad = sorted(m for m in sys.modules if m.startswith('har.training') or m in ('tensorflow', 'tf_keras'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reference_without_aeon_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from har.training.reference import require_aeon

    monkeypatch.setitem(sys.modules, "aeon", None)  # import aeon -> ImportError
    with pytest.raises(ConfigError, match="pip install"):
        require_aeon()
    r = CliRunner().invoke(cli, ["train", str(SIM), "--out", str(tmp_path / "m"), "--reference"])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "aeon" in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "m").exists()


def test_stratified_subset_keeps_every_class() -> None:
    from har.training.reference import stratified_subset

    y = np.array([0] * 1000 + [1] * 10 + [2] * 1)
    idx = stratified_subset(y, 100, seed=0)
    assert len(idx) <= 102 and set(y[idx].tolist()) == {0, 1, 2}
    assert np.array_equal(idx, np.sort(idx)) and np.array_equal(stratified_subset(y, 5000, 0), np.arange(len(y)))


@pytest.mark.slow
def test_minirocket_reference_on_easy_windows() -> None:
    pytest.importorskip("aeon", reason="aeon (MiniRocket) not installed: pip install 'har-edge[reference]'")
    from har.training.reference import format_reference, minirocket_reference

    rng = np.random.default_rng(0)
    t = np.arange(50) / 25.0

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % 2
        x = rng.normal(0, 0.05, (n, 50, 3)).astype(np.float32)
        x[y == 1, :, 2] += np.sin(2 * np.pi * 2.0 * t).astype(np.float32)
        return x, y

    xtr, ytr = make(40)
    xte, yte = make(20)
    ref = minirocket_reference(xtr, ytr, xte, yte, ["still", "shake"], np.array(["s1", "s2"] * 10), max_train=30)
    assert ref["accuracy"] == 1.0 and ref["train_windows"] <= 31 and ref["train_windows_total"] == 40
    assert ref["subject_spread"]["n_subjects"] == 2
    assert "MiniRocket" in format_reference(ref, 0.9, 0.9)


@pytest.mark.slow
def test_train_reference_reports_minirocket_beside_har(tmp_path: Path) -> None:
    pytest.importorskip("aeon", reason="aeon (MiniRocket) not installed: pip install 'har-edge[reference]'")
    from conftest import make_tiny_recordings

    from har.config import ModelConfig, TrainConfig, WindowConfig
    from har.training.train import train

    data = tmp_path / "d"
    make_tiny_recordings(data, seconds_per_class=8.0)
    cfg = TrainConfig(window=WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5),
                      model=ModelConfig(lstm_units=(8,), dropout=0.0), epochs=2, learning_rate=1e-2, seed=3)
    lines: list[str] = []
    res = train([data], tmp_path / "m", cfg, progress=False, echo=lines.append, reference=True)
    ref = res.metrics["reference"]
    assert ref["name"].startswith("MiniRocket") and 0.0 <= ref["accuracy"] <= 1.0
    assert ref["metrics"]["n"] == res.metrics["metrics"]["n"]  # the same test windows
    saved = json.loads((tmp_path / "m" / "report.json").read_text())
    assert saved["reference"]["accuracy"] == ref["accuracy"] and saved["subject_spread"]["n_subjects"] >= 1
    text = (tmp_path / "m" / "report.txt").read_text()
    assert "reference: MiniRocket (aeon), same windows" in text and "worst subject:" in text
    assert any(ln.startswith("reference: MiniRocket accuracy") for ln in lines)
