"""`har import uci-hapt`: raw streams of the UCI "Smartphone-Based Recognition of Human Activities
and Postural Transitions" data set (HAPT, Reyes-Ortiz et al.).

Reads ``RawData/acc_expXX_userYY.txt`` (``x y z`` per line, g, 50 Hz), ``RawData/labels.txt``
(rows ``exp user activity start end``, 1-based inclusive sample indices) and
``activity_labels.txt`` (``<id> <NAME>``). One session per experiment; samples outside every
labelled span get the empty label (unlabeled).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from har.errors import ImportFormatError
from har.recording.importers._common import Session, fail, progress, read_lines, source_text, write_sessions
from har.recording.importers.uci_har import DEVICE, read_activity_labels

RATE_HZ = 50.0
_ACC_RE = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")


def _dirs(src: Path) -> tuple[Path, Path]:
    """(RawData folder, activity_labels.txt)."""
    raw = src / "RawData" if (src / "RawData").is_dir() else src
    for cand in (src / "activity_labels.txt", raw / "activity_labels.txt", raw.parent / "activity_labels.txt"):
        if cand.is_file():
            break
    else:
        raise ImportFormatError(f"{src}: not a UCI HAPT directory (no activity_labels.txt)")
    if not (raw / "labels.txt").is_file():
        raise ImportFormatError(f"{src}: not a UCI HAPT directory (no RawData/labels.txt)")
    return raw, cand


def _read_xyz(path: Path) -> np.ndarray:
    lines = read_lines(path)
    out = np.empty((len(lines), 3), dtype=np.float64)
    n = 0
    for no, line in progress(enumerate(lines, 1), len(lines), path.name):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise fail(path, no, f"expected 3 values (x y z), got {len(parts)}")
        try:
            out[n] = [float(v) for v in parts]
        except ValueError:
            raise fail(path, no, f"non-numeric value in {line[:60]!r}") from None
        n += 1
    return out[:n]


def _read_spans(path: Path, names: dict[int, str]) -> dict[tuple[int, int], list[tuple[int, str, int, int]]]:
    """labels.txt -> {(exp, user): [(line, label, start, end), ...]} (1-based inclusive)."""
    spans: dict[tuple[int, int], list[tuple[int, str, int, int]]] = {}
    for no, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5 or not all(p.isdigit() for p in parts):
            raise fail(path, no, f"expected 5 integers 'exp user activity start end', got {line[:60]!r}")
        exp, user, act, start, end = (int(p) for p in parts)
        if act not in names:
            raise fail(path, no, f"activity id {act} not in activity_labels.txt")
        if not 1 <= start <= end:
            raise fail(path, no, f"bad span {start}-{end} (1-based, start <= end)")
        spans.setdefault((exp, user), []).append((no, names[act], start, end))
    return spans


def import_uci_hapt(
    src: Path,
    dest: Path,
    *,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import UCI HAPT raw data (``src`` = the data set root or its RawData folder): one recording
    per experiment, 50 Hz, g; labels are lower-cased activity names (``stand_to_sit``)."""
    raw, act_path = _dirs(Path(src))
    names = read_activity_labels(act_path)
    labels_path = raw / "labels.txt"
    spans = _read_spans(labels_path, names)
    files = sorted(p for p in raw.glob("acc_exp*_user*.txt") if _ACC_RE.match(p.name))
    if not files:
        raise ImportFormatError(f"{raw}: no acc_expXX_userYY.txt files")
    sessions = []
    for path in files:
        m = _ACC_RE.match(path.name)
        assert m is not None
        exp, user = int(m.group(1)), int(m.group(2))
        xyz = _read_xyz(path)
        n = xyz.shape[0]
        labels = np.full(n, "", dtype=object)
        for no, lab, start, end in spans.get((exp, user), []):
            if end > n:
                raise fail(labels_path, no, f"span {start}-{end} ends beyond the {n} samples of {path.name}")
            if (labels[start - 1 : end] != "").any():
                raise fail(labels_path, no, f"span {start}-{end} overlaps an earlier span of exp {exp}")
            labels[start - 1 : end] = lab
        sessions.append(
            Session(
                name=f"uci-hapt_exp{exp:02d}_user{user:02d}",
                subject=str(user),
                rate_hz=RATE_HZ,
                xyz=xyz,
                labels=labels.astype(str),
                seq=np.arange(n, dtype=np.int64),
                src_file=path,
                source=source_text("uci-hapt", path),
                device=DEVICE,
                extra={"experiment": exp},
            )
        )
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)
