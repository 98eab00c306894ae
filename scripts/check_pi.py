"""The host side of scripts/check_pi.sh (run it through that script, as root): an arm64 root under
qemu-user, reached over ssh like a fresh Raspberry Pi.

On the host: `har simulate` a little data and `har train` a tiny model from it (seconds). Then for
each runtime (ai-edge-litert + numpy 2; tflite-runtime 2.14 + numpy<2): `har deploy MODEL_DIR --to
pi@127.0.0.1:HOME --install --service --port PTY` for the first (conversion once), `har push BUNDLE
--to ... --install --service` of that bundle for the second (one runtime --offline into a cached har
home, the other online, from PyPI on the device, into a fresh one), `har doctor` there, the systemd unit
that --service wrote checked with `systemd-analyze verify`, the supervisor that runs the service
where systemd does not (a chroot) restarting a killed `har run`, `har replay` of a recording there
against the same replay on the host, `har run --port` there on a pty from `har emulate` on the host
for --live-seconds with zero lost samples, and the venv's size. Ends with what was exercised and
what was not. Timings under qemu are not device timings.

What does not depend on each other overlaps (the check is mostly waiting on one emulated core): the
device is probed while the model trains, and the second runtime's install (a fresh venv from PyPI:
minutes under qemu) starts once the first `har deploy` has written the bundle, while the first
runtime's checks run."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
RECORDING = HERE / "data" / "sim" / "sim08.csv"
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
HAR = [sys.executable, "-m", "har.cli"]


def say(msg: str) -> None:
    print(f"check_pi: {msg}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mounted(root: Path) -> Iterator[None]:
    done: list[Path] = []
    try:
        for src in ("/proc", "/sys", "/dev", "/dev/pts"):
            dst = root / src.lstrip("/")
            dst.mkdir(parents=True, exist_ok=True)
            if subprocess.run(["mountpoint", "-q", str(dst)]).returncode != 0:
                subprocess.run(["mount", "--bind", src, str(dst)], check=True)
                done.append(dst)
        yield
    finally:
        for dst in reversed(done):
            subprocess.run(["umount", "-l", str(dst)], check=False)


@contextlib.contextmanager
def root_sshd(root: Path, run: Path) -> Iterator[Path]:
    """The root's own sshd on 127.0.0.1 with a throw-away host key and user key; the client config."""
    host_key, user_key = run / "host_key", run / "user_key"
    for k in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    inside = root / "etc" / "ssh" / "har_check_host_key"
    inside.write_bytes(host_key.read_bytes())
    inside.chmod(0o600)
    ssh_dir = root / "home" / "pi" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(Path(str(user_key) + ".pub").read_text())
    subprocess.run(["chroot", str(root), "chown", "-R", "pi:pi", "/home/pi/.ssh"], check=True)
    # useradd leaves the account locked ("!"), which sshd refuses even for keys: no password, unlocked
    subprocess.run(["chroot", str(root), "usermod", "-p", "*", "pi"], check=True)
    (root / "run" / "sshd").mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = run / "sshd.log"
    proc = subprocess.Popen(
        ["chroot", str(root), "/usr/sbin/sshd", "-D", "-p", str(port), "-o", "ListenAddress=127.0.0.1",
         "-h", "/etc/ssh/har_check_host_key", "-o", "UsePAM=no", "-o", "PasswordAuthentication=no",
         "-o", "PidFile=/run/sshd-har-check.pid", "-E", "/tmp/sshd-har-check.log"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(log, "w"),  # noqa: SIM115
    )
    cfg = run / "ssh_config"
    cfg.write_text("\n".join([
        "Host harpi 127.0.0.1", "  HostName 127.0.0.1", f"  Port {port}", "  User pi", f"  IdentityFile {user_key}",
        "  IdentitiesOnly yes", "  UserKnownHostsFile /dev/null", "  StrictHostKeyChecking no", "  LogLevel ERROR",
        "  BatchMode yes", "  ConnectTimeout 60", ""]))
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"FAIL: sshd in the root exited: {log.read_text()[-500:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise SystemExit("FAIL: sshd in the root did not listen within 60 s")
            time.sleep(0.2)
        yield cfg
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def ssh(cfg: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(cfg), "harpi", "sh -c " + shlex.quote(script)], capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def emulator(delay: float = 0.0) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`har emulate` of a recording on a pty. Its stderr (with the final tx_dropped count) is in
    ``stderr_file`` after the block."""
    err = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: an undrained pipe would block it
    p = subprocess.Popen([*HAR, "emulate", str(RECORDING), "--loop", "--delay", str(delay)],
                         stdout=subprocess.PIPE, stderr=err, text=True, cwd=HERE)
    p.stderr_file = err  # type: ignore[attr-defined]
    try:
        assert p.stdout is not None
        pty = p.stdout.readline().strip()
        os.chmod(pty, 0o666)  # the root's user pi opens it through the bind-mounted /dev/pts
        yield pty, p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGCONT)  # a paused emulator would not act on SIGTERM
        p.terminate()
        p.wait(10)


def _wait_open(pty: str, exclude: set[int], timeout: float) -> bool:
    """Wait until a process (other than ``exclude``) has ``pty`` open: /proc/*/fd, as seen from here
    (inside the root it shows under the root's path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for fd_dir in Path("/proc").glob("[0-9]*/fd"):
            try:
                if int(fd_dir.parent.name) in exclude:
                    continue
                for fd in fd_dir.iterdir():
                    if os.readlink(fd).endswith(pty):
                        return True
            except (OSError, ValueError):
                continue
        time.sleep(0.2)
    return False


def _tail(text: str) -> str:
    return (text.strip().splitlines() or ["?"])[-1]


def make_model(work: Path) -> Path:
    """A tiny model trained here on a little simulated data (a few seconds of training): what `har
    deploy` converts and installs. Small on purpose: the check is about the path, not accuracy."""
    data, model = work / "data", work / "model"
    subprocess.run([*HAR, "simulate", "--out", str(data), "--subjects", "4", "--seconds", "20", "--seed", "3"],
                   check=True, capture_output=True, text=True, cwd=HERE)
    r = subprocess.run([*HAR, "train", str(data), "--out", str(model), "--epochs", "30", "--lstm-units", "16",
                        "--conv-filters", "8", "--rotation-z", "0", "--no-augment", "--rocket-features", "0"],
                       capture_output=True, text=True, cwd=HERE, timeout=1200)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: har train on the host: {_tail(r.stderr)}")
    acc = next((ln for ln in r.stdout.splitlines() if ln.startswith("accuracy:")), "accuracy: ?")
    say(f"host: trained a tiny model on 4 simulated subjects x 20 s per activity ({acc}, held-out subject)")
    return model


@functools.cache  # one bundle, replayed once here for every runtime that installed it
def host_replay(bundle: Path) -> dict:
    r = subprocess.run([*HAR, "replay", str(bundle), str(RECORDING), "--json"], capture_output=True, text=True,
                       check=True, cwd=HERE)
    return json.loads(r.stdout)


def device_reaches_pypi(cfg: Path) -> str | None:
    """None when python3 on the device fetches PyPI's simple index; else why not (one line)."""
    probe = ("import urllib.request as u\n"
             "r = u.urlopen('https://pypi.org/simple/ai-edge-litert/', timeout=30)\n"
             "print('pypi', r.status)\n")
    r = ssh(cfg, "python3 -c " + shlex.quote(probe), timeout=120)
    return None if "pypi 200" in r.stdout else _tail(r.stderr + r.stdout)


def verify_unit(cfg: Path, root: Path, home: str) -> tuple[bool, str]:
    """`systemd-analyze verify` of the unit --service wrote: the device's own when it has one, else
    this host's (Debian 12: systemd 252, the version of Raspberry Pi OS bookworm) in a private mount
    namespace where /home/pi is the root's, so ExecStart's path is the device's file."""
    unit = f"{home}/har.service"
    if not (root / unit.lstrip("/")).is_file():
        return False, f"no unit file at {unit}"
    r = ssh(cfg, f"command -v systemd-analyze && systemd-analyze verify --man=no {shlex.quote(unit)}", timeout=300)
    if r.stdout.strip():
        ok = r.returncode == 0 and "har.service" not in r.stderr
        return ok, f"the device's systemd-analyze: {'OK' if ok else _tail(r.stderr)}"
    exe = shutil.which("systemd-analyze")
    if not exe or not shutil.which("unshare"):
        return False, "systemd-analyze is neither in the root nor on this host: not verified"
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    with tempfile.TemporaryDirectory(prefix="har-unit-") as tmp:
        copy = Path(tmp) / "har.service"
        copy.write_text((root / unit.lstrip("/")).read_text())
        pi_home = shlex.quote(str(root / "home" / "pi"))
        script = (f"mount -t tmpfs tmpfs /home && mkdir -p /home/pi && mount --bind {pi_home} /home/pi && "
                  f"{shlex.quote(exe)} verify --man=no {shlex.quote(str(copy))}")
        p = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    complaints = [ln for ln in p.stderr.splitlines() if "har.service" in ln]
    ok = p.returncode == 0 and not complaints
    where = f"this host's systemd-analyze ({version}; none in the root), the device's paths bind-mounted"
    return ok, f"{where}: {'OK' if ok else (complaints or [_tail(p.stderr)])[-1]}"


def _log_lines(root: Path, home: str) -> list[str]:
    return (root / home.lstrip("/") / "har-run.log").read_text(errors="replace").splitlines()


def supervisor_restarts(cfg: Path, root: Path, home: str, timeout: float = 180) -> tuple[bool, str]:
    """Kill the supervised `har run` (SIGKILL, as a crash) and wait for the supervisor to start a
    new one that predicts again."""
    pid = (root / home.lstrip("/") / "har-supervise.pid").read_text().strip()
    r = ssh(cfg, f"ps -o pid=,args= -g {pid}")
    victims = [ln.split()[0] for ln in r.stdout.splitlines() if "bin/har run" in ln]
    if not victims:
        return False, f"no `har run` in the supervisor's process group {pid}: {r.stdout.strip()!r}"
    starts0 = sum(ln.startswith("Running ") for ln in _log_lines(root, home))
    ssh(cfg, "kill -KILL " + " ".join(victims))
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        lines = _log_lines(root, home)
        starts = [i for i, ln in enumerate(lines) if ln.startswith("Running ")]
        if len(starts) > starts0 and any(ln.startswith('{"t"') for ln in lines[starts[-1]:]):
            return True, (f"killed `har run` (pid {', '.join(victims)}) with SIGKILL; the supervisor started a new "
                          f"one, predicting again after {time.monotonic() - t0:.0f} s")
        time.sleep(1)
    return False, f"no new `har run` predicting within {timeout:.0f} s of killing pid {', '.join(victims)}"


class Install:
    """One runtime's `har deploy MODEL_DIR --to ... --install --service` (or `har push BUNDLE ...`),
    started in the background: the next runtime's install (minutes under qemu when it makes a fresh
    venv from PyPI) runs while this one's checks do; check_runtime() waits for it.

    ``built``: a bundle an earlier runtime's `har deploy` wrote; this runtime then installs it with
    `har push BUNDLE --install` (the other half of issue 13's point 1) instead of converting again."""

    def __init__(self, rt: str, online: bool, cfg: Path, root: Path, model: Path, work: Path, pty: str,
                 built: Path | None = None) -> None:
        self.rt, self.online, self.built, self.pty = rt, online, built, pty
        self.home = f"/home/pi/har-{'online-' if online else ''}{rt}"
        if online:  # a fresh device directory each run: venv made and filled from PyPI on the device
            shutil.rmtree(root / self.home.lstrip("/"), ignore_errors=True)
        self.bundle = built or work / f"bundle-{rt}"
        self.command = "push" if built else "deploy"
        argv = ([*HAR, "push", str(self.bundle)] if built else
                [*HAR, "deploy", str(model), "--out", str(self.bundle), "--overwrite", "--batch", "0"])
        argv += ["--to", f"pi@127.0.0.1:{self.home}", "--ssh-option", f"-F {cfg}", "--install", "--service",
                 "--port", pty]
        argv += [] if online else ["--offline"]
        argv += ["--runtime", rt] if rt != RUNTIMES[0] else []  # the first: the default choice, no --runtime
        shown = " ".join({str(model): "MODEL_DIR", str(self.bundle): "BUNDLE"}.get(a, a) for a in argv[3:])
        say(f"[{rt}] har {shown.replace(str(work) + '/', '')}")
        self.out = tempfile.TemporaryFile(mode="w+")  # files, not pipes: nobody drains them meanwhile
        self.err = tempfile.TemporaryFile(mode="w+")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, text=True, cwd=HERE)
        self.ended = 0.0
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()

    def bundle_written(self, timeout: float = 3600) -> Path | None:
        """Wait until `har deploy` has written the bundle (moved into place only once verified) or
        has ended without one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.bundle / "manifest.json").is_file():
                return self.bundle
            if self.proc.poll() is not None:
                return self.bundle if (self.bundle / "manifest.json").is_file() else None
            time.sleep(0.5)
        return None

    def result(self, timeout: float = 3600) -> tuple[int, str, str]:
        rc = self.proc.wait(timeout)
        while not self.ended:  # the watcher stamps the end time right after wait() returns
            time.sleep(0.05)
        self.out.seek(0)
        self.err.seek(0)
        return rc, self.out.read(), self.err.read()


def check_runtime(inst: Install, cfg: Path, root: Path, live_s: float, limit_mb: float,
                  kill_test: bool) -> tuple[list[str], list[str]]:
    """Everything for one runtime once its install (started earlier) ends; returns (failures, what
    was exercised)."""
    fails: list[str] = []
    done: list[str] = []
    rt, online, built, home, bundle, command, pty = (inst.rt, inst.online, inst.built, inst.home, inst.bundle,
                                                     inst.command, inst.pty)
    rc, stdout, stderr = inst.result()
    t0 = inst.t0
    for ln in (stdout + stderr).splitlines():
        if ln.startswith(("127.0.0.1:", "Downloading wheels", "Creating a venv", "venv ", "Upgrading", "Active:",
                          "Service up", "Installed on the device", "live model:", "systemd is not running",
                          "Bundle written", "Error:")) or "does not run the bundle" in ln:
            say(f"  [{rt}] {ln}")
    if rc != 0:
        return [f"{rt}: har {command} --install failed: {_tail(stderr + stdout)}"], done
    steps = ("" if built else "conversion + ") + "install" + (" from PyPI on the device" if online else " --offline")
    say(f"[{rt}] har {command} ({steps} + service) took {inst.ended - t0:.0f} s")
    how = "(online: pip on the device from PyPI, fresh directory)" if online else "--offline (wheels from here)"
    what = "har push BUNDLE" if built else "har deploy MODEL_DIR"
    done.append(f"{rt}: `{what} --to pi@127.0.0.1:{home} --install --service` {how}"
                + (" (runtime chosen by the default order)" if rt == RUNTIMES[0] else ""))

    stages = {command: inst.ended - t0}
    t1 = time.monotonic()
    # har doctor there
    r = ssh(cfg, f"{home}/venv/bin/har doctor --bundle {home}/current --port {pty} --json")
    try:
        doc = json.loads(r.stdout)
    except json.JSONDecodeError:
        return fails + [f"{rt}: har doctor there printed no JSON: {_tail(r.stderr)}"], done
    for c in doc["checks"]:
        say(f"[{rt}]   doctor [{c['status'].upper():4}] {c['name']}: {c['detail']}")
    if not doc["ok"]:
        fails.append(f"{rt}: har doctor fails on the arm64 root")
    runtime_detail = next((c["detail"] for c in doc["checks"] if c["name"] == "runtime"), "?")
    if not runtime_detail.startswith(rt):
        fails.append(f"{rt}: the device runs {runtime_detail}")

    stages["doctor"], t1 = time.monotonic() - t1, time.monotonic()
    # the service: the unit written (not installed: no systemd) and verified; the supervisor running it
    ok, detail = verify_unit(cfg, root, home)
    say(f"[{rt}] systemd unit {home}/har.service written; systemd-analyze verify: {detail}")
    (done if ok else fails).append(f"{rt}: unit file verified ({detail})" if ok else f"{rt}: unit file: {detail}")
    n_before = len([ln for ln in _log_lines(root, home) if ln.startswith('{"t"')])
    if kill_test:
        ok, detail = supervisor_restarts(cfg, root, home)
        say(f"[{rt}] supervisor restart: {detail}")
        (done if ok else fails).append(f"{rt}: har-supervise.sh restarted a killed `har run`" if ok
                                       else f"{rt}: supervisor: {detail}")
    from har.deploy.install import stop_service

    stop_service(f"pi@127.0.0.1:{home}", ["-F", str(cfg)])  # SIGTERM: har run ends with its summary
    n_service = len([ln for ln in _log_lines(root, home) if ln.startswith('{"t"')])
    say(f"[{rt}] service (har-supervise.sh) made {n_service} predictions on {pty} before it was stopped "
        f"({n_before} when --service returned)")
    if not n_service:
        fails.append(f"{rt}: the service made no prediction")
    else:
        done.append(f"{rt}: the service ran under har-supervise.sh ({n_service} predictions from the host's pty)")

    stages["service"], t1 = time.monotonic() - t1, time.monotonic()
    # live: a fresh emulator, paused (SIGSTOP) right after it made its pty and resumed once `har run`
    # there has the pty open (a pty nobody reads fills up and the emulator drops lines, like a UART
    # FIFO: that loss would be the check's, not har's; after a pause it does not burst). Read for
    # live_s seconds; zero lost samples on both ends.
    with emulator() as (pty2, emu):
        os.kill(emu.pid, signal.SIGSTOP)
        t_start = time.monotonic()
        run = subprocess.Popen(
            ["ssh", "-F", str(cfg), "harpi",
             f"{home}/venv/bin/har run {home}/current --port {pty2} --duration {live_s + 5:.0f} --json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        opened = _wait_open(pty2, exclude={emu.pid}, timeout=300)
        os.kill(emu.pid, signal.SIGCONT)
        out, err = run.communicate(timeout=live_s + 300)
        late = time.monotonic() - t_start
        if not opened:
            fails.append(f"{rt}: har run did not open {pty2} within 300 s")
    emu.stderr_file.seek(0)  # type: ignore[attr-defined]
    emu_stderr = emu.stderr_file.read()  # type: ignore[attr-defined]
    preds = [ln for ln in out.splitlines() if ln.startswith('{"t"')]
    summ = [json.loads(ln)["summary"] for ln in err.splitlines() if ln.startswith('{"summary"')]
    tx_dropped = [int(w.split("=", 1)[1]) for w in emu_stderr.split() if w.startswith("tx_dropped=")]
    if not summ:
        fails.append(f"{rt}: har run --port wrote no summary: {_tail(err)}")
    else:
        s = summ[-1]
        streamed = s.get("samples", 0) / 50.0
        say(f"[{rt}] live on {pty2}: {s.get('samples')} samples ({streamed:.1f} s of stream), {len(preds)} "
            f"predictions, {s.get('dropped')} lost, {s.get('gaps')} gap(s), {s.get('invalid')} invalid; emulator: "
            f"{tx_dropped[-1] if tx_dropped else 0} lines dropped for want of a reader (run took {late:.0f} s)")
        lost = bool(s.get("dropped") or s.get("gaps") or (tx_dropped and tx_dropped[-1]))
        if streamed < live_s:
            fails.append(f"{rt}: live run read {streamed:.1f} s of stream < {live_s} s")
        if lost:
            fails.append(f"{rt}: live run lost samples ({s.get('dropped')} lost, {s.get('gaps')} gaps, "
                         f"{tx_dropped[-1] if tx_dropped else 0} dropped by the emulator)")
        if not preds:
            fails.append(f"{rt}: live run made no prediction")
        if streamed >= live_s and not lost and preds:
            done.append(f"{rt}: `har run --port` there read {streamed:.0f} s from `har emulate` here, 0 lost")

    stages["live"], t1 = time.monotonic() - t1, time.monotonic()
    # replay of a recording there, against the same replay (same bundle) on the host
    host = host_replay(bundle)
    rec_inside = f"{home}/{RECORDING.name}"
    (root / rec_inside.lstrip("/")).write_bytes(RECORDING.read_bytes())
    r = ssh(cfg, f"{home}/venv/bin/har replay {home}/current {rec_inside} --json")
    if r.returncode != 0:
        fails.append(f"{rt}: har replay failed there: {_tail(r.stderr)}")
    else:
        dev = json.loads(r.stdout.strip().splitlines()[-1])
        same = abs(dev["accuracy"] - host["accuracy"]) < 1e-9 and dev["windows"] == host["windows"] \
            and dev["counts"] == host["counts"]
        say(f"[{rt}] replay {RECORDING.name}: accuracy {dev['accuracy']:.4f} ({dev['correct']}/{dev['scored']}) on "
            f"arm64 ({dev['runtime']}), {host['accuracy']:.4f} ({host['correct']}/{host['scored']}) on this host "
            f"({host['runtime']}); {dev['windows']} windows; per-class counts {'equal' if same else 'DIFFER'}")
        if not same:
            fails.append(f"{rt}: replay differs from the host's: {dev['counts']} vs {host['counts']}")
        else:
            done.append(f"{rt}: `har replay` there = the host's ({dev['accuracy']:.4f}, {dev['windows']} windows)")

    stages["replay"] = time.monotonic() - t1
    r = ssh(cfg, f"du -sm $(readlink -f {home}/venv) | cut -f1")
    size = float(r.stdout.strip() or "nan")
    say(f"[{rt}] venv size on arm64: {size:.0f} MB (target <= {limit_mb:.0f} MB)")
    if not size <= limit_mb:
        fails.append(f"{rt}: venv is {size:.0f} MB > {limit_mb:.0f} MB")
    say(f"[{rt}] wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        + f"; {time.monotonic() - t0:.0f} s since its install started (the installs overlap; under qemu, on a "
        "shared machine)")
    return fails, done


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--venv-limit-mb", type=float, default=150.0)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    ap.add_argument("--online", default=os.environ.get("CHECK_PI_ONLINE", "tflite-runtime"),
                    help="the runtime installed online (from PyPI on the device, fresh directory); '' for none")
    a = ap.parse_args()
    os.environ.setdefault("HAR_CACHE_DIR", str(a.cache / "har-cache"))
    t0 = time.monotonic()
    fails: list[str] = []
    done: list[str] = []
    not_done = ["systemd as PID 1 (a chroot has none): the unit was written and verified, not installed or started; "
                "--service ran `har run` under har-supervise.sh instead",
                "start at boot", "real serial hardware (a pty from `har emulate`)",
                "device timings (everything ran under qemu-user: emulation timings only)",
                "32-bit Raspberry Pi OS (armv7l): no runtime wheel on PyPI for Python 3.11 (see README)"]
    runtimes = a.runtimes.split(",")
    used = {f"har-{'online-' if rt == a.online else ''}{rt}" for rt in runtimes}
    for stale in (a.root / "home" / "pi").glob("har-*"):  # homes of earlier versions of this check
        if stale.is_dir() and stale.name not in used:
            shutil.rmtree(stale, ignore_errors=True)
    with (
        tempfile.TemporaryDirectory(prefix="har-check-pi-") as tmp,
        mounted(a.root),
        root_sshd(a.root, Path(tmp)) as cfg,
    ):
        work = Path(tmp)
        t_model = time.monotonic()
        training = ThreadPoolExecutor(1).submit(make_model, work)  # meanwhile: the device is looked at
        r = ssh(cfg, "uname -m; python3 --version")
        say(f"device over ssh: {' '.join(r.stdout.split())}")
        online = a.online if a.online in runtimes else ""
        if online:
            why = device_reaches_pypi(cfg)
            if why:
                say(f"the device cannot reach PyPI ({why}): {online} installed --offline too")
                not_done.append(f"the online install (the device cannot reach PyPI: {why})")
                online = ""
            else:
                say("the device reaches PyPI (python3 there fetched https://pypi.org/simple/ai-edge-litert/: 200)")
        model = training.result()
        say(f"host: simulate + train took {time.monotonic() - t_model:.0f} s")
        from har.deploy.install import build_wheel

        build_wheel(work / "wheel", echo=say)  # into HAR_CACHE_DIR: the installs below share it, none builds
        with contextlib.ExitStack() as stack:
            ptys = [stack.enter_context(emulator())[0] for _ in runtimes]  # each service's stream
            installs = [Install(runtimes[0], runtimes[0] == online, cfg, a.root, model, work, ptys[0])]
            stack.callback(lambda: [i.proc.kill() for i in installs if i.proc.poll() is None])  # on a failure
            if len(runtimes) > 1:  # converted once (by the first `har deploy`), pushed by the others
                built = installs[0].bundle_written()
                installs += [Install(rt, rt == online, cfg, a.root, model, work, pty, built=built)
                             for rt, pty in zip(runtimes[1:], ptys[1:], strict=True)]
            for i, inst in enumerate(installs):
                f, d = check_runtime(inst, cfg, a.root, a.live_seconds, a.venv_limit_mb, kill_test=i == 0)
                fails += f
                done += d
    say(f"done in {time.monotonic() - t0:.0f} s")
    say("exercised:")
    for d in done:
        say(f"  + {d}")
    say("not exercised:")
    for n in not_done:
        say(f"  - {n}")
    for f in fails:
        print(f"FAIL: {f}")
    if not fails:
        print("check_pi: all checks passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
