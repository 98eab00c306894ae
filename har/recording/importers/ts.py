"""`har import ts`: UEA/UCR time-series classification files (``.ts``, sktime format).

Header tags (``@problemName``, ``@timeStamps false``, ``@univariate false``, ``@dimensions 3``,
``@equalLength``, ``@seriesLength``, ``@classLabel true <labels...>``, ``@data``), then one case
per line: ``x1,x2,...:y1,y2,...:z1,z2,...:label``. The format has no sampling rate (``rate`` is
required) and no units (``units``, default g). Missing values (``?``) are an error. Each case is
its own segment (a break between cases); one session per file, or one per case with ``split``.
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
    list_inputs,
    progress,
    read_lines,
    safe_label,
    source_text,
    unit_factor,
    write_sessions,
)

N_DIMS = 3


class _Header:
    def __init__(self) -> None:
        self.problem = ""
        self.dims: int | None = None
        self.class_labels: list[str] | None = None  # None = no labels
        self.data_line = 0


def _true(path: Path, no: int, tag: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise fail(path, no, f"@{tag} must be true or false, got {value!r}")
    return v == "true"


def _header(path: Path, lines: list[str]) -> _Header:
    h = _Header()
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if not s.startswith("@"):
            raise fail(path, no, "data before @data (missing header?)")
        tag, _, value = s[1:].partition(" ")
        tag = tag.lower()
        if tag == "data":
            h.data_line = no
            break
        if tag == "problemname":
            h.problem = value.strip()
        elif tag == "timestamps" and _true(path, no, tag, value):
            raise fail(path, no, "@timeStamps true is not supported")
        elif tag == "univariate" and _true(path, no, tag, value):
            raise fail(path, no, f"@univariate true: an accelerometer needs {N_DIMS} dimensions (x, y, z)")
        elif tag == "dimensions":
            if not value.strip().isdigit() or int(value) != N_DIMS:
                raise fail(path, no, f"@dimensions {value.strip()}: expected {N_DIMS} (x, y, z)")
            h.dims = N_DIMS
        elif tag == "classlabel":
            parts = value.split()
            if not parts:
                raise fail(path, no, "@classLabel needs true or false")
            h.class_labels = [p.strip() for p in parts[1:]] if _true(path, no, tag, parts[0]) else None
        elif tag == "targetlabel" and value.strip().lower().startswith("true"):
            raise fail(path, no, "@targetLabel (regression) is not supported: need class labels")
    if not h.data_line:
        raise fail(path, None, "no @data line")
    return h


def _cases(path: Path, lines: list[str], h: _Header) -> list[tuple[int, np.ndarray, str]]:
    """[(line, (n, 3) values, label)] for every case after @data."""
    out = []
    want = N_DIMS + (1 if h.class_labels is not None else 0)
    body = lines[h.data_line :]
    for k, line in enumerate(progress(body, len(body), path.name, "cases")):
        no = h.data_line + k + 1
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(":")
        if len(parts) != want:
            raise fail(
                path,
                no,
                f"expected {want} ':'-separated fields (x:y:z{':label' if want > N_DIMS else ''}), got {len(parts)}",
            )
        dims = []
        for d, part in enumerate(parts[:N_DIMS]):
            vals = [v.strip() for v in part.split(",")]
            if "?" in vals:
                raise fail(path, no, f"missing value '?' in dimension {d + 1} (not supported)")
            try:
                dims.append(np.array(vals, dtype=np.float64))
            except ValueError:
                raise fail(path, no, f"non-numeric value in dimension {d + 1}") from None
        if len({a.shape[0] for a in dims}) != 1:
            raise fail(path, no, f"dimensions differ in length ({', '.join(str(a.shape[0]) for a in dims)})")
        label = ""
        if h.class_labels is not None:
            label = parts[-1].strip()
            if h.class_labels and label not in h.class_labels:
                raise fail(path, no, f"class {label!r} not declared in @classLabel")
            label = safe_label(label)
        out.append((no, np.stack(dims, axis=1), label))
    if not out:
        raise fail(path, h.data_line, "no cases after @data")
    return out


def _session(
    path: Path,
    name: str,
    cases: list[tuple[int, np.ndarray, str]],
    rate: float,
    scale: float,
    subject: str,
    device: str,
    problem: str,
) -> Session:
    xyz, labels, seq, rows = [], [], [], []
    s = 0
    for no, a, lab in cases:
        n = a.shape[0]
        xyz.append(a * scale)
        labels.append(np.full(n, lab))
        seq.append(np.arange(s, s + n))
        rows.append(np.full(n, no))
        s += n - 1 + break_jump(rate)  # each case is its own segment
    return Session(
        name=name,
        subject=subject,
        rate_hz=rate,
        xyz=np.concatenate(xyz),
        labels=np.concatenate(labels).astype(str),
        seq=np.concatenate(seq).astype(np.int64),
        rows=np.concatenate(rows),
        src_file=path,
        source=source_text("ts", path),
        device=device,
        extra={"problem": problem, "cases": len(cases)},
        units_option="--units",
        strict_units=False,
    )


def import_ts(
    src: Path,
    dest: Path,
    *,
    rate: float | None = None,
    units: str = "g",
    subject: str | None = None,
    device: str = "unknown",
    split: bool = False,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import a ``.ts`` file (or every ``*.ts`` in a directory). ``rate`` (Hz) is required;
    ``units``: g (default), m/s2 or mg; subject defaults to ``ts-<file stem>``; ``split`` writes
    one recording per case instead of one per file."""
    if rate is None:
        raise ImportFormatError("ts: --rate HZ is required (the .ts format does not store a sampling rate)")
    if not rate > 0:
        raise ImportFormatError(f"--rate must be positive, got {rate}")
    scale = unit_factor(units)
    sessions = []
    for path in list_inputs(Path(src), "*.ts", Path(dest)):
        lines = read_lines(path)
        h = _header(path, lines)
        cases = _cases(path, lines, h)
        subj = subject if subject is not None else f"ts-{path.stem}"
        if split:
            sessions += [
                _session(path, f"{path.stem}_case{i:05d}", [c], rate, scale, subj, device, h.problem)
                for i, c in enumerate(cases)
            ]
        else:
            sessions.append(_session(path, path.stem, cases, rate, scale, subj, device, h.problem))
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)
