"""`har push` over a real OpenSSH server on 127.0.0.1 (tests/sshd_fixture.py)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd_fixture import SshServer, missing_ssh_tools, start_sshd, tiny_bundle

from har.artifacts.bundle import read_manifest
from har.cli import cli
from har.deploy import push as push_mod
from har.deploy.push import normalize_ssh_options, parse_target, push_bundle, scp_options
from har.errors import DeployError

HAR_EXE = str(Path(sys.executable).with_name("har"))  # the venv's har, for the remote doctor


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    reason = missing_ssh_tools()
    if reason:
        pytest.skip(reason)
    with start_sshd(tmp_path_factory.mktemp("sshd")) as srv:
        yield srv


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("push") / "bundle")


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _assert_same(local: Path, remote: Path) -> None:
    assert sorted(p.name for p in remote.iterdir()) == sorted(p.name for p in local.iterdir())
    for name, digest in read_manifest(local).items():
        assert _sha(remote / name) == digest, name


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


# --- pure parsing -------------------------------------------------------------------------------
def test_parse_target() -> None:
    t = parse_target("pi@raspberrypi.local:/home/pi/har")
    assert (t.user, t.host, t.path, t.ssh_host) == ("pi", "raspberrypi.local", "/home/pi/har", "pi@raspberrypi.local")
    t = parse_target("[fe80::1%eth0]:~/b")
    assert t.ssh_host == "fe80::1%eth0" and t.copy_dest("/x") == "[fe80::1%eth0]:/x"
    for bad in ("host", "host:", "user@:/x", "-oProxyCommand=x:/p", "a b:/x", "h:~root/x", "u@h@x:/p"):
        with pytest.raises(DeployError, match="bad target"):
            parse_target(bad)


def test_ssh_option_translation() -> None:
    opts = normalize_ssh_options(["-p 2222", "-i /k", "StrictHostKeyChecking=accept-new", "-F", "/cfg"])
    assert opts == ["-p", "2222", "-i", "/k", "-o", "StrictHostKeyChecking=accept-new", "-F", "/cfg"]
    assert scp_options(opts) == ["-o", "Port=2222", "-i", "/k", "-o", "StrictHostKeyChecking=accept-new", "-F", "/cfg"]
    assert scp_options(["-p2200", "-l", "pi"]) == ["-o", "Port=2200", "-o", "User=pi"]


# --- real transport ------------------------------------------------------------------------------
def test_push_rsync_checksums_idempotent(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "remote dir" / "bundle"
    lines: list[str] = []
    res = push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lines.append, remote_har=HAR_EXE)
    _assert_same(bundle, dest)
    assert res.method == ("rsync" if shutil.which("rsync") else "scp")
    assert res.checksums_verified and res.runtime_installed
    assert res.remote_path == str(dest.resolve())
    assert res.doctor_ok is True, res.doctor
    assert any("har doctor on the device" in ln for ln in lines)
    checks = {c["name"]: c["status"] for c in res.doctor["checks"]}
    assert checks["bundle"] == "ok" and checks["model"] == "ok"

    mtimes = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    (dest / "stale.tflite").write_bytes(b"old")  # would make the bundle fail verification
    res2 = push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lambda s: None)
    _assert_same(bundle, dest)
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == mtimes
    assert not res2.runtime_installed and res2.doctor is None
    assert any("pip install" in n for n in res2.notes)


def test_push_scp_fallback(sshd: SshServer, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(push_mod.shutil, "which", lambda name, *a, **k: None if name == "rsync" else real_which(name))
    dest = tmp_path / "scp" / "b"
    res = push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lambda s: None)
    assert res.method == "scp" and res.checksums_verified
    _assert_same(bundle, dest)
    (dest / "stale.txt").write_text("x")
    push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lambda s: None)
    _assert_same(bundle, dest)


def test_push_cli(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cli"
    args = ["push", str(bundle), "--to", sshd.target(dest), "--ssh-option", f"-F {sshd.config}"]
    r = CliRunner().invoke(cli, [*args, "--remote-har", HAR_EXE, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("{\n") :])
    assert data["doctor_ok"] is True and data["remote_path"] == str(dest.resolve())
    _assert_same(bundle, dest)


def test_bad_target_syntax(bundle: Path) -> None:
    with pytest.raises(DeployError, match="expected \\[user@\\]host:/path"):
        push_bundle(bundle, "no-colon-here", echo=lambda s: None)
    r = CliRunner().invoke(cli, ["push", str(bundle), "--to", "no-colon-here"])
    assert r.exit_code != 0
    assert "bad target" in _one_error_line(r.output)


def test_unreachable_host(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    from sshd_fixture import _free_port

    closed = str(_free_port())
    with pytest.raises(DeployError, match="ssh to hartest failed: .*(refused|Connection)") as e:
        push_bundle(bundle, sshd.target(tmp_path / "x"), ssh_options=[*sshd.ssh_options, "-p", closed])
    assert "\n" not in str(e.value)
    r = CliRunner().invoke(
        cli, ["push", str(bundle), "--to", sshd.target(tmp_path / "x"), "--ssh-option", f"-F {sshd.config} -p {closed}"]
    )
    assert r.exit_code != 0
    assert "ssh to hartest failed" in _one_error_line(r.output)


def test_tampered_bundle_is_not_pushed(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    (bad / "report.txt").write_text("edited\n")
    dest = tmp_path / "never"
    with pytest.raises(DeployError, match="refusing to push: .*report.txt"):
        push_bundle(bad, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lambda s: None)
    r = CliRunner().invoke(cli, ["push", str(bad), "--to", sshd.target(dest), "--ssh-option", f"-F {sshd.config}"])
    assert r.exit_code != 0 and "checksum" in _one_error_line(r.output)
    assert not dest.exists()


def test_refuses_to_overwrite_a_non_bundle_dir(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "home-like"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    with pytest.raises(DeployError, match="not empty and holds no har bundle"):
        push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, echo=lambda s: None)
    assert (dest / "precious.txt").read_text() == "keep me"


def test_service_unit_is_copied_and_verifies(sshd: SshServer, bundle: Path, tmp_path: Path) -> None:
    from test_service import verify_unit

    dest = tmp_path / "svc" / "my bundle"
    lines: list[str] = []
    with pytest.raises(DeployError, match="--service needs --port"):
        push_bundle(bundle, sshd.target(dest), ssh_options=sshd.ssh_options, service=True, echo=lines.append)
    res = push_bundle(
        bundle,
        sshd.target(dest),
        ssh_options=sshd.ssh_options,
        service=True,
        port="/dev/ttyUSB0",
        echo=lines.append,
        remote_har=HAR_EXE,
    )
    unit = Path(res.service_unit)
    assert unit.is_file() and unit == dest.parent / "har.service"
    text = unit.read_text()
    assert f'"{dest.resolve()}" --port /dev/ttyUSB0' in text and f"User={sshd.user}" in text
    assert any("systemctl enable --now har.service" in ln for ln in lines)
    if not Path("/run/systemd/system").is_dir():
        assert not res.service_installed and any("not running systemd" in n for n in res.notes)
    verify_unit(unit)


def test_refuses_home_directory(sshd: SshServer, bundle: Path) -> None:
    with pytest.raises(DeployError, match="root or home directory"):
        push_bundle(bundle, sshd.target("~"), ssh_options=sshd.ssh_options, echo=lambda s: None)
