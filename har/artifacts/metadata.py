"""Model metadata: everything needed to use a model, stored as ``metadata.json`` in every model
directory and bundle. Pure Python (no TensorFlow): the runtime reads it too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from har import __version__
from har.atomic import write_json_atomic
from har.config import AXES, UNITS, ExportConfig, TrainConfig, WindowConfig, config_from_dict, config_to_dict
from har.errors import ConfigError, ModelError

METADATA_FILE = "metadata.json"
MODEL_FORMAT = "har-model"
MODEL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Normalization:
    """Per-axis standardisation fitted on training windows only: ``(x - mean) / std``."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelMetadata:
    classes: tuple[str, ...]
    window: WindowConfig
    normalization: Normalization
    train_config: TrainConfig
    data_fingerprint: str
    axes: tuple[str, ...] = AXES
    units: str = UNITS
    n_channels: int = 3
    metrics: dict[str, Any] = field(default_factory=dict)  # headline test metrics
    data_summary: dict[str, Any] = field(default_factory=dict)  # subjects, windows per split, files
    export: ExportConfig | None = None  # set in bundles
    verification: dict[str, Any] = field(default_factory=dict)  # set in bundles
    smoothing: dict[str, Any] = field(default_factory=dict)  # runtime smoothing settings
    adaptation: dict[str, Any] = field(default_factory=dict)  # set by `har adapt`: person, base, scores
    har_version: str = __version__
    created: str = ""
    format: str = MODEL_FORMAT
    version: int = MODEL_FORMAT_VERSION

    @property
    def rate_hz(self) -> float:
        return self.window.rate_hz

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ModelError("metadata.json is not har model metadata (format != 'har-model')")
        if int(data.get("version", 0)) > MODEL_FORMAT_VERSION:
            raise ModelError(f"model metadata v{data.get('version')} is newer than this har ({__version__})")
        try:
            return config_from_dict(cls, data)
        except ConfigError as e:
            raise ModelError(f"metadata.json: {e}") from None


def save_metadata(directory: str | os.PathLike[str], meta: ModelMetadata) -> Path:
    return write_json_atomic(Path(directory) / METADATA_FILE, meta.to_dict())


def load_metadata(directory: str | os.PathLike[str]) -> ModelMetadata:
    d = Path(directory)
    if not d.exists():
        raise ModelError(f"no such model directory or bundle: {d}")
    path = d / METADATA_FILE if d.is_dir() else d
    if not path.is_file():
        raise ModelError(f"{d} has no {METADATA_FILE}: not a har model directory or bundle")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: invalid JSON ({e})") from None
    return ModelMetadata.from_dict(data)
