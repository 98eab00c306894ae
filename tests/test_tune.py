"""`har tune`: model search on tiny simulated data (real Optuna, real SQLite, real TFLite export).

The TensorFlow runs are kept tiny: 3 easy activities x 4 simulated subjects at 25 Hz, one window
length, LSTM(4-16) without conv, 2 folds, 1-2 epochs, 2-4 trials."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from har.cli import cli
from har.config import ModelConfig, TrainConfig, config_from_dict
from har.errors import ConfigError, TuneError
from har.recording.format import write_recording
from har.recording.simulate import simulate_recording
from har.training.tune import TuneOptions, stratified_groups, tune
from har.training.tune_space import (
    DEFAULT_ATTR,
    SearchSpace,
    available,
    describe,
    has_field,
    searched_fields,
    suggest_config,
)

REPO = Path(__file__).resolve().parents[1]
ACTS = ("lying", "walking", "running")
TINY_SPACE = {
    "window_s": [2.0],
    "hop_fraction": [0.25],
    "conv_layers": [0],
    "lstm_layers": [1],
    "lstm_units": [8, 16],
    "dropout": [0.0],
    "learning_rate": [0.01],
    "lr_schedule": ["constant"],
    "augment": ["none", "light"],
    "representation": ["raw"],
    "pooling": ["last"],
    "label_smoothing": [0.0],
    "ensemble": [1],
    "distill": ["none"],
    "rocket_features": [0],  # the MiniRocket branch costs an export of 30-100 s: tested once (test_rocket.py)
    "window_features": ["none"],  # the branch is trained and exported in test_window_features.py
}
TINY_ARGS = ["--folds", "2", "--rate", "25", "--min-agreement", "0.9", "--epochs", "2"]


def make_sim_data(d: Path, subjects: int = 4, seconds: float = 16.0, acts: tuple[str, ...] = ACTS) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(subjects):
        rec = simulate_recording([(a, seconds) for a in acts], subject=f"p{i}", subject_seed=500 + i, rate_hz=25,
                                 seed=500 + i)
        write_recording(d / f"p{i}.csv", rec)
    return d


def _space_file(tmp: Path, **over: Any) -> Path:
    p = tmp / "space.json"
    p.write_text(json.dumps({**TINY_SPACE, **over}), encoding="utf-8")
    return p


def _one_line_error(result: Any, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("Error")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _tune_cli(args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["tune", *args])


def _study(out: Path, name: str = "har-tune") -> Any:
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sim_data(tmp_path_factory.mktemp("sim") / "data")


# --- cheap: no TensorFlow ------------------------------------------------------------------------
def test_one_class_is_one_line(tmp_path: Path) -> None:
    d = make_sim_data(tmp_path / "d", acts=("walking",), seconds=8)
    r = _tune_cli([str(d), "--out", str(tmp_path / "o")])
    _one_line_error(r, "only one class (walking)")


def test_one_recording_is_one_line(tmp_path: Path) -> None:
    d = make_sim_data(tmp_path / "d", subjects=1, seconds=8)
    r = _tune_cli([str(d), "--out", str(tmp_path / "o")])
    _one_line_error(r, "only one recording")


def test_too_few_subjects_for_folds(tmp_path: Path) -> None:
    d = make_sim_data(tmp_path / "d", subjects=2, seconds=8)
    r = _tune_cli([str(d), "--out", str(tmp_path / "o"), "--folds", "3"])
    _one_line_error(r, "--folds 3 needs 3 subjects", "--folds 2")


def test_corrupt_study_db_is_one_line(tmp_path: Path, sim_dir: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "study.db").write_bytes(b"this is not SQLite\n" * 200)
    r = _tune_cli([str(sim_dir), "--out", str(out)])
    _one_line_error(r, "corrupt")
    assert (out / "study.db").read_bytes().startswith(b"this is not SQLite")  # left as it was


def test_locked_study_db_is_clear(tmp_path: Path, sim_dir: Path) -> None:
    import optuna

    out = tmp_path / "o"
    out.mkdir()
    optuna.create_study(study_name="har-tune", storage=f"sqlite:///{out / 'study.db'}")
    con = sqlite3.connect(out / "study.db")
    con.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TuneError, match="locked by another program"):
            tune([sim_dir], out, TuneOptions(trials=1, lock_timeout_s=0.2), echo=lambda s: None)
    finally:
        con.rollback()
        con.close()


def test_study_refuses_other_data(tmp_path: Path, sim_dir: Path) -> None:
    import optuna

    out = tmp_path / "o"
    out.mkdir()
    st = optuna.create_study(study_name="har-tune", storage=f"sqlite:///{out / 'study.db'}")
    st.set_user_attr("har", {"data_fingerprint": "0" * 64, "folds": 3})
    r = _tune_cli([str(sim_dir), "--out", str(out)])
    _one_line_error(r, "started with other data")


def test_bad_options(tmp_path: Path, sim_dir: Path) -> None:
    for args, needle in (
        (["--trials", "0"], "--trials"),
        (["--max-kb", "-1"], "--max-kb"),
        (["--time-budget", "0"], "--time-budget"),
    ):
        _one_line_error(_tune_cli([str(sim_dir), "--out", str(tmp_path / "o"), *args]), needle)
    bad = tmp_path / "space.json"
    bad.write_text(json.dumps({"lstm_unitz": [8]}))
    _one_line_error(_tune_cli([str(sim_dir), "--out", str(tmp_path / "o"), "--space", str(bad)]), "lstm_unitz")


def test_space_suggests_valid_configs_and_only_existing_fields() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    base = TrainConfig()
    for _ in range(60):
        trial = study.ask()
        cfg = suggest_config(trial, base, SearchSpace())
        assert isinstance(cfg, TrainConfig)
        assert abs(cfg.window.hop_s / cfg.window.window_s - trial.params["hop_fraction"]) < 1e-6
        if has_field(ModelConfig, "conv_dilation") and (cfg.model.conv_filters == 0 or cfg.model.conv_layers == 1):
            assert "conv_dilation" not in trial.params  # no second layer to dilate: not a separate choice
        for name in ("representation", "pooling", "conv_dilation", "label_smoothing"):
            holder = TrainConfig if name == "label_smoothing" else ModelConfig
            if not has_field(holder, name):
                assert name not in trial.params  # searched once the model code has the field
        study.tell(trial, 0.5)
    assert set(searched_fields()) <= {
        "ModelConfig.representation", "ModelConfig.conv_dilation", "ModelConfig.pooling", "TrainConfig.label_smoothing",
        "ModelConfig.ensemble", "TrainConfig.distill", "ModelConfig.rocket_features", "ModelConfig.window_features",
    }
    with pytest.raises(ConfigError):
        SearchSpace.from_dict({"augment": ["sideways"]})
    assert SearchSpace.from_dict({"lstm_units": 32}).lstm_units == (32,)


def test_stratified_recording_folds_share_every_class(tmp_path: Path) -> None:
    recs = []
    for i in range(9):
        recs.append(simulate_recording([(ACTS[i % 3], 2.0)], subject="unknown", subject_seed=i, rate_hz=25, seed=i))
    groups = stratified_groups(recs, 3, seed=0)
    for g in sorted(set(groups)):
        labels = {recs[i].labels[0] for i in range(9) if groups[i] == g}
        assert labels == set(ACTS)


class _ScriptedCV:
    """Stands in for har.training.cv.run_cv (training itself is covered by the slow tests): returns
    scripted fold accuracies per trial and calls ``on_fold`` as run_cv does."""

    def __init__(self, scores: list[list[float]], sweeps: list[list[dict[str, float]]] | None = None) -> None:
        self.scores = scores
        self.sweeps = sweeps  # per trial, per fold: {beta: accuracy} (the MiniRocket head's beta_sweep)
        self.folds_run: list[int] = []

    def __call__(self, recs: Any, idx: Any, classes: Any, config: Any, key: Any = None, echo: Any = None,
                 on_fold: Any = None) -> dict[str, Any]:
        n = min(len(self.folds_run), len(self.scores) - 1)
        accs = self.scores[n]  # the last one repeats
        self.folds_run.append(0)
        folds = []
        for i, a in enumerate(accs):
            folds.append({"fold": i + 1, "accuracy": a, "macro_f1": a, "epochs_run": 2})
            if self.sweeps is not None:
                folds[-1]["beta_sweep"] = {b: {"accuracy": v, "macro_f1": v} for b, v in self.sweeps[n][i].items()}
            self.folds_run[-1] += 1
            on_fold(i, folds[-1])
        return {"k": len(accs), "folds": folds, "accuracy_mean": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs, ddof=1)), "macro_f1_mean": float(np.mean(accs)),
                "macro_f1_std": float(np.std(accs, ddof=1))}


def test_pruning_after_a_bad_fold_and_duplicates(tmp_path: Path, sim_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import har.training.cv as cv

    fake = _ScriptedCV([[0.9, 0.9, 0.9]] * 5 + [[0.1, 0.1, 0.9]])  # 5 good trials, then 2 bad folds
    monkeypatch.setattr(cv, "run_cv", fake)
    space = SearchSpace.from_dict({**TINY_SPACE, "lstm_units": [4, 8, 12, 16, 24, 32]})
    lines: list[str] = []
    opts = TuneOptions(trials=8, folds=3, rate_hz=25, search_only=True, seed=3)
    tune([sim_dir], tmp_path / "o", opts, space=space, echo=lines.append)
    trials = _study(tmp_path / "o").trials
    real = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(real) >= 6
    for t in real[5:]:
        assert t.state.name == "PRUNED" and t.user_attrs["note"] == "pruned after fold 2"
    assert fake.folds_run[:5] == [3] * 5 and set(fake.folds_run[5:]) == {2}  # fold 3 of bad trials never ran
    for t in trials:
        if "duplicate_of" in t.user_attrs:  # a repeated configuration is not trained again
            assert t.state.name == "PRUNED" and t.params == trials[t.user_attrs["duplicate_of"]].params
    assert len(fake.folds_run) == len(real)
    board = json.loads((tmp_path / "o" / "leaderboard.json").read_text())
    assert {e["state"] for e in board} >= {"complete", "pruned"}
    assert any("ETA" in ln for ln in lines)


def test_minirocket_head_beta_is_chosen_by_the_folds(tmp_path: Path, sim_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the MiniRocket branch, each fold also scores other head betas (no training); the beta with
    the best mean over the folds becomes the trial's config and score, and the leaderboard says so.
    Where no beta beats the configured one on average, the configured beta stays."""
    import har.training.cv as cv

    pytest.importorskip("aeon")
    sure = [{"16": 0.80, "4": 0.84}, {"16": 0.70, "4": 0.73}, {"16": 0.90, "4": 0.92}]
    worse = [{"16": 0.80, "4": 0.90}, {"16": 0.70, "4": 0.60}, {"16": 0.90, "4": 0.88}]
    space = SearchSpace.from_dict({**TINY_SPACE, "rocket_features": [84], "lstm_units": [8]})
    lines: list[str] = []
    opts = TuneOptions(trials=1, folds=3, rate_hz=25, search_only=True)
    out = tmp_path / "o"
    monkeypatch.setattr(cv, "run_cv", _ScriptedCV([[0.80, 0.70, 0.90]], sweeps=[sure]))
    tune([sim_dir], out, opts, space=space, echo=lines.append)
    monkeypatch.setattr(cv, "run_cv", _ScriptedCV([[0.80, 0.70, 0.90]], sweeps=[worse]))
    tune([sim_dir], tmp_path / "worse", opts, space=space, echo=lines.append)
    first, second = _study(out).trials[0], _study(tmp_path / "worse").trials[0]
    ua = first.user_attrs
    assert ua["config"]["model"]["rocket_beta"] == 4.0 and "beta 4" in ua["summary"]
    assert ua["fold_accuracy"] == [0.84, 0.73, 0.92]
    assert ua["accuracy_mean"] == pytest.approx(np.mean([0.84, 0.73, 0.92]))
    assert ua["rocket_beta_cv"]["configured_accuracy_mean"] == pytest.approx(0.8)
    assert first.value == pytest.approx(ua["accuracy_mean"])
    assert any("head beta 4 instead of 16 by the folds" in ln for ln in lines), lines
    config = json.loads((out / "configs" / "trial-0000.json").read_text())
    assert config_from_dict(TrainConfig, config).model.rocket_beta == 4.0  # har train --config trains it
    ub = second.user_attrs
    assert ub["rocket_beta_cv"]["beta"] == 16.0 and ub["rocket_beta_cv"]["table"]["4"] < 0.8
    assert ub["config"]["model"]["rocket_beta"] == 16.0 and ub["fold_accuracy"] == [0.80, 0.70, 0.90]
    text = (out / "leaderboard.txt").read_text()
    assert "MiniRocket head beta 4 instead of 16, chosen by the folds (+3.0 +- " in text, text
    assert "MiniRocket head beta" not in (tmp_path / "worse" / "leaderboard.txt").read_text()


def test_time_budget_stops_starting_trials(tmp_path: Path, sim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import har.training.cv as cv

    monkeypatch.setattr(cv, "run_cv", _ScriptedCV([[0.5, 0.6]] * 10))
    lines: list[str] = []
    opts = TuneOptions(time_budget_min=1e-6, folds=2, rate_hz=25, search_only=True)
    res = tune([sim_dir], tmp_path / "o", opts, space=SearchSpace.from_dict(TINY_SPACE), echo=lines.append)
    assert res.trials_run_here == 1 and any("time budget" in ln for ln in lines)


# --- TensorFlow: real trials, real export ----------------------------------------------------------
@pytest.fixture(scope="module")
def tuned(sim_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("tune") / "run"
    space = _space_file(out.parent)
    r = _tune_cli([str(sim_dir), "--out", str(out), "--trials", "2", "--space", str(space), *TINY_ARGS])
    return out, r


@pytest.mark.slow
def test_tune_end_to_end(tuned: tuple[Path, Any]) -> None:
    out, r = tuned
    assert r.exit_code == 0, r.output
    assert "[tune] trial 1" in r.stderr and "ETA" in r.stderr  # progress on stderr
    assert "winner: trial" in r.stdout
    board = json.loads((out / "leaderboard.json").read_text())
    assert sorted(e["trial"] for e in board) == [0, 1]
    for e in board:
        assert e["state"] == "complete"
        assert 0.0 <= e["accuracy_mean"] <= 1.0 and e["accuracy_std"] >= 0.0
        assert 0.0 <= e["macro_f1_mean"] <= 1.0 and len(e["fold_accuracy"]) == 2
        assert e["size_kb"] > 0 and e["latency_ms"] > 0 and e["meets_budget"] is True
        assert e["config"]["model"]["lstm_units"] in ([8], [16])
    assert sum(e["winner"] for e in board) == 1 and board[0]["winner"]  # best CV accuracy first
    # trial 0 is har train's default, moved into the tiny space (LSTM 64 -> 16, augment auto -> none ...),
    # trained, scored and measured like trial 1
    default = next(e for e in board if e["har_default"])
    assert default["trial"] == 0 and default["params"]["lstm_units_0"] == 16 and default["params"]["augment"] == "none"
    assert default["default_moved"]["lstm_units_0"] == [64, 16] and not next(e for e in board if e["trial"] == 1)[
        "har_default"]
    text = (out / "leaderboard.txt").read_text()
    assert "+-" in text and "win 2s hop 0.5s" in text
    assert "[har default] win 2s hop 0.5s" in text and "har default (har train's configuration): trial 0, rank" in text
    assert "har default (har train's configuration): trial 0, rank" in r.stdout
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = out / "best"
    meta = json.loads((best / "metadata.json").read_text())
    assert meta["metrics"]["accuracy"] == pytest.approx(board[0]["accuracy_mean"])
    assert meta["data_summary"]["tune"]["trial"] == board[0]["trial"]
    assert json.loads((best / "tune.json").read_text())["trial"] == board[0]["trial"]


@pytest.mark.slow
def test_best_is_deployable_and_entries_train(tuned: tuple[Path, Any], sim_dir: Path, tmp_path: Path) -> None:
    out, r = tuned
    assert r.exit_code == 0, r.output
    from har.artifacts.bundle import verify_bundle

    # best/ is a byte copy of the winning finalist's model directory, which export_bundle (what
    # `har deploy` runs) turned into a verified int8 bundle: checksums, metadata, runtime agreement
    win = json.loads((out / "best" / "tune.json").read_text())["trial"]
    src = out / "finalists" / f"trial-{win:04d}"
    for name in ("model.weights.h5", "metadata.json", "deploy_windows.npz"):
        assert (out / "best" / name).read_bytes() == (src / name).read_bytes()
    meta = verify_bundle(src.with_name(src.name + "-int8"))
    assert list(meta.classes) == sorted(ACTS) and meta.export is not None and meta.export.quantize == "int8"
    assert meta.verification["agreement"] >= 0.9
    # any leaderboard entry trains with `har train --config`
    t = CliRunner().invoke(cli, ["train", str(sim_dir), "--config", str(out / "configs" / "trial-0001.json"),
                                 "--out", str(tmp_path / "m")])
    assert t.exit_code == 0, t.output
    cfg = json.loads((tmp_path / "m" / "metadata.json").read_text())["train_config"]
    assert cfg["model"] == json.loads((out / "configs" / "trial-0001.json").read_text())["model"]


@pytest.mark.slow
def test_budget_no_model_meets(tuned: tuple[Path, Any], sim_dir: Path) -> None:
    out, r = tuned
    assert r.exit_code == 0, r.output
    before = (out / "best" / "model.weights.h5").read_bytes()
    space = out.parent / "space.json"
    t0 = time.monotonic()
    r2 = _tune_cli([str(sim_dir), "--out", str(out), "--trials", "2", "--space", str(space), "--max-kb", "0.01",
                    *TINY_ARGS])
    _one_line_error(r2, "no model meets the budget", "--max-kb 0.01")
    assert time.monotonic() - t0 < 60  # measurements are kept in the study: nothing retrained or re-exported
    assert (out / "best" / "model.weights.h5").read_bytes() == before  # the earlier winner is kept
    board = json.loads((out / "leaderboard.json").read_text())
    assert all(e["meets_budget"] is False for e in board)


@pytest.mark.slow
def test_ctrl_c_mid_trial_then_resume(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    space = _space_file(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-m", "har.cli", "tune", str(sim_dir), "--out", str(out), "--trials", "2", "--space",
           str(space), "--search-only", *TINY_ARGS]
    # SIGINT back to its default in the child: a suite started in the background (`cmd &`) inherits
    # SIGINT ignored, and Python then never turns it into KeyboardInterrupt (a user's Ctrl-C is not)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[tune] trial 1:"):  # trial 0 finished, trial 1 started (its folds take seconds)
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    rc = proc.wait(timeout=120)
    assert rc == 130, "".join(seen) + rest
    errors = [ln for ln in rest.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "Traceback" not in rest
    first = {t.number: (t.state.name, t.value) for t in _study(out).trials}
    assert first[0][0] == "COMPLETE" and first[1][0] == "FAIL"
    # the same command resumes: trial 0 is kept as it was, one more trial completes the budget
    r = _tune_cli([str(sim_dir), "--out", str(out), "--trials", "2", "--space", str(space), "--search-only",
                   *TINY_ARGS])
    assert r.exit_code == 0, r.output
    after = {t.number: (t.state.name, t.value) for t in _study(out).trials}
    assert after[0] == first[0] and after[1][0] == "FAIL"
    assert [n for n, (s, _) in after.items() if s == "COMPLETE"] == [0, 2]
    states = {e["trial"]: e["state"] for e in json.loads((out / "leaderboard.json").read_text())}
    assert states == {0: "complete", 1: "interrupted", 2: "complete"}


@pytest.mark.slow
def test_two_processes_split_one_sqlite_study(sim_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    space = _space_file(tmp_path, lstm_units=[4, 8, 12, 16], augment=["none", "light", "tilt"])
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [str(sim_dir), "--out", str(out), "--trials", "4", "--space", str(space), "--search-only",
            "--folds", "2", "--rate", "25", "--epochs", "1"]
    out.mkdir()
    procs = [
        subprocess.Popen([sys.executable, "-m", "har.cli", "tune", *args], stderr=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, text=True, env=env)
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    ran = [{int(ln.split()[2].rstrip(":")) for ln in log.splitlines() if ln.startswith("[tune] trial ")
            and ln.split()[2].rstrip(":").isdigit() and ":" in ln.split()[2]} for log in logs]
    assert ran[0] and ran[1], logs  # both processes worked
    assert not ran[0] & ran[1]  # no trial run by both
    trials = [t for t in _study(out).trials if "skipped" not in t.user_attrs]
    assert len(trials) == 4 and sorted(t.number for t in trials) == sorted({t.number for t in trials})
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    fresh = [tuple(sorted(t.params.items())) for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(fresh) == len(set(fresh))  # no configuration trained twice
    assert [t.number for t in trials if DEFAULT_ATTR in t.user_attrs] == [0]  # the creator alone enqueued it
    assert np.isfinite([t.value for t in trials if t.state.name == "COMPLETE"]).all()


def test_train_config_file_rejects_unknown_keys(tmp_path: Path, sim_dir: Path) -> None:
    cfg = tmp_path / "trial.json"
    cfg.write_text(json.dumps({"lstm_units": [8]}))  # a ModelConfig key at the TrainConfig level
    r = CliRunner().invoke(cli, ["train", str(sim_dir), "--config", str(cfg), "--out", str(tmp_path / "m")])
    _one_line_error(r, "lstm_units")


def test_space_offers_the_cross_fitted_teacher_and_drops_teachers_with_the_cache() -> None:
    """distill none / minirocket / minirocket_oof are searched; `har tune --cache` streams windows,
    which the MiniRocket teacher cannot use: both teachers are dropped with a note (only teachers: error)."""
    assert SearchSpace().distill == ("none", "minirocket", "minirocket_oof")
    space, note = available(SearchSpace(), cache=True)
    assert space.distill == ("none",)
    assert note.startswith("distill minirocket and minirocket_oof not searched") and "--cache" in note
    with pytest.raises(ConfigError, match="distill minirocket_oof cannot be searched here"):
        available(SearchSpace(distill=("minirocket_oof",)), cache=True)
    plain = SearchSpace(distill=("none",), rocket_features=(0,))
    assert available(plain, cache=True) == (plain, "")


def test_space_searches_the_minirocket_branch_unless_the_cache_streams_windows() -> None:
    """rocket_features 0 or 10000 is searched (not for windows under 9 samples); `har tune --cache`
    drops 10000 with a note (only 10000: error); the leaderboard line and config carry it."""
    import optuna

    from har.config import WindowConfig

    assert SearchSpace().rocket_features == (0, 10000)
    with pytest.raises(ConfigError, match="rocket_features"):
        SearchSpace(rocket_features=(50,))
    space, note = available(SearchSpace(distill=("none",)), cache=True)
    assert space.rocket_features == (0,) and note.startswith("rocket_features 10000 not searched") and "--cache" in note
    with pytest.raises(ConfigError, match="rocket_features 10000 cannot be searched here"):
        available(SearchSpace(distill=("none",), rocket_features=(10000,)), cache=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    only = SearchSpace(rocket_features=(10000,), window_s=(1.5,))
    long_base = TrainConfig(window=WindowConfig(rate_hz=25.0))  # 1.5 s = 38 samples
    cfg = suggest_config(study.ask(), long_base, only)
    assert cfg.model.rocket_features == 10000 and "rocket 10000" in describe(cfg)
    short_base = TrainConfig(window=WindowConfig(rate_hz=4.0))  # 1.5 s = 6 samples: MiniRocket cannot
    trial = study.ask()
    cfg = suggest_config(trial, short_base, only)
    assert cfg.model.rocket_features == 0 and "rocket_features" not in trial.params
    assert not any(part.strip().startswith("rocket") for part in describe(cfg).split("|"))


def test_space_searches_window_features_but_not_for_short_windows(tmp_path: Path) -> None:
    """window_features none / 64 / 128,64 is searched (a --space file may write 64 or [128, 64]), not for
    windows under har.signal_features.MIN_SAMPLES samples; the leaderboard line carries it."""
    import optuna

    from har.config import WindowConfig
    from har.signal_features import MIN_SAMPLES

    assert SearchSpace().window_features == ("none", "64", "128,64")
    space = SearchSpace.from_dict({"window_features": ["none", 64, [128, 64], "32,16"]})
    assert space.window_features == ("none", "64", "128,64", "32,16")
    assert SearchSpace.from_dict(space.to_dict()) == space  # the --space file round trip
    assert SearchSpace.from_dict(json.loads(json.dumps({"window_features": [[]]}))).window_features == ("none",)
    for bad in (["wide"], ["128,-1"], [[64, 0]], ["1,2,3,4,5"]):
        with pytest.raises(ConfigError, match="window_features"):
            SearchSpace.from_dict({"window_features": bad})
    space_file = _space_file(tmp_path, window_features=["sixty"])
    _one_line_error(_tune_cli([str(tmp_path), "--out", str(tmp_path / "o"), "--space", str(space_file)]),
                    "window_features")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    only = SearchSpace(window_features=("128,64",), window_s=(1.5,), rocket_features=(0,))
    cfg = suggest_config(study.ask(), TrainConfig(window=WindowConfig(rate_hz=25.0)), only)  # 38 samples
    assert cfg.model.window_features == (128, 64) and "wf 128,64" in describe(cfg)
    short = TrainConfig(window=WindowConfig(rate_hz=4.0))  # 1.5 s = 6 samples
    trial = study.ask()
    cfg = suggest_config(trial, short, only)
    assert cfg.window.window_samples < MIN_SAMPLES <= 38
    assert cfg.model.window_features == () and "window_features" not in trial.params
    assert "wf" not in describe(cfg)
