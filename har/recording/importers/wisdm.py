"""`har import wisdm`: WISDM v1.1 raw accelerometer file (``WISDM_ar_v1.1_raw.txt``).

Rows ``user,activity,timestamp,x,y,z;`` (timestamp in ns, x/y/z in m/s^2, nominal 20 Hz; phone
in the front trouser pocket). Real quirks handled: blank lines, a trailing empty field
(``...,z,;``), several records on one line, and rows cut short (missing values): such a row is
dropped and counted as one lost sample (``corrupt``, ``dropped``, a seq gap). One session per user;
timestamps that go back, stand still or jump by more than 2.5 sample periods start a new segment.
"""

from __future__ import annotations

import re
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
    safe_label,
    seq_with_breaks,
    source_text,
    time_breaks,
    warn,
    write_sessions,
)

RATE_HZ = 20.0
ACTIVITIES = ("Walking", "Jogging", "Upstairs", "Downstairs", "Sitting", "Standing")
DEVICE = "WISDM v1.1 smartphone (Android, front trouser pocket)"
_ACTIVITY_RE = re.compile(r"^[A-Za-z][A-Za-z _\-]*$")


class _User:
    """Records of one user, in file order."""

    def __init__(self) -> None:
        self.pos: list[int] = []  # record index in the file
        self.ts: list[int] = []  # ns
        self.xyz: list[tuple[float, float, float]] = []
        self.labels: list[str] = []
        self.lines: list[int] = []
        self.dropped_pos: set[int] = set()


def _parse(path: Path) -> tuple[dict[int, _User], int, int | None]:
    users: dict[int, _User] = {}
    labels: dict[str, str] = {}
    k = 0  # record index
    corrupt = 0
    first_bad: int | None = None
    lines = read_lines(path)
    for no, line in progress(enumerate(lines, 1), len(lines), path.name):
        for piece in line.split(";"):
            rec = piece.strip()
            if not rec:
                continue
            fields = [f.strip() for f in rec.split(",")]
            while fields and fields[-1] == "":
                fields.pop()
            if len(fields) > 6:
                raise fail(
                    path, no, f"expected 6 fields (user,activity,timestamp,x,y,z), got {len(fields)}: {rec[:60]!r}"
                )
            if len(fields) < 2 or not fields[0].isdigit() or not _ACTIVITY_RE.match(fields[1]):
                raise fail(path, no, f"not a WISDM row (user,activity,timestamp,x,y,z): {rec[:60]!r}")
            user = users.setdefault(int(fields[0]), _User())
            if len(fields) < 6 or "" in fields:
                user.dropped_pos.add(k)
                corrupt += 1
                first_bad = first_bad or no
                k += 1
                continue
            try:
                ts = int(fields[2]) if fields[2].lstrip("-").isdigit() else int(float(fields[2]))  # ns
                a = (float(fields[3]), float(fields[4]), float(fields[5]))
            except (ValueError, OverflowError):
                raise fail(path, no, f"non-numeric value in {rec[:60]!r}") from None
            act = fields[1]
            if act not in labels:
                labels[act] = safe_label(act, lower=True)
            user.pos.append(k)
            user.ts.append(ts)
            user.xyz.append(a)
            user.labels.append(labels[act])
            user.lines.append(no)
            k += 1
    return users, corrupt, first_bad


def _session(path: Path, uid: int, u: _User, rate: float) -> Session:
    n = len(u.pos)
    ts = np.asarray(u.ts, dtype=np.int64)
    jumps = time_breaks((ts - ts[0]) / 1e9, rate)
    pos = np.asarray(u.pos, dtype=np.int64)
    gaps: list[list[int]] = []
    dropped = 0
    for i in (np.flatnonzero(np.diff(pos) != 1) + 1).tolist():
        between = range(int(pos[i - 1]) + 1, int(pos[i]))
        if all(p in u.dropped_pos for p in between):  # only this user's unusable rows: lost samples
            jumps[i] = max(jumps.get(i, 0), len(between) + 1)
            gaps.append([i, len(between)])
            dropped += len(between)
        else:  # other users' rows in between: a different recording
            jumps[i] = max(jumps.get(i, 0), break_jump(rate))
    return Session(
        name=f"wisdm_user{uid:02d}",
        subject=str(uid),
        rate_hz=rate,
        xyz=np.asarray(u.xyz, dtype=np.float64) / STANDARD_GRAVITY,
        labels=np.asarray(u.labels, dtype=str),
        seq=seq_with_breaks(n, jumps, rate),
        rows=np.asarray(u.lines, dtype=np.int64),
        src_file=path,
        source=source_text("wisdm", path),
        device=DEVICE,
        corrupt=len(u.dropped_pos),
        dropped=dropped,
        gaps=gaps,
        extra={"first_timestamp_ns": int(ts[0]), "original_units": "m/s^2"},
    )


def import_wisdm(
    src: Path,
    dest: Path,
    *,
    rate: float = RATE_HZ,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import a WISDM v1.1 raw file (or every ``*_raw.txt`` in a directory): one recording per user.

    ``rate``: nominal sampling rate in Hz (20). Values are converted from m/s^2 to g; activity
    names are lower-cased (``Upstairs`` -> ``upstairs``)."""
    if not rate > 0:
        raise ImportFormatError(f"--rate must be positive, got {rate}")
    sessions: list[Session] = []
    for path in list_inputs(Path(src), "*_raw.txt", Path(dest)):
        users, corrupt, first_bad = _parse(path)
        if not any(u.pos for u in users.values()):
            raise fail(path, None, "no complete WISDM rows")
        if corrupt:
            warn(f"{path}: dropped {corrupt} row(s) with missing values (first at line {first_bad})")
        sessions += [_session(path, uid, u, rate) for uid, u in sorted(users.items()) if u.pos]
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)
