"""har.artifacts.layout: file names, kind detection and opening a bundle's classifiers; the saved
Normalization's own fit/apply used by training and the runtime alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from har.artifacts import layout
from har.artifacts.metadata import MIN_STD, Normalization, load_metadata

BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"


def test_kind_of(tmp_path: Path) -> None:
    assert layout.kind_of(BUNDLE) == "bundle" and layout.is_bundle(BUNDLE) and not layout.is_model_dir(BUNDLE)
    model = tmp_path / "m"
    model.mkdir()
    shutil.copy(BUNDLE / layout.METADATA_FILE, model / layout.METADATA_FILE)
    assert layout.kind_of(model) == "model" and layout.is_model_dir(model) and not layout.is_bundle(model)
    rec = tmp_path / "r.csv"
    rec.write_text("time_s,x_g,y_g,z_g,label\n", encoding="utf-8")
    assert layout.kind_of(rec) == "recording"
    assert layout.kind_of(tmp_path / "nothing") is None and layout.kind_of(tmp_path) is None
    assert not layout.is_bundle(tmp_path / "nothing")


def test_scoring_still_exports_is_bundle() -> None:
    from har.scoring.evaluate import is_bundle

    assert is_bundle is layout.is_bundle


def test_open_live_and_replay_classifiers() -> None:
    live = layout.open_live_classifier(BUNDLE)
    assert not live.has_batch_model  # `har run` loads the live model only
    replay = layout.open_replay_classifier(BUNDLE)
    assert replay.has_batch_model == (BUNDLE / layout.BATCH_MODEL_FILE).is_file()
    assert not layout.open_replay_classifier(BUNDLE, exact=True).has_batch_model


def test_normalization_fit_and_apply_are_the_runtime_s() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal([0.1, -0.5, 1.0], [0.3, 0.2, 0.0], size=(40, 25, 3)).astype(np.float32)
    norm = Normalization.fit(x)
    assert norm.std[2] == 1.0 and MIN_STD > 0  # a flat axis is not scaled
    xn = norm.apply(x)
    assert xn.dtype == np.float32
    np.testing.assert_allclose(xn[..., :2].reshape(-1, 2).mean(axis=0), 0.0, atol=1e-5)
    clf = layout.open_live_classifier(BUNDLE)
    meta = load_metadata(BUNDLE)
    np.testing.assert_array_equal(clf.normalize(x), meta.normalization.apply(x))
    assert Normalization.fit(x) == norm and "arrays" not in norm.__dataclass_fields__


def test_fmt_time() -> None:
    from har.cli._common import fmt_time

    assert fmt_time(0.0) == "00:00.000" and fmt_time(75.25) == "01:15.250" and fmt_time(-1.0) == "00:00.000"


@pytest.mark.parametrize("name", ["cmd_run", "cmd_replay", "cmd_plot"])
def test_commands_hold_no_pipeline_logic(name: str) -> None:
    """The live, replay and plot commands parse, call one library function and print."""
    import ast
    import importlib

    src = Path(importlib.import_module(f"har.cli.{name}").__file__).read_text(encoding="utf-8")  # type: ignore[arg-type]
    imported = {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)}
    assert "har.signal" not in imported and "har.runtime.classifier" not in imported
    assert "_fmt_time" not in src and "make_windows" not in src
