"""Read the WISDM 2019 watch accelerometer set from ../shared/data (never copied into the repo).

``load_wisdm()`` -> in-memory har Recordings, one per subject: m/s^2 converted to g, 20 Hz, a
time break between activity blocks (each block of 2,400 rows is one activity recorded at a
different time), data_1629's duplicated second half dropped. ``write_wisdm(dir)`` writes them in
the har recording format to a (temporary) directory so ``har.training.train.train`` reads them exactly as
it reads any DATA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from har.recording.format import Recording, RecordingMeta, write_recording

# ../shared/data beside the repository; HAR_WISDM_DIR overrides it (e.g. from a git worktree elsewhere).
WISDM_DIR = Path(
    os.environ.get("HAR_WISDM_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "wisdm2019-watch-accel"
)
RATE_HZ = 20.0
G = 9.80665  # m/s^2 per g
BLOCK_ROWS = 2400
BREAK_S = 60.0  # time inserted between activity blocks (a break: windows never span it)
ACTIVITIES = {"A": "walking", "B": "jogging", "C": "stairs", "D": "sitting", "E": "standing", "M": "kicking"}
TRAIN_SUBJECTS = [str(s) for s in range(1600, 1636)]
TEST_SUBJECTS = [str(s) for s in range(1636, 1651)]


def read_subject(path: Path) -> Recording:
    """One subject file -> a Recording (g, 20 Hz, breaks between blocks)."""
    rows = [ln.strip().rstrip(";").split(",") for ln in path.read_text().splitlines() if ln.strip()]
    if path.name.startswith("data_1629_"):
        rows = rows[: len(rows) // 2]  # the file holds its rows twice
    codes = np.array([r[1] for r in rows])
    xyz = np.array([[float(v) for v in r[2:5]] for r in rows], dtype=np.float64) / G
    n = len(rows)
    idx = np.arange(n)
    block = idx // BLOCK_ROWS
    change = np.concatenate([[0], np.cumsum(codes[1:] != codes[:-1])])
    seg = block * 1000 + change  # new segment at every block boundary or label change
    seg_id = np.concatenate([[0], np.cumsum(seg[1:] != seg[:-1])])
    time = idx / RATE_HZ + seg_id * BREAK_S
    labels = np.array([ACTIVITIES.get(c, c) for c in codes.tolist()])
    subject = rows[0][0]
    meta = RecordingMeta(
        session_id=f"wisdm{subject}",
        subject=subject,
        device="wisdm2019-watch",
        rate_hz=RATE_HZ,
        labels=sorted(set(labels.tolist())),
        samples=n,
        complete=True,
        source=str(path),
    )
    return Recording(time=time, xyz=xyz.astype(np.float32), labels=labels, seq=None, meta=meta)


def load_wisdm(subjects: list[str] | None = None) -> list[Recording]:
    """Recordings of ``subjects`` (default: all 1600-1650)."""
    if not WISDM_DIR.is_dir():
        raise SystemExit(f"WISDM data not found at {WISDM_DIR}")
    want = set(subjects or TRAIN_SUBJECTS + TEST_SUBJECTS)
    files = sorted(WISDM_DIR.glob("data_*_accel_watch.txt"))
    return [read_subject(p) for p in files if p.name.split("_")[1] in want]


def write_wisdm(out_dir: Path, recs: list[Recording] | None = None) -> Path:
    """Write the recordings as har CSV + JSON into ``out_dir`` (a temporary directory)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for rec in recs if recs is not None else load_wisdm():
        write_recording(out_dir / f"wisdm_{rec.subject}.csv", rec, overwrite=True)
    return out_dir
