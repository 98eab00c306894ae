"""Model metadata: everything needed to use a model, stored as ``metadata.json`` in every model
directory and bundle. Pure Python (no TensorFlow): the runtime reads it too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from har import __version__
from har.artifacts.layout import METADATA_FILE
from har.atomic import write_json_atomic
from har.config import AXES, UNITS, ExportConfig, TrainConfig, WindowConfig, config_from_dict, config_to_dict
from har.errors import ConfigError, ModelError

MODEL_FORMAT = "har-model"
MODEL_FORMAT_VERSION = 1
MIN_STD = 1e-6  # g; axes flatter than this are not scaled


@dataclass(frozen=True)
class Normalization:
    """Per-axis standardisation fitted on training windows only: ``(x - mean) / std``, computed
    in float32 the same way in training, conversion, evaluation and on the device."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalization:
        """Per-axis mean and standard deviation (g) over windows ``x`` (n, window, channels); an
        axis flatter than ``MIN_STD`` keeps std 1."""
        flat = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std < MIN_STD, 1.0, std)
        return cls(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))

    @cached_property
    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` as float32 arrays (channels,)."""
        return np.asarray(self.mean, dtype=np.float32), np.asarray(self.std, dtype=np.float32)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` per axis (the last one), float32."""
        mean, std = self.arrays
        return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32, copy=False)


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
