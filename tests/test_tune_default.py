"""`har tune` starts a new study from `har train`'s own default configuration (real Optuna, real
SQLite). Cross-validation is scripted here (test_tune._ScriptedCV: the training of a trial is the
same for every trial and is covered by test_tune's real runs, where the first trial is the default
moved into a tiny --space); what is tested is which trials the study holds and what the
leaderboard says about them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_tune import TINY_SPACE, _ScriptedCV, _study, make_sim_data

from har.config import TrainConfig, WindowConfig, config_to_dict
from har.errors import TuneError
from har.training.tune import TuneInterrupted, TuneOptions, base_config, tune
from har.training.tune_space import DEFAULT_ATTR, SearchSpace, available, default_params, suggest_config


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sim_data(tmp_path_factory.mktemp("sim") / "data")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> _ScriptedCV:
    import har.training.cv as cv

    fake = _ScriptedCV([[0.7, 0.8], [0.9, 0.9], [0.5, 0.6], [0.8, 0.8], [0.6, 0.7]])
    monkeypatch.setattr(cv, "run_cv", fake)
    return fake


def _defaults(study: Any) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False) if DEFAULT_ATTR in t.user_attrs]


def _fixed(params: dict[str, Any]) -> Any:
    import optuna

    return optuna.trial.FixedTrial(params)


@pytest.mark.parametrize("rate", [25.0, 50.0])
def test_default_params_give_train_configs_defaults(rate: float) -> None:
    base = base_config(TuneOptions(rate_hz=rate))
    params, moved = default_params(base, SearchSpace())
    assert moved == {}
    assert suggest_config(_fixed(params), base, SearchSpace()) == base  # har train's own configuration
    assert base.model == TrainConfig().model and base.augment == TrainConfig().augment
    assert base.window == WindowConfig(rate_hz=rate)
    assert params["augment"] == "auto" and params["hop_fraction"] == 0.2 and params["lstm_units_0"] == 64
    assert params["window_features"] == "none" and base.model.window_features == ()  # the branch is off


def test_default_params_follow_a_reduced_space() -> None:
    base = base_config(TuneOptions(rate_hz=25.0))
    # --cache drops the MiniRocket branch and teachers: the default's 10000 features become 0
    cached, _ = available(SearchSpace(), cache=True)
    params, moved = default_params(base, cached)
    assert params["rocket_features"] == 0 and moved == {"rocket_features": [10000, 0]}
    cfg = suggest_config(_fixed(params), base, cached)
    assert cfg.model.rocket_features == 0 and cfg.window == base.window and cfg.augment == base.augment
    # windows under 9 samples: rocket_features is not a parameter at all
    short = dict(TINY_SPACE, window_s=[1.5])
    params, moved = default_params(base_config(TuneOptions(rate_hz=4.0)), SearchSpace.from_dict(short))
    assert "rocket_features" not in params and "rocket_features" not in moved
    # a default outside the space: the nearest allowed number, the first listed name
    space = SearchSpace.from_dict({"window_s": [2, 3], "lstm_units": [16, 128, 48], "augment": ["tilt", "none"],
                                   "conv_layers": [2], "conv_filters": [48, 16], "dropout": [0.0, 0.3]})
    params, moved = default_params(base, space)
    assert params["window_s"] == 3.0 and params["lstm_units_0"] == 48 and params["augment"] == "tilt"
    assert params["conv_layers"] == 2 and params["conv_dilation"] == 1  # a second layer: undilated, as the default
    assert params["dropout"] == 0.3 and params["conv_filters"] == 48  # 32 is as near to 48 as to 16: the first
    assert moved["window_s"] == [5.0, 3.0] and moved["augment"] == ["auto", "tilt"]
    assert "representation" not in moved  # gravity_body_magnitude is allowed


def test_new_study_starts_with_the_default_and_resume_does_not_add_it(
    tmp_path: Path, sim_dir: Path, scripted: _ScriptedCV
) -> None:
    out = tmp_path / "o"
    opts = TuneOptions(trials=3, folds=2, rate_hz=25, search_only=True)
    lines: list[str] = []
    tune([sim_dir], out, opts, echo=lines.append)  # the full default search space
    study = _study(out)
    space, _ = available(SearchSpace())
    base = base_config(opts)
    params, moved = default_params(base, space)
    first = study.trials[0]
    assert first.params == params and first.state.name == "COMPLETE"
    assert first.user_attrs[DEFAULT_ATTR] == {"moved": moved}
    expected = suggest_config(_fixed(params), base, space)  # = base unless aeon is missing (rocket 0)
    assert first.user_attrs["config"] == config_to_dict(expected)
    if not moved:
        assert first.user_attrs["config"] == config_to_dict(base)
    assert [t.number for t in _defaults(study)] == [0]
    assert any("new: its first trial is har's default configuration" in ln for ln in lines)
    # the leaderboard marks it and says where it ranks (0.75: second of 0.75, 0.9, 0.55)
    board = json.loads((out / "leaderboard.json").read_text())
    assert [e["har_default"] for e in board if e["trial"] == 0] == [True]
    assert not any(e["har_default"] for e in board if e["trial"] != 0)
    text = (out / "leaderboard.txt").read_text()
    row = next(ln for ln in text.splitlines() if ln[1:6].strip() == "0")
    assert "[har default] win 5s hop 1s" in row and "aug auto" in row
    assert "har default (har train's configuration): trial 0, rank 2 of 3 scored" in text
    # resuming (same --out, a larger budget) runs more trials but never the default again
    tune([sim_dir], out, TuneOptions(trials=5, folds=2, rate_hz=25, search_only=True), echo=lines.append)
    study = _study(out)
    assert len(study.trials) == 5 and [t.number for t in _defaults(study)] == [0]
    assert all(t.params != params for t in study.trials[1:] if "duplicate_of" not in t.user_attrs)


def test_space_excluding_the_default_moves_it_and_says_so(tmp_path: Path, sim_dir: Path,
                                                          scripted: _ScriptedCV) -> None:
    out = tmp_path / "o"
    space = SearchSpace.from_dict(TINY_SPACE)  # 2 s windows, no conv, LSTM 8/16, augment none/light ...
    lines: list[str] = []
    tune([sim_dir], out, TuneOptions(trials=2, folds=2, rate_hz=25, search_only=True), space=space,
         echo=lines.append)
    first = _study(out).trials[0]
    assert first.state.name == "COMPLETE"
    assert first.params["window_s"] == 2.0 and first.params["lstm_units_0"] == 16 and first.params["augment"] == "none"
    moved = first.user_attrs[DEFAULT_ATTR]["moved"]
    assert moved["augment"] == ["auto", "none"] and moved["lstm_units_0"] == [64, 16]
    assert "representation" in moved and "hop_fraction" in moved
    assert any("trial 0 is har's default configuration (within the search space: " in ln for ln in lines)
    text = (out / "leaderboard.txt").read_text()
    assert "; within the search space: window_s 2.0 for 5.0" in text
    board = json.loads((out / "leaderboard.json").read_text())
    assert next(e for e in board if e["trial"] == 0)["default_moved"] == moved


def test_an_interrupted_default_runs_again_on_resume(tmp_path: Path, sim_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import har.training.cv as cv

    def ctrl_c(*_a: Any, **_k: Any) -> Any:
        raise KeyboardInterrupt

    out = tmp_path / "o"
    space = SearchSpace.from_dict(TINY_SPACE)
    opts = TuneOptions(trials=2, folds=2, rate_hz=25, search_only=True)
    monkeypatch.setattr(cv, "run_cv", ctrl_c)
    with pytest.raises(TuneInterrupted):
        tune([sim_dir], out, opts, space=space, echo=lambda s: None)
    assert [(t.number, t.state.name) for t in _defaults(_study(out))] == [(0, "FAIL")]
    monkeypatch.setattr(cv, "run_cv", _ScriptedCV([[0.8, 0.8]]))
    lines: list[str] = []
    tune([sim_dir], out, opts, space=space, echo=lines.append)
    study = _study(out)
    assert [(t.number, t.state.name) for t in _defaults(study)] == [(0, "FAIL"), (1, "COMPLETE")]
    assert study.trials[1].params == study.trials[0].params
    assert any("interrupted in every earlier run: it runs again" in ln for ln in lines)
    board = json.loads((out / "leaderboard.json").read_text())
    assert {e["trial"]: e["state"] for e in board if e["har_default"]} == {0: "interrupted", 1: "complete"}
    # once it has a score, a resumed run does not enqueue it again
    tune([sim_dir], out, TuneOptions(trials=3, folds=2, rate_hz=25, search_only=True), space=space,
         echo=lambda s: None)
    assert len(_defaults(_study(out))) == 2


def test_resume_with_another_space_is_one_clear_error(tmp_path: Path, sim_dir: Path,
                                                      scripted: _ScriptedCV) -> None:
    out = tmp_path / "o"
    opts = TuneOptions(trials=1, folds=2, rate_hz=25, search_only=True)
    tune([sim_dir], out, opts, space=SearchSpace.from_dict(TINY_SPACE), echo=lambda s: None)
    other = SearchSpace.from_dict({**TINY_SPACE, "lstm_units": [8, 32]})
    with pytest.raises(TuneError, match=r"was searched with lstm_units \[8, 16\] \(now \[8, 32\]\)"):
        tune([sim_dir], out, TuneOptions(trials=2, folds=2, rate_hz=25, search_only=True), space=other,
             echo=lambda s: None)
    assert len(_study(out).trials) == 1  # nothing added


def test_neighbours_of_the_default_come_next_and_are_marked(tmp_path: Path, sim_dir: Path,
                                                            scripted: _ScriptedCV) -> None:
    from har.training.tune_space import NEIGHBOUR_ATTR, neighbour_params

    out = tmp_path / "o"
    opts = TuneOptions(trials=3, folds=2, rate_hz=25, search_only=True, neighbours=2)
    lines: list[str] = []
    tune([sim_dir], out, opts, echo=lines.append)
    study = _study(out)
    space, _ = available(SearchSpace())
    params, _ = default_params(base_config(opts), space)
    moves = [t.user_attrs.get(NEIGHBOUR_ATTR, {}).get("move") for t in study.trials]
    assert moves == [None, "ensemble 4", "window_features 128,64"]
    for t in study.trials[1:]:  # exactly one setting moved
        assert [k for k in params if t.params[k] != params[k]] == [moves[t.number].split()[0]]
    assert any("trial 1 is har's default with ensemble 4" in ln for ln in lines)
    # scripted folds: default 0.7/0.8, neighbour 1 0.9/0.9 (+15 points, se 5), neighbour 2 0.5/0.6
    board = {e["trial"]: e for e in json.loads((out / "leaderboard.json").read_text())}
    assert board[1]["neighbour_of_default"] == "ensemble 4"
    assert board[1]["vs_default"] == {"gain": 0.15, "se": 0.05, "beats": True}
    assert board[2]["vs_default"]["beats"] is False and board[0]["vs_default"] is None
    assert "[default + window_features 128,64] [-20.0 +- 0.0 pts vs default]" in (out / "leaderboard.txt").read_text()
    # a narrow space keeps only the moves it allows; 0 neighbours, none
    narrow = SearchSpace.from_dict({"ensemble": [1, 2], "window_features": ["none"], "pooling": ["last", "mean"]})
    assert [m for _, m in neighbour_params(base_config(opts), narrow, 2)] == ["augment none", "lstm_units_0 96"]
    assert neighbour_params(base_config(opts), space, 0) == []


def _done(number: int, folds: list[float], default: bool = False) -> Any:
    import optuna

    attrs: dict[str, Any] = {"fold_accuracy": folds, "accuracy_mean": sum(folds) / len(folds),
                             "macro_f1_mean": sum(folds) / len(folds)}
    if default:
        attrs[DEFAULT_ATTR] = {"moved": {}}
    t = optuna.trial.create_trial(value=attrs["accuracy_mean"], user_attrs=attrs)
    t.number = number
    return t


def test_a_trial_goes_ahead_of_the_default_only_beyond_one_standard_error() -> None:
    from har.training.tune_final import rank_trials

    default = _done(0, [0.80, 0.90, 0.70], default=True)  # 0.80
    steady = _done(1, [0.82, 0.92, 0.72])  # +2 points on every fold: beats it
    lucky = _done(2, [0.99, 0.85, 0.72])  # +5.3 points on average, but on one fold only: se 7.1
    worse = _done(3, [0.70, 0.80, 0.60])
    ranked = rank_trials([worse, lucky, default, steady])
    assert [t.number for t in ranked] == [1, 0, 2, 3]
    assert [t.number for t in rank_trials([lucky, steady, worse])] == [2, 1, 3]  # no default: by accuracy


def test_leaderboard_formats_a_trial_read_between_its_attribute_writes() -> None:
    """Two processes on one study: one writes the leaderboard while the other's trial has set its
    mean accuracy but not yet its std (Optuna stores user attributes one at a time)."""
    from types import SimpleNamespace

    from har.training.tune_report import format_leaderboard

    row = {"trial": 3, "state": "running", "accuracy_mean": 0.8, "accuracy_std": None, "macro_f1_mean": 0.7,
           "macro_f1_std": None, "fold_accuracy": [], "size_kb": None, "latency_ms": None, "export_error": None,
           "meets_budget": None, "winner": False, "har_default": False, "summary": "lstm 8", "note": ""}
    opts = SimpleNamespace(study="s", folds=2, max_kb=None, max_ms=None)
    line = next(ln for ln in format_leaderboard([row], opts).splitlines() if "lstm 8" in ln)
    assert "0.800" in line and "0.700" in line


def test_neighbours_not_yet_run_are_listed_as_queued(tmp_path: Path, sim_dir: Path, scripted: _ScriptedCV) -> None:
    out = tmp_path / "o"
    tune([sim_dir], out, TuneOptions(trials=1, folds=2, rate_hz=25, search_only=True, neighbours=2),
         echo=lambda s: None)
    board = {e["trial"]: e for e in json.loads((out / "leaderboard.json").read_text())}
    assert board[0]["state"] == "complete"
    assert [board[n]["state"] for n in (1, 2)] == ["queued", "queued"]
    assert "[default + ensemble 4]" in (out / "leaderboard.txt").read_text()
