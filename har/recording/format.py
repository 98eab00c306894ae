"""The recording format: one session = ``NAME.csv`` + ``NAME.json``.

CSV (header row, comma separated, UTF-8, ``\\n`` line ends)::

    time_s,x_g,y_g,z_g,label,seq
    0.0000,0.01234,-0.98000,0.10000,walking,0

* ``time_s``: seconds from session start (host clock for live captures).
* ``x_g, y_g, z_g``: acceleration in g (gravity included), device axes.
* ``label``: the activity; empty = unlabeled (never used for training windows). One rule for every
  label (:data:`LABEL_RULE`, :func:`check_label`): letters of any script, digits, space and
  ``_ . - , ' ( ) + &``, at most 64 characters; a label with a comma is written quoted.
* ``seq``: optional sample index on the session's nominal timeline. Consecutive samples differ
  by 1; a jump of k+1 means k samples were lost (a *gap*), a jump backwards or a time jump means
  a break (device reset, reconnect). Windows never span a gap or break.

How integrity events appear in a live capture (``har record --port``)
--------------------------------------------------------------------
Nothing is ever interpolated or invented; every event shows in the CSV *and* in the sidecar:

* **Lost samples** (corrupt line, UART overrun, device skipped ticks): the device ``seq`` jumped
  by k+1, so the CSV ``seq`` jumps by k+1 between two rows and ``time_s`` continues at
  ``+ (k+1) / rate``. Sidecar: ``dropped`` += k and ``gaps`` gets ``[row, k]`` (``row`` = index of
  the first row after the gap, 0-based, header excluded).
* **Corrupt lines** (CRC mismatch, bad fields, duplicates): never written; sidecar ``corrupt``
  counts them (a corrupt sample line also causes a gap, above).
* **Device reset** (a header, then ``seq`` restarting): CSV ``seq`` skips one value (a one-step
  hole that is *not* counted as dropped) and ``time_s`` restarts from the arrival time; sidecar
  ``resets`` += 1. The rows before and after are different segments.
* **Reconnect** (the port vanished and was reopened, e.g. USB unplugged): like a reset, a one-step
  ``seq`` hole and a time jump of the outage length; sidecar ``reconnects`` += 1. While the port
  is gone, ``har record`` shows ``reconnecting to PORT (attempt N)``.
* **Device stall** (no samples for > 0.5 s, same ``seq`` continuing): ``seq`` continues by 1, only
  ``time_s`` jumps; :meth:`Recording.segments` splits there.
* **Rate**: sidecar ``rate_hz`` is what the device announced, ``measured_rate_hz`` what the host
  clock saw; ``extra.warnings`` notes a difference of more than 2%.

Live labelling (``har record`` keys, see :mod:`har.recording.labeling`) adds ``extra.label_changes``
(``[row, time_s, label]``: the label applies from that row on, the first sample at or after the
key press) and ``extra.label_counts`` (rows per label, ``""`` = unlabeled) to the sidecar.

The JSON sidecar holds the session's metadata (:class:`RecordingMeta`). The writer flushes the
CSV at least once a second and fsyncs on close, so a session killed with ``kill -9`` is readable
up to its last complete row; the reader reports such a truncated tail instead of failing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import stat
import time
import unicodedata
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from har.atomic import write_json_atomic
from har.errors import DataError, RecordingFormatError
from har.signal import break_rows

FORMAT_NAME = "har-recording"
FORMAT_VERSION = 1
CSV_COLUMNS = ("time_s", "x_g", "y_g", "z_g", "label", "seq")
_HEADER = ",".join(CSV_COLUMNS)
# Accepted aliases when reading hand-made CSVs.
_ALIASES = {
    "time_s": ("time_s", "time", "t"),
    "x_g": ("x_g", "x"),
    "y_g": ("y_g", "y"),
    "z_g": ("z_g", "z"),
    "label": ("label", "activity"),
    "seq": ("seq", "sequence"),
}
MAX_ABS_G = 64.0  # anything beyond is not an accelerometer reading in g

# --- labels: ONE rule for `har record --label`, the CSV reader, importers and the trainer -------
LABEL_MAX_CHARS = 64
LABEL_PUNCTUATION = " _.-,'()+&"
LABEL_RULE = (
    f"letters of any script, digits, space and {' '.join(LABEL_PUNCTUATION.strip())} "
    f"(at most {LABEL_MAX_CHARS} characters; no quotes, tabs or line breaks)"
)


def _label_char_ok(ch: str) -> bool:
    return ch.isalnum() or ch in LABEL_PUNCTUATION or unicodedata.category(ch).startswith("M")


def label_problem(label: object) -> str | None:
    """Why ``label`` breaks the label rule (None when it is fine; "" = unlabeled is fine)."""
    if not isinstance(label, str):
        return f"invalid label {label!r}: not text"
    s = unicodedata.normalize("NFC", label.strip())
    bad = [ch for ch in s if not _label_char_ok(ch)]
    if bad:
        return f"invalid label {label!r}: character {bad[0]!r} not allowed (use {LABEL_RULE})"
    if len(s) > LABEL_MAX_CHARS:
        return f"invalid label {label[:20]!r}...: {len(s)} characters (at most {LABEL_MAX_CHARS})"
    return None


def check_label(label: str) -> str:
    """The label, stripped and NFC-normalised, if it follows the label rule (``LABEL_RULE``:
    unicode letters and digits, space and ``_ . - , ' ( ) + &``, at most 64 characters);
    DataError otherwise. ``""`` (unlabeled) is valid."""
    problem = label_problem(label)
    if problem is not None:
        raise DataError(problem)
    return unicodedata.normalize("NFC", label.strip())


def csv_label(label: str) -> str:
    """A (valid) label as a CSV field: quoted when it holds a comma."""
    return f'"{label}"' if "," in label else label


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class RecordingMeta:
    """The JSON sidecar of one session."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    subject: str = "unknown"
    device: str = "unknown"
    start_time: str = field(default_factory=utc_now_iso)
    rate_hz: float = 50.0  # nominal rate (what the device announced or the file declares)
    measured_rate_hz: float | None = None
    units: str = "g"
    axes: list[str] = field(default_factory=lambda: ["x", "y", "z"])
    labels: list[str] = field(default_factory=list)  # distinct labels, in order of appearance
    samples: int = 0
    dropped: int = 0  # samples known lost (sequence gaps)
    corrupt: int = 0  # lines rejected by the parser
    resets: int = 0  # device resets seen
    reconnects: int = 0
    gaps: list[list[int]] = field(default_factory=list)  # [row index before which, samples missing]
    source: str = ""
    complete: bool = False  # False while recording / after a crash
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "sidecar") -> RecordingMeta:
        if not isinstance(data, dict):
            raise RecordingFormatError(f"{where}: expected a JSON object")
        if data.get("format", FORMAT_NAME) != FORMAT_NAME:
            raise RecordingFormatError(f"{where}: not a har recording (format={data.get('format')!r})")
        version = data.get("version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise RecordingFormatError(f"{where}: field 'version' must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise RecordingFormatError(f"{where}: recording format v{version} is newer than this har")
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        extra = known.pop("extra", {}) or {}
        if not isinstance(extra, dict):
            raise RecordingFormatError(f"{where}: field 'extra' must be an object, got {type(extra).__name__}")
        extra = dict(extra)
        extra.update({k: v for k, v in data.items() if k not in names})
        for k, v in known.items():
            _check_field(where, k, v)
        meta = cls(**known, extra=extra)
        meta.rate_hz = float(meta.rate_hz)
        if not (math.isfinite(meta.rate_hz) and meta.rate_hz > 0):
            raise RecordingFormatError(
                f"{where}: field 'rate_hz' must be a positive number of Hz, got {meta.rate_hz!r}"
            )
        return meta


_TEXT_FIELDS = ("session_id", "subject", "device", "start_time", "units", "source", "format")
_COUNT_FIELDS = ("samples", "dropped", "corrupt", "resets", "reconnects", "version")


def _check_field(where: str, key: str, v: Any) -> None:
    """One sidecar field has the JSON type the format gives it (else a one-line error naming it)."""
    def bad(what: str) -> RecordingFormatError:
        return RecordingFormatError(f"{where}: field {key!r} must be {what}, got {str(v)[:40]!r}")

    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if key in _TEXT_FIELDS and not isinstance(v, str):
        raise bad("text")
    if key in _COUNT_FIELDS and not (number and isinstance(v, int) and v >= 0):
        raise bad("a non-negative integer")
    if key == "rate_hz" and not number:
        raise bad("a number (Hz)")
    if key == "measured_rate_hz" and v is not None and not (number and math.isfinite(v)):
        raise bad("a number (Hz) or null")
    if key == "complete" and not isinstance(v, bool):
        raise bad("true or false")
    if key in ("axes", "labels") and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        raise bad("a list of text")
    if key == "gaps" and not (
        isinstance(v, list)
        and all(isinstance(g, list) and len(g) == 2 and all(isinstance(i, int) for i in g) for g in v)
    ):
        raise bad("a list of [row, samples] pairs")


def sidecar_path(csv_path: str | os.PathLike[str]) -> Path:
    return Path(csv_path).with_suffix(".json")


@dataclass
class Recording:
    """One session in memory."""

    time: np.ndarray  # float64 (n,)
    xyz: np.ndarray  # float32 (n, 3), g
    labels: np.ndarray  # str (n,), "" = unlabeled
    seq: np.ndarray | None  # int64 (n,) or None
    meta: RecordingMeta
    path: Path | None = None
    truncated: bool = False  # the file ended in a partial row (killed while writing)
    has_sidecar: bool = False  # read with a JSON sidecar (else rate and subject were inferred)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @property
    def rate_hz(self) -> float:
        return float(self.meta.rate_hz)

    @property
    def subject(self) -> str:
        return self.meta.subject

    def breaks(self) -> np.ndarray:
        """Row indices i where a new contiguous segment starts (a gap or break before row i)."""
        return break_rows(self.time, self.rate_hz, self.seq)

    def segments(self) -> list[slice]:
        """Contiguous runs of samples with no gap or break inside."""
        b = [0, *self.breaks().tolist(), len(self)]
        return [slice(s, e) for s, e in zip(b[:-1], b[1:], strict=True) if e > s]

    def label_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for lab in self.labels.tolist():
            if lab and lab not in seen:
                seen[lab] = None
        return list(seen)


class RecordingWriter:
    """Writes one session; safe against Ctrl-C, SIGTERM and ``kill -9``.

    Rows are written as they come and flushed to the OS at least every ``flush_interval``
    seconds (``kill -9`` cannot lose what the OS has); the sidecar is rewritten atomically on
    each flush so its counters are at most a second old; ``close`` fsyncs both files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        meta: RecordingMeta,
        flush_interval: float = 1.0,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() != ".csv":
            raise DataError(f"recording path must end in .csv: {self.path}")
        if not overwrite:
            for q in (self.path, sidecar_path(self.path)):
                if q.exists() or q.is_symlink():
                    raise DataError(f"{q} exists (choose another --out or pass --overwrite)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.meta = meta
        self.meta.complete = False
        self.flush_interval = flush_interval
        self._labels: dict[str, None] = {lab: None for lab in meta.labels}
        self._f = open(self.path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._f.write(_HEADER + "\n")
        self._last_flush = 0.0
        self._closed = False
        self.flush(force=True)

    # -- writing -----------------------------------------------------------------------
    def write(
        self,
        time_s: Sequence[float] | np.ndarray,
        xyz: np.ndarray,
        labels: Sequence[str] | np.ndarray | str,
        seq: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Append rows. ``labels`` is one label for all rows or one per row."""
        t = np.asarray(time_s, dtype=np.float64)
        a = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        n = t.shape[0]
        if a.shape[0] != n:
            raise DataError("time and xyz lengths differ")
        if isinstance(labels, str):
            labs = [labels] * n
        else:
            labs = [str(x) for x in labels]
        clean = {lab: check_label(lab) for lab in dict.fromkeys(labs)}  # in order of appearance
        for lab in clean.values():
            if lab and lab not in self._labels:
                self._labels[lab] = None
        labs = [csv_label(clean[lab]) for lab in labs]
        if seq is None:
            start = self.meta.samples + self.meta.dropped
            s = np.arange(start, start + n, dtype=np.int64)
        else:
            s = np.asarray(seq, dtype=np.int64)
        lines = [
            f"{t[i]:.4f},{a[i, 0]:.5f},{a[i, 1]:.5f},{a[i, 2]:.5f},{labs[i]},{s[i]}\n" for i in range(n)
        ]
        self._f.write("".join(lines))
        self.meta.samples += n
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_interval:
            return
        self._f.flush()
        self._last_flush = now
        self.meta.labels = list(self._labels)
        write_json_atomic(sidecar_path(self.path), self.meta.to_dict(), fsync=force)

    def close(self, complete: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        self.meta.complete = complete
        self.meta.labels = list(self._labels)
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        write_json_atomic(sidecar_path(self.path), self.meta.to_dict(), fsync=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_recording(path: str | os.PathLike[str], rec: Recording, overwrite: bool = False) -> Path:
    """Write a whole in-memory recording (used by the simulator and importers)."""
    meta = dataclasses.replace(rec.meta)
    meta.samples = 0
    with RecordingWriter(path, meta, flush_interval=1e9, overwrite=overwrite) as w:
        w.write(rec.time, rec.xyz, rec.labels, rec.seq)
    return Path(path)


def _column_index(header: list[str], where: str) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    idx: dict[str, int] = {}
    for col, aliases in _ALIASES.items():
        for a in aliases:
            if a in names:
                idx[col] = names.index(a)
                break
    missing = [c for c in ("time_s", "x_g", "y_g", "z_g") if c not in idx]
    if missing:
        raise RecordingFormatError(
            f"{where}: header {','.join(header)!r} lacks column(s) {', '.join(missing)} "
            f"(expected {_HEADER})"
        )
    return idx


_FAST_LABEL_WIDTH = 24  # characters; a longer label sends the file to the line-by-line parser


def _parse_rows_fast(
    p: Path, text: str, n: int, ncol: int, cols: tuple[int, int, int, int, int | None, int | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
    """numpy's C parser, reading the file itself (no line list), for plain, well-formed files of
    ``n`` complete data rows: about 6x faster than the line loop. None when anything is unusual,
    so that :func:`_parse_rows` reports the exact line."""
    ti, xi, yi, zi, li, si = cols
    if n < 1000 or "\r" in text or " " in text or "\t" in text or '"' in text:
        return None
    # every complete row has exactly ncol fields (a truncated last row is not counted)
    if text.count(",", text.find("\n"), text.rfind("\n")) != (ncol - 1) * n:
        return None
    kinds = {ti: "f8", xi: "f8", yi: "f8", zi: "f8"}
    if li is not None:
        kinds[li] = f"U{_FAST_LABEL_WIDTH}"
    if si is not None:
        kinds[si] = "i8"
    use = sorted(kinds)
    dt = np.dtype([(f"c{i}", kinds[i]) for i in use])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.loadtxt(p, delimiter=",", dtype=dt, comments=None, usecols=use, ndmin=1, skiprows=1,
                             max_rows=n, encoding="utf-8")
    except (ValueError, TypeError, OverflowError, Warning):
        return None
    if arr.shape != (n,):
        return None
    t = np.ascontiguousarray(arr[f"c{ti}"])
    a = np.stack([arr[f"c{xi}"], arr[f"c{yi}"], arr[f"c{zi}"]], axis=1)
    if li is not None:
        labs = arr[f"c{li}"]
        if n and int(np.char.str_len(labs).max()) >= _FAST_LABEL_WIDTH:  # may have been cut
            return None
    else:
        labs = np.full(n, "", dtype="<U1")
    seq = np.ascontiguousarray(arr[f"c{si}"]) if si is not None else None
    return t, a, labs, seq


def _split_row(line: str) -> list[str]:
    """The fields of one CSV row: plain split, or the csv module when the row has quotes (a
    label with a comma is written ``"walk, fast"``)."""
    line = line.rstrip("\r")
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration):
        return line.split(",")


def _field_error(p: Path, lineno: int, name: str, value: str, what: str) -> RecordingFormatError:
    if what == "a number":
        return RecordingFormatError(f"{p}:{lineno}: non-numeric value {value[:30]!r} in {name}")
    return RecordingFormatError(f"{p}:{lineno}: {name} {value[:30]!r} is not {what}")


def _parse_rows(
    p: Path, lines: list[str], ncol: int, cols: tuple[int, int, int, int, int | None, int | None],
    empty_as_nan: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """The line-by-line parser: exact line numbers and the field's name in its errors.
    ``empty_as_nan``: an empty x/y/z field is a missing value (NaN), not an error."""
    ti, xi, yi, zi, li, si = cols
    n = len(lines) - 1
    t = np.empty(n, dtype=np.float64)
    a = np.empty((n, 3), dtype=np.float64)
    labs: list[str] = [""] * n
    seq = np.empty(n, dtype=np.int64) if si is not None else None
    names = ("x_g", "y_g", "z_g")
    for k in range(n):
        line = lines[k + 1]
        parts = _split_row(line)
        if len(parts) != ncol:
            raise RecordingFormatError(
                f"{p}:{k + 2}: expected {ncol} fields, got {len(parts)}: {line[:60]!r}"
            )
        try:
            t[k] = float(parts[ti])
        except ValueError:
            raise _field_error(p, k + 2, "time_s", parts[ti], "a number") from None
        for j, (ci, name) in enumerate(zip((xi, yi, zi), names, strict=True)):
            v = parts[ci]
            if empty_as_nan and not v.strip():
                a[k, j] = math.nan
                continue
            try:
                a[k, j] = float(v)
            except ValueError:
                raise _field_error(p, k + 2, name, v, "a number") from None
        if seq is not None:
            v = parts[si]  # type: ignore[index]
            try:
                seq[k] = int(v)
            except ValueError:
                raise _field_error(p, k + 2, "seq", v, "an integer (sample index)") from None
            except OverflowError:
                raise _field_error(p, k + 2, "seq", v, "a sample index within 64 bits") from None
        if li is not None:
            labs[k] = parts[li].strip()
    return t, a, labs, seq


def _read_text(p: Path) -> str:
    """A regular UTF-8 file's text; never opens a named pipe or device (that could wait forever)."""
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device or socket"
        raise DataError(f"{p} is {kind}, not a regular file: har reads recordings from files")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecordingFormatError(f"{p}: not UTF-8 text (byte {e.start}): save it as UTF-8") from None


def _checked_labels(p: Path, labels: np.ndarray) -> np.ndarray:
    """Labels that follow the label rule (NFC-normalised); the first bad one names its line."""
    if labels.size == 0:
        return labels
    starts = np.flatnonzero(np.concatenate([[True], labels[1:] != labels[:-1]]))  # labels come in runs
    changed = False
    for u in dict.fromkeys(labels[starts].tolist()):
        problem = label_problem(u)
        if problem is not None:
            row = int(np.flatnonzero(labels == u)[0])
            raise RecordingFormatError(f"{p}:{row + 2}: {problem}")
        changed |= unicodedata.normalize("NFC", u.strip()) != u
    if not changed:
        return labels
    uniq, inv = np.unique(labels, return_inverse=True)
    clean = [unicodedata.normalize("NFC", u.strip()) for u in uniq.tolist()]
    return np.asarray(clean, dtype=str)[inv.reshape(-1)]


def read_recording(path: str | os.PathLike[str], allow_nonfinite: bool = False) -> Recording:
    """Read a recording CSV and its sidecar. Malformed rows raise RecordingFormatError with the
    line number; a partial last row (killed mid-write) is dropped and flagged ``truncated``.

    A NaN/inf acceleration value is an error unless ``allow_nonfinite`` (live inference drops such
    samples itself); then an empty x/y/z field reads as NaN too. Times must always be finite."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        p = p.with_suffix(".csv")
    if not p.exists():
        raise DataError(f"no such recording: {p}")
    if p.is_dir():
        raise DataError(f"{p} is a directory, not a recording (.csv)")
    text = _read_text(p)
    side = sidecar_path(p)
    if side.exists():
        try:
            raw = json.loads(_read_text(side))
        except json.JSONDecodeError as e:
            raise RecordingFormatError(f"{side}: invalid JSON ({e.msg}, line {e.lineno})") from None
        except RecursionError:
            raise RecordingFormatError(f"{side}: invalid JSON (nested too deeply)") from None
        meta = RecordingMeta.from_dict(raw, where=str(side))
        has_meta = True
    else:
        meta = RecordingMeta(session_id=p.stem, subject=p.parent.name or "unknown", complete=True)
        has_meta = False

    truncated = bool(text) and not text.endswith("\n")
    first_nl = text.find("\n")
    if first_nl < 0 or not text[:first_nl].strip():  # no complete header line
        raise RecordingFormatError(f"{p}: empty file (expected header {_HEADER})")
    header = text[:first_nl].strip().lstrip("\ufeff").split(",")
    idx = _column_index(header, str(p))
    ncol = len(header)
    ti, xi, yi, zi = idx["time_s"], idx["x_g"], idx["y_g"], idx["z_g"]
    li, si = idx.get("label"), idx.get("seq")
    n = text.count("\n") - 1  # complete data rows (a truncated last row has no newline)
    cols = (ti, xi, yi, zi, li, si)
    fast = _parse_rows_fast(p, text, n, ncol, cols)
    if fast is not None:
        t, a, labs, seq = fast
    else:
        lines = text.split("\n")[: n + 1]
        t, a, labs, seq = _parse_rows(p, lines, ncol, cols, empty_as_nan=allow_nonfinite)
    fin = np.isfinite(a)
    if n and not (np.isfinite(t).all() and (allow_nonfinite or fin.all())):
        bad = int(np.flatnonzero(~(np.isfinite(t) & (allow_nonfinite or fin.all(axis=1))))[0])
        what = "time" if allow_nonfinite else "value"
        raise RecordingFormatError(f"{p}:{bad + 2}: NaN or infinite {what}")
    mag = np.where(fin, np.abs(a), 0.0)
    if n and mag.max() > MAX_ABS_G:
        bad = int(np.flatnonzero(mag.max(axis=1) > MAX_ABS_G)[0])
        value = float(a[bad][np.argmax(mag[bad])])
        raise RecordingFormatError(
            f"{p}:{bad + 2}: acceleration {value:g} is over {MAX_ABS_G:g} g: values must be in g, not m/s^2, "
            "milli-g or raw counts"
        )
    if not has_meta and n > 2:
        dt = np.diff(t)
        dt = dt[dt > 0]
        if dt.size:
            meta.rate_hz = float(f"{1.0 / np.median(dt):.6g}")
    labels = (labs if isinstance(labs, np.ndarray) else np.array(labs, dtype=str)) if n else np.zeros(0, dtype="<U1")
    labels = _checked_labels(p, labels)
    rec = Recording(
        time=t,
        xyz=a.astype(np.float32),
        labels=labels,
        seq=seq,
        meta=meta,
        path=p,
        truncated=truncated,
        has_sidecar=has_meta,
    )
    if not meta.labels:
        meta.labels = rec.label_names()
    if not has_meta or not meta.complete:
        meta.samples = n
    return rec


def find_recordings(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Recording CSVs named or found recursively below directories, sorted, de-duplicated."""
    found: dict[Path, None] = {}
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            hits = sorted(q for q in p.rglob("*.csv") if q.is_file())
            if not hits:
                raise DataError(f"no recordings (*.csv) found under {p}")
            for q in hits:
                found[q.resolve()] = None
        elif p.is_file():
            found[p.resolve()] = None
        elif p.with_suffix(".csv").is_file():
            found[p.with_suffix(".csv").resolve()] = None
        else:
            raise DataError(f"no such file or directory: {p}")
    return list(found)


def measured_rate(time_s: np.ndarray) -> float | None:
    """Samples per second over a stretch of host timestamps."""
    if time_s.shape[0] < 2:
        return None
    span = float(time_s[-1] - time_s[0])
    if span <= 0 or not math.isfinite(span):
        return None
    return (time_s.shape[0] - 1) / span
