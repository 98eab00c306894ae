"""`har info`: what a recording, model directory or bundle holds (no TensorFlow)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from har.artifacts.layout import MANIFEST_FILE, METADATA_FILE, kind_of
from har.artifacts.metadata import load_metadata
from har.errors import DataError
from har.recording.format import read_recording, sidecar_path


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A JSON-ready description of a recording, model directory or bundle."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file or directory: {p}")
    kind = kind_of(p)
    if kind == "bundle":
        from har.artifacts.bundle import describe_bundle

        return {"kind": "bundle", "path": str(p), **describe_bundle(p)}
    if kind == "model":
        return describe_model_dir(p)
    if kind == "recording":
        return describe_recording(p)
    if p.is_dir():
        raise DataError(f"{p} is neither a model directory (no {METADATA_FILE}) nor a bundle (no {MANIFEST_FILE})")
    raise DataError(f"{p}: not a recording (.csv), model directory or bundle")


def describe_recording(path: Path) -> dict[str, Any]:
    rec = read_recording(path)
    n = len(rec)
    counts = Counter(rec.labels.tolist())
    duration = float(rec.time[-1] - rec.time[0]) if n > 1 else 0.0
    m = rec.meta
    return {
        "kind": "recording",
        "path": str(rec.path),
        "sidecar": str(sidecar_path(rec.path)) if sidecar_path(rec.path).exists() else None,
        "session_id": m.session_id,
        "subject": m.subject,
        "device": m.device,
        "start_time": m.start_time,
        "samples": n,
        "duration_s": round(duration, 3),
        "rate_hz": m.rate_hz,
        "measured_rate_hz": m.measured_rate_hz,
        "units": m.units,
        "axes": m.axes,
        "labels": {k if k else "(unlabeled)": v for k, v in counts.items()},
        "segments": len(rec.segments()),
        "dropped": m.dropped,
        "corrupt": m.corrupt,
        "resets": m.resets,
        "reconnects": m.reconnects,
        "complete": m.complete,
        "truncated_tail": rec.truncated,
    }


def describe_model_dir(path: Path) -> dict[str, Any]:
    meta = load_metadata(path)
    files = sorted(f.name for f in path.iterdir() if f.is_file())
    return {
        "kind": "model",
        "path": str(path),
        "classes": list(meta.classes),
        "rate_hz": meta.window.rate_hz,
        "window_s": meta.window.window_s,
        "hop_s": meta.window.hop_s,
        "window_samples": meta.window.window_samples,
        "axes": list(meta.axes),
        "units": meta.units,
        "lstm_units": list(meta.train_config.model.lstm_units),
        "metrics": meta.metrics,
        "data_fingerprint": meta.data_fingerprint,
        "created": meta.created,
        "har_version": meta.har_version,
        "files": files,
    }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable lines for `har info`."""
    lines = [f"{info['kind']}: {info['path']}"]
    warn = []
    if info["kind"] == "recording":
        if info.get("truncated_tail"):
            warn.append("truncated tail: the last row was incomplete (session killed while writing); it was skipped")
        if not info.get("complete"):
            warn.append("session did not end cleanly (sidecar says complete=false); counts come from the CSV")
    for k, v in info.items():
        if k in ("kind", "path"):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        elif isinstance(v, list):
            v = ", ".join(str(x) for x in v) or "-"
        lines.append(f"  {k:18s} {v}")
    lines += [f"  warning: {w}" for w in warn]
    return "\n".join(lines)
