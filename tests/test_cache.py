"""The window cache (har.training.cache): the same windows as the in-memory path, rebuilt only when
a recording changes, never read wrong (other version, corrupt file), a full disk is one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from har.config import AugmentConfig, WindowConfig
from har.errors import DataError
from har.recording.format import Recording, RecordingMeta, read_recording, write_recording
from har.recording.simulate import generate_dataset
from har.signal import make_windows
from har.training.cache import MANIFEST, CacheError, build_cache, entry_key

WIN = WindowConfig(rate_hz=50.0, window_s=2.0, hop_s=0.5)


def _odd_recording(path: Path, rate: float, seed: int) -> Path:
    """A recording with a gap (seq jump), a break (time jump), unlabelled samples and a label change."""
    rng = np.random.default_rng(seed)
    n = 1200
    t = np.arange(n) / rate
    t[700:] += 3.0  # a break
    seq = np.arange(n, dtype=np.int64)
    seq[400:] += 5  # a gap of 5 lost samples
    xyz = (rng.normal(0, 0.3, (n, 3)) + [0, 0, 1]).astype(np.float32)
    labels = np.array(["walking"] * 500 + [""] * 60 + ["sitting"] * 640, dtype=object).astype(str)
    meta = RecordingMeta(subject=f"s{seed}", rate_hz=rate, labels=["walking", "sitting"])
    write_recording(path, Recording(t, xyz, labels, seq, meta))
    return path


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("recs")
    generate_dataset(d, subjects=3, seconds_per_activity=6, rate_hz=50.0, seed=7)
    _odd_recording(d / "odd50.csv", 50.0, 1)
    _odd_recording(d / "odd100.csv", 100.0, 2)  # resampled to the window rate
    _odd_recording(d / "odd504.csv", 50.4, 3)
    return d


def _in_memory(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, ss = [], [], []
    for p in sorted(paths, key=str):
        w = make_windows(read_recording(p), WIN)
        xs.append(w.x)
        ys.append(w.y)
        ss.append(w.subject)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


def test_same_windows_as_the_in_memory_path(recs: Path, tmp_path: Path) -> None:
    cache = build_cache([recs], tmp_path / "c", WIN)
    x, y, s = _in_memory(sorted(recs.glob("*.csv")))
    idx = np.arange(len(cache))
    assert len(cache) == x.shape[0] > 0
    assert np.array_equal(cache.windows(idx), x)  # bitwise
    assert (cache.label_names() == y).all() and (cache.subject_names() == s).all()
    assert cache.class_counts().sum() == len(cache)
    mean, std = cache.normalization_stats(idx, chunk=37)
    flat = x.reshape(-1, 3).astype(np.float64)
    assert np.allclose(mean, flat.mean(axis=0), atol=1e-9) and np.allclose(std, flat.std(axis=0), atol=1e-7)
    perm = np.random.default_rng(0).permutation(len(cache))[:50]
    assert np.array_equal(cache.windows(perm), x[perm])


def test_rebuilt_only_when_a_recording_changes(recs: Path, tmp_path: Path) -> None:
    d = tmp_path / "recs"
    d.mkdir()
    for p in recs.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    c1 = build_cache([d], tmp_path / "c", WIN)
    assert len(c1.converted) == 6
    c2 = build_cache([d], tmp_path / "c", WIN)
    assert c2.converted == [] and np.array_equal(c2.windows(np.arange(len(c2))), c1.windows(np.arange(len(c1))))
    os.utime(d / "sim01.csv")  # touched, same bytes: not converted again
    assert build_cache([d], tmp_path / "c", WIN).converted == []
    rec = read_recording(d / "sim02.csv")
    rec.labels[:100] = "jumping"
    write_recording(d / "sim02.csv", rec, overwrite=True)
    c3 = build_cache([d], tmp_path / "c", WIN)
    assert c3.converted == ["sim02.csv"]
    assert "jumping" in c3.classes
    x, y, _ = _in_memory(sorted(d.glob("*.csv")))
    assert np.array_equal(c3.windows(np.arange(len(c3))), x) and (c3.label_names() == y).all()
    files = {p.name for p in (tmp_path / "c").glob("*.npy")}
    assert files == {n for e in c3.entries for n in e.files}  # the old arrays of sim02 are gone


def test_other_version_or_corrupt_files_are_rebuilt_never_read_wrong(recs: Path, tmp_path: Path) -> None:
    c1 = build_cache([recs], tmp_path / "c", WIN)
    want = c1.windows(np.arange(len(c1)))
    m = json.loads((tmp_path / "c" / MANIFEST).read_text())
    m["har_version"] = "0.0.1"
    (tmp_path / "c" / MANIFEST).write_text(json.dumps(m))
    c2 = build_cache([recs], tmp_path / "c", WIN)
    assert len(c2.converted) == 6 and np.array_equal(c2.windows(np.arange(len(c2))), want)
    victim = tmp_path / "c" / f"{c2.entries[0].key}.x.npy"
    raw = bytearray(victim.read_bytes())
    raw[-5] ^= 0x40  # one flipped bit in the samples
    victim.write_bytes(bytes(raw))
    c3 = build_cache([recs], tmp_path / "c", WIN)
    assert len(c3.converted) == 1 and np.array_equal(c3.windows(np.arange(len(c3))), want)
    win = tmp_path / "c" / f"{c3.entries[1].key}.win.npy"
    win.write_bytes(win.read_bytes()[:-8])  # truncated
    c4 = build_cache([recs], tmp_path / "c", WIN)
    assert len(c4.converted) == 1 and np.array_equal(c4.windows(np.arange(len(c4))), want)
    (tmp_path / "c" / MANIFEST).write_text("{not json")
    c5 = build_cache([recs], tmp_path / "c", WIN)
    assert len(c5.converted) == 6 and np.array_equal(c5.windows(np.arange(len(c5))), want)
    other = WindowConfig(rate_hz=50.0, window_s=1.0, hop_s=0.5)  # another window: another cache content
    assert len(build_cache([recs], tmp_path / "c", other).converted) == 6


def test_full_disk_is_one_clear_error_and_leaves_no_partial_file(recs: Path, tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is not available")
    cdir = tmp_path / "c"
    cdir.mkdir()
    first = sorted(recs.glob("*.csv"))[0]
    import hashlib

    key = entry_key(str(first), hashlib.sha256(first.read_bytes()).hexdigest())
    (cdir / f"{key}.x.npy.tmp").symlink_to("/dev/full")  # the kernel answers ENOSPC to every write
    with pytest.raises(CacheError, match=r"no space left on the device while writing .*\.x\.npy"):
        build_cache([recs], cdir, WIN)
    assert not list(cdir.glob("*.npy")) and not (cdir / MANIFEST).exists()


def test_unwritable_or_empty(tmp_path: Path, recs: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="not a writable directory"):
        build_cache([recs], tmp_path / "file", WIN)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no recordings"):
        build_cache([tmp_path / "empty"], tmp_path / "c", WIN)


def test_batches_shuffle_shard_augment_and_weights(recs: Path, tmp_path: Path) -> None:
    cache = build_cache([recs], tmp_path / "c", WIN)
    idx = np.flatnonzero(cache.subject_names() != "sim01")
    mean, std = cache.normalization_stats(idx)
    w = np.linspace(0.5, 2.0, len(cache.classes)).astype(np.float32)
    got = list(cache.batches(idx, 16, seed=3, epoch=0, mean=mean, std=std, class_weight=w))
    ys = np.concatenate([b[1] for b in got])
    assert sorted(ys.tolist()) == sorted(cache.label[idx].tolist())
    assert all(np.allclose(b[2], w[b[1]]) for b in got)
    again = list(cache.batches(idx, 16, seed=3, epoch=0, mean=mean, std=std, class_weight=w))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(got, again, strict=True))  # seeded
    other = next(cache.batches(idx, 16, seed=3, epoch=1))
    assert not np.array_equal(other[1], got[0][1]) or not np.array_equal(other[0], got[0][0])
    halves = [list(cache.batches(idx, 16, seed=3, epoch=0, shard=(2, i))) for i in (0, 1)]
    assert sum(len(h) for h in halves) == len(got)
    ys2 = np.concatenate([b[1] for h in halves for b in h])
    assert sorted(ys2.tolist()) == sorted(ys.tolist())
    aug = next(cache.batches(idx, 16, seed=3, epoch=0, augment=AugmentConfig(p=1.0, rotation_z_deg=180.0)))
    plain = next(cache.batches(idx, 16, seed=3, epoch=0))
    assert aug[0].shape == plain[0].shape and not np.array_equal(aug[0], plain[0])


@pytest.mark.slow
def test_tf_dataset_streams_epochs(recs: Path, tmp_path: Path) -> None:
    cache = build_cache([recs], tmp_path / "c", WIN)
    idx = np.arange(len(cache))
    ds = cache.tf_dataset(idx, 32, seed=0)
    e1 = np.concatenate([y.numpy() for _, y in ds])
    e2 = np.concatenate([y.numpy() for _, y in ds])
    assert sorted(e1.tolist()) == sorted(e2.tolist()) == sorted(cache.label.tolist())
    assert not np.array_equal(e1, e2)  # a new permutation each epoch


def test_identical_files_at_two_paths_are_two_recordings(recs: Path, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "sim01.csv").write_bytes((recs / "sim01.csv").read_bytes())
        (tmp_path / sub / "sim01.json").write_bytes((recs / "sim01.json").read_bytes())
    one = build_cache([tmp_path / "a"], tmp_path / "c1", WIN)
    two = build_cache([tmp_path / "a", tmp_path / "b"], tmp_path / "c2", WIN)
    assert len(two) == 2 * len(one) and len(two.entries) == 2


def test_two_processes_building_one_cache_take_turns(recs: Path, tmp_path: Path) -> None:
    """Two processes (e.g. two workers of a distributed run on one machine) build the same cache at
    once: both succeed, the recordings are converted once, and the windows are right."""
    import subprocess
    import sys

    code = ("import sys, json; from har.config import WindowConfig; from har.training.cache import build_cache; "
            "c = build_cache([sys.argv[1]], sys.argv[2], WindowConfig(rate_hz=50.0, window_s=2.0, hop_s=0.5)); "
            "print(json.dumps([len(c.converted), len(c)]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(recs), str(tmp_path / "c")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    got = sorted(json.loads(o[0].strip().splitlines()[-1]) for o in outs)
    x, _, _ = _in_memory(sorted(recs.glob("*.csv")))
    assert got == [[0, x.shape[0]], [6, x.shape[0]]]  # one converted all six, the other none
    cache = build_cache([recs], tmp_path / "c", WIN)
    assert cache.converted == [] and np.array_equal(cache.windows(np.arange(len(cache))), x)
