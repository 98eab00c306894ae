"""Importers: convert public data sets and generic files into the har recording format.

Each format has one module with ``import_<fmt>(src: Path, dest: Path, **options) -> list[Path]``
(the recording CSVs written). The registry below names them without importing them, so
``har --help`` stays fast; :func:`run_import` / :func:`run_export` load a module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from har.errors import ImportFormatError
from har.recording.importers._common import STANDARD_GRAVITY, HarImportWarning

__all__ = [
    "EXPORTERS",
    "IMPORTERS",
    "STANDARD_GRAVITY",
    "FormatSpec",
    "HarImportWarning",
    "get_exporter",
    "get_importer",
    "run_export",
    "run_import",
]


@dataclass(frozen=True)
class FormatSpec:
    """One format: where its function lives, what it reads, which options it takes."""

    name: str
    target: str  # "module:function" inside har.recording.importers
    summary: str
    options: frozenset[str]


_COMMON = frozenset({"overwrite", "rename", "force"})

IMPORTERS: dict[str, FormatSpec] = {
    s.name: s
    for s in (
        FormatSpec(
            "csv",
            "generic_csv:import_csv",
            "generic CSV file or directory of CSVs, columns chosen by options",
            _COMMON
            | {
                "time_col",
                "time_unit",
                "rate",
                "x_col",
                "y_col",
                "z_col",
                "label_col",
                "subject_col",
                "subject_pattern",
                "subject",
                "units",
                "delimiter",
                "device",
            },
        ),
        FormatSpec(
            "wisdm",
            "wisdm:import_wisdm",
            "WISDM v1.1 raw (user,activity,timestamp_ns,x,y,z; m/s^2, 20 Hz)",
            _COMMON | {"rate"},
        ),
        FormatSpec(
            "wisdm2019",
            "wisdm2019:import_wisdm2019",
            "WISDM 2019 data_*_accel_*.txt (subject,code,x,y,z; m/s^2, 20 Hz)",
            _COMMON | {"rate"},
        ),
        FormatSpec(
            "uci-har",
            "uci_har:import_uci_har",
            "UCI HAR Dataset directory (Inertial Signals total_acc windows, g, 50 Hz)",
            _COMMON,
        ),
        FormatSpec(
            "uci-hapt",
            "uci_hapt:import_uci_hapt",
            "UCI HAPT directory (RawData/acc_expXX_userYY.txt + labels.txt, g, 50 Hz)",
            _COMMON,
        ),
        FormatSpec(
            "ts",
            "ts:import_ts",
            "UEA/UCR .ts multivariate file(s) with 3 dimensions (needs --rate)",
            _COMMON | {"rate", "units", "subject", "device", "split"},
        ),
        FormatSpec(
            "edge-impulse",
            "edge_impulse:import_edge_impulse",
            "Edge Impulse data acquisition JSON file(s) (label.xxx.json)",
            _COMMON | {"subject", "label"},
        ),
    )
}

EXPORTERS: dict[str, FormatSpec] = {
    "edge-impulse": FormatSpec(
        "edge-impulse",
        "edge_impulse:export_edge_impulse",
        "Edge Impulse data acquisition JSON, one file per labelled segment",
        frozenset({"overwrite"}),
    ),
}


def _load(spec: FormatSpec) -> Callable[..., list[Path]]:
    mod, func = spec.target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), func)


def _spec(table: dict[str, FormatSpec], fmt: str, what: str) -> FormatSpec:
    if fmt not in table:
        raise ImportFormatError(f"unknown {what} format {fmt!r} (choose from {', '.join(table)})")
    return table[fmt]


def get_importer(fmt: str) -> Callable[..., list[Path]]:
    """The ``import_<fmt>`` function of a registered format."""
    return _load(_spec(IMPORTERS, fmt, "import"))


def get_exporter(fmt: str) -> Callable[..., list[Path]]:
    """The ``export_<fmt>`` function of a registered format."""
    return _load(_spec(EXPORTERS, fmt, "export"))


def _check_options(spec: FormatSpec, options: dict[str, Any]) -> None:
    bad = sorted(k for k in options if k not in spec.options)
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise ImportFormatError(f"option(s) {flags} do not apply to format {spec.name}")


def run_import(fmt: str, src: Path, dest: Path, **options: Any) -> list[Path]:
    """Import ``src`` (file or directory) in format ``fmt`` into recordings under ``dest``."""
    spec = _spec(IMPORTERS, fmt, "import")
    _check_options(spec, options)
    return _load(spec)(Path(src), Path(dest), **options)


def run_export(fmt: str, recordings: list[Path], dest: Path, **options: Any) -> list[Path]:
    """Export recordings (files or directories) to ``dest`` in format ``fmt``."""
    spec = _spec(EXPORTERS, fmt, "export")
    _check_options(spec, options)
    return _load(spec)([Path(p) for p in recordings], Path(dest), **options)
