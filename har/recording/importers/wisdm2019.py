"""`har import wisdm2019`: WISDM 2019 smartphone/smartwatch files ``data_<subject>_accel_<device>.txt``.

Rows ``subject,code,x,y,z;`` (the reduced copy) or ``subject,code,timestamp,x,y,z;`` (the original,
timestamp in ns); x/y/z in m/s^2, nominal 20 Hz. Activity codes A..S (no N) map to names from the
data set description. Consecutive blocks of different activities were recorded at different times,
so every block boundary is a break (a seq jump; windows never span it); with timestamps, time jumps
are breaks too. A file that holds its rows twice (data_1629) loses its duplicate second half, with
a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from har.errors import ImportFormatError
from har.recording.importers._common import (
    STANDARD_GRAVITY,
    Session,
    break_jump,
    fail,
    list_inputs,
    progress,
    read_lines,
    seq_with_breaks,
    source_text,
    time_breaks,
    warn,
    write_sessions,
)

RATE_HZ = 20.0
ACTIVITY_CODES: dict[str, str] = {
    "A": "walking",
    "B": "jogging",
    "C": "stairs",
    "D": "sitting",
    "E": "standing",
    "F": "typing",
    "G": "teeth",
    "H": "soup",
    "I": "chips",
    "J": "pasta",
    "K": "drinking",
    "L": "sandwich",
    "M": "kicking",
    "O": "catch",
    "P": "dribbling",
    "Q": "writing",
    "R": "clapping",
    "S": "folding",
}


def _device(path: Path) -> str:
    stem = path.stem.lower()
    if stem.endswith("watch"):
        return "WISDM 2019 smartwatch (LG G Watch, dominant wrist)"
    if stem.endswith("phone"):
        return "WISDM 2019 smartphone (front trouser pocket)"
    return "WISDM 2019 device"


def drop_duplicate_half(rows: list[str]) -> tuple[list[str], bool]:
    """``rows`` without an exact repeat of its first half (the data_1629 quirk), and whether one was found."""
    n = len(rows)
    if n >= 2 and n % 2 == 0 and rows[: n // 2] == rows[n // 2 :]:
        return rows[: n // 2], True
    return rows, False


def _read(path: Path, rate: float) -> Session:
    raw = read_lines(path)
    rows = [(no, line.strip()) for no, line in enumerate(raw, 1) if line.strip()]
    kept, dup = drop_duplicate_half([r for _, r in rows])
    if dup:
        warn(f"{path}: rows {rows[len(kept)][0]}-{rows[-1][0]} repeat the first {len(kept)} rows exactly: dropped")
        rows = rows[: len(kept)]
    n = len(rows)
    xyz = np.empty((n, 3), dtype=np.float64)
    codes: list[str] = []
    ts: list[int] = []
    subject: str | None = None
    nfields: int | None = None
    for i, (no, line) in enumerate(progress(rows, n, path.name)):
        fields = [f.strip() for f in line.rstrip(";").split(",")]
        if nfields is None:
            nfields = len(fields)
            if nfields not in (5, 6):
                raise fail(path, no, f"expected subject,code,x,y,z (or with a timestamp), got {len(fields)} fields")
        if len(fields) != nfields:
            raise fail(path, no, f"expected {nfields} fields, got {len(fields)}: {line[:60]!r}")
        if subject is None:
            subject = fields[0]
        elif fields[0] != subject:
            raise fail(path, no, f"subject {fields[0]!r} differs from {subject!r} earlier in the file")
        if fields[1] not in ACTIVITY_CODES:
            raise fail(path, no, f"unknown activity code {fields[1]!r} (known: {''.join(ACTIVITY_CODES)})")
        try:
            xyz[i] = [float(v) for v in fields[-3:]]
            if nfields == 6:
                ts.append(int(fields[2]))
        except ValueError:
            raise fail(path, no, f"non-numeric value in {line[:60]!r}") from None
        codes.append(fields[1])
    if not n or subject is None:
        raise fail(path, None, "no data rows")
    code_arr = np.asarray(codes)
    jumps = {int(i): break_jump(rate) for i in np.flatnonzero(code_arr[1:] != code_arr[:-1]) + 1}
    blocks = len(jumps) + 1
    if ts:
        t = np.asarray(ts, dtype=np.int64)
        for i, step in time_breaks((t - t[0]) / 1e9, rate).items():
            jumps[i] = max(jumps.get(i, 0), step)
    return Session(
        name=path.stem,
        subject=subject,
        rate_hz=rate,
        xyz=xyz / STANDARD_GRAVITY,
        labels=np.asarray([ACTIVITY_CODES[c] for c in codes], dtype=str),
        seq=seq_with_breaks(n, jumps, rate),
        rows=np.asarray([no for no, _ in rows], dtype=np.int64),
        src_file=path,
        source=source_text("wisdm2019", path),
        device=_device(path),
        extra={"activity_blocks": blocks, "duplicate_half_dropped": dup, "original_units": "m/s^2"},
    )


def import_wisdm2019(
    src: Path,
    dest: Path,
    *,
    rate: float = RATE_HZ,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import one WISDM 2019 file or every ``data_*_accel_*.txt`` in a directory (one session per
    file). ``rate``: nominal rate in Hz (20). Values are converted from m/s^2 to g."""
    if not rate > 0:
        raise ImportFormatError(f"--rate must be positive, got {rate}")
    sessions = [_read(p, rate) for p in list_inputs(Path(src), "data_*_accel_*.txt", Path(dest))]
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)
