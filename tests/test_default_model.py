"""The shipped default bundle works before anyone trains (runtime only, no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from har.artifacts.bundle import verify_bundle
from har.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
SIM = ROOT / "data" / "sim"


def test_default_bundle_verifies_and_describes_itself() -> None:
    meta = verify_bundle(DEFAULT)
    assert set(meta.classes) == {"walking", "running", "stairs", "sitting", "standing", "lying"}
    assert meta.units == "g" and tuple(meta.axes) == ("x", "y", "z")
    assert meta.export is not None and meta.export.quantize == "int8"
    assert meta.data_fingerprint and meta.normalization.std


def test_default_bundle_replays_simulated_session() -> None:
    r = CliRunner().invoke(cli, ["replay", str(DEFAULT), str(SIM / "sim08.csv"), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["accuracy"] > 0.6
