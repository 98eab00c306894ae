"""Shared pieces of the importers: units, sessions, breaks, label names, progress, writing.

Every importer parses its input into :class:`Session` objects (acceleration already in g,
axis order x, y, z) and hands them to :func:`write_sessions`, which checks everything first and
only then writes one recording (CSV + JSON sidecar) per session.
"""

from __future__ import annotations

import re
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from har.errors import DataError, ImportFormatError
from har.recording.checks import Finding, enforce, magnitude_findings
from har.recording.format import (
    MAX_ABS_G,
    Recording,
    RecordingMeta,
    check_label,
    label_problem,
    measured_rate,
    utc_now_iso,
    write_recording,
)
from har.signal import BREAK_PERIODS

STANDARD_GRAVITY = 9.80665  # m/s^2 per g
# Accepted spellings of the input units -> factor that converts to g.
UNIT_FACTORS: dict[str, float] = {
    "g": 1.0,
    "m/s2": 1.0 / STANDARD_GRAVITY,
    "m/s^2": 1.0 / STANDARD_GRAVITY,
    "ms2": 1.0 / STANDARD_GRAVITY,
    "mg": 1e-3,
}
PROGRESS_MIN_ROWS = 200_000  # smaller inputs never show a progress bar
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]+")

T = TypeVar("T")


class HarImportWarning(UserWarning):
    """Something in the input was repaired or dropped (the CLI prints it as ``Warning: ...``)."""


def warn(message: str) -> None:
    """Report a repair to the caller (one line)."""
    warnings.warn(message, HarImportWarning, stacklevel=2)


def fail(where: Path | str, line: int | None, message: str) -> ImportFormatError:
    """An ImportFormatError ``file:line: message`` (``line`` 1-based; None = whole file)."""
    loc = f"{where}:{line}" if line is not None else f"{where}"
    return ImportFormatError(f"{loc}: {message}")


def unit_factor(units: str) -> float:
    """Factor that converts ``units`` (g, m/s2, mg) to g."""
    key = units.strip().lower().replace(" ", "")
    if key not in UNIT_FACTORS:
        raise ImportFormatError(f"unknown units {units!r}: use g, m/s2 or mg")
    return UNIT_FACTORS[key]


def safe_label(raw: str, lower: bool = False) -> str:
    """A check_label-safe version of ``raw`` (the one label rule, har.recording.format): characters
    the rule does not allow become ``_``, at most 64 chars."""
    s = "".join(ch if label_problem(ch) is None else "_" for ch in unicodedata.normalize("NFC", raw.strip()))
    s = s.lower() if lower else s
    return check_label(s[:64].strip())


def safe_name(raw: str) -> str:
    """A file-name-safe session or subject name (never empty)."""
    s = _UNSAFE_NAME.sub("_", raw.strip()).strip("._")
    return s or "session"


def parse_rename(pairs: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["old=new", ...]`` (or a dict) -> {old: new}; both sides stripped, new checked."""
    if not pairs:
        return {}
    if isinstance(pairs, Mapping):
        items = list(pairs.items())
    else:
        items = []
        for p in pairs:
            if "=" not in p:
                raise ImportFormatError(f"--rename {p!r}: expected OLD=NEW")
            old, new = p.split("=", 1)
            items.append((old, new))
    out: dict[str, str] = {}
    for old, new in items:
        try:
            out[old.strip()] = check_label(new.strip())
        except DataError as e:
            raise ImportFormatError(f"--rename {old}={new}: {e}") from None
    return out


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file (line ends removed). Empty files are an error."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise fail(path, None, f"not a UTF-8 text file (byte {e.start})") from None
    if not text.strip():
        raise fail(path, None, "empty file")
    return text.splitlines()


def progress(items: Iterable[T], total: int, desc: str, unit: str = "rows", rows: int | None = None) -> Iterator[T]:
    """``items`` (``total`` of them) in a tqdm bar on stderr, only on a terminal and only when the
    input is large (``rows``, default ``total``, at least PROGRESS_MIN_ROWS)."""
    show = (total if rows is None else rows) >= PROGRESS_MIN_ROWS and sys.stderr.isatty()
    if not show:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=0.5)


# A forward time jump longer than this many sample periods (about 1.4 years at 50 Hz) is a break of
# unknown length: the seq counter (int64, summed over rows) must not overflow on absurd timestamps
MAX_JUMP_SAMPLES = 2**31


def break_jump(rate_hz: float) -> int:
    """Seq increment used for a break of unknown length: about 1 s of nominal timeline (>= 3)."""
    return max(3, int(round(rate_hz)))


def seq_with_breaks(n: int, jumps: Mapping[int, int] | Iterable[int], rate_hz: float) -> np.ndarray:
    """Sample indices 0, 1, 2, ... that jump before the rows given.

    ``jumps`` maps row -> seq increment before that row (>= 2; k+1 = k samples lost), or is an
    iterable of rows that start a new block of unknown distance (a :func:`break_jump`).
    """
    inc = np.ones(n, dtype=np.int64)
    if n:
        inc[0] = 0
    items = jumps.items() if isinstance(jumps, Mapping) else ((r, break_jump(rate_hz)) for r in jumps)
    for row, step in items:
        if 0 < row < n:
            inc[row] = max(int(inc[row]), max(2, int(step)))
    return np.cumsum(inc)


def time_breaks(t_s: np.ndarray, rate_hz: float, tolerance: float = BREAK_PERIODS) -> dict[int, int]:
    """Rows where timestamps (s) go backwards, stand still or jump by more than ``tolerance``
    sample periods -> seq increments (forward jumps: the samples the jump spans)."""
    out: dict[int, int] = {}
    if t_s.shape[0] < 2:
        return out
    dt = np.diff(t_s)
    bad = np.flatnonzero(~((dt > 0) & (dt <= tolerance / rate_hz)))  # also NaN / inf differences
    for i in bad.tolist():
        span = float(dt[i]) * rate_hz  # samples the jump spans
        # a jump of unknown or absurd length (non-finite, or beyond MAX_JUMP_SAMPLES): a plain break
        ok = np.isfinite(span) and 0 < span <= MAX_JUMP_SAMPLES
        out[i + 1] = max(3, int(round(span))) if ok else break_jump(rate_hz)
    return out


@dataclass
class Session:
    """One output recording, in memory. ``xyz`` is in g; ``seq`` jumps mark breaks."""

    name: str
    subject: str
    rate_hz: float  # Hz
    xyz: np.ndarray  # float (n, 3), g
    labels: np.ndarray  # str (n,), "" = unlabeled
    seq: np.ndarray  # int64 (n,)
    source: str
    device: str
    time: np.ndarray | None = None  # s from session start; None = seq / rate_hz
    rows: np.ndarray | None = None  # 1-based input line of each sample (error messages)
    src_file: Path | None = None
    corrupt: int = 0  # input lines rejected
    dropped: int = 0  # samples known lost
    gaps: list[list[int]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    start_time: str = ""  # ISO 8601 UTC of the first sample; "" = unknown (most data sets)
    units: str = "g"  # what the input's values were declared as (before conversion to g)
    units_option: str = ""  # the option that declares them (``--units``), for messages
    strict_units: bool = True  # False: implausible units only warn (benchmark data, often normalised)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def check(self) -> None:
        """Values must be finite and within MAX_ABS_G g (else the units are probably wrong)."""
        a = np.asarray(self.xyz, dtype=np.float64)
        bad = ~np.isfinite(a).all(axis=1)
        big = np.abs(np.where(np.isfinite(a), a, 0)).max(axis=1) > MAX_ABS_G if len(a) else bad
        for mask, what in ((bad, "NaN or infinite value"), (big, f"|acceleration| over {MAX_ABS_G:g} g")):
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                line = int(self.rows[i]) if self.rows is not None else None
                hint = "" if what.startswith("NaN") else " after conversion to g: wrong --units?"
                raise fail(self.src_file or self.name, line, what + hint)


def _apply_rename(labels: np.ndarray, rename: Mapping[str, str]) -> np.ndarray:
    if not rename or labels.size == 0:
        return labels
    uniq, inv = np.unique(labels, return_inverse=True)
    mapped = np.array([rename.get(u, u) for u in uniq.tolist()], dtype=str)
    return mapped[inv]


def _unique_names(sessions: Sequence[Session]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for s in sessions:
        base = safe_name(s.name)
        k = seen.get(base, 0)
        seen[base] = k + 1
        names.append(base if k == 0 else f"{base}_{k + 1}")
    return names


def write_sessions(
    sessions: Sequence[Session],
    dest: Path,
    overwrite: bool = False,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    force: bool = False,
) -> list[Path]:
    """Write each session as ``dest/<name>.csv`` + ``.json``; returns the CSV paths.

    Everything is checked (values, labels, plausibility of the units, existing outputs) before the
    first file is written; ``force`` accepts implausible units as they are (a warning)."""
    if not sessions:
        raise ImportFormatError("nothing to import: no samples found")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"DEST {dest} exists and is not a directory")
    mapping = parse_rename(rename)
    names = _unique_names(sessions)
    outs = [dest / f"{n}.csv" for n in names]
    if not overwrite:
        for p in outs:
            for q in (p, p.with_suffix(".json")):
                if q.exists():
                    raise DataError(f"{q} exists (pass --overwrite to replace it)")
    recs = []
    for s in sessions:
        if len(s) == 0:
            raise fail(s.src_file or s.name, None, "no samples")
        units = s.units.strip().lower().replace("^", "").replace(" ", "")
        found = magnitude_findings(str(s.src_file or s.name), s.xyz, units=units, option=s.units_option)
        if not s.strict_units:  # benchmark data (often normalised): implausible units only warn
            found = [Finding("warning", f.check, f.message) for f in found]
        enforce(found, force=force, warn=warn)
        s.check()
        labels = _apply_rename(np.asarray(s.labels, dtype=str), mapping)
        for lab in np.unique(labels).tolist():
            try:
                check_label(lab)
            except DataError as e:
                raise fail(s.src_file or s.name, None, str(e)) from None
        t = s.time if s.time is not None else (s.seq - s.seq[0]) / float(s.rate_hz)
        seen: dict[str, None] = {}
        for lab in labels.tolist():
            if lab and lab not in seen:
                seen[lab] = None
        extra = dict(s.extra)
        extra["breaks"] = int((np.diff(s.seq) != 1).sum()) if len(s) > 1 else 0
        extra["imported_at"] = utc_now_iso()
        meta = RecordingMeta(
            subject=s.subject,
            device=s.device,
            start_time=s.start_time,
            rate_hz=float(s.rate_hz),
            measured_rate_hz=measured_rate(np.asarray(s.time)) if s.time is not None else None,
            labels=list(seen),
            corrupt=s.corrupt,
            dropped=s.dropped,
            gaps=s.gaps,
            source=s.source,
            complete=True,
            extra=extra,
        )
        recs.append(Recording(time=np.asarray(t, dtype=np.float64), xyz=s.xyz, labels=labels, seq=s.seq, meta=meta))
    dest.mkdir(parents=True, exist_ok=True)
    rows = sum(len(s) for s in sessions)
    pairs = progress(zip(outs, recs, strict=False), len(outs), "writing", "sessions", rows=rows)
    return [write_recording(p, r, overwrite=True) for p, r in pairs]


def source_text(fmt: str, path: Path) -> str:
    """The sidecar's ``source``: importer and input file."""
    return f"har import {fmt}: {path}"


def list_inputs(src: Path, pattern: str, dest: Path | None = None, recursive: bool = False) -> list[Path]:
    """``src`` itself if it is a file, else the files below it matching ``pattern`` (sorted),
    never anything inside ``dest`` (our own outputs)."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.exists():
        raise DataError(f"no such file or directory: {src}")
    hits = sorted(p for p in (src.rglob(pattern) if recursive else src.glob(pattern)) if p.is_file())
    if dest is not None:
        d = Path(dest).resolve()
        hits = [p for p in hits if d not in p.resolve().parents]
    if not hits:
        raise ImportFormatError(f"{src}: no input files matching {pattern}")
    return hits
