"""Edge Impulse data acquisition JSON: `har import edge-impulse` and `har export edge-impulse`.

A file looks like ``{"protected": {"ver": "v1", "alg": "none", "iat": ...}, "signature": "...",
"payload": {"device_type": ..., "interval_ms": 20, "sensors": [{"name": "accX", "units": "m/s2"},
...], "values": [[x, y, z], ...]}}``. The label is the file name up to its first dot
(``walking.s1.0.json`` -> ``walking``). Export writes one such file per labelled segment with
values in m/s^2 and an unsigned signature (``"0" * 64``, alg ``none``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from har.errors import DataError, ExportError, ImportFormatError
from har.recording.format import find_recordings, read_recording
from har.recording.importers._common import (
    STANDARD_GRAVITY,
    Session,
    fail,
    list_inputs,
    safe_label,
    safe_name,
    source_text,
    unit_factor,
    warn,
    write_sessions,
)

_AXIS_NAMES = {ax: (f"acc{ax}", ax, f"accel{ax}", f"acc_{ax}", f"accel_{ax}") for ax in "xyz"}


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise fail(path, None, "not a UTF-8 text file") from None
    except json.JSONDecodeError as e:
        raise fail(path, e.lineno, f"invalid JSON ({e.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise fail(path, None, "not an Edge Impulse data acquisition file (no 'payload' object)")
    protected = data.get("protected") if isinstance(data.get("protected"), dict) else {}
    return data["payload"], protected


def _axes(path: Path, sensors: Any) -> tuple[list[int], list[float]]:
    """Column index and factor to g of accX, accY, accZ."""
    if not isinstance(sensors, list) or not all(isinstance(s, dict) and "name" in s for s in sensors):
        raise fail(path, None, "payload.sensors must be a list of {name, units}")
    names = [str(s["name"]).strip().lower() for s in sensors]
    cols, factors = [], []
    for ax, cands in _AXIS_NAMES.items():
        hit = next((names.index(c.lower()) for c in cands if c.lower() in names), None)
        if hit is None:
            raise fail(path, None, f"no acc{ax.upper()} sensor (sensors: {', '.join(names)})")
        units = str(sensors[hit].get("units", "m/s2"))
        try:
            factors.append(unit_factor(units))
        except ImportFormatError:
            raise fail(path, None, f"sensor {sensors[hit]['name']!r}: unknown units {units!r} (g, m/s2, mg)") from None
        cols.append(hit)
    return cols, factors


def _read(path: Path, label: str | None, subject: str) -> Session:
    payload, protected = _load(path)
    interval = payload.get("interval_ms")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise fail(path, None, f"payload.interval_ms must be a positive number (ms), got {interval!r}")
    cols, factors = _axes(path, payload.get("sensors"))
    values = payload.get("values")
    width = len(payload["sensors"])
    if not isinstance(values, list) or not values:
        raise fail(path, None, "payload.values must be a non-empty list of rows")
    for i, row in enumerate(values):
        if (
            not isinstance(row, list)
            or len(row) != width
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
        ):
            raise fail(path, None, f"payload.values[{i}]: expected {width} numbers, got {json.dumps(row)[:60]}")
    arr = np.asarray(values, dtype=np.float64)
    xyz = arr[:, cols] * np.asarray(factors)
    lab = label if label is not None else path.name.split(".")[0]
    try:
        lab = safe_label(lab)
    except DataError as e:
        raise fail(path, None, str(e)) from None
    rate = float(f"{1000.0 / float(interval):.6g}")
    n = xyz.shape[0]
    return Session(
        name=path.name[: -len(".json")] if path.name.endswith(".json") else path.stem,
        subject=subject,
        rate_hz=rate,
        xyz=xyz,
        labels=np.full(n, lab).astype(str),
        seq=np.arange(n, dtype=np.int64),
        src_file=path,
        source=source_text("edge-impulse", path),
        device=str(payload.get("device_type") or "unknown"),
        extra={"interval_ms": interval, "device_name": payload.get("device_name", "")},
        start_time=_iso(protected.get("iat")),
    )


def _iso(iat: Any) -> str:
    """``protected.iat`` (Unix seconds, when the file was signed) as ISO 8601 UTC; "" if absent."""
    if isinstance(iat, bool) or not isinstance(iat, (int, float)) or not 0 < iat < 1e11:
        return ""
    return datetime.fromtimestamp(iat, timezone.utc).isoformat(timespec="milliseconds")


def import_edge_impulse(
    src: Path,
    dest: Path,
    *,
    subject: str = "unknown",
    label: str | None = None,
    rename: Sequence[str] | Mapping[str, str] | None = None,
    overwrite: bool = False,
    force: bool = False,
) -> list[Path]:
    """Import an Edge Impulse JSON file (or every ``*.json`` in a directory): one recording per
    file; rate = 1000 / interval_ms Hz; sensor units (m/s2, g, mg) converted to g; label from
    the file name (``label.xxx.json``) unless ``label`` is given."""
    files = list_inputs(Path(src), "*.json", Path(dest))
    sessions = [_read(p, label, subject) for p in files]
    return write_sessions(sessions, Path(dest), overwrite=overwrite, rename=rename, force=force)


def edge_impulse_document(xyz_g: np.ndarray, rate_hz: float, device_type: str, device_name: str) -> dict[str, Any]:
    """One data acquisition document (values in m/s^2, rounded to 1e-6; unsigned)."""
    values = np.round(np.asarray(xyz_g, dtype=np.float64) * STANDARD_GRAVITY, 6).tolist()
    return {
        "protected": {"ver": "v1", "alg": "none", "iat": int(time.time())},
        "signature": "0" * 64,
        "payload": {
            "device_name": device_name,
            "device_type": device_type,
            "interval_ms": 1000.0 / rate_hz,
            "sensors": [{"name": f"acc{ax}", "units": "m/s2"} for ax in "XYZ"],
            "values": values,
        },
    }


def export_edge_impulse(recordings: Sequence[Path], dest: Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``dest/<label>.<session>.<n>.json`` for every labelled run of every contiguous
    segment of the recordings (files or directories). Unlabeled samples are skipped."""
    plan: list[tuple[Path, dict[str, Any]]] = []
    for p in find_recordings(recordings):
        rec = read_recording(p)
        session = safe_name(p.stem).replace(".", "_")
        n = 0
        for seg in rec.segments():
            labs = rec.labels[seg]
            cuts = [0, *(np.flatnonzero(labs[1:] != labs[:-1]) + 1).tolist(), len(labs)]
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                lab = str(labs[a])
                if not lab:
                    continue
                if "." in lab:
                    warn(f"{p}: label {lab!r} contains '.', written as {lab.replace('.', '_')!r}")
                    lab = lab.replace(".", "_")
                doc = edge_impulse_document(rec.xyz[seg][a:b], rec.rate_hz, rec.meta.device, rec.meta.session_id)
                plan.append((Path(dest) / f"{lab}.{session}.{n}.json", doc))
                n += 1
    if not plan:
        raise ExportError("nothing to export: no labelled samples")
    if not overwrite:
        for out, _ in plan:
            if out.exists():
                raise DataError(f"{out} exists (pass --overwrite to replace it)")
    Path(dest).mkdir(parents=True, exist_ok=True)
    for out, doc in plan:
        out.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return [out for out, _ in plan]
