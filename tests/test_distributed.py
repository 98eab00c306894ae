"""`har train --distributed`: real worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy.

One module fixture starts, at once (they spend most of their time importing TensorFlow), two
workers that train to the end and two pairs of workers of which one is killed with SIGKILL in its
second epoch (once the chief, once the other worker), and meanwhile trains in this process the
single-process run with the same options (seed, global batch). The tests then check what each left
behind. Plus the TF_CONFIG checks and the shard arithmetic, without TensorFlow."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from har.atomic import replace_dir
from har.cli import cli
from har.errors import DistributedError
from har.training.distributed import parse_tf_config, shard_validation, steps_per_epoch

ROOT = Path(__file__).resolve().parents[1]
TEST_SUBJECTS = "sim03,sim04"
ARGS = ["--window", "2", "--hop", "0.5", "--rate", "25", "--lstm-units", "16", "--batch-size", "32",
        "--rotation-z", "0", "--seed", "0", "--test-subjects", TEST_SUBJECTS, "--ensemble", "1",
        "--rocket-features", "0"]  # the MiniRocket branch is not trained across workers (dropped or refused)
EPOCHS = 10
# Tolerance on the test-subject accuracy of the two-worker model vs the single-process one. Both use
# the same seed, split and global batches (same windows per step); they differ in the augmentation
# draws (per worker shard), the windows left over at the end of an epoch and float summation order,
# i.e. they are two draws of the training noise. Measured on exactly this data and configuration,
# single-process runs with seeds 0-4 scored 0.786, 0.847, 0.832, 0.882, 0.771 (std 0.045) on the
# 262 test windows (binomial standard error at 0.8: 0.025): 0.10 is about two seed-to-seed standard
# deviations. A real defect (wrong shard, doubled or missing windows, unsynchronised weights, a
# model saved before training) costs far more.
TOLERANCE = 0.10
DEADLINE_S = 240


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class Run:
    """One `har train` process with its output in files."""

    def __init__(self, name: str, tmp: Path, args: list[str], tf_config: str | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.name = name
        self.stdout, self.stderr = tmp / f"{name}.out", tmp / f"{name}.err"
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        env.pop("TF_CONFIG", None)
        env.pop("HAR_DEBUG", None)
        env.update(extra_env or {})
        if tf_config is not None:
            env["TF_CONFIG"] = tf_config
            env["TMPDIR"] = str(tmp / f"tmp-{name}")  # where a non-chief worker's scratch copy goes
            (tmp / f"tmp-{name}").mkdir()
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "har.cli", "train", *args], cwd=tmp,
                                         env=env, stdout=out, stderr=err)
        self.code: int | None = None
        self.ended_at = 0.0
        threading.Thread(target=self._wait, daemon=True).start()  # the exit time, even while the test is busy

    def _wait(self) -> None:
        code = self.proc.wait()
        self.ended_at = time.monotonic()
        self.code = code

    def poll(self) -> bool:
        return self.code is not None

    def out(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def err(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def _kill_in_second_epoch(watch: Run, victim: Run, stop: threading.Event, out: dict[str, float], key: str) -> None:
    while not stop.is_set() and watch.proc.poll() is None:
        if "epoch 2/" in watch.out() and victim.proc.poll() is None:
            victim.proc.send_signal(signal.SIGKILL)
            out[key] = time.monotonic()
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from har.recording.simulate import generate_dataset

    tmp = tmp_path_factory.mktemp("dist")
    generate_dataset(tmp / "sim", subjects=6, seconds_per_activity=12.0, rate_hz=25.0, seed=0)
    common = ["sim", *ARGS]
    pa, pk, pc, pl = _free_ports(2), _free_ports(2), _free_ports(2), _free_ports(2)
    dist_args = [*common, "--out", "dist", "--epochs", str(EPOCHS), "--distributed"]
    # long enough that the kill lands mid-training
    def kill_args(out: str) -> list[str]:
        return [*common, "--out", out, "--epochs", "300", "--patience", "300", "--distributed"]

    procs = {
        "chief": Run("chief", tmp, dist_args, _tf_config(pa, 0)),
        "worker": Run("worker", tmp, dist_args, _tf_config(pa, 1)),
        "k_chief": Run("k_chief", tmp, kill_args("killed"), _tf_config(pk, 0)),
        "k_worker": Run("k_worker", tmp, kill_args("killed"), _tf_config(pk, 1)),
        "c_chief": Run("c_chief", tmp, kill_args("chief_killed"), _tf_config(pc, 0)),
        "c_worker": Run("c_worker", tmp, kill_args("chief_killed"), _tf_config(pc, 1)),
        # its peer never starts
        "lonely": Run("lonely", tmp, [*common, "--out", "lonely", "--distributed"], _tf_config(pl, 0),
                      {"HAR_DISTRIBUTED_JOIN_TIMEOUT": "3"}),
    }
    killed: dict[str, float] = {}
    stop = threading.Event()
    killers = [threading.Thread(target=_kill_in_second_epoch, args=(procs[a], procs[b], stop, killed, key))
               for a, b, key in (("k_chief", "k_worker", "worker"), ("c_worker", "c_chief", "chief"))]
    for k in killers:
        k.start()
    try:
        # meanwhile, in this process: the single-process run with the same options
        from har.cli.cmd_train import build_config, train_cmd
        from har.training.train import train

        ctx = train_cmd.make_context("train", [*common, "--out", "single", "--epochs", str(EPOCHS)])
        single = train([tmp / "sim"], tmp / "single", build_config(ctx, ctx.params, None),
                       echo=lambda _: None, progress=False)
        deadline = time.monotonic() + DEADLINE_S
        while not all(r.poll() for r in procs.values()):
            if time.monotonic() > deadline:
                pytest.fail("distributed runs did not finish: " + ", ".join(
                    f"{n}: {r.err()[-300:]!r}" for n, r in procs.items() if r.code is None))
            time.sleep(0.2)
    finally:
        stop.set()
        for k in killers:
            k.join()
        for r in procs.values():
            if r.proc.poll() is None:
                r.proc.kill()
                r.proc.wait()
    return {"tmp": tmp, "procs": procs, "killed": killed, "ports": {"a": pa, "k": pk, "c": pc, "l": pl},
            "single_accuracy": single.metadata.metrics["accuracy"], "single": single}


def _metadata(d: Path) -> dict[str, Any]:
    return json.loads((d / "metadata.json").read_text(encoding="utf-8"))


def test_two_workers_train_one_model_within_noise_of_one_process(runs: dict[str, Any]) -> None:
    tmp, p = runs["tmp"], runs["procs"]
    for name in ("chief", "worker"):
        assert p[name].code == 0, f"{name}: {p[name].err()[-2000:]}"
    assert "chief of 2 workers, global batch 32 (16 per worker)" in p["chief"].out()
    assert "worker of 2 workers" in p["worker"].out()
    # the same validation loss on both workers every epoch: one synchronised model
    epochs = [ln.split("  ")[:4] for ln in p["chief"].out().splitlines() if ln.startswith("epoch ")]
    assert epochs and epochs == [ln.split("  ")[:4] for ln in p["worker"].out().splitlines()
                                 if ln.startswith("epoch ")]
    # only the chief wrote, and only the finished directory; the other worker's scratch copy is gone
    model = tmp / "dist"
    for f in ("metadata.json", "model.weights.h5", "deploy_windows.npz", "report.txt", "report.json",
              "confusion.png", "training_curves.png"):
        assert (model / f).is_file(), f
    assert not [q.name for q in tmp.iterdir() if q.name.startswith(".dist.")]
    assert not list((tmp / "tmp-worker").glob("har-worker-*"))
    # the model loads and scores what training reported on the test subjects
    from har.scoring.evaluate import evaluate
    from har.training.predict import keras_predictor

    test_files = [tmp / "sim" / f"{s}.csv" for s in TEST_SUBJECTS.split(",")]
    predictor = keras_predictor(model)
    res = evaluate(model, test_files, echo=lambda _: None, progress=False, predictor=predictor)
    dist_acc = _metadata(model)["metrics"]["accuracy"]
    assert res["accuracy"] == pytest.approx(dist_acc, abs=1e-6)
    # the validation accuracy the two workers computed from their shards (summed) is what one process
    # computes on all validation windows with the saved weights (the last or the restored best epoch)
    report = json.loads((model / "report.json").read_text(encoding="utf-8"))
    hist, (val_subject,) = report["history"], report["data_summary"]["val_subjects"]
    val = evaluate(model, [tmp / "sim" / f"{val_subject}.csv"], echo=lambda _: None, progress=False,
                   predictor=predictor)
    best = int(np.argmin(hist["val_loss"]))
    assert min(abs(val["accuracy"] - hist["val_accuracy"][k]) for k in (best, -1)) < 1e-6, (val["accuracy"], hist)
    single_acc = runs["single_accuracy"]
    assert abs(dist_acc - single_acc) <= TOLERANCE, (dist_acc, single_acc)
    assert _metadata(model)["train_config"] == _metadata(tmp / "single")["train_config"]  # same options


@pytest.mark.parametrize(("victim", "survivor", "pair", "index", "out"),
                         [("worker", "k_chief", "k", 1, "killed"), ("chief", "c_worker", "c", 0, "chief_killed")])
def test_a_killed_worker_stops_the_other_with_one_line(
    runs: dict[str, Any], victim: str, survivor: str, pair: str, index: int, out: str
) -> None:
    tmp, p = runs["tmp"], runs["procs"]
    killed_at = runs["killed"].get(victim)
    assert killed_at, f"the {victim} was not killed in epoch 2: {p[survivor].err()[-2000:]}"
    assert p[f"{pair}_{victim}"].code == -signal.SIGKILL
    other = p[survivor]
    assert other.code not in (0, None)
    lines = [ln for ln in other.err().splitlines() if ln.strip()]
    dead = f"worker {index} (127.0.0.1:{runs['ports'][pair][index]})"
    assert len(lines) == 1 and lines[0].startswith("Error: ") and dead in lines[0], other.err()
    assert "stopped responding" in lines[0] and "not written" in lines[0]
    assert other.ended_at - killed_at < 60  # noticed by the heartbeat, not a hang
    # the model directory was never created (a killed chief leaves only its hidden staging copy,
    # which the next chief on this host removes)
    assert not (tmp / out).exists()
    left = [q.name for q in tmp.iterdir() if q.name.startswith(f".{out}.")]
    assert len(left) == (1 if victim == "chief" else 0), left


def test_a_worker_whose_peer_never_starts_gives_up_with_one_line(runs: dict[str, Any]) -> None:
    r = runs["procs"]["lonely"]
    assert r.code not in (0, None)
    lines = [ln for ln in r.err().splitlines() if ln.strip()]
    peer = f"worker 1 (127.0.0.1:{runs['ports']['l'][1]})"
    assert len(lines) == 1 and lines[0].startswith("Error: ") and f"{peer} not started" in lines[0], r.err()
    assert "waited 3 s" in lines[0]
    assert not (runs["tmp"] / "lonely").exists()


# --- without TensorFlow ------------------------------------------------------------------------


def test_tf_config_missing_or_malformed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import make_tiny_recordings

    make_tiny_recordings(tmp_path / "data")
    for value, needle in ((None, "TF_CONFIG: not set"), ("{cluster", "TF_CONFIG: not valid JSON"),
                          ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', '"index"')):
        if value is None:
            monkeypatch.delenv("TF_CONFIG", raising=False)
        else:
            monkeypatch.setenv("TF_CONFIG", value)
        r = CliRunner().invoke(cli, ["train", str(tmp_path / "data"), "--out", str(tmp_path / "m"), "--distributed"])
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
        assert needle in lines[0], lines[0]
        assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("[]", '"cluster" and "task"'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "ps not supported"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "not \"host:port\""),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "same address"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', '"type"'),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "no \"worker\""),
    ],
)
def test_tf_config_errors(value: str, needle: str) -> None:
    with pytest.raises(DistributedError, match="TF_CONFIG") as e:
        parse_tf_config(value)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_tf_config_chief_and_workers() -> None:
    c = parse_tf_config('{"cluster": {"chief": ["h0:1"], "worker": ["h1:1", "h2:1"]}, '
                        '"task": {"type": "worker", "index": 1}}')
    assert c.n_workers == 3 and c.rank == 2 and not c.is_chief and c.me == "worker 1 (h2:1)"
    assert parse_tf_config(c_text := '{"cluster": {"chief": ["h0:1"], "worker": ["h1:1"]}, '
                           '"task": {"type": "chief", "index": 0}}').is_chief, c_text


@pytest.mark.parametrize(("n_windows", "n_workers"), [(393, 2), (400, 4), (64, 2), (1000, 3)])
def test_shards_make_up_the_single_process_global_batches(n_windows: int, n_workers: int) -> None:
    from har.training.distributed import shard_batches

    batch = 24 if n_workers == 3 else 32
    x = np.arange(n_windows, dtype=np.float32).reshape(-1, 1, 1) * np.ones((1, 4, 3), np.float32)
    y = np.arange(n_windows) % 5
    steps = steps_per_epoch(n_windows, batch, n_workers)
    per_worker = []
    for i in range(n_workers):
        gen = shard_batches(x, y, batch, n_workers, i, seed=7, augment=None, mean=np.zeros(3), std=np.ones(3))
        per_worker.append([next(gen) for _ in range(2 * steps)])  # two epochs
    for epoch in range(2):
        order = np.random.default_rng([7, epoch]).permutation(n_windows)
        seen = []
        for k in range(steps):
            got = np.concatenate([per_worker[i][epoch * steps + k][0][:, 0, 0] for i in range(n_workers)])
            # step k of the n workers together = the single-process run's global batch k
            assert got.astype(int).tolist() == order[k * batch:(k + 1) * batch].tolist()
            seen += got.astype(int).tolist()
        assert len(set(seen)) == len(seen) and n_windows - len(seen) < batch


@pytest.mark.parametrize(("n_val", "n_workers"), [(131, 2), (7, 3), (500, 4), (1, 2)])
def test_validation_shards_cover_each_window_once(n_val: int, n_workers: int) -> None:
    shards = [shard_validation(n_val, 32, n_workers, i) for i in range(n_workers)]
    assert len({(s[2], s[3]) for s in shards}) == 1  # the same steps and batch on every worker
    real = np.concatenate([idx[w > 0] for idx, w, _, _ in shards])
    assert sorted(real.tolist()) == list(range(n_val))
    # Keras's per-batch means (padding counted) summed over workers = the mean over the real windows
    losses = np.random.default_rng(0).random(n_val)
    total = sum(s[2] * s[3] for s in shards)
    keras_mean = sum(float((w * losses[idx]).sum()) for idx, w, _, _ in shards) / total
    assert keras_mean == pytest.approx(float(losses.mean()))


def test_replace_dir_swaps_a_complete_directory(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a").write_text("old")
    replace_dir(tmp_path / "new", tmp_path / "out")
    assert (tmp_path / "out" / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_a_killed_chief_is_removed(tmp_path: Path) -> None:
    from har.training.distributed import _staging_prefix, remove_stale_staging

    out = tmp_path / "model"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    prefix = _staging_prefix(out)
    dead, alive = tmp_path / f"{prefix}{gone.pid}-x1", tmp_path / f"{prefix}{os.getppid()}-x2"
    for d in (dead, alive):
        (d / "model").mkdir(parents=True)
    assert remove_stale_staging(out) == [dead]
    assert not dead.exists() and alive.exists()
