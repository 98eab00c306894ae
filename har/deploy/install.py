"""Take a device from fresh to running, and update it without downtime: `har deploy --to ... --install`,
`har push --install`, `har push --rollback`.

Layout on the device under the target path (a "har home", e.g. ``/home/pi/har``)::

    venvs/<key>/        a virtualenv with har and one TFLite runtime (key: wheel sha + runtime + Python)
    venv -> venvs/<key>
    bundles/<sha>/      every pushed bundle side by side (<sha>: first 12 hex of sha256(manifest.json))
    current -> bundles/<sha>     what the service runs; switched atomically (ln -s + mv -T)
    previous -> bundles/<sha>    the one before (`har push --rollback` switches back to it)
    wheels/             the wheels copied for an --offline install
    har.service         the systemd unit (or har-supervise.sh where systemd is not running)

The har wheel is built here from the running package (``pip wheel --no-deps`` of its project
directory). The runtime is chosen the way `har run` chooses it: ai-edge-litert first; when `har
doctor` on the device says it cannot load the bundle (a crash in a child process, an import error),
a venv with tflite-runtime and numpy<2 is tried. `--offline` downloads every wheel on this machine
for the platform and Python the device reports and installs with ``--no-index``.

Every step checks and fails with one line; the active bundle and venv are switched only after the
new ones passed `har doctor` on the device, and switched back when the service does not come up."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from har.deploy.push import (
    _local_bundle_files,
    _Remote,
    device_dir_prelude,
    last_error_line,
    normalize_ssh_options,
    parse_kv,
    parse_target,
)
from har.errors import DeployError

# What each runtime needs beside har's own dependencies (keep in step with pyproject's extras).
RUNTIME_SETS: dict[str, tuple[str, ...]] = {
    "ai-edge-litert": ("ai-edge-litert==2.3.0", "numpy>=1.23"),
    "tflite-runtime": ("tflite-runtime==2.14.0", "numpy>=1.23,<2"),
}
RUNTIME_ORDER = ("ai-edge-litert", "tflite-runtime")
MIN_FREE_MB = 200  # a venv with numpy and a runtime is 60-120 MB; pip needs room to unpack
SERVICE_UP_S = 8.0  # systemd: the unit must be active, without restarts, this long after a restart
FIRST_PREDICTION_S = 90.0  # supervisor: `har run` must predict within this (a full window, a probe, a slow device)
PIP_TIMEOUT_S = 1800
Echo = Callable[[str], Any]


@dataclass(frozen=True)
class DeviceInfo:
    """What the device reports about itself (``python3`` and a few shell probes)."""

    path: str
    home: str
    user: str
    machine: str
    python: str | None  # "3.11.2"; None: no python3
    glibc: str | None  # "2.36"
    venv_ok: bool
    venv_error: str
    free_mb: float
    systemd: bool
    root_or_sudo: bool
    current: str | None  # the bundle dir `current` points to
    previous: str | None
    venv_target: str | None  # the venv dir `venv` points to
    rsync: bool

    @property
    def py_tag(self) -> str:
        major, minor = (self.python or "0.0").split(".")[:2]
        return f"{major}{minor}"

    def platforms(self) -> list[str]:
        """pip ``--platform`` tags the device accepts (manylinux by its glibc, newest first)."""
        m = self.machine
        tags: list[str] = []
        if self.glibc:
            major, minor = (int(v) for v in self.glibc.split(".")[:2])
            tags += [f"manylinux_{major}_{v}_{m}" for v in range(minor, 16, -1)]
            if (major, minor) >= (2, 17):
                tags.append(f"manylinux2014_{m}")
        tags.append(f"linux_{m}")
        return tags


@dataclass
class InstallResult:
    """What `install` did; ``doctor`` is the device's final `har doctor --json`."""

    target: str
    home: str
    bundle: str
    previous: str | None
    runtime: str
    venv: str
    venv_reused: bool
    offline: bool
    service: str  # "systemd", "supervisor", "none"
    doctor: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --- the device ----------------------------------------------------------------------------------
_PY_PROBE = r"""
import json, os, platform, shutil, sys
out = {"python": platform.python_version(), "machine": platform.machine(), "impl": sys.implementation.name}
try:
    out["glibc"] = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
except (ValueError, OSError, AttributeError, IndexError):
    out["glibc"] = None
try:
    import ensurepip, venv  # Debian splits both into python3-venv
    out["venv_ok"], out["venv_error"] = True, ""
except Exception as e:
    out["venv_ok"], out["venv_error"] = False, (str(e).splitlines() or [type(e).__name__])[0]
print("PYJSON=" + json.dumps(out))
"""


def _device_script(path: str, python: str) -> str:
    return device_dir_prelude(path) + f"""echo "free_kb=$(df -Pk . | awk 'NR==2 {{print $4}}')"
[ -d /run/systemd/system ] && echo "systemd=1"
if [ "$(id -u)" = 0 ] || sudo -n true >/dev/null 2>&1; then echo "root_or_sudo=1"; fi
command -v rsync >/dev/null 2>&1 && echo "rsync=1"
[ -L current ] && echo "current=$(readlink current)"
[ -L previous ] && echo "previous=$(readlink previous)"
[ -L venv ] && echo "venv=$(readlink venv)"
if [ -n "$(ls -A . 2>/dev/null)" ] && [ ! -d bundles ] && [ ! -d venvs ]; then echo "foreign=1"; fi
py={shlex.quote(python)}
if command -v "$py" >/dev/null 2>&1; then "$py" -c {shlex.quote(_PY_PROBE)}; else echo "nopython=1"; fi
"""


def probe_device(remote: _Remote, path: str, python: str = "python3") -> DeviceInfo:
    """Ask the device about itself (one ssh round trip). DeployError with one line when the
    directory cannot be made or python3 is missing; ``venv_ok`` False when python3-venv is."""
    kv = parse_kv(remote.sh(_device_script(path, python), what="probing the device"))
    host = remote.target.host
    rpath = kv.get("path", "")
    if not rpath.startswith("/"):
        raise DeployError(f"could not resolve {path} on {host} (got {rpath!r})")
    if rpath in ("/", kv.get("home")):
        raise DeployError(f"refusing to install into {host}:{rpath} (the root or home directory): name a sub-directory")
    if kv.get("foreign"):
        raise DeployError(
            f"{host}:{rpath} is not empty and holds no har install (bundles/, venvs/): choose a new or empty directory"
        )
    if kv.get("nopython"):
        raise DeployError(f"{python} is not installed on {host}: sudo apt-get install python3 python3-venv")
    py = json.loads(kv.get("PYJSON", "{}") or "{}")
    if not py:
        raise DeployError(f"{python} on {host} did not answer the probe")
    glibc = py.get("glibc")
    return DeviceInfo(
        path=rpath,
        home=kv.get("home", ""),
        user=kv.get("user", ""),
        machine=str(py.get("machine") or kv.get("arch", "")),
        python=str(py.get("python")),
        glibc=str(glibc) if glibc else None,
        venv_ok=bool(py.get("venv_ok")),
        venv_error=str(py.get("venv_error", "")),
        free_mb=int(kv.get("free_kb", "0") or 0) / 1024,
        systemd=bool(kv.get("systemd")),
        root_or_sudo=bool(kv.get("root_or_sudo")),
        current=kv.get("current"),
        previous=kv.get("previous"),
        venv_target=kv.get("venv"),
        rsync=bool(kv.get("rsync")),
    )


# --- the wheel ------------------------------------------------------------------------------------
def project_dir() -> Path:
    """The source tree of the running har (where its pyproject.toml is)."""
    import har

    d = Path(har.__file__).resolve().parent.parent
    if not (d / "pyproject.toml").is_file():
        raise DeployError(
            f"cannot build the har wheel: the running har ({d}) is not a source checkout "
            "(install har from its repository, e.g. pip install -e .)"
        )
    return d


def _source_sha(src: Path) -> str:
    h = hashlib.sha256()
    files = [src / "pyproject.toml", src / "README.md", src / "LICENSE", *sorted((src / "har").rglob("*"))]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(src)).encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


def build_wheel(out_dir: Path, echo: Echo = print) -> Path:
    """``pip wheel --no-deps`` of the running har's project into ``out_dir``; the wheel's path.
    Cached by the sources' sha256 (``$HAR_CACHE_DIR/wheels``): an unchanged har is not rebuilt."""
    from har.runtime.interpreter import _cache_dir

    src = project_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = _cache_dir() / "wheels" / _source_sha(src)
    cached = sorted(cache.glob("har_edge-*.whl")) if cache.is_dir() else []
    if cached:
        shutil.copy2(cached[-1], out_dir / cached[-1].name)
        return out_dir / cached[-1].name
    wheel = _build_wheel(src, out_dir, echo)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, cache / (wheel.name + ".tmp"))
        (cache / (wheel.name + ".tmp")).replace(cache / wheel.name)
    except OSError:
        pass
    return wheel


def _build_wheel(src: Path, out_dir: Path, echo: Echo) -> Path:
    echo(f"Building the har wheel from {src} ...")
    with tempfile.TemporaryDirectory(prefix="har-wheel-") as tmp:
        # a copy without build/ and egg-info clutter, so the wheel holds exactly the package
        work = Path(tmp) / "src"
        shutil.copytree(src, work, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "data", "models", "tests", "bench", "docs",
            "firmware_bridge", ".pytest_cache", ".ruff_cache"))
        base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(work)]
        p = subprocess.run([*base[:4], "--no-build-isolation", *base[4:]], capture_output=True, text=True,
                           timeout=600)
        if p.returncode != 0:  # no setuptools here: let pip fetch the build backend
            p = subprocess.run(base, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise DeployError(f"building the har wheel failed: {last_error_line(p.stderr)}")
    wheels = sorted(out_dir.glob("har_edge-*.whl"), key=lambda w: w.stat().st_mtime)
    if not wheels:
        raise DeployError("building the har wheel produced no har_edge-*.whl")
    return wheels[-1]


def wheel_requirements(wheel: Path) -> list[str]:
    """har's own dependencies (no extras) from the wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    reqs = []
    for line in text.splitlines():
        if line.startswith("Requires-Dist:"):
            req = line.split(":", 1)[1].strip()
            if "extra ==" not in req:
                reqs.append(req.split(";")[0].strip())
    return reqs


def wheel_content_sha(wheel: Path) -> str:
    """sha256 over the wheel's file names and contents (not the zip's timestamps): the same
    source gives the same key, so re-running an install reuses the venv."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            h.update(name.encode() + b"\0" + hashlib.sha256(z.read(name)).digest())
    return h.hexdigest()


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def download_wheels(dev: DeviceInfo, requirements: Sequence[str], dest: Path, echo: Echo = print) -> list[Path]:
    """``pip download --only-binary=:all:`` for the device's platform and Python into ``dest``."""
    if not dev.python:
        raise DeployError("the device has no python3")
    dest.mkdir(parents=True, exist_ok=True)
    plats = [a for t in dev.platforms() for a in ("--platform", t)]
    argv = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
            "--python-version", ".".join(dev.python.split(".")[:2]), "--implementation", "cp",
            "--abi", f"cp{dev.py_tag}", "--abi", "abi3", "--abi", "none", *plats, "-d", str(dest), *requirements]
    echo(f"Downloading wheels for {dev.machine}, Python {dev.python} (glibc {dev.glibc}): {' '.join(requirements)}")
    p = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if p.returncode != 0:
        err = last_error_line(p.stderr)
        if "No matching distribution" in p.stderr or "Could not find a version" in p.stderr:
            missing = next((ln.split("for ", 1)[1].split(" ")[0] for ln in p.stderr.splitlines()
                            if "No matching distribution found for" in ln), err)
            raise DeployError(
                f"no wheel of {missing} for the device's platform (Python {dev.python}, {dev.machine}, "
                f"glibc {dev.glibc}) on the package index"
            )
        raise DeployError(f"downloading wheels for the device failed: {err}")
    return sorted(dest.glob("*.whl"))


# --- remote steps ---------------------------------------------------------------------------------
def _bundle_sha(bundle: Path) -> str:
    return _sha256(bundle / "manifest.json")[:12]


def _copy(remote: _Remote, dev: DeviceInfo, files: Sequence[Path], dest: str) -> None:
    remote.sh(f"mkdir -p -- {shlex.quote(dest)}", what="making " + dest)
    if dev.rsync and shutil.which("rsync"):
        rsh = shlex.join(["ssh", *remote.ssh_opts])
        argv = ["rsync", "-a", "-e", rsh, *map(str, files), remote.target.copy_dest(dest + "/")]
        p = remote._run(argv, "rsync")
        if p.returncode != 0:
            raise DeployError(f"copying to {remote.target.host} failed: {_space_hint(last_error_line(p.stderr))}")
    else:
        remote.scp(list(files), dest)


def _space_hint(line: str) -> str:
    if "No space left" in line or "Disk quota" in line:
        return f"no space left on the device ({line})"
    return line


def _copy_bundle(remote: _Remote, dev: DeviceInfo, bundle: Path, echo: Echo) -> str:
    """bundles/<sha>/ on the device (copied into a temporary dir, checked, renamed); its path."""
    files, manifest = _local_bundle_files(bundle)
    sha = _bundle_sha(bundle)
    final = f"{dev.path}/bundles/{sha}"
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items()))
    check = f"cd -- {shlex.quote(final)} 2>/dev/null && sha256sum -c --quiet - >/dev/null 2>&1 && echo present"
    if "present" in remote.sh(check, input_text=sums, what="checking bundles", allow=(0, 1, 2)):
        echo(f"Bundle {sha} is already on the device (checksums match).")
        return final
    tmp = f"{dev.path}/bundles/.{sha}.tmp"
    remote.sh(f"rm -rf -- {shlex.quote(tmp)}", what="cleaning up")
    echo(f"Copying bundle {bundle} to {remote.target.host}:{final} ...")
    _copy(remote, dev, files, tmp)
    script = (f"cd -- {shlex.quote(tmp)} && sha256sum -c --quiet - >/dev/null || exit 43; cd .. && "
              f"rm -rf -- {shlex.quote(sha)} && mv -T -- {shlex.quote('.' + sha + '.tmp')} {shlex.quote(sha)}")
    try:
        remote.sh(script, input_text=sums, what="checking the copied bundle")
    except DeployError as e:
        remote.sh(f"rm -rf -- {shlex.quote(tmp)}", what="cleaning up", allow=(0, 1))
        if "exit 43" in str(e):
            raise DeployError(f"the copy on {remote.target.host} does not match manifest.json (sha256)") from None
        raise
    return final


def _doctor(remote: _Remote, har: str, bundle: str) -> dict[str, Any]:
    out = remote.sh(shlex.join([har, "doctor", "--bundle", bundle, "--json"]), what="har doctor", allow=(0, 1))
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise DeployError(f"har doctor on {remote.target.host} printed no JSON: "
                          f"{last_error_line(out, 'no output')}") from None
    if not isinstance(data, dict) or "checks" not in data:
        raise DeployError(f"har doctor on {remote.target.host} printed unexpected JSON")
    return data


def _failures(doc: dict[str, Any]) -> str:
    return "; ".join(f"{c['name']}: {c['detail']}" for c in doc.get("checks", []) if c.get("status") == "fail")


def _check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next((c for c in doc.get("checks", []) if c.get("name") == name), {})


def _pip(remote: _Remote, py: str, args: Sequence[str], what: str) -> None:
    script = shlex.join([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]) + " 2>&1"
    argv = ["ssh", *remote.ssh_opts, "--", remote.target.ssh_host, "sh -c " + shlex.quote(script)]
    p = remote._run(argv, "ssh")
    if p.returncode == 255:
        raise DeployError(f"ssh to {remote.target.host} failed: {last_error_line(p.stderr)}")
    if p.returncode != 0:
        out = p.stdout + p.stderr
        if "No space left" in out:
            raise DeployError(f"{what} on {remote.target.host} failed: no space left on the device")
        if "No matching distribution found" in out or "Could not find a version" in out:
            line = next(ln for ln in out.splitlines() if "No matching" in ln or "Could not find" in ln)
            raise DeployError(f"{what} on {remote.target.host} failed: {line.strip()} (no wheel for this platform?)")
        raise DeployError(f"{what} on {remote.target.host} failed: {last_error_line(out)}")


def _make_venv(
    remote: _Remote, dev: DeviceInfo, key: str, wheel_remote: str, wheel_sha: str, runtime: str, offline: bool,
    python: str, echo: Echo,
) -> tuple[str, str | None]:
    """venvs/<key> with ``runtime`` and the har wheel ``wheel_remote``: reused as it is when it holds
    that wheel already; a newer har is upgraded in place there (the runtime and numpy stay); else
    made afresh and marked complete at the end (a venv is not relocatable: absolute shebangs).

    Returns ``(venv path, the har wheel it held before an in-place upgrade or None)``."""
    final = f"{dev.path}/venvs/{key}"
    q = shlex.quote(final)
    check = f"[ -e {q}/.complete ] && echo complete=1; [ -f {q}/.har-wheel ] && cat {q}/.har-wheel; true"
    state = parse_kv(remote.sh(check, what="checking venvs"))
    py = f"{final}/bin/python"
    src = ["--no-index", "--find-links", f"{dev.path}/wheels"] if offline else []
    if state.get("complete"):
        if state.get("sha") == wheel_sha:
            echo(f"venv {key} ({runtime}) already holds this har on the device.")
            return final, None
        echo(f"Upgrading har in place in venv {key} ({runtime}) ...")
        _pip(remote, py, ["--force-reinstall", "--no-deps", wheel_remote], "upgrading har")
        _pip(remote, py, [*src, wheel_remote, *RUNTIME_SETS[runtime]], "checking har's dependencies")
        _mark_wheel(remote, final, wheel_sha, wheel_remote)
        return final, state.get("wheel") or None
    echo(f"Creating a venv with har and {runtime} on {remote.target.host} ({'offline' if offline else 'online'}) ...")
    remote.sh(f"rm -rf -- {q} && mkdir -p -- {shlex.quote(dev.path + '/venvs')} && "
              f"{shlex.quote(python)} -m venv -- {q}", what="python3 -m venv")
    try:
        _pip(remote, py, [*src, wheel_remote, *RUNTIME_SETS[runtime]], f"installing har with {runtime}")
    except DeployError:
        remote.sh(f"rm -rf -- {q}", what="removing the incomplete venv", allow=(0, 1))  # nothing half-made stays
        raise
    _mark_wheel(remote, final, wheel_sha, wheel_remote)
    remote.sh(f"echo {shlex.quote(runtime)} > {q}/.complete", what="marking the venv")
    return final, None


def _mark_wheel(remote: _Remote, venv: str, sha: str, wheel: str) -> None:
    out = shlex.quote(venv + "/.har-wheel")
    remote.sh(f"printf 'sha=%s\\nwheel=%s\\n' {shlex.quote(sha)} {shlex.quote(wheel)} > {out}", what="marking the venv")


def _restore_har(remote: _Remote, venv: str, old_wheel: str | None, echo: Echo) -> None:
    """Undo an in-place upgrade: the har wheel the venv held before."""
    if not old_wheel:
        return
    _pip(remote, f"{venv}/bin/python", ["--force-reinstall", "--no-deps", old_wheel], "restoring the previous har")
    remote.sh(f"sed -i 's|^wheel=.*|wheel={old_wheel}|; s|^sha=.*|sha=restored|' {shlex.quote(venv + '/.har-wheel')}",
              what="marking the venv", allow=(0, 1, 2))
    echo(f"Restored the previous har in {venv}.")


def _link(remote: _Remote, home: str, name: str, to: str | None) -> None:
    """Point ``home/name`` at ``to`` atomically (ln -s to a temporary name, mv -T over)."""
    if to is None:
        remote.sh(f"rm -f -- {shlex.quote(home + '/' + name)}", what=f"removing {name}")
        return
    rel = to[len(home) + 1:] if to.startswith(home + "/") else to
    tmp = f".{name}.new"
    remote.sh(f"cd -- {shlex.quote(home)} && ln -sfn -- {shlex.quote(rel)} {tmp} && mv -T -- {tmp} {shlex.quote(name)}",
              what=f"switching {name}")


def _abs(home: str, link: str | None) -> str | None:
    if not link:
        return None
    return link if link.startswith("/") else f"{home}/{link}"


# --- the service ----------------------------------------------------------------------------------
_SUPERVISE = """#!/bin/sh
# Written by `har push --service` where systemd is not running: runs `har run` on the current
# bundle and restarts it when it fails (as the systemd unit's Restart=on-failure does).
cd {home} || exit 1
while :; do
    {cmd} >> {log} 2>&1 && break
    sleep 2
done
"""


def _write_keeping_previous(remote: _Remote, path: str, text: str | None) -> None:
    """Write ``path`` (keeping the old one as ``path.prev``), or with ``text`` None put ``.prev`` back."""
    q, prev = shlex.quote(path), shlex.quote(path + ".prev")
    if text is None:
        remote.sh(f"[ -f {prev} ] && mv -f -- {prev} {q} || true", what="restoring " + path)
        return
    remote.sh(f"[ -f {q} ] && cp -p -- {q} {prev}; cat > {q}.new && mv -f -- {q}.new {q}", input_text=text,
              what="writing " + path)


def _service_start(
    remote: _Remote, dev: DeviceInfo, port: str, baud: int, echo: Echo, restore: bool = False
) -> str:
    """(Re)start the service on `current`; "systemd" or "supervisor". ``restore`` puts back the
    unit / supervisor script of the previous start (its port and baud) instead of writing new ones."""
    from har.deploy.service import UNIT_NAME, install_commands, render_unit

    home = dev.path
    har = f"{home}/venv/bin/har"
    if dev.systemd and dev.root_or_sudo:
        unit = None if restore else render_unit(f"{home}/current", port, dev.user, har, baud=baud, cache_dir=True)
        _write_keeping_previous(remote, f"{home}/{UNIT_NAME}", unit)
        cmds = install_commands(f"{home}/{UNIT_NAME}", sudo=dev.user != "root")
        script = " && ".join(c.replace("sudo ", "sudo -n ", 1) for c in cmds)
        remote.sh(script + f" && {'sudo -n ' if dev.user != 'root' else ''}systemctl restart {UNIT_NAME}",
                  what="installing the service")
        return "systemd"
    if not restore:
        why = "systemd is not running" if not dev.systemd else "no root or password-less sudo for systemctl"
        # the unit is still written beside the supervisor (not installed): what `sudo install` takes
        # once the device runs systemd, and what `systemd-analyze verify` can check
        _write_keeping_previous(remote, f"{home}/{UNIT_NAME}",
                                render_unit(f"{home}/current", port, dev.user, har, baud=baud, cache_dir=True))
        echo(f"{why} on {remote.target.host}: running `har run` under a small supervisor (har-supervise.sh, restart "
             f"on failure, not started at boot); the systemd unit is written, not installed: {home}/{UNIT_NAME}")
    else:
        _write_keeping_previous(remote, f"{home}/{UNIT_NAME}", None)
    cmd = shlex.join([har, "run", f"{home}/current", "--port", port, "--baud", str(baud), "--json"])
    script = None if restore else _SUPERVISE.format(home=shlex.quote(home), cmd=cmd,
                                                    log=shlex.quote(home + "/har-run.log"))
    _write_keeping_previous(remote, f"{home}/har-supervise.sh", script)
    _service_stop(remote, dev)
    remote.sh(f"cd -- {shlex.quote(home)} && : > har-run.log && "
              "(setsid sh har-supervise.sh </dev/null >/dev/null 2>&1 & echo $! > har-supervise.pid)",
              what="starting the supervisor")
    return "supervisor"


def _service_stop(remote: _Remote, dev: DeviceInfo) -> None:
    """Stop the supervisor (its whole process group: the shell loop and `har run`; SIGTERM, which
    `har run` ends cleanly on with its summary, then SIGKILL after 30 s). No ``--`` for kill: dash's
    builtin takes none."""
    pidf = shlex.quote(dev.path + "/har-supervise.pid")
    remote.sh(f"""[ -f {pidf} ] || exit 0
pid=$(cat {pidf}); kill -TERM -"$pid" 2>/dev/null
for i in $(seq 1 60); do kill -0 -"$pid" 2>/dev/null || break; sleep 0.5; done
kill -KILL -"$pid" 2>/dev/null; rm -f {pidf}; exit 0""", what="stopping the supervisor", allow=(0, 1))


def _service_up(remote: _Remote, dev: DeviceInfo, kind: str, wait_s: float = SERVICE_UP_S) -> str | None:
    """None when the service is up and stays up for ``wait_s``; else one line saying why not."""
    if kind == "systemd":
        sudo = "sudo -n " if dev.user != "root" else ""
        time.sleep(wait_s)
        out = remote.sh(f"{sudo}systemctl is-active har.service; {sudo}systemctl show -p NRestarts --value har.service",
                        what="checking the service", allow=(0, 1, 3))
        state, _, restarts = out.strip().partition("\n")
        if state.strip() != "active" or restarts.strip() not in ("", "0"):
            log = remote.sh(f"{sudo}journalctl -u har.service -n 5 --no-pager -o cat", what="reading the journal",
                            allow=(0, 1))
            return f"har.service is {state.strip()} (restarts {restarts.strip() or '?'}): {last_error_line(log, '?')}"
        return None
    deadline = time.monotonic() + FIRST_PREDICTION_S
    log = shlex.quote(dev.path + "/har-run.log")
    while time.monotonic() < deadline:
        out = remote.sh(f"cat {log} 2>/dev/null; echo; echo HAR-LOG-END", what="reading har-run.log", allow=(0, 1))
        text = out.split("HAR-LOG-END")[0]
        errors = [ln for ln in text.splitlines() if ln.startswith("Error:")]
        if errors:
            return f"`har run` fails on the device: {errors[-1][len('Error: '):]}"
        if any(ln.startswith("{") for ln in text.splitlines()):
            return None  # predictions flow
        time.sleep(1.0)
    return f"`har run` made no prediction within {FIRST_PREDICTION_S:.0f} s (see {dev.path}/har-run.log)"


# --- the whole flow -------------------------------------------------------------------------------
def install(
    bundle: Path,
    target: str,
    ssh_options: Sequence[str] = (),
    offline: bool = False,
    service: bool = False,
    port: str | None = None,
    baud: int = 115200,
    runtime: str | None = None,
    python: str = "python3",
    install_har: bool = True,
    wheelhouse: Path | None = None,
    echo: Echo = print,
) -> InstallResult:
    """Install har (``install_har``) and ``bundle`` into the har home at ``target`` and make it active.

    ``runtime`` forces one of RUNTIME_ORDER (default: the first that passes `har doctor` there).
    ``wheelhouse``: a local directory searched first for --offline wheels (pip --find-links).
    Raises DeployError with one line; on any failure the previously active bundle and venv stay
    (or are put back) active."""
    bundle = Path(bundle)
    tgt = parse_target(target)
    if service and not port:
        raise DeployError("--service needs --port (the device's serial port, e.g. /dev/ttyUSB0)")
    if runtime is not None and runtime not in RUNTIME_SETS:
        raise DeployError(f"unknown runtime {runtime!r} (choose from {', '.join(RUNTIME_ORDER)})")
    _local_bundle_files(bundle)  # verified before anything touches the device
    remote = _Remote(tgt, normalize_ssh_options(ssh_options))
    dev = probe_device(remote, tgt.path, python)
    host = tgt.host
    echo(f"{host}: {dev.machine}, Python {dev.python}, glibc {dev.glibc}, {dev.free_mb:,.0f} MB free in {dev.path}"
         f"{', systemd' if dev.systemd else ''}")
    old_current, old_venv = _abs(dev.path, dev.current), _abs(dev.path, dev.venv_target)
    if not install_har and not old_venv:
        raise DeployError(f"har is not installed in {host}:{dev.path} yet: add --install")
    if install_har and not dev.venv_ok:
        raise DeployError(f"python3-venv is missing on {host} ({dev.venv_error}): sudo apt-get install python3-venv")
    need_mb = MIN_FREE_MB if install_har else 5
    if dev.free_mb < need_mb:
        raise DeployError(f"no space on {host}: {dev.free_mb:.0f} MB free in {dev.path}, need at least {need_mb} MB")

    new_bundle = _copy_bundle(remote, dev, bundle, echo)
    venv = old_venv
    chosen_runtime = ""
    reused = True
    restore: tuple[str, str | None] = ("", None)  # (venv, har wheel to put back if this install fails)
    chosen_doc: dict[str, Any] | None = None
    if install_har:
        with tempfile.TemporaryDirectory(prefix="har-install-") as tmp:
            wheel = build_wheel(Path(tmp) / "har", echo)
            wsha = wheel_content_sha(wheel)[:12]
            base_reqs = wheel_requirements(wheel)
            remote_wheels = f"{dev.path}/wheels"
            order = [runtime] if runtime else list(RUNTIME_ORDER)
            reasons: list[str] = []
            for rt in order:
                files = [wheel]
                if offline:
                    dl = Path(tmp) / f"wheels-{rt}"
                    try:
                        files += download_wheels(dev, [*base_reqs, *RUNTIME_SETS[rt]], dl, echo) if not wheelhouse \
                            else _from_wheelhouse(dev, [*base_reqs, *RUNTIME_SETS[rt]], wheelhouse, dl, echo)
                    except DeployError as e:
                        reasons.append(f"{rt}: {e}")
                        continue
                _copy(remote, dev, files[1:], remote_wheels)
                har_dir = f"{remote_wheels}/har-{wsha}"  # each har wheel kept apart: same name, other contents
                _copy(remote, dev, files[:1], har_dir)
                key = hashlib.sha256(f"{rt} {dev.python} {dev.machine}".encode()).hexdigest()[:12]
                try:
                    cand, upgraded_from = _make_venv(remote, dev, key, f"{har_dir}/{wheel.name}", wsha, rt, offline,
                                                     python, echo)
                except DeployError as e:
                    if "no space" in str(e):
                        raise
                    reasons.append(f"{rt}: {e}")
                    continue
                doc = _doctor(remote, f"{cand}/bin/har", new_bundle)
                rt_check = _check(doc, "runtime")
                if rt_check.get("status") == "fail" or not str(rt_check.get("detail", "")).startswith(rt):
                    reasons.append(f"{rt}: {rt_check.get('detail', 'runtime check failed')}")
                    echo(f"{rt} does not run the bundle on {host}: {rt_check.get('detail', '?')}")
                    _restore_har(remote, cand, upgraded_from, echo)
                    continue
                venv, chosen_runtime, reused, chosen_doc = cand, rt, cand == old_venv, doc
                restore = (cand, upgraded_from)
                break
            if venv is None or not chosen_runtime:
                raise DeployError(f"no TFLite runtime runs on {host}: {' | '.join(reasons)}")
    # the new bundle under the venv that will run it: must pass doctor before it becomes active
    # (with install_har the runtime choice above already ran exactly this doctor)
    doc = chosen_doc if chosen_doc is not None else _doctor(remote, f"{venv}/bin/har", new_bundle)
    if not doc.get("ok"):
        _restore_har(remote, restore[0], restore[1], echo)
        raise DeployError(f"the new bundle fails har doctor on {host}: {_failures(doc)}"
                          + (f" (still active: {Path(old_current).name})" if old_current else ""))
    if not chosen_runtime:
        chosen_runtime = str(_check(doc, "runtime").get("detail", "?")).split(" ")[0]
    _link(remote, dev.path, "venv", venv)
    if old_current and old_current != new_bundle:
        _link(remote, dev.path, "previous", old_current)
    _link(remote, dev.path, "current", new_bundle)
    echo(f"Active: {Path(new_bundle).name} ({chosen_runtime}, venv {Path(venv or '').name})"
         + (f"; previous: {Path(old_current).name}" if old_current and old_current != new_bundle else ""))
    kind = "none"
    if service:
        kind = _service_start(remote, dev, port or "", baud, echo)
        why = _service_up(remote, dev, kind)
        if why:
            _restore_har(remote, restore[0], restore[1], echo)
            _put_back(remote, dev, old_current, old_venv, new_bundle, kind, port or "", baud, echo)
            raise DeployError(f"{why}; " + (f"put back {Path(old_current).name}" if old_current and
                                             old_current != new_bundle else "no previous bundle to put back"))
        echo(f"Service up on {host} ({kind}).")
    final = _doctor(remote, f"{dev.path}/venv/bin/har", f"{dev.path}/current")
    res = InstallResult(target=target, home=dev.path, bundle=Path(new_bundle).name,
                        previous=Path(old_current).name if old_current and old_current != new_bundle else None,
                        runtime=chosen_runtime, venv=venv or "", venv_reused=reused, offline=offline, service=kind,
                        doctor=final)
    _prune(remote, dev.path, keep_venvs={venv, old_venv})
    return res


def _from_wheelhouse(dev: DeviceInfo, reqs: Sequence[str], wheelhouse: Path, dest: Path, echo: Echo) -> list[Path]:
    """Like download_wheels, resolving from a local directory only (pip --no-index --find-links)."""
    dest.mkdir(parents=True, exist_ok=True)
    plats = [a for t in dev.platforms() for a in ("--platform", t)]
    argv = [sys.executable, "-m", "pip", "download", "-q", "--no-index", "--find-links", str(wheelhouse),
            "--only-binary=:all:", "--python-version", ".".join((dev.python or "3").split(".")[:2]),
            "--implementation", "cp", "--abi", f"cp{dev.py_tag}", "--abi", "abi3", "--abi", "none", *plats,
            "-d", str(dest), *reqs]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if p.returncode != 0:
        line = next((ln for ln in p.stderr.splitlines() if "No matching distribution" in ln), None)
        if line:
            missing = line.split("for ", 1)[1].split(" ")[0]
            raise DeployError(f"no wheel of {missing} for the device's platform (Python {dev.python}, {dev.machine}, "
                              f"glibc {dev.glibc}) in {wheelhouse}")
        raise DeployError(f"collecting wheels for the device failed: {last_error_line(p.stderr)}")
    return sorted(dest.glob("*.whl"))


def _put_back(
    remote: _Remote, dev: DeviceInfo, old_current: str | None, old_venv: str | None, new_bundle: str, kind: str,
    port: str, baud: int, echo: Echo,
) -> None:
    if old_current and old_current != new_bundle:
        _link(remote, dev.path, "current", old_current)
        _link(remote, dev.path, "previous", new_bundle)
    elif kind == "supervisor":
        _service_stop(remote, dev)
    if old_venv:
        _link(remote, dev.path, "venv", old_venv)
    if old_current and old_current != new_bundle and kind != "none":
        _service_start(remote, dev, port, baud, echo, restore=True)
    echo(f"Put back {Path(old_current).name}." if old_current and old_current != new_bundle else
         "Nothing to put back: the service is stopped.")


def _prune(remote: _Remote, home: str, keep_venvs: set[str | None]) -> None:
    """Remove venvs other than the active and previous ones, and incomplete temporary dirs."""
    keep = " ".join(shlex.quote(Path(v).name) for v in keep_venvs if v)
    remote.sh(f"""cd -- {shlex.quote(home)}/venvs 2>/dev/null || exit 0
for d in *; do [ -d "$d" ] || continue; k=0; for n in {keep or '""'}; do [ "$d" = "$n" ] && k=1; done
[ $k = 1 ] || rm -rf -- "$d"; done""", what="pruning old venvs", allow=(0, 1))


def rollback(
    target: str, ssh_options: Sequence[str] = (), service: bool = False, port: str | None = None, baud: int = 115200,
    echo: Echo = print,
) -> InstallResult:
    """Make ``previous`` active again (``current`` and ``previous`` swap), restart the service when
    asked, and check with `har doctor`."""
    tgt = parse_target(target)
    remote = _Remote(tgt, normalize_ssh_options(ssh_options))
    dev = probe_device(remote, tgt.path)
    cur, prev = _abs(dev.path, dev.current), _abs(dev.path, dev.previous)
    if not prev:
        raise DeployError(f"no previous bundle in {tgt.host}:{dev.path} to roll back to")
    if not dev.venv_target:
        raise DeployError(f"har is not installed in {tgt.host}:{dev.path}")
    doc = _doctor(remote, f"{dev.path}/venv/bin/har", prev)
    if not doc.get("ok"):
        raise DeployError(f"the previous bundle {Path(prev).name} fails har doctor on {tgt.host}: {_failures(doc)}")
    _link(remote, dev.path, "current", prev)
    _link(remote, dev.path, "previous", cur)
    echo(f"Active again: {Path(prev).name}; previous: {Path(cur).name if cur else '-'}")
    kind = "none"
    if service:
        if not port:
            raise DeployError("--service needs --port")
        kind = _service_start(remote, dev, port, baud, echo)
        why = _service_up(remote, dev, kind)
        if why:
            raise DeployError(why)
    final = _doctor(remote, f"{dev.path}/venv/bin/har", f"{dev.path}/current")
    return InstallResult(target=target, home=dev.path, bundle=Path(prev).name,
                         previous=Path(cur).name if cur else None, runtime=str(_check(final, "runtime").get("detail")),
                         venv=dev.venv_target, venv_reused=True, offline=False, service=kind, doctor=final)


def stop_service(target: str, ssh_options: Sequence[str] = ()) -> None:
    """Stop the non-systemd supervisor (`har push --stop`)."""
    tgt = parse_target(target)
    remote = _Remote(tgt, normalize_ssh_options(ssh_options))
    dev = probe_device(remote, tgt.path)
    _service_stop(remote, dev)
