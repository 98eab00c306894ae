"""Loading, fingerprints and subject-wise splits (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_recordings

from har.config import TrainConfig, WindowConfig
from har.dataset import fingerprint, load_recordings, split_recordings, split_subjects, windows_for
from har.errors import DataError, TrainingError
from har.recording.format import Recording, RecordingMeta


def test_load_recordings_subject_from_sidecar(tiny_recordings: list[Path]) -> None:
    recs = load_recordings([tiny_recordings[0].parent])
    assert [r.subject for r in recs] == ["s0", "s1", "s2", "s3"]
    with pytest.raises(DataError):
        load_recordings([tiny_recordings[0].parent / "nope"])


def test_split_subjects_disjoint_and_seeded() -> None:
    subs = [f"p{i}" for i in range(10)]
    tr, te = split_subjects(subs, 0.3, seed=1)
    assert not set(tr) & set(te) and set(tr) | set(te) == set(subs)
    assert len(te) == 3
    assert split_subjects(subs, 0.3, seed=1) == (tr, te)
    assert split_subjects(list(reversed(subs)), 0.3, seed=1) == (tr, te)
    assert any(split_subjects(subs, 0.3, seed=s)[1] != te for s in range(2, 8))


def test_split_subjects_explicit_and_errors() -> None:
    assert split_subjects(["a", "b", "c"], 0.5, 0, test_subjects=("b",)) == (["a", "c"], ["b"])
    with pytest.raises(TrainingError, match="zz"):
        split_subjects(["a", "b"], 0.5, 0, test_subjects=("zz",))
    with pytest.raises(TrainingError):
        split_subjects(["a"], 0.5, 0)
    # at least one test subject and one training subject
    assert [len(x) for x in split_subjects(["a", "b"], 0.01, 0)] == [1, 1]
    assert [len(x) for x in split_subjects(["a", "b"], 0.99, 0)] == [1, 1]


def test_split_recordings_no_subject_in_two_splits(tmp_path: Path) -> None:
    paths = make_tiny_recordings(tmp_path, subjects=6, seconds_per_class=2)
    recs = load_recordings(paths)
    sp = split_recordings(recs, TrainConfig(test_fraction=0.34, val_fraction=0.25), echo=lambda s: None)
    tr, va, te = set(sp.train_subjects), set(sp.val_subjects), set(sp.test_subjects)
    assert len(te) == 2 and len(va) == 1 and len(tr) == 3
    assert not (tr & va or tr & te or va & te)
    assert sorted(sp.train + sp.val + sp.test) == list(range(6))
    cfg = WindowConfig(rate_hz=25, window_s=1.0, hop_s=0.5)
    w = windows_for(recs, sp.test, cfg)
    assert set(w.subject.tolist()) == te


def _session(subject: str, sid: str) -> Recording:
    n = 200
    return Recording(
        time=np.arange(n) / 25,
        xyz=np.zeros((n, 3), np.float32),
        labels=np.array(["a"] * n),
        seq=np.arange(n),
        meta=RecordingMeta(subject=subject, session_id=sid, rate_hz=25),
    )


def test_single_subject_splits_by_session_with_warning() -> None:
    msgs: list[str] = []
    recs = [_session("me", f"s{i}") for i in range(4)]
    sp = split_recordings(recs, TrainConfig(), echo=msgs.append)
    assert sp.by == "session" and any("NOT subject-wise" in m for m in msgs)
    assert sp.test and sp.train and not set(sp.test) & set(sp.train)
    with pytest.raises(TrainingError, match="one session"):
        split_recordings([_session("me", "only")], TrainConfig(), echo=msgs.append)


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    paths = make_tiny_recordings(tmp_path / "d", subjects=2, seconds_per_class=1)
    f1 = fingerprint(paths)
    assert f1 == fingerprint(list(reversed(paths))) == fingerprint([tmp_path / "d"])
    assert len(f1) == 64
    with open(paths[0], "a", encoding="utf-8") as f:
        f.write("99.0,0,0,1,still,9999\n")
    assert fingerprint(paths) != f1


def test_test_data_split_warns_on_shared_subjects() -> None:
    msgs: list[str] = []
    recs = [_session("a", "1"), _session("b", "2"), _session("c", "3"), _session("a", "4")]
    sp = split_recordings(recs, TrainConfig(), n_test_recordings=1, echo=msgs.append)
    assert sp.by == "test-data" and sp.test == [3]
    assert sorted(sp.train + sp.val) == [0, 1, 2]
    assert any("not subject-wise" in m for m in msgs)
