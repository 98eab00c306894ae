"""Loading DATA paths and splitting them by subject (numpy only, no TensorFlow).

Splits are made over recordings (by subject, or by session when there is a single subject),
and windows are cut afterwards per recording, so no window crosses a split."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from har.config import TrainConfig, WindowConfig
from har.errors import TrainingError
from har.recording.format import Recording, find_recordings, read_recording
from har.signal import Windows, concat_windows, make_windows

PROGRESS_MIN_FILES = 20  # show a tqdm bar when loading at least this many files


def load_recordings(
    paths: Iterable[str | os.PathLike[str]],
    progress: bool = True,
) -> list[Recording]:
    """Read every recording named by ``paths`` (files, or directories searched recursively).

    The subject of each recording comes from its JSON sidecar (``RecordingMeta.subject``)."""
    files = find_recordings(paths)
    it: Iterable[Path] = files
    if progress and len(files) >= PROGRESS_MIN_FILES:
        from tqdm import tqdm

        it = tqdm(files, desc="loading recordings", unit="file", leave=False)
    return [read_recording(p) for p in it]


def fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 (hex) over the sorted ``(file name, sha256 of the CSV bytes)`` of the recordings."""
    items = []
    for p in find_recordings(paths):
        items.append((p.name, hashlib.sha256(p.read_bytes()).hexdigest()))
    h = hashlib.sha256()
    for name, digest in sorted(items):
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


def _count(fraction: float, n: int, minimum: int) -> int:
    """How many of ``n`` items a fraction takes: at least ``minimum``, leaving at least one."""
    k = max(minimum, int(round(fraction * n)))
    return max(0, min(k, n - 1))


def split_subjects(
    subjects: Iterable[str],
    test_fraction: float,
    seed: int,
    test_subjects: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Split distinct subjects into ``(train, test)``, both sorted.

    ``test_subjects`` given: exactly those are the test set (unknown names raise TrainingError).
    Otherwise a seeded random ``test_fraction`` of the subjects (at least one) is held out."""
    subs = sorted(set(subjects))
    if test_subjects:
        unknown = sorted(set(test_subjects) - set(subs))
        if unknown:
            raise TrainingError(f"test subject(s) {', '.join(unknown)} not in the data (subjects: {', '.join(subs)})")
        test = sorted(set(test_subjects))
        train = [s for s in subs if s not in test]
        if not train:
            raise TrainingError("every subject is a test subject: no training data left")
        return train, test
    if len(subs) < 2:
        raise TrainingError(f"a subject-wise split needs at least 2 subjects, got {len(subs)}")
    rng = np.random.default_rng(seed)
    order = [subs[i] for i in rng.permutation(len(subs))]
    k = _count(test_fraction, len(subs), 1)
    return sorted(order[k:]), sorted(order[:k])


def carve_validation(keys: Iterable[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split training subjects (or sessions) into ``(train, validation)``, both sorted: a seeded
    random ``val_fraction`` (at least one) when two or more keys remain, else no validation."""
    train_keys = sorted(set(keys))
    if val_fraction <= 0 or len(train_keys) < 2:
        return train_keys, []
    rng = np.random.default_rng(seed)
    order = [train_keys[i] for i in rng.permutation(len(train_keys))]
    k = _count(val_fraction, len(order), 1)
    return sorted(order[k:]), sorted(order[:k])


@dataclass
class Split:
    """Which recordings (indices into ``recordings``) go to train / validation / test, and how."""

    train: list[int]
    val: list[int]
    test: list[int]
    by: str  # "subject" | "session" | "test-data"
    train_subjects: list[str] = field(default_factory=list)
    val_subjects: list[str] = field(default_factory=list)
    test_subjects: list[str] = field(default_factory=list)


def _by_key(
    recs: Sequence[Recording], idx: Sequence[int], keys: Iterable[str], key: Callable[[Recording], str]
) -> list[int]:
    ks = set(keys)
    return [i for i in idx if key(recs[i]) in ks]


def _session(rec: Recording) -> str:
    return rec.meta.session_id or (rec.path.stem if rec.path else "")


def split_recordings(
    recordings: Sequence[Recording],
    config: TrainConfig,
    n_test_recordings: int = 0,
    echo: Callable[[str], None] = print,
) -> Split:
    """Assign recordings to train / validation / test.

    The last ``n_test_recordings`` recordings are a given test set (``--test DATA``); otherwise
    subjects are split with :func:`split_subjects` (or ``config.test_subjects``). Validation
    subjects (``config.val_fraction``, at least one when two or more training subjects remain)
    are carved from the training subjects. With a single subject the split is by session (with
    a printed warning) when there are at least two sessions."""
    n_all = len(recordings)
    own = list(range(n_all - n_test_recordings))
    test_idx = list(range(n_all - n_test_recordings, n_all))
    if not own:
        raise TrainingError("no training recordings")
    subjects = sorted({recordings[i].subject for i in own})
    by = "subject"
    key: Callable[[Recording], str] = lambda r: r.subject  # noqa: E731
    if n_test_recordings:
        by = "test-data"
        train_keys = subjects
        if config.test_subjects:
            echo("warning: --test data given; --test-subjects is ignored")
        both = sorted(set(subjects) & {recordings[i].subject for i in test_idx})
        if both:
            echo(
                f"warning: subject(s) {', '.join(both)} are in both the training and the test data: "
                "the test accuracy is not subject-wise"
            )
    elif len(subjects) >= 2 or config.test_subjects:
        train_keys, test_keys = split_subjects(subjects, config.test_fraction, config.seed, config.test_subjects)
        test_idx = _by_key(recordings, own, test_keys, key)
    else:
        sessions = sorted({_session(recordings[i]) for i in own})
        if len(sessions) < 2:
            raise TrainingError(
                f"only one subject ({subjects[0]}) and one session: cannot make a test set "
                "(record more subjects or sessions, or pass --test DATA)"
            )
        echo(
            f"warning: only one subject ({subjects[0]}): splitting by session, so the test accuracy "
            "is NOT subject-wise (it overestimates accuracy on new people)"
        )
        by = "session"
        key = _session
        train_keys, test_keys = split_subjects(sessions, config.test_fraction, config.seed)
        test_idx = _by_key(recordings, own, test_keys, key)
    train_keys, val_keys = carve_validation(train_keys, config.val_fraction, config.seed + 1)
    train_idx = _by_key(recordings, own, train_keys, key)
    val_idx = _by_key(recordings, own, val_keys, key)

    def subs(idx: list[int]) -> list[str]:
        return sorted({recordings[i].subject for i in idx})

    return Split(train_idx, val_idx, test_idx, by, subs(train_idx), subs(val_idx), subs(test_idx))


def windows_for(
    recordings: Sequence[Recording],
    indices: Sequence[int],
    cfg: WindowConfig,
    labelled_only: bool = True,
) -> Windows:
    """Windows of the recordings at ``indices`` (``file_index`` = index into ``recordings``)."""
    parts = [make_windows(recordings[i], cfg, labelled_only=labelled_only, file_index=i) for i in indices]
    return concat_windows(parts, cfg.window_samples)
