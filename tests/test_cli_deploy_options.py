"""`har deploy` option checks that fail before any conversion (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from har.cli import cli


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "mcu", "--quantize", "fp32"], "--target mcu needs --quantize int8"),
        (["--service"], "--service and --port go with --to"),
        (["--port", "/dev/ttyACM0"], "--service and --port go with --to"),
    ],
)
def test_deploy_option_errors(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "model").mkdir()
    r = CliRunner().invoke(cli, ["deploy", str(tmp_path / "model"), "--out", str(tmp_path / "b"), *args])
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: {message}" or message in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output


def test_deploy_help_lists_device_options() -> None:
    r = CliRunner().invoke(cli, ["deploy", "--help"])
    assert r.exit_code == 0
    for opt in ("--to", "--service", "--target", "--ssh-option", "--quantize"):
        assert opt in r.output
