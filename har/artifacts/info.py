"""`har info`: what a recording, model directory or bundle holds (no TensorFlow)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from har.artifacts.layout import MANIFEST_FILE, METADATA_FILE, MODEL_FILE, WEIGHTS_FILE, kind_of
from har.artifacts.metadata import load_metadata
from har.errors import BundleError, DataError, HarError, ModelError
from har.recording.checks import Warn, load_checked
from har.recording.format import sidecar_path


def describe(path: str | os.PathLike[str], force: bool = False, warn: Warn | None = None) -> dict[str, Any]:
    """A JSON-ready description of a recording, model directory or bundle.

    Raises a one-line HarError when the answer would mislead: a recording that fails the
    plausibility checks (:mod:`har.recording.checks`), a bundle that fails its checksums or lacks
    its manifest, a model directory without weights. ``force``: describe it anyway; the problem
    goes to ``warn``."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"no such file or directory: {p}")
    kind = kind_of(p)
    if kind == "bundle":
        from har.artifacts.bundle import describe_bundle

        d = describe_bundle(p)
        if not d.get("checksums_ok"):
            _problem(BundleError(d.get("problem") or f"{p}: bundle fails its checks"), force, warn)
        return {"kind": "bundle", "path": str(p), **d}
    if kind == "model":
        return describe_model_dir(p, force=force, warn=warn)
    if p.is_dir():
        raise DataError(f"{p} is neither a model directory (no {METADATA_FILE}) nor a bundle (no {MANIFEST_FILE})")
    if p.name in (METADATA_FILE, MANIFEST_FILE):  # the metadata or manifest of a model directory / bundle
        return describe(p.parent, force=force, warn=warn)
    if kind == "recording":
        return describe_recording(p, force=force, warn=warn)
    raise DataError(f"{p}: not a recording (.csv), model directory or bundle")


def _problem(e: HarError, force: bool, warn: Warn | None) -> None:
    if not force:
        raise e
    if warn is not None:
        warn(f"{e} (shown anyway: --force)")


def describe_recording(path: Path, force: bool = False, warn: Warn | None = None) -> dict[str, Any]:
    rec = load_checked(path, force=force, warn=warn)
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


def describe_model_dir(path: Path, force: bool = False, warn: Warn | None = None) -> dict[str, Any]:
    meta = load_metadata(path)
    if meta.export is not None or (path / MODEL_FILE).exists():
        _problem(BundleError(f"{path}: a bundle without {MANIFEST_FILE}: its files cannot be verified "
                             "(re-run `har deploy`)"), force, warn)
    elif not (path / WEIGHTS_FILE).is_file():
        _problem(ModelError(f"{path}: model directory without {WEIGHTS_FILE} (training did not finish, "
                            "or the file was removed)"), force, warn)
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


def info_warnings(info: dict[str, Any]) -> list[str]:
    """What `har info` warns about in a description (one line each, printed as ``Warning: ...``)."""
    warn = []
    if info["kind"] == "recording":
        if info.get("truncated_tail"):
            warn.append(f"{info['path']}: truncated tail: the last row was incomplete (session killed while "
                        "writing); it was skipped")
        if not info.get("complete"):
            warn.append(f"{info['path']}: session did not end cleanly (sidecar says complete=false); counts come "
                        "from the CSV")
    return warn


def format_info(info: dict[str, Any]) -> str:
    """Human-readable lines for `har info` (warnings: :func:`info_warnings`)."""
    lines = [f"{info['kind']}: {info['path']}"]
    for k, v in info.items():
        if k in ("kind", "path"):
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "-"
        elif isinstance(v, list):
            v = ", ".join(str(x) for x in v) or "-"
        lines.append(f"  {k:18s} {v}")
    return "\n".join(lines)
