"""`har plot` writes a PNG, with and without --model."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings
from test_export import tiny_model_dir  # noqa: F401 - fixture

from har.cli import cli

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_without_model(tmp_path: Path) -> None:
    (path,) = make_tiny_recordings(tmp_path / "d", subjects=1, seconds_per_class=4)
    r = CliRunner().invoke(cli, ["plot", str(path)])
    assert r.exit_code == 0, r.output
    png = path.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG


def test_plot_errors(tmp_path: Path) -> None:
    (path,) = make_tiny_recordings(tmp_path / "d", subjects=1, seconds_per_class=4)
    r = CliRunner().invoke(cli, ["plot", str(path), "--out", str(tmp_path / "x.jpg")])
    assert r.exit_code == 1 and r.stderr.strip().startswith("Error:") and ".png" in r.stderr
    r = CliRunner().invoke(cli, ["plot", str(tmp_path / "missing.csv")])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_plot_with_model(tmp_path: Path, tiny_model_dir: Path) -> None:  # noqa: F811
    # the session's tiny model directory (trained once for the export tests) on the same three classes
    make_tiny_recordings(tmp_path / "d", subjects=1, seconds_per_class=6)
    out = tmp_path / "plots" / "s0.png"
    r = CliRunner().invoke(cli, ["plot", str(tmp_path / "d" / "s0.csv"), "--model", str(tiny_model_dir), "--out",
                                 str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == PNG and str(out) in r.output
