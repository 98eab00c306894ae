"""Bundles: a directory `har run` can use on a device (written by `har deploy`).

Layout (docs/architecture.md): ``model.tflite`` (batch 1), optional ``model_batch.tflite``,
``metadata.json``, ``report.txt``, ``head.npz`` (the classifier head, for `har adapt`), in an adapted
bundle ``head_adapted.npz`` (the personal head) and ``manifest.json``::

    {"format": "har-bundle", "version": 1, "files": {"model.tflite": "<sha256 hex>", ...}}

Every file except ``manifest.json`` is listed. This module never imports TensorFlow."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from har.artifacts.layout import BATCH_MODEL_FILE, MANIFEST_FILE, METADATA_FILE, MODEL_FILE
from har.artifacts.metadata import ModelMetadata, load_metadata
from har.atomic import write_json_atomic
from har.errors import BundleError, HarError

BUNDLE_FORMAT = "har-bundle"
BUNDLE_VERSION = 1
REQUIRED_FILES = (MODEL_FILE, METADATA_FILE)
# Files that change what the runtime computes: they must be listed when present.
_MODEL_SUFFIXES = (".tflite", ".json", ".npz", ".npy", ".h5")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks of ``chunk`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..") or ".." in name:
        raise BundleError(f"manifest lists an invalid file name {name!r} (no paths or '..' allowed)")
    if name.startswith(".") or "\x00" in name:
        raise BundleError(f"manifest lists an invalid file name {name!r}")
    return name


def write_manifest(directory: str | os.PathLike[str]) -> Path:
    """Write ``manifest.json`` with the SHA-256 of every other regular file in ``directory``.

    Sub-directories are not allowed in a bundle (BundleError)."""
    d = Path(directory)
    files: dict[str, str] = {}
    for p in sorted(d.iterdir()):
        if p.name == MANIFEST_FILE or p.name.endswith(".tmp"):
            continue
        if not p.is_file() or p.is_symlink():
            raise BundleError(f"{p}: bundles hold regular files only")
        files[_check_name(p.name)] = sha256_file(p)
    for req in REQUIRED_FILES:
        if req not in files:
            raise BundleError(f"{d}: cannot write a manifest without {req}")
    data = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "files": files}
    return write_json_atomic(d / MANIFEST_FILE, data, sort_keys=True)


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, str]:
    """The ``files`` mapping of a bundle's manifest (name -> sha256), validated for form only."""
    d = Path(directory)
    if not d.exists():
        raise BundleError(f"no such bundle: {d}")
    if not d.is_dir():
        raise BundleError(f"{d} is not a bundle directory (run `har deploy MODEL_DIR --out BUNDLE`)")
    path = d / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(f"{d}: no {MANIFEST_FILE}: not a har bundle (run `har deploy` to make one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not a har bundle manifest (format != {BUNDLE_FORMAT!r})")
    version = data.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise BundleError(f"{path}: bundle format v{version} is not supported by this har")
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{path}: 'files' must be a non-empty object")
    out: dict[str, str] = {}
    for name, digest in files.items():
        _check_name(name)
        if name == MANIFEST_FILE:
            raise BundleError(f"{path}: the manifest must not list itself")
        if not isinstance(digest, str) or len(digest) != 64:
            raise BundleError(f"{path}: invalid sha256 for {name!r}")
        out[name] = digest.lower()
    return out


def verify_bundle(directory: str | os.PathLike[str]) -> ModelMetadata:
    """Check a bundle against its manifest and return its metadata.

    Raises BundleError (one line, naming the file) when the manifest is missing or malformed, a
    listed file is missing or its SHA-256 differs, a required file is not listed, or a model file
    (``.tflite``, ``.json``, ...) is present but not listed."""
    d = Path(directory)
    files = read_manifest(d)
    for req in REQUIRED_FILES:
        if req not in files:
            raise BundleError(f"{d}: manifest does not list {req}")
    for name, digest in files.items():
        p = d / name
        if not p.is_file():
            raise BundleError(f"{d}: {name} is listed in the manifest but missing")
        if sha256_file(p) != digest:
            raise BundleError(f"{d}: {name} does not match its checksum (modified or corrupted; re-run `har deploy`)")
    for p in d.iterdir():
        if p.name == MANIFEST_FILE or p.name in files:
            continue
        if p.suffix.lower() in _MODEL_SUFFIXES:
            raise BundleError(f"{d}: {p.name} is not listed in the manifest (unexpected model file)")
    try:
        meta = load_metadata(d)
    except HarError as e:
        raise BundleError(f"{d}: {e}") from None
    if meta.export is None:
        raise BundleError(f"{d}: metadata.json has no export settings: a model directory, not a bundle")
    return meta


def _adaptation_summary(a: dict[str, Any]) -> dict[str, Any]:
    """The flat part of ``metadata.adaptation`` worth a line in `har info`."""
    if not a:
        return {}
    h = a.get("holdout", {})
    cal = a.get("calibration", {})
    return {
        "person": a.get("person"),
        "created": a.get("created"),
        "personal_head": bool(a.get("kept")),
        "holdout_base_accuracy": h.get("base_accuracy"),
        "holdout_adapted_accuracy": h.get("adapted_accuracy"),
        "activities": "/".join(cal.get("activities", [])),
        "skipped": "/".join(cal.get("skipped", [])) or "-",
        "base_bundle_sha256": a.get("base_bundle", {}).get("sha256"),
        "calibration_fingerprint": cal.get("fingerprint"),
    }


def describe_bundle(directory: str | os.PathLike[str], verify: bool = True) -> dict[str, Any]:
    """A JSON-ready summary of a bundle for `har info`: classes, window, quantization,
    verification numbers, files with sizes (bytes) and whether the checksums hold."""
    d = Path(directory)
    ok = True
    problem = ""
    if verify:
        try:
            verify_bundle(d)
        except BundleError as e:
            ok, problem = False, str(e)
    files = {p.name: p.stat().st_size for p in sorted(d.iterdir()) if p.is_file()} if d.is_dir() else {}
    try:
        meta = load_metadata(d)
    except HarError as e:
        if not verify:
            raise BundleError(f"{d}: {e}") from None
        return {"path": str(d), "kind": "bundle", "checksums_ok": False, "problem": problem or str(e),
                "files": files}
    return {
        "path": str(d),
        "kind": "bundle",
        "checksums_ok": ok if verify else None,
        "problem": problem,
        "classes": list(meta.classes),
        "rate_hz": meta.window.rate_hz,
        "window_s": meta.window.window_s,
        "window_samples": meta.window.window_samples,
        "hop_s": meta.window.hop_s,
        "lstm_units": list(meta.train_config.model.lstm_units),
        "quantize": meta.export.quantize if meta.export else None,
        "batch_model": BATCH_MODEL_FILE in files,
        "verification": dict(meta.verification),
        "smoothing": dict(meta.smoothing),  # the default for `har run` ({} = none)
        "adaptation": _adaptation_summary(meta.adaptation),  # `har adapt` ({} = not adapted)
        "metrics": dict(meta.metrics),
        "har_version": meta.har_version,
        "created": meta.created,
        "files": files,
    }
