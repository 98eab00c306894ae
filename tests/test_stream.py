"""`har train --cache DIR` (har.training.stream): trains and scores like the in-memory path on the
same data and seed, writes the same model directory, and never gathers more than a chunk of windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings

from har.artifacts.metadata import load_metadata
from har.cli import cli
from har.config import WindowConfig

ARGS = ["--window", "1", "--hop", "0.5", "--rate", "25", "--epochs", "3", "--lstm-units", "8", "--dropout", "0",
        "--batch-size", "32", "--lr", "0.01", "--patience", "2", "--seed", "3", "--rocket-features", "0",
        "--rotation-z", "auto"]
CHUNK = 40  # the streaming path may gather at most this many windows at once in the test


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("stream") / "data"
    make_tiny_recordings(d, subjects=5, seconds_per_class=12.0)
    return d


def _one_line_error(r: object, *needles: str) -> None:
    code, err = r.exit_code, r.stderr  # type: ignore[attr-defined]
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.slow
def test_streaming_trains_like_the_in_memory_path_and_never_holds_all_windows(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import har.dataset
    import har.signal
    import har.training.stream as stream
    import har.training.train as train_mod
    from har.training.cache import WindowCache

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("the streaming path cut or loaded all windows in memory")

    gathered: list[int] = []
    real_windows = WindowCache.windows

    def counting(self: WindowCache, idx: np.ndarray) -> np.ndarray:
        gathered.append(len(idx))
        return real_windows(self, idx)

    monkeypatch.setattr(train_mod, "MAX_CALIB_WINDOWS", 25)  # both paths: deploy windows below CHUNK
    monkeypatch.setattr(train_mod, "MAX_HELDOUT_WINDOWS", 25)
    with monkeypatch.context() as m:
        for mod, name in ((har.dataset, "windows_for"), (har.dataset, "load_recordings"),
                          (har.signal, "make_windows"), (train_mod, "windows_for"), (train_mod, "load_recordings")):
            m.setattr(mod, name, forbidden)
        m.setattr(WindowCache, "windows", counting)
        m.setattr(stream, "CHUNK", CHUNK)
        r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "s"), "--cache",
                                     str(tmp_path / "cache"), *ARGS])
        assert r.exit_code == 0, r.output + (r.stderr or "")
    meta_s = load_metadata(tmp_path / "s")
    n_windows = sum(meta_s.data_summary["windows"].values())
    assert gathered and max(gathered) <= CHUNK < n_windows / 4  # batches of 32, chunks of 40, never all
    assert "window cache" in r.output and "z rotation auto: 180 degrees " in r.output and " groups, p=" in r.output

    from har.training.train import train

    train([data_dir], tmp_path / "m", meta_s.train_config, progress=False, echo=lambda s: None)
    meta_m = load_metadata(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(p.name for p in (tmp_path / "m").iterdir())
    assert meta_s.classes == meta_m.classes and meta_s.window == meta_m.window
    assert meta_s.data_fingerprint == meta_m.data_fingerprint
    for k in ("split_by", "train_subjects", "val_subjects", "test_subjects", "windows", "windows_per_class", "files",
              "resolved"):
        assert meta_s.data_summary[k] == meta_m.data_summary[k], k
    assert np.allclose(meta_s.normalization.mean, meta_m.normalization.mean, rtol=0, atol=1e-9)
    assert np.allclose(meta_s.normalization.std, meta_m.normalization.std, rtol=0, atol=1e-9)
    ds, dm = np.load(tmp_path / "s" / "deploy_windows.npz"), np.load(tmp_path / "m" / "deploy_windows.npz")
    assert all(np.array_equal(ds[k], dm[k]) for k in dm.files)
    # same windows, same order, same seeds: the same batches; scores within noise of each other
    assert abs(meta_s.metrics["accuracy"] - meta_m.metrics["accuracy"]) <= 0.1
    assert meta_s.metrics["accuracy"] > 0.6  # it learned the three easy classes
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert rep["epochs_run"] >= 1 and rep["data_summary"]["window_cache"].startswith(str(tmp_path / "cache"))


def test_cache_bad_input_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "o1"), "--cache",
                                 str(tmp_path / "afile" / "cache"), *ARGS])
    _one_line_error(r, "window cache", "not a writable directory")
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "o2"), "--cache",
                                 str(tmp_path / "c"), "--reference", *ARGS])
    _one_line_error(r, "--reference", "--cache")
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "o3"), "--cache",
                                 str(tmp_path / "c"), "--distill", "minirocket_oof", *ARGS])
    _one_line_error(r, "--distill minirocket_oof", "cannot run with --cache")
    assert not (tmp_path / "c").exists()  # refused before the cache is built
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())


def test_default_rocket_branch_is_dropped_through_the_cache_a_named_one_refused(data_dir: Path, tmp_path: Path) -> None:
    """--cache streams windows, MiniRocket needs them in memory: `har train --cache` with the default
    (10000 features) drops the branch with a note and saves rocket_features 0; --rocket-features N
    on the command line is refused in one line."""
    pytest.importorskip("aeon", reason="aeon (MiniRocket) is not installed")
    from har.artifacts.metadata import load_metadata
    from har.training import rocket

    assert rocket.default_features() == 10000
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "s"), "--cache", str(tmp_path / "c"),
                                 *ARGS[:-4], "--rotation-z", "0", "--ensemble", "1"])  # no --rocket-features
    assert r.exit_code == 0, r.output + (r.stderr or "")
    assert "MiniRocket branch (--rocket-features 10000) is dropped" in r.output and "--cache" in r.output
    assert load_metadata(tmp_path / "s").train_config.model.rocket_features == 0
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "n"), "--cache", str(tmp_path / "c2"),
                                 *ARGS, "--rocket-features", "10000"])
    _one_line_error(r, "--rocket-features 10000", "--cache", "--rocket-features 0")
    assert not (tmp_path / "c2").exists()  # refused before the cache is built


def test_distill_auto_through_the_cache_trains_without_a_teacher_and_says_so() -> None:
    from har.config import TrainConfig
    from har.training.stream import _without_teacher

    said: list[str] = []
    cfg = _without_teacher(TrainConfig(distill="auto"), said.append)
    assert cfg.distill == "none" and len(said) == 1 and "without a teacher" in said[0]
    plain = TrainConfig()
    assert _without_teacher(plain, said.append) is plain and len(said) == 1


def test_memory_warning_names_the_cache_option(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import har.training.stream as stream

    win = WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5)
    need = stream.in_memory_bytes([data_dir], win)
    assert need > 0
    monkeypatch.setattr(stream, "available_memory", lambda: need)  # the windows would take all of it
    assert "--cache DIR" in (stream.memory_warning([data_dir], win) or "")
    monkeypatch.setattr(stream, "available_memory", lambda: 100 * need)
    assert stream.memory_warning([data_dir], win) is None


@pytest.mark.slow
def test_cv_through_the_cache(data_dir: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["train", str(data_dir), "--out", str(tmp_path / "s"), "--cache", str(tmp_path / "c"),
                                 "--cv", "2", *ARGS[:-2], "--rotation-z", "0", "--epochs", "1", "--ensemble", "1"])
    assert r.exit_code == 0, r.output + (r.stderr or "")
    rep = json.loads((tmp_path / "s" / "report.json").read_text())
    assert rep["cv"]["k"] == 2 and len(rep["cv"]["folds"]) == 2
    assert all(f["windows"]["test"] > 0 for f in rep["cv"]["folds"])
    assert "cv 2-fold: accuracy" in r.output


@pytest.mark.slow
def test_tune_through_the_cache_scores_like_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_tune import TINY_ARGS, _space_file, make_sim_data

    import har.training.tune as tune_mod

    sim = make_sim_data(tmp_path / "sim")
    space = _space_file(tmp_path, lstm_units=[8], augment=["light"])
    common = [str(sim), "--trials", "1", "--space", str(space), *TINY_ARGS]
    mem = CliRunner().invoke(cli, ["tune", *common, "--out", str(tmp_path / "mem"), "--search-only"])
    assert mem.exit_code == 0, mem.output + (mem.stderr or "")

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("har tune --cache loaded recordings or cut windows in memory")

    monkeypatch.setattr(tune_mod, "load_recordings", forbidden)
    monkeypatch.setattr(tune_mod, "windows_for", forbidden)
    r = CliRunner().invoke(cli, ["tune", *common, "--out", str(tmp_path / "c"), "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output + (r.stderr or "")
    assert (tmp_path / "c" / "best" / "metadata.json").is_file()
    a = json.loads((tmp_path / "mem" / "leaderboard.json").read_text())[0]
    b = json.loads((tmp_path / "c" / "leaderboard.json").read_text())[0]
    assert a["config"] == b["config"] and len(b["fold_accuracy"]) == 2
    assert abs(a["accuracy_mean"] - b["accuracy_mean"]) <= 0.1


def test_split_and_holdouts_from_the_index_equal_the_in_memory_ones(tmp_path: Path) -> None:
    """One subject, several sessions (a session split), recordings with different majority labels
    (stratified recording hold-out), one recording (window hold-out): decided from the index alone
    exactly as from the loaded recordings."""
    import dataclasses

    from har.config import TrainConfig
    from har.dataset import load_recordings, split_recordings, windows_for
    from har.recording.format import write_recording
    from har.recording.simulate import simulate_recording
    from har.training.cache import build_cache
    from har.training.fit import holdout_recordings, holdout_windows
    from har.training.stream import IndexedRecording, _holdout_windows_from_index, _Index

    d = tmp_path / "one"
    d.mkdir()
    for i, acts in enumerate([("walking", "sitting"), ("sitting", "walking"), ("walking", "lying"),
                              ("lying", "sitting"), ("sitting", "lying")]):
        rec = simulate_recording([(acts[0], 14.0), (acts[1], 8.0)], subject="solo", rate_hz=25, seed=i)
        rec.meta = dataclasses.replace(rec.meta, session_id=f"sess{i}")
        write_recording(d / f"r{i}.csv", rec)
    win = WindowConfig(rate_hz=25.0, window_s=2.0, hop_s=0.5)
    cfg = TrainConfig(window=win, val_fraction=0.0)
    recs = load_recordings([d], progress=False)
    cache = build_cache([d], tmp_path / "c", win)
    rec_of = {e.source: r for r, e in enumerate(cache.entries)}
    stubs = [IndexedRecording.of(cache, rec_of[str(r.path)]) for r in recs]
    lines: list[str] = []
    want = split_recordings(recs, cfg, echo=lines.append)
    got = split_recordings(stubs, cfg, echo=lines.append)  # type: ignore[arg-type]
    assert want.by == got.by == "session" and want == got
    assert holdout_recordings(recs, want.train, 0.3, 5) == holdout_recordings(stubs, want.train, 0.3, 5)  # type: ignore[arg-type]
    w = windows_for(recs, [0], win)
    idx = _Index(cache).of([rec_of[str(recs[0].path)]])
    assert np.array_equal(cache.windows(idx), w.x)
    mt, mv = holdout_windows(w, 0.2, win.window_s)
    gt, gv = _holdout_windows_from_index(cache, idx, 0.2, win.window_s)
    assert mv.any() and np.array_equal(mt, gt) and np.array_equal(mv, gv)


def test_a_cache_file_shorter_than_its_index_is_an_error_not_garbage(tmp_path: Path, data_dir: Path) -> None:
    from har.errors import CacheError
    from har.training.cache import WindowCache, build_cache

    win = WindowConfig(rate_hz=25.0, window_s=1.0, hop_s=0.5)
    cache = build_cache([data_dir], tmp_path / "c", win)
    x = tmp_path / "c" / f"{cache.entries[0].key}.x.npy"
    x.write_bytes(x.read_bytes()[:-600])  # the last windows' samples are gone (after the sha check)
    opened = WindowCache(cache.dir, win, cache.entries)
    last = np.flatnonzero(opened.rec == 0)[-1:]
    with pytest.raises(CacheError, match="shorter than its index"):
        opened.windows(last)
    assert len(build_cache([data_dir], tmp_path / "c", win).converted) == 1  # the next build repairs it


def test_implausible_data_is_refused_the_same_way_with_the_cache(tmp_path: Path) -> None:
    """The plausibility checks run on every --cache run (from the entries), with the same one line."""
    from har.recording.format import read_recording, write_recording

    d = tmp_path / "data"
    make_tiny_recordings(d, subjects=4, seconds_per_class=6.0)
    rec = read_recording(d / "s1.csv")
    rec.xyz *= 9.81  # m/s2 written as g
    write_recording(d / "s1.csv", rec, overwrite=True)
    base = ["train", str(d), *ARGS]
    mem = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "m")])
    _one_line_error(mem, "s1.csv")
    for _ in range(2):  # converting, then from the cache
        r = CliRunner().invoke(cli, [*base, "--out", str(tmp_path / "s"), "--cache", str(tmp_path / "c")])
        _one_line_error(r)
        assert r.stderr.strip().splitlines()[-1] == mem.stderr.strip().splitlines()[-1]
