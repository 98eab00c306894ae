"""`har push --install` / `--rollback` against a real OpenSSH server on 127.0.0.1 (tests/sshd_fixture.py):
a fresh directory becomes a har home (venv with the wheel built from this checkout, bundles side by
side, `current` switched atomically), updates that fail are put back, and each bad input of issue 13
gives one line with the previous bundle still active.

The install is --offline from a local wheelhouse (downloaded once from the package index for this
machine's platform; pip's cache makes repeats quick) into a venv made by the system's python3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd_fixture import SshServer, missing_ssh_tools, start_sshd, tiny_bundle

from har.artifacts.bundle import write_manifest
from har.cli import cli
from har.deploy.install import RUNTIME_SETS, DeviceInfo, download_wheels, install, rollback, stop_service
from har.errors import DeployError

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PY = shutil.which("python3", path="/usr/bin:/bin") or "python3"
HAS_SYSTEMD = Path("/run/systemd/system").is_dir()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    reason = missing_ssh_tools()
    if reason:
        pytest.skip(reason)
    with start_sshd(tmp_path_factory.mktemp("sshd")) as srv:
        yield srv


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if subprocess.run([SYSTEM_PY, "-c", "import ensurepip, venv"], capture_output=True).returncode != 0:
        pytest.skip(f"{SYSTEM_PY} has no venv/ensurepip (Debian: apt-get install python3-venv)")
    d = tmp_path_factory.mktemp("wheelhouse")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(d),
         *RUNTIME_SETS["ai-edge-litert"], "click>=8.1", "pyserial>=3.5"],
        capture_output=True, text=True, timeout=600,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot download the wheels for the test device: {(r.stderr.splitlines() or ['?'])[-1]}")
    return d


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bundles")
    a = tiny_bundle(d / "a")
    b = d / "b"
    shutil.copytree(a, b)
    (b / "report.txt").write_text("tiny test bundle, second version\n")
    write_manifest(b)
    bad = d / "bad"  # passes its checksums, fails on the device: 4 classes for a 3-output model
    shutil.copytree(a, bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["classes"] = [*meta["classes"], "extra"]
    (bad / "metadata.json").write_text(json.dumps(meta))
    write_manifest(bad)
    return {"a": a, "b": b, "bad": bad}


@pytest.fixture(scope="module")
def home(sshd: SshServer, wheelhouse: Path, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A har home with bundle a active, installed once for the module."""
    h = tmp_path_factory.mktemp("device") / "har"
    lines: list[str] = []
    res = install(bundles["a"], sshd.target(h), sshd.ssh_options, offline=True, wheelhouse=wheelhouse,
                  python=SYSTEM_PY, echo=lines.append)
    assert res.runtime == "ai-edge-litert" and res.doctor and res.doctor["ok"], (res, lines)
    return h


def _active(home: Path) -> str:
    return (home / "current").resolve().name


def _one_error_line(output: str) -> str:
    errors = [ln for ln in output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def _push(sshd: SshServer, *args: str, ssh: str | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["push", *args, "--ssh-option", ssh or f"-F {sshd.config}"])
    return r.exit_code, r.output


# --- install, idempotency, update, rollback ----------------------------------------------------------
def test_install_makes_a_har_home(home: Path, bundles: dict[str, Path]) -> None:
    from har.artifacts.bundle import read_manifest

    active = home / "current"
    assert active.is_symlink() and active.resolve().parent == home / "bundles"
    assert read_manifest(active) == read_manifest(bundles["a"])
    assert (home / "venv").is_symlink() and (home / "venv" / "bin" / "har").is_file()
    r = subprocess.run([str(home / "venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                       capture_output=True, text=True, check=True)
    names = {ln.split("==")[0].lower() for ln in r.stdout.splitlines()}
    assert {"har-edge", "ai-edge-litert", "numpy"} <= names and not names & {"scipy", "tensorflow"}


def test_install_again_is_idempotent(sshd: SshServer, home: Path, bundles: dict[str, Path], wheelhouse: Path) -> None:
    venv_before = (home / "venv").resolve()
    code, out = _push(sshd, str(bundles["a"]), "--to", sshd.target(home), "--install", "--offline",
                      "--wheelhouse", str(wheelhouse), "--remote-python", SYSTEM_PY, "--json")
    assert code == 0, out
    data = json.loads(out[out.index("{\n"):])
    assert data["venv_reused"] and data["previous"] is None and data["doctor"]["ok"]
    assert (home / "venv").resolve() == venv_before
    assert "already on the device" in out and "already holds this har" in out


def test_newer_har_upgrades_in_place(
    sshd: SshServer, home: Path, bundles: dict[str, Path], wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed har wheel (here: the real one plus one module) goes into the same venv in place."""
    import zipfile

    from har.deploy import install as install_mod

    real_build = install_mod.build_wheel

    def newer(out_dir: Path, echo=print) -> Path:  # noqa: ANN001
        w = real_build(out_dir, echo)
        with zipfile.ZipFile(w, "a") as z:
            z.writestr("har/_newer_marker.py", "NEWER = True\n")
        return w

    monkeypatch.setattr(install_mod, "build_wheel", newer)
    venv_before = (home / "venv").resolve()
    lines: list[str] = []
    res = install(bundles["a"], sshd.target(home), sshd.ssh_options, offline=True, wheelhouse=wheelhouse,
                  python=SYSTEM_PY, echo=lines.append)
    assert any("Upgrading har in place" in ln for ln in lines), lines
    assert (home / "venv").resolve() == venv_before and res.doctor and res.doctor["ok"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the venv's har, not this checkout
    r = subprocess.run([str(home / "venv" / "bin" / "python"), "-c", "import har._newer_marker as m; print(m.NEWER)"],
                       capture_output=True, text=True, env=env, cwd="/")  # not this checkout's har
    assert r.stdout.strip() == "True", r.stderr
    monkeypatch.undo()  # and back to this checkout's har (also in place)
    install(bundles["a"], sshd.target(home), sshd.ssh_options, offline=True, wheelhouse=wheelhouse,
            python=SYSTEM_PY, echo=lines.append)
    assert (home / "venv").resolve() == venv_before


def test_update_failed_update_and_rollback(sshd: SshServer, home: Path, bundles: dict[str, Path]) -> None:
    a = _active(home)
    code, out = _push(sshd, str(bundles["b"]), "--to", sshd.target(home))  # plain push into a har home
    assert code == 0, out
    b = _active(home)
    assert b != a and (home / "previous").resolve().name == a
    # a bundle that fails on the device never becomes active
    code, out = _push(sshd, str(bundles["bad"]), "--to", sshd.target(home))
    assert code != 0
    line = _one_error_line(out)
    assert "fails har doctor on hartest" in line and "model" in line and f"still active: {b}" in line
    assert _active(home) == b and (home / "previous").resolve().name == a
    # by hand: back to a
    code, out = _push(sshd, "--rollback", "--to", sshd.target(home))
    assert code == 0, out
    assert _active(home) == a and (home / "previous").resolve().name == b
    bundles_line = next(ln for ln in out.splitlines() if "bundles:" in ln)
    assert f"active {a}" in bundles_line and f"previous {b}" in bundles_line


def test_failing_bundle_with_install_keeps_the_active_one(
    sshd: SshServer, home: Path, bundles: dict[str, Path], wheelhouse: Path
) -> None:
    """`--install` with a bundle that fails on the device: one line, the active bundle and venv stay."""
    before, venv_before = _active(home), (home / "venv").resolve()
    previous_before = (home / "previous").resolve() if (home / "previous").exists() else None
    code, out = _push(sshd, str(bundles["bad"]), "--to", sshd.target(home), "--install", "--offline",
                      "--wheelhouse", str(wheelhouse), "--remote-python", SYSTEM_PY)
    assert code != 0
    line = _one_error_line(out)
    assert "fails har doctor on hartest" in line and f"still active: {before}" in line
    assert _active(home) == before and (home / "venv").resolve() == venv_before
    assert ((home / "previous").resolve() if (home / "previous").exists() else None) == previous_before


def test_doctor_shows_active_and_previous(home: Path) -> None:
    r = subprocess.run([str(home / "venv" / "bin" / "har"), "doctor", "--bundle", str(home / "current")],
                       capture_output=True, text=True, timeout=120)
    line = next(ln for ln in r.stdout.splitlines() if " bundles " in ln)
    assert line.startswith("[OK") and f"active {_active(home)}" in line and "previous " in line


@pytest.mark.skipif(HAS_SYSTEMD, reason="systemd runs here: the service path is systemd, not the supervisor")
def test_service_supervisor_and_a_service_that_does_not_come_up(
    sshd: SshServer, home: Path, bundles: dict[str, Path]
) -> None:
    rec = ROOT / "data" / "sim" / "sim01.csv"
    emu = subprocess.Popen([sys.executable, "-m", "har.cli", "emulate", str(rec), "--loop"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert emu.stdout is not None
        pty = emu.stdout.readline().strip()
        assert pty.startswith("/dev/")
        lines: list[str] = []
        res = install(bundles["b"], sshd.target(home), sshd.ssh_options, service=True, port=pty, install_har=False,
                      echo=lines.append)
        assert res.service == "supervisor" and any("supervisor" in ln for ln in lines)
        good = _active(home)
        unit = (home / "har.service").read_text()  # written beside the supervisor, not installed
        assert f"--port {pty}" in unit and f"{home}/current" in unit and any("har.service" in ln for ln in lines)
        log = (home / "har-run.log").read_text()
        assert any(ln.startswith("{") for ln in log.splitlines()), log
        # the next update's service cannot come up (no such port): the previous bundle is put back
        with pytest.raises(DeployError, match="`har run` fails on the device: .*put back " + good) as e:
            install(bundles["a"], sshd.target(home), sshd.ssh_options, service=True, port="/dev/ttyNOPE9",
                    install_har=False, echo=lines.append)
        assert "\n" not in str(e.value)
        assert _active(home) == good
        assert pty in (home / "har-supervise.sh").read_text()  # restarted as it ran before, on its port
        assert (home / "har.service").read_text() == unit  # and its unit file put back too
    finally:
        pid = int((home / "har-supervise.pid").read_text()) if (home / "har-supervise.pid").exists() else None
        stop_service(sshd.target(home), sshd.ssh_options)
        emu.terminate()
        emu.wait(10)
    assert not (home / "har-supervise.pid").exists()
    assert pid is not None
    with pytest.raises(ProcessLookupError):  # the loop and its `har run` are gone
        os.killpg(pid, 0)


# --- bad input: one line each, the previous bundle still active ----------------------------------
def test_unreachable_host(sshd: SshServer, home: Path, bundles: dict[str, Path]) -> None:
    from sshd_fixture import _free_port

    before = _active(home)
    code, out = _push(sshd, str(bundles["b"]), "--to", sshd.target(home), "--install",
                      ssh=f"-F {sshd.config} -p {_free_port()}")
    assert code != 0 and "ssh to hartest failed" in _one_error_line(out)
    assert _active(home) == before


def test_wrong_user_and_wrong_key(sshd: SshServer, home: Path, bundles: dict[str, Path], tmp_path: Path) -> None:
    before = _active(home)
    code, out = _push(sshd, str(bundles["b"]), "--to", f"nosuchuser@{sshd.target(home)}", "--install")
    assert code != 0 and "Permission denied" in _one_error_line(out)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    cfg = tmp_path / "ssh_config"
    cfg.write_text("\n".join(
        f"  IdentityFile {other}" if ln.strip().startswith("IdentityFile") else ln
        for ln in sshd.config.read_text().splitlines()))
    code, out = _push(sshd, str(bundles["b"]), "--to", sshd.target(home), "--install", ssh=f"-F {cfg}")
    assert code != 0 and "Permission denied" in _one_error_line(out)
    assert _active(home) == before


def test_device_without_python3_venv(sshd: SshServer, bundles: dict[str, Path], tmp_path: Path) -> None:
    """A python3 without ensurepip/venv, as Debian's without the python3-venv package."""
    hide = tmp_path / "hide"
    (hide / "ensurepip").mkdir(parents=True)
    (hide / "ensurepip" / "__init__.py").write_text("raise ImportError('No module named ensurepip')\n")
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\nPYTHONPATH={hide} exec {SYSTEM_PY} \"$@\"\n")
    fake.chmod(0o755)
    dest = tmp_path / "fresh" / "har"
    code, out = _push(sshd, str(bundles["a"]), "--to", sshd.target(dest), "--install", "--remote-python", str(fake))
    assert code != 0
    assert "python3-venv is missing on hartest" in _one_error_line(out) and "apt-get install python3-venv" in out
    assert not (dest / "current").exists() and not (dest / "venvs").exists()


def test_no_space_on_the_device(sshd: SshServer, bundles: dict[str, Path], tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(small)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        code, out = _push(sshd, str(bundles["a"]), "--to", sshd.target(small / "har"), "--install")
        assert code != 0
        line = _one_error_line(out)
        assert "no space on hartest" in line and "need at least" in line
        assert not (small / "har" / "current").exists()
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_no_wheel_for_the_platform(sshd: SshServer, home: Path, bundles: dict[str, Path], wheelhouse: Path) -> None:
    before = _active(home)
    code, out = _push(sshd, str(bundles["b"]), "--to", sshd.target(home), "--install", "--offline",
                      "--runtime", "tflite-runtime", "--wheelhouse", str(wheelhouse), "--remote-python", SYSTEM_PY)
    assert code != 0
    line = _one_error_line(out)
    assert "no TFLite runtime runs on hartest" in line and "no wheel of tflite-runtime" in line
    assert _active(home) == before


def test_online_install_without_a_matching_wheel(
    sshd: SshServer, bundles: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online (pip on the device resolves from its index): a runtime the index has no wheel of (here a
    version that does not exist) is one line, and the fresh directory keeps nothing active or half-made."""
    from har.deploy import install as install_mod

    monkeypatch.setitem(install_mod.RUNTIME_SETS, "ai-edge-litert", ("ai-edge-litert==0.0.0.1",))
    dest = tmp_path / "fresh" / "har"
    code, out = _push(sshd, str(bundles["a"]), "--to", sshd.target(dest), "--install", "--runtime", "ai-edge-litert",
                      "--remote-python", SYSTEM_PY)
    assert code != 0
    line = _one_error_line(out)
    assert "no TFLite runtime runs on hartest" in line and "ai-edge-litert==0.0.0.1" in line, line
    assert not (dest / "current").exists() and not (dest / "venv").exists()
    assert not list((dest / "venvs").glob("*")) if (dest / "venvs").exists() else True


def test_no_wheel_on_the_index_for_32bit_arm(tmp_path: Path) -> None:
    """What a 32-bit Raspberry Pi OS (armv7l, Python 3.11) gets from the package index."""
    dev = DeviceInfo(path="/h", home="/home/pi", user="pi", machine="armv7l", python="3.11.2", glibc="2.36",
                     venv_ok=True, venv_error="", free_mb=1e4, systemd=True, root_or_sudo=True, current=None,
                     previous=None, venv_target=None, rsync=True)
    try:
        download_wheels(dev, RUNTIME_SETS["ai-edge-litert"], tmp_path, echo=lambda s: None)
    except DeployError as e:
        msg = str(e)
        if "no wheel of" not in msg:
            pytest.skip(f"package index not reachable: {msg}")
        assert "ai-edge-litert" in msg and "armv7l" in msg and "\n" not in msg
    else:
        pytest.fail("the index has an armv7l wheel of ai-edge-litert now: update the README's 32-bit section")


def test_rollback_without_previous(sshd: SshServer, tmp_path: Path) -> None:
    code, out = _push(sshd, "--rollback", "--to", sshd.target(tmp_path / "empty"))
    assert code != 0 and "no previous bundle" in _one_error_line(out)
    with pytest.raises(DeployError, match="no previous bundle"):
        rollback(sshd.target(tmp_path / "empty"), sshd.ssh_options, echo=lambda s: None)
