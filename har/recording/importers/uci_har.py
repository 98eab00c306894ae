"""`har import uci-har`: the "UCI HAR Dataset" (Anguita et al. 2013) windows back into streams.

Reads ``<root>/{train,test}/Inertial Signals/total_acc_{x,y,z}_<split>.txt`` (g, gravity included,
50 Hz, 128-sample windows with 50% overlap, one window per line), ``y_<split>.txt`` (activity ids
1-6, names in ``activity_labels.txt``) and ``subject_<split>.txt``. Consecutive windows of one
subject whose halves overlap are de-overlapped (the first 64 samples of each window; the whole
window when the next one does not continue it). A new segment starts wherever the subject or
label changes or the next window does not overlap. One session per subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from har.errors import ImportFormatError
from har.recording.importers._common import (
    Session,
    break_jump,
    fail,
    progress,
    read_lines,
    safe_label,
    source_text,
    warn,
    write_sessions,
)

RATE_HZ = 50.0
DEVICE = "Samsung Galaxy S II (waist)"
SPLITS = ("train", "test")
OVERLAP_ATOL = 1e-6  # g: overlapping halves of consecutive windows must match this closely


def find_root(src: Path) -> Path:
    """The data set root (holding activity_labels.txt): ``src`` or ``src/UCI HAR Dataset``."""
    for cand in (src, src / "UCI HAR Dataset"):
        if (cand / "activity_labels.txt").is_file():
            return cand
    raise ImportFormatError(f"{src}: not a UCI HAR data set directory (no activity_labels.txt)")


def read_activity_labels(path: Path) -> dict[int, str]:
    """``activity_labels.txt`` (``<id> <NAME>`` rows) -> {id: lower-case label}."""
    out: dict[int, str] = {}
    for no, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise fail(path, no, f"expected '<id> <NAME>', got {line[:60]!r}")
        out[int(parts[0])] = safe_label(parts[1], lower=True)
    return out


def read_ints(path: Path) -> np.ndarray:
    """One integer per line."""
    vals = []
    for no, line in enumerate(read_lines(path), 1):
        s = line.strip()
        if not s:
            continue
        if not s.isdigit():
            raise fail(path, no, f"expected one integer, got {s[:60]!r}")
        vals.append(int(s))
    return np.asarray(vals, dtype=np.int64)


def read_windows(path: Path) -> np.ndarray:
    """Whitespace-separated float rows of equal width -> (windows, width)."""
    rows: list[np.ndarray] = []
    lines = read_lines(path)
    width = None
    for no, line in progress(enumerate(lines, 1), len(lines), path.name, "windows", rows=len(lines) * 128):
        parts = line.split()
        if not parts:
            continue
        if width is None:
            width = len(parts)
            if width < 2 or width % 2:
                raise fail(path, no, f"expected an even number of values per window, got {width}")
        if len(parts) != width:
            raise fail(path, no, f"expected {width} values, got {len(parts)}")
        try:
            rows.append(np.array(parts, dtype=np.float64))
        except ValueError:
            raise fail(path, no, "non-numeric value") from None
    return np.stack(rows)


def _split(root: Path, split: str, names: dict[int, str]) -> list[Session]:
    d = root / split
    paths = [d / "Inertial Signals" / f"total_acc_{ax}_{split}.txt" for ax in "xyz"]
    y_path, s_path = d / f"y_{split}.txt", d / f"subject_{split}.txt"
    for p in (*paths, y_path, s_path):
        if not p.is_file():
            raise ImportFormatError(f"{root}: missing {p.relative_to(root)}")
    sig = [read_windows(p) for p in paths]
    y, subj = read_ints(y_path), read_ints(s_path)
    m = sig[0].shape[0]
    for p, a in zip((*paths, y_path, s_path), (*sig, y, subj), strict=True):
        if a.shape[0] != m or (a.ndim == 2 and a.shape != sig[0].shape):
            raise fail(p, None, f"{a.shape[0]} rows but {paths[0].name} has {m} (shape {sig[0].shape})")
    unknown = sorted(set(y.tolist()) - set(names))
    if unknown:
        row = int(np.flatnonzero(y == unknown[0])[0]) + 1
        raise fail(y_path, row, f"activity id {unknown[0]} not in activity_labels.txt")
    win = np.stack(sig, axis=2)  # (m, width, 3)
    hop = win.shape[1] // 2
    # continues[i]: window i+1 carries on window i (same subject and label, halves overlap)
    same = (subj[1:] == subj[:-1]) & (y[1:] == y[:-1])
    overlap = np.isclose(win[:-1, hop:], win[1:, :hop], atol=OVERLAP_ATOL, rtol=0).all(axis=(1, 2))
    joined = (subj[1:] == subj[:-1]) & overlap  # the signal continues, maybe with a new label
    if same.sum() and (same & ~overlap).sum() * 2 > same.sum():
        warn(
            f"{paths[0]}: most consecutive windows of one subject and label do not overlap by {hop} samples: "
            "kept whole (expected 50% overlap)"
        )
    sessions = []
    for sid in dict.fromkeys(subj.tolist()):
        idx = np.flatnonzero(subj == sid)
        xyz, labels, seq = [], [], []
        s = 0
        for i in idx.tolist():
            last = i == m - 1
            take = win[i, :hop] if not last and joined[i] else win[i]
            xyz.append(take)
            labels.append(np.full(take.shape[0], names[int(y[i])]))
            seq.append(np.arange(s, s + take.shape[0]))
            s += take.shape[0]
            if last or not (same[i] and overlap[i]):
                s += break_jump(RATE_HZ)  # a new segment (label/subject change or no overlap)
        sessions.append(
            Session(
                name=f"uci-har_{split}_subject{sid:02d}",
                subject=str(sid),
                rate_hz=RATE_HZ,
                xyz=np.concatenate(xyz),
                labels=np.concatenate(labels).astype(str),
                seq=np.concatenate(seq).astype(np.int64),
                src_file=paths[0],
                source=source_text("uci-har", d),
                device=DEVICE,
                extra={"split": split, "windows": int(idx.size)},
            )
        )
    return sessions


def import_uci_har(
    src: Path,
    dest: Path,
    *,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import the UCI HAR Dataset (``src`` = its root or the folder holding it): one recording per
    subject, 50 Hz, g; labels are the lower-cased activity names (``walking_upstairs``)."""
    root = find_root(Path(src))
    names = read_activity_labels(root / "activity_labels.txt")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise ImportFormatError(f"{root}: no train/ or test/ folder")
    sessions = [s for split in present for s in _split(root, split, names)]
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)
