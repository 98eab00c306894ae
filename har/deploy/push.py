"""`har push`: copy a bundle to a device over ssh, check it there with `har doctor`, optionally
install a systemd service.

Everything goes through the system's own ``ssh`` client (so ``~/.ssh/config``, keys and agents
work as usual); extra options (``-p PORT``, ``-i KEY``, ``-F CONFIG``, ``-o Key=Value``) are passed
through ``ssh_options``. Files are copied with ``rsync -a --delete`` when rsync exists on both ends,
else with ``scp`` (stale files are then removed remotely). The bundle is verified locally before and
with ``sha256sum`` on the device after the copy."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from har.artifacts.layout import MANIFEST_FILE
from har.errors import DeployError, HarError

SSH_TIMEOUT_S = 15
COMMAND_TIMEOUT_S = 600
_TARGET = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?(?P<host>\[[0-9A-Fa-f:.%a-z]+\]|[A-Za-z0-9_.-]+):(?P<path>.*)$"
)
_NOISE = ("Warning: Permanently added", "rsync error:", "rsync: connection unexpectedly closed", "lost connection")
# Options of ssh that take an argument (so `-p 22` is two tokens); scp spells -p as -P.
_SSH_ARG_OPTS = set("BbcDEeFIiJLlmOoPpQRSWw")


@dataclass(frozen=True)
class Target:
    """A parsed ``[user@]host:/path``."""

    user: str | None
    host: str
    path: str

    @property
    def ssh_host(self) -> str:
        """``user@host`` for ssh (IPv6 brackets removed)."""
        h = self.host.strip("[]")
        return f"{self.user}@{h}" if self.user else h

    def copy_dest(self, path: str) -> str:
        """``user@host:path`` for rsync / scp."""
        return f"{self.user + '@' if self.user else ''}{self.host}:{path}"


@dataclass
class PushResult:
    """What `push_bundle` did. ``doctor`` is the remote `har doctor --json` output (None when har
    is not installed there); ``notes`` are things the user should know or do."""

    target: str
    remote_path: str
    method: str
    files: list[str]
    checksums_verified: bool
    runtime_installed: bool
    doctor: dict[str, Any] | None = None
    service_unit: str | None = None
    service_installed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def doctor_ok(self) -> bool | None:
        return None if self.doctor is None else bool(self.doctor.get("ok"))

    def doctor_failures(self) -> list[str]:
        if not self.doctor:
            return []
        return [f"{c['name']}: {c['detail']}" for c in self.doctor.get("checks", []) if c.get("status") == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"doctor_ok": self.doctor_ok}


def parse_target(target: str) -> Target:
    """Parse ``[user@]host:/path`` (``~/dir`` and relative paths are under the remote home)."""
    m = _TARGET.match(target.strip())
    if not m or not m.group("path") or m.group("host").startswith("-"):
        raise DeployError(f"bad target {target!r}: expected [user@]host:/path, e.g. pi@raspberrypi.local:/home/pi/har")
    path = m.group("path")
    if "\n" in path or "\x00" in path:
        raise DeployError(f"bad target {target!r}: the path holds a newline or NUL")
    if path.startswith("~") and path not in ("~",) and not path.startswith("~/"):
        raise DeployError(f"bad target {target!r}: only ~ or ~/... are supported, not ~user")
    return Target(m.group("user"), m.group("host"), path)


def normalize_ssh_options(options: Sequence[str]) -> list[str]:
    """Split option strings into ssh arguments: ``"-p 2222"`` -> ``-p 2222``; a bare
    ``Key=Value`` (e.g. ``StrictHostKeyChecking=accept-new``) becomes ``-o Key=Value``."""
    out: list[str] = []
    for opt in options:
        toks = shlex.split(opt)
        if len(toks) == 1 and not toks[0].startswith("-") and "=" in toks[0] and not out[-1:] == ["-o"]:
            toks = ["-o", toks[0]]
        out.extend(toks)
    return out


def scp_options(ssh_opts: Sequence[str]) -> list[str]:
    """ssh options in scp's spelling: ``-p N`` -> ``-o Port=N``, ``-l U`` -> ``-o User=U``."""
    out: list[str] = []
    it = iter(ssh_opts)
    for tok in it:
        if tok in ("-p", "-l"):
            val = next(it, None)
            if val is None:
                raise DeployError(f"ssh option {tok} needs a value")
            out += ["-o", f"{'Port' if tok == '-p' else 'User'}={val}"]
        elif tok.startswith("-p") and len(tok) > 2:
            out += ["-o", f"Port={tok[2:]}"]
        elif len(tok) == 2 and tok[0] == "-" and tok[1] in _SSH_ARG_OPTS:
            val = next(it, None)
            if val is None:
                raise DeployError(f"ssh option {tok} needs a value")
            out += [tok, val]
        else:
            out.append(tok)
    return out


def last_error_line(stderr: str, default: str = "failed") -> str:
    """The one stderr line that says what went wrong (ssh / rsync / scp boilerplate skipped)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(_NOISE)]
    return (useful or lines or [default])[-1]


class _Remote:
    """Runs commands on the device through the real ssh client."""

    def __init__(self, target: Target, ssh_options: Sequence[str]) -> None:
        self.target = target
        opts = list(ssh_options)
        if not any("connecttimeout" in o.lower() for o in opts):
            opts += ["-o", f"ConnectTimeout={SSH_TIMEOUT_S}"]
        self.ssh_opts = opts
        if shutil.which("ssh") is None:
            raise DeployError("ssh is not installed here (Debian/Ubuntu: sudo apt-get install openssh-client)")

    def _run(self, argv: list[str], tool: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                input=input_text,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
                stdin=None if input_text is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise DeployError(f"{tool} to {self.target.host} timed out after {COMMAND_TIMEOUT_S} s") from None
        except OSError as e:
            raise DeployError(f"cannot run {tool}: {e.strerror}") from None

    def sh(self, script: str, input_text: str | None = None, what: str = "ssh", allow: Sequence[int] = (0,)) -> str:
        """Run a POSIX sh script remotely; stdout on success, DeployError otherwise."""
        argv = ["ssh", *self.ssh_opts, "--", self.target.ssh_host, "sh -c " + shlex.quote(script)]
        p = self._run(argv, "ssh", input_text)
        if p.returncode == 255:
            raise DeployError(f"ssh to {self.target.host} failed: {last_error_line(p.stderr)}")
        if p.returncode not in allow:
            raise DeployError(f"{what} on {self.target.host} failed (exit {p.returncode}): {last_error_line(p.stderr)}")
        return p.stdout

    def rsync(self, src: Path, dest: str) -> None:
        rsh = shlex.join(["ssh", *self.ssh_opts])
        argv = ["rsync", "-a", "--delete", "--delay-updates", "-e", rsh, f"{src}/", self.target.copy_dest(dest + "/")]
        p = self._run(argv, "rsync")
        if p.returncode != 0:
            raise DeployError(f"rsync to {self.target.host} failed: {last_error_line(p.stderr)}")

    def scp(self, files: list[Path], dest: str) -> None:
        argv = [
            "scp",
            "-p",
            "-q",
            *scp_options(self.ssh_opts),
            "--",
            *map(str, files),
            self.target.copy_dest(dest + "/"),
        ]
        p = self._run(argv, "scp")
        if p.returncode != 0:
            raise DeployError(f"scp to {self.target.host} failed: {last_error_line(p.stderr)}")


def device_dir_prelude(path: str) -> str:
    """Shell lines that make and enter ``path`` on the device (relative to the home directory unless
    absolute; exit 3-6 when that fails) and report ``path``, ``home``, ``user`` and ``arch`` as
    ``key=value`` lines (read with :func:`parse_kv`)."""
    rel = path[2:] if path.startswith("~/") else ("." if path == "~" else path)
    return f"""
cd || exit 3
p={shlex.quote(rel)}
if [ -e "$p" ] && [ ! -d "$p" ]; then echo "not a directory: $p" >&2; exit 4; fi
mkdir -p -- "$p" || exit 5
cd -- "$p" || exit 6
echo "path=$(pwd -P)"
echo "home=$HOME"
echo "user=$(id -un)"
echo "arch=$(uname -m)"
"""


def _probe_script(path: str, remote_har: str | None) -> str:
    if remote_har:
        har_loop = '"$HOME"/' + shlex.quote(remote_har[2:]) if remote_har.startswith("~/") else shlex.quote(remote_har)
    else:
        har_loop = 'har "$HOME/.local/bin/har" /usr/local/bin/har'

    return device_dir_prelude(path) + f"""if [ -n "$(ls -A . 2>/dev/null)" ]; then echo "nonempty=1"; fi
if [ -f {MANIFEST_FILE} ]; then echo "bundle=1"; fi
if [ -d bundles ] && [ -L current ]; then echo "harhome=1"; fi
if command -v rsync >/dev/null 2>&1; then echo "rsync=1"; fi
if [ -d /run/systemd/system ]; then echo "systemd=1"; fi
if getent group dialout >/dev/null 2>&1 || grep -q '^dialout:' /etc/group 2>/dev/null; then echo "dialout=1"; fi
for h in {har_loop}; do
  if command -v "$h" >/dev/null 2>&1; then echo "har=$(command -v "$h")"; break; fi
done
"""


def parse_kv(out: str) -> dict[str, str]:
    """``key=value`` lines of a device script's output as a dict."""
    kv: dict[str, str] = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            kv[k.strip()] = v.strip()
    return kv


def _install_hint(arch: str) -> str:
    if arch.startswith("armv7") or arch.startswith("armv6"):
        return "python3 -m pip install --user har-edge tflite-runtime 'numpy<2'"
    return "python3 -m pip install --user 'har-edge[edge]' (Raspberry Pi OS bookworm: pipx install 'har-edge[edge]')"


def _local_bundle_files(bundle: Path) -> tuple[list[Path], dict[str, str]]:
    from har.artifacts.bundle import read_manifest, verify_bundle

    try:
        verify_bundle(bundle)
        manifest = read_manifest(bundle)
    except HarError as e:
        raise DeployError(f"refusing to push: {e}") from None
    files = sorted(p for p in bundle.iterdir() if p.is_file() and not p.name.endswith(".tmp"))
    if any(p.is_dir() for p in bundle.iterdir()):
        raise DeployError(f"refusing to push: {bundle} holds sub-directories (bundles hold regular files only)")
    return files, manifest


def push_bundle(
    bundle: Path,
    target: str,
    ssh_options: Sequence[str] = (),
    service: bool = False,
    port: str | None = None,
    echo: Callable[[str], Any] = print,
    remote_har: str | None = None,
    baud: int = 115200,
) -> PushResult:
    """Copy ``bundle`` to ``target`` (``[user@]host:/path``), verify it there and report.

    ``ssh_options`` go to every ssh / scp / rsync call (``-p 2222``, ``-i KEY``, ``-F FILE``,
    ``-o Key=Value``). ``service`` also copies a systemd unit (needs ``port``, the device's serial
    port) and installs it when the remote user is root or has password-less sudo; otherwise the
    commands are printed. ``remote_har`` is the path of `har` on the device when it is not on the
    PATH of a non-interactive ssh session. Raises DeployError with one line on failure."""
    bundle = Path(bundle)
    tgt = parse_target(target)
    if service and not port:
        raise DeployError("--service needs --port (the device's serial port, e.g. /dev/ttyUSB0)")
    files, manifest = _local_bundle_files(bundle)
    remote = _Remote(tgt, normalize_ssh_options(ssh_options))

    info = parse_kv(remote.sh(_probe_script(tgt.path, remote_har), what="preparing the directory"))
    rpath = info.get("path", "")
    if not rpath.startswith("/"):
        raise DeployError(f"could not resolve {tgt.path} on {tgt.host} (got {rpath!r})")
    if rpath in ("/", info.get("home")):
        raise DeployError(
            f"refusing to push into {tgt.host}:{rpath} (the root or home directory): name a sub-directory"
        )
    if info.get("harhome"):  # a har home made by --install: side by side, switched, rolled back on failure
        return _push_to_home(bundle, target, ssh_options, service, port, baud, files, echo)
    if info.get("nonempty") and not info.get("bundle"):
        raise DeployError(
            f"{tgt.host}:{rpath} is not empty and holds no har bundle: refusing to overwrite it "
            "(choose a new or empty directory)"
        )
    use_rsync = bool(info.get("rsync")) and shutil.which("rsync") is not None
    echo(f"Copying {len(files)} files to {tgt.host}:{rpath} with {'rsync' if use_rsync else 'scp'} ...")
    if use_rsync:
        remote.rsync(bundle, rpath)
    else:
        remote.scp(files, rpath)

    keep = " ".join(shlex.quote(p.name) for p in files)
    sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items()))
    check_script = f"""
cd -- {shlex.quote(rpath)} || exit 6
for f in * .[!.]*; do
  [ -e "$f" ] || continue
  keep=0; for k in {keep}; do [ "$f" = "$k" ] && keep=1; done
  [ $keep = 1 ] || rm -rf -- "$f"
done
command -v sha256sum >/dev/null 2>&1 || exit 42
sha256sum -c - >/dev/null || exit 43
"""
    out_rc = _checksum_status(remote, check_script, sums)
    checksums_verified = out_rc == 0
    notes: list[str] = []
    if out_rc == 42:
        notes.append(f"sha256sum is not available on {tgt.host}: checksums not verified there")
        echo(notes[-1])
    elif out_rc == 43:
        raise DeployError(f"the copy on {tgt.host}:{rpath} does not match manifest.json (sha256): copy corrupted")
    echo(f"Copied; checksums {'verified on the device (sha256sum)' if checksums_verified else 'not verified'}.")

    har_path = info.get("har")
    result = PushResult(
        target=target,
        remote_path=rpath,
        method="rsync" if use_rsync else "scp",
        files=[p.name for p in files],
        checksums_verified=checksums_verified,
        runtime_installed=bool(har_path),
        notes=notes,
    )
    if har_path:
        result.doctor = _remote_doctor(remote, har_path, rpath, port)
        _echo_doctor(result.doctor, echo)
    else:
        note = (
            f"har is not installed on {tgt.host} (not on the ssh PATH, ~/.local/bin or /usr/local/bin): "
            f"install the runtime there with: {_install_hint(info.get('arch', ''))}"
        )
        notes.append(note)
        echo(note)
    if service:
        _push_service(remote, tgt, info, result, port or "", baud, echo)
    return result


def _checksum_status(remote: _Remote, script: str, sums: str) -> int:
    argv = ["ssh", *remote.ssh_opts, "--", remote.target.ssh_host, "sh -c " + shlex.quote(script)]
    p = remote._run(argv, "ssh", sums)
    if p.returncode == 255:
        raise DeployError(f"ssh to {remote.target.host} failed: {last_error_line(p.stderr)}")
    if p.returncode not in (0, 42, 43):
        raise DeployError(f"checking the copy on {remote.target.host} failed: {last_error_line(p.stderr)}")
    return p.returncode


def _remote_doctor(remote: _Remote, har_path: str, rpath: str, port: str | None) -> dict[str, Any]:
    cmd = [har_path, "doctor", "--bundle", rpath, "--json"] + (["--port", port] if port else [])
    out = remote.sh(shlex.join(cmd), what="har doctor", allow=(0, 1))
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        raise DeployError(
            f"har doctor on {remote.target.host} printed no JSON: {last_error_line(out, 'no output')}"
        ) from None
    if not isinstance(data, dict) or "checks" not in data:
        raise DeployError(f"har doctor on {remote.target.host} printed unexpected JSON")
    return data


def _echo_doctor(data: dict[str, Any], echo: Callable[[str], Any]) -> None:
    echo("har doctor on the device:")
    for c in data.get("checks", []):
        echo(f"  [{str(c.get('status', '?')).upper():4}] {c.get('name')}: {c.get('detail')}")


def _push_service(
    remote: _Remote,
    tgt: Target,
    info: dict[str, str],
    result: PushResult,
    port: str,
    baud: int,
    echo: Callable[[str], Any],
) -> None:
    from har.deploy.service import UNIT_NAME, install_commands, render_unit

    user = info.get("user") or tgt.user or "pi"
    home = info.get("home") or f"/home/{user}"
    har_exe = info.get("har") or f"{home}/.local/bin/har"
    if not har_exe.startswith("/"):
        har_exe = f"{home}/{har_exe}"
    groups = ("dialout",) if info.get("dialout") else ()
    unit = render_unit(result.remote_path, port, user, har_exe, baud=baud, groups=groups)
    if not info.get("har"):
        result.notes.append(f"the unit runs {har_exe}, which is not there yet: install har on {tgt.host} first")
        echo(result.notes[-1])
    unit_path = str(PurePosixPath(result.remote_path).parent / UNIT_NAME)  # next to the bundle
    remote.sh(f"cat > {shlex.quote(unit_path)}", input_text=unit, what="copying the service unit")
    result.service_unit = unit_path
    cmds = install_commands(unit_path, sudo=user != "root")
    joined = " && ".join(cmds)
    if not info.get("systemd"):
        note = (
            f"{tgt.host} is not running systemd: unit copied to {unit_path}; "
            f"on a systemd system install it with: {joined}"
        )
        result.notes.append(note)
        echo(note)
        return
    script = " && ".join(c.replace("sudo ", "sudo -n ", 1) for c in cmds)
    try:
        remote.sh(script, what="installing the service")
    except DeployError as e:
        if "password" in str(e).lower() or "sudo" in str(e).lower():
            note = f"could not install the service without a sudo password: on {tgt.host} run: {joined}"
            result.notes.append(note)
            echo(note)
            return
        raise
    result.service_installed = True
    echo(f"Service installed and started on {tgt.host}: journalctl -u har.service -f")


def _push_to_home(
    bundle: Path, target: str, ssh_options: Sequence[str], service: bool, port: str | None, baud: int,
    files: list[Path], echo: Callable[[str], Any],
) -> PushResult:
    from har.deploy.install import install

    res = install(bundle, target, ssh_options, service=service, port=port, baud=baud, install_har=False, echo=echo)
    return PushResult(
        target=target, remote_path=f"{res.home}/bundles/{res.bundle}", method="har home", files=[p.name for p in files],
        checksums_verified=True, runtime_installed=True, doctor=res.doctor, notes=res.notes,
    )
