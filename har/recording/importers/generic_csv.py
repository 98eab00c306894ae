"""`har import csv`: any delimited text file with a header row, columns chosen by name.

Time comes from ``time_col`` (in ``time_unit``: s, ms, us or ns; the nominal rate is 1 / median
interval) or from a fixed ``rate`` (Hz). Acceleration columns are in ``units`` (g, m/s2, mg).
One session per file, split further by subject when ``subject_col`` holds several.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from har.errors import ImportFormatError
from har.recording.checks import enforce, time_findings
from har.recording.importers._common import (
    Session,
    fail,
    list_inputs,
    progress,
    read_lines,
    safe_label,
    safe_name,
    seq_with_breaks,
    source_text,
    time_breaks,
    unit_factor,
    warn,
    write_sessions,
)

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _delimiter(d: str) -> str:
    d = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(d, d)
    if len(d) != 1:
        raise ImportFormatError(f"--delimiter must be one character (or 'tab'), got {d!r}")
    return d


def _find_col(header: list[str], name: str, path: Path, line: int) -> int:
    names = [h.strip() for h in header]
    if name in names:
        return names.index(name)
    low = [h.lower() for h in names]
    if name.strip().lower() in low:
        return low.index(name.strip().lower())
    raise fail(path, line, f"no column {name!r} (columns: {', '.join(names)})")


def _subject_from_file(path: Path, pattern: re.Pattern[str] | None, fixed: str | None) -> str:
    if fixed is not None:
        return fixed
    if pattern is not None:
        m = pattern.search(path.name)
        if not m or not m.group("subject"):
            raise fail(path, None, f"file name does not match --subject-pattern {pattern.pattern!r}")
        return m.group("subject")
    return path.resolve().parent.name or "unknown"


def _read_file(
    path: Path,
    name: str,
    cols: Mapping[str, str | None],
    delimiter: str,
    t_scale: float | None,
    rate: float | None,
    g_scale: float,
    subject: str | None,
    device: str,
    units: str = "g",
    time_unit: str = "s",
    force: bool = False,
) -> list[Session]:
    lines = read_lines(path)
    reader = csv.reader(lines, delimiter=delimiter)
    header: list[str] | None = None
    header_line = 0
    idx: dict[str, int] = {}
    t_raw: list[float] = []
    xyz: list[tuple[float, float, float]] = []
    labels: list[str] = []
    subjects: list[str] = []
    rows: list[int] = []
    for row in progress(reader, len(lines), path.name):
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header, header_line = row, line
            header[0] = header[0].lstrip("\ufeff")
            idx = {k: _find_col(header, v, path, line) for k, v in cols.items() if v is not None}
            continue
        if len(row) != len(header):
            raise fail(path, line, f"expected {len(header)} fields, got {len(row)}")
        try:
            a = (float(row[idx["x"]]), float(row[idx["y"]]), float(row[idx["z"]]))
            if "time" in idx:
                t_raw.append(float(row[idx["time"]]))
        except ValueError:
            raise fail(path, line, f"non-numeric value in {delimiter.join(row)[:60]!r}") from None
        if t_raw and not np.isfinite(t_raw[-1]):
            raise fail(path, line, f"timestamp {row[idx['time']].strip()[:30]!r} is not a finite number")
        xyz.append(a)
        labels.append(safe_label(row[idx["label"]]) if "label" in idx else "")
        if "subject" in idx:
            s = row[idx["subject"]].strip()
            if not s:
                raise fail(path, line, "empty subject")
            subjects.append(s)
        rows.append(line)
    if not xyz:
        raise fail(path, header_line or None, "no data rows after the header")
    all_xyz = np.asarray(xyz, dtype=np.float64) * g_scale
    all_lab = np.asarray(labels, dtype=str)
    all_rows = np.asarray(rows, dtype=np.int64)
    all_t = np.asarray(t_raw, dtype=np.float64) * t_scale if t_scale is not None else None
    if subjects:
        groups: dict[str, list[int]] = {}
        for i, s in enumerate(subjects):
            groups.setdefault(s, []).append(i)
    else:
        groups = {subject or "unknown": list(range(len(xyz)))}
    out = []
    for subj, members in groups.items():
        ix = np.asarray(members, dtype=np.int64)
        time = None
        if all_t is not None:
            tt = all_t[ix]
            enforce(time_findings(str(path), tt / t_scale, column=str(cols["time"]), unit=time_unit,
                                  option="--time-unit", first_line=int(all_rows[ix[0]])), force=force, warn=warn)
            dt = np.diff(tt)
            dt = dt[dt > 0]
            if not dt.size:
                raise fail(
                    path, int(all_rows[ix[0]]), f"cannot tell the rate: timestamps in {cols['time']!r} never increase"
                )
            r = float(1.0 / np.median(dt))
            seq = seq_with_breaks(len(ix), time_breaks(tt, r), r)
            time = tt - tt[0]
            r = float(f"{r:.6g}")
        else:
            assert rate is not None
            r = rate
            seq = seq_with_breaks(len(ix), (np.flatnonzero(np.diff(ix) != 1) + 1).tolist(), r)
        label_name = name if len(groups) == 1 else f"{name}_{safe_name(subj)}"
        out.append(
            Session(
                name=label_name,
                subject=safe_name(subj),
                rate_hz=r,
                xyz=all_xyz[ix],
                labels=all_lab[ix],
                seq=seq,
                time=time,
                rows=all_rows[ix],
                src_file=path,
                source=source_text("csv", path),
                device=device,
                units=units,
                units_option="--units",
            )
        )
    return out


def import_csv(
    src: Path,
    dest: Path,
    *,
    time_col: str | None = None,
    time_unit: str = "s",
    rate: float | None = None,
    x_col: str = "x",
    y_col: str = "y",
    z_col: str = "z",
    label_col: str | None = None,
    subject_col: str | None = None,
    subject_pattern: str | None = None,
    subject: str | None = None,
    units: str = "g",
    delimiter: str = ",",
    device: str = "unknown",
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import a CSV file (or every ``*.csv`` below a directory) into recordings under ``dest``.

    ``time_col`` (seconds unless ``time_unit``) or ``rate`` (Hz) is required; ``units`` of the
    x/y/z columns: g (default), m/s2 or mg. Subject: ``subject_col``, ``subject_pattern`` (regex
    with a named group ``subject``, searched in the file name), ``subject``, or the parent folder.
    """
    src, dest = Path(src), Path(dest)
    if (time_col is None) == (rate is None):
        raise ImportFormatError("csv: give exactly one of --time-col (timestamps) or --rate (fixed rate, Hz)")
    if rate is not None and not rate > 0:
        raise ImportFormatError(f"--rate must be positive, got {rate}")
    if time_unit not in TIME_UNITS:
        raise ImportFormatError(f"--time-unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    if sum(x is not None for x in (subject_col, subject_pattern, subject)) > 1:
        raise ImportFormatError("give at most one of --subject-col, --subject-pattern, --subject")
    pattern = None
    if subject_pattern is not None:
        try:
            pattern = re.compile(subject_pattern)
        except re.error as e:
            raise ImportFormatError(f"--subject-pattern {subject_pattern!r}: {e}") from None
        if "subject" not in pattern.groupindex:
            raise ImportFormatError("--subject-pattern needs a named group (?P<subject>...)")
    cols = {"time": time_col, "x": x_col, "y": y_col, "z": z_col, "label": label_col, "subject": subject_col}
    delim = _delimiter(delimiter)
    g_scale = unit_factor(units)
    files = list_inputs(src, "*.csv", dest, recursive=True)
    base = src if src.is_dir() else src.parent
    sessions: list[Session] = []
    for f in files:
        rel = f.relative_to(base).with_suffix("")
        subj = None if subject_col else _subject_from_file(f, pattern, subject)
        sessions += _read_file(
            f,
            "_".join(rel.parts),
            cols,
            delim,
            TIME_UNITS[time_unit] if time_col else None,
            rate,
            g_scale,
            subj,
            device,
            units=units,
            time_unit=time_unit,
            force=force,
        )
    return write_sessions(sessions, dest, overwrite=overwrite, rename=rename, force=force)
