"""The systemd unit: content, escaping, and `systemd-analyze verify` on the real file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from har.deploy.service import device_unit, install_commands, quote_arg, render_unit, systemd_escape_path
from har.errors import DeployError


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "systemd"],
            capture_output=True,
            timeout=600,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
        exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    return exe


def verify_unit(path: Path) -> None:
    """Assert `systemd-analyze verify` accepts ``path`` without a complaint about it; skip with
    systemd-analyze's own message when it cannot run in this environment."""
    exe = _systemd_analyze()
    probe = path.parent / "har-probe-ok.service"
    probe.write_text("[Service]\nExecStart=/bin/true\n")
    for env_extra in ({}, {"SYSTEMD_LOG_LEVEL": "warning"}):
        env = dict(os.environ, **env_extra)
        p = subprocess.run([exe, "verify", "--man=no", str(probe)], capture_output=True, text=True, env=env)
        if p.returncode == 0:
            break
    else:
        pytest.skip(f"systemd-analyze verify cannot run here: {(p.stderr.strip().splitlines() or ['?'])[-1]}")
    probe.unlink()
    p = subprocess.run([exe, "verify", "--man=no", str(path)], capture_output=True, text=True, env=env)
    complaints = [ln for ln in p.stderr.splitlines() if path.name in ln]
    assert p.returncode == 0 and not complaints, p.stderr


@pytest.fixture
def fake_har(tmp_path: Path) -> Path:
    """A real executable at a path with a space (verify checks ExecStart's binary exists)."""
    exe = tmp_path / "my bin" / "har"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_escape_path_matches_systemd_escape() -> None:
    assert systemd_escape_path("/dev/ttyUSB0") == "dev-ttyUSB0"
    assert systemd_escape_path("/dev/serial/by-id/usb-FTDI x") == "dev-serial-by\\x2did-usb\\x2dFTDI\\x20x"
    tool = shutil.which("systemd-escape")
    if tool:
        for p in ("/dev/ttyACM0", "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0", "/a b/.c/ü"):
            want = subprocess.run([tool, "--path", p], capture_output=True, text=True, check=True).stdout.strip()
            assert systemd_escape_path(p) == want


def test_quote_arg() -> None:
    assert quote_arg("/usr/bin/har") == "/usr/bin/har"
    assert quote_arg("/a b/c") == '"/a b/c"'
    assert quote_arg("50%") == '"50%%"'
    assert quote_arg('x"y\\z') == '"x\\"y\\\\z"'
    assert quote_arg("$HOME") == '"$$HOME"'
    with pytest.raises(DeployError):
        quote_arg("a\nb")


def test_unit_content(fake_har: Path) -> None:
    unit = render_unit("/home/pi/bundle", "/dev/ttyUSB0", "pi", str(fake_har))
    lines = unit.splitlines()
    assert f'ExecStart="{fake_har}" run /home/pi/bundle --port /dev/ttyUSB0 --baud 115200 --json' in lines
    for want in (
        "Restart=on-failure",
        "RestartSec=2",
        "After=network.target dev-ttyUSB0.device",
        "Wants=dev-ttyUSB0.device",
        "StandardOutput=journal",
        "User=pi",
        "SupplementaryGroups=dialout",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "WantedBy=multi-user.target",
    ):
        assert want in lines, want
    assert device_unit("/dev/pts/3") is None
    assert "dev-pts" not in render_unit("/b", "/dev/pts/3", "pi", "/usr/bin/har")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bundle_path": "rel/bundle"},
        {"port": "ttyUSB0"},
        {"user": "bad user"},
        {"har_executable": "har"},
        {"baud": 0},
    ],
)
def test_unit_rejects_bad_values(kwargs: dict) -> None:
    args = {"bundle_path": "/b", "port": "/dev/ttyUSB0", "user": "pi", "har_executable": "/usr/bin/har"} | kwargs
    with pytest.raises(DeployError):
        render_unit(**args)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path, fake_har: Path) -> None:
    unit = render_unit(
        "/home/pi/my bundle/50%",
        "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0",
        "root",
        str(fake_har),
        extra_args=("--out", "/var/log/har/live $x.jsonl"),
        log_dir="/var/log/har data",
    )
    path = tmp_path / "har.service"
    path.write_text(unit)
    verify_unit(path)


def test_verify_catches_an_unquoted_space(tmp_path: Path, fake_har: Path) -> None:
    """Guards the test itself: without the quotes systemd splits the path and verify fails."""
    exe = _systemd_analyze()
    unit = render_unit("/b", "/dev/ttyUSB0", "root", str(fake_har)).replace(f'"{fake_har}"', str(fake_har))
    path = tmp_path / "bad.service"
    path.write_text(unit)
    p = subprocess.run([exe, "verify", "--man=no", str(path)], capture_output=True, text=True)
    if "not executable" not in p.stderr and p.returncode == 0:
        pytest.skip(f"systemd-analyze verify does not check executables here: {p.stderr.strip()}")
    assert p.returncode != 0 or "not executable" in p.stderr


def test_install_commands() -> None:
    cmds = install_commands("/home/pi/b c.har.service")
    assert cmds[0] == "sudo install -m644 '/home/pi/b c.har.service' /etc/systemd/system/har.service"
    assert cmds[1:] == ["sudo systemctl daemon-reload", "sudo systemctl enable --now har.service"]
    assert not install_commands("/x.service", sudo=False)[0].startswith("sudo")
