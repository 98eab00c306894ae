"""The host side of scripts/check_pi.sh (run it through that script, as root): an arm64 root under
qemu-user, reached over ssh like a fresh Raspberry Pi.

For each runtime (ai-edge-litert + numpy 2; tflite-runtime 2.14 + numpy<2): `har push --install
--offline --service` of models/default into /home/pi/har-<runtime> (the same code `har deploy --to
... --install` runs after its conversion), `har doctor` there, `har replay` of a recording there
against the same replay on the host, `har run --port` there (under the non-systemd supervisor) on a
pty from `har emulate` on the host for --live-seconds with zero lost samples, and the venv's size.
Timings under qemu are not device timings."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
BUNDLE = HERE / "models" / "default"
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
        "Host harpi", "  HostName 127.0.0.1", f"  Port {port}", "  User pi", f"  IdentityFile {user_key}",
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


def host_replay() -> dict:
    r = subprocess.run([*HAR, "replay", str(BUNDLE), str(RECORDING), "--json"], capture_output=True, text=True,
                       check=True, cwd=HERE)
    return json.loads(r.stdout)


def check_runtime(rt: str, cfg: Path, root: Path, pty: str, live_s: float, limit_mb: float, host: dict) -> list[str]:
    """Everything for one runtime; returns failures (empty: passed)."""
    fails: list[str] = []
    home = f"/home/pi/har-{rt}"
    t0 = time.monotonic()
    r = subprocess.run(
        [*HAR, "push", str(BUNDLE), "--to", f"harpi:{home}", "--ssh-option", f"-F {cfg}", "--install", "--offline",
         "--runtime", rt, "--service", "--port", pty, "--json"],
        capture_output=True, text=True, timeout=3600, cwd=HERE,
    )
    for ln in r.stderr.splitlines():
        if ln.strip() and not ln.startswith(("{", " ")):
            say(f"  [{rt}] {ln}")
    if r.returncode != 0:
        return [f"{rt}: install failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}"]
    res = json.loads(r.stdout)
    say(f"[{rt}] installed in {time.monotonic() - t0:.0f} s (venv {'reused' if res['venv_reused'] else 'new'}; "
        f"service: {res['service']})")
    for c in res["doctor"]["checks"]:
        say(f"[{rt}]   doctor [{c['status'].upper():4}] {c['name']}: {c['detail']}")
    if not res["doctor"]["ok"]:
        fails.append(f"{rt}: har doctor fails on the arm64 root")
    runtime_detail = next(c["detail"] for c in res["doctor"]["checks"] if c["name"] == "runtime")
    if not runtime_detail.startswith(rt):
        fails.append(f"{rt}: the device runs {runtime_detail}")

    # the service: its `har run` has read the emulator's pty since the install; stop it (SIGTERM:
    # har run ends cleanly with its summary)
    from har.deploy.install import stop_service

    stop_service(f"harpi:{home}", ["-F", str(cfg)])
    log = (root / home.lstrip("/") / "har-run.log").read_text(errors="replace")
    n_service = len([ln for ln in log.splitlines() if ln.startswith('{"t"')])
    say(f"[{rt}] service (supervisor) made {n_service} predictions before it was stopped")
    if not n_service:
        fails.append(f"{rt}: the service made no prediction")

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
        r = subprocess.CompletedProcess(run.args, run.returncode, out, err)
        late = time.monotonic() - t_start
        if not opened:
            fails.append(f"{rt}: har run did not open {pty2} within 300 s")
    emu.stderr_file.seek(0)  # type: ignore[attr-defined]
    emu_stderr = emu.stderr_file.read()  # type: ignore[attr-defined]
    preds = [ln for ln in r.stdout.splitlines() if ln.startswith('{"t"')]
    summ = [json.loads(ln)["summary"] for ln in r.stderr.splitlines() if ln.startswith('{"summary"')]
    tx_dropped = [int(w.split("=", 1)[1]) for w in emu_stderr.split() if w.startswith("tx_dropped=")]
    if not summ:
        fails.append(f"{rt}: har run --port wrote no summary: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    else:
        s = summ[-1]
        streamed = s.get("samples", 0) / 50.0
        say(f"[{rt}] live on {pty2}: {s.get('samples')} samples ({streamed:.1f} s of stream), {len(preds)} "
            f"predictions, {s.get('dropped')} lost, {s.get('gaps')} gap(s), {s.get('invalid')} invalid; emulator: "
            f"{tx_dropped[-1] if tx_dropped else 0} lines dropped for want of a reader (run took {late:.0f} s)")
        if streamed < live_s:
            fails.append(f"{rt}: live run read {streamed:.1f} s of stream < {live_s} s")
        if s.get("dropped") or s.get("gaps") or (tx_dropped and tx_dropped[-1]):
            fails.append(f"{rt}: live run lost samples ({s.get('dropped')} lost, {s.get('gaps')} gaps, "
                         f"{tx_dropped[-1] if tx_dropped else 0} dropped by the emulator)")
        if not preds:
            fails.append(f"{rt}: live run made no prediction")

    # replay of a recording there, against the same replay on the host
    rec_inside = f"{home}/{RECORDING.name}"
    (root / rec_inside.lstrip("/")).write_bytes(RECORDING.read_bytes())
    r = ssh(cfg, f"{home}/venv/bin/har replay {home}/current {rec_inside} --json")
    if r.returncode != 0:
        fails.append(f"{rt}: har replay failed there: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    else:
        dev = json.loads(r.stdout.strip().splitlines()[-1])
        say(f"[{rt}] replay {RECORDING.name}: accuracy {dev['accuracy']:.4f} on arm64 ({dev['runtime']}), "
            f"{host['accuracy']:.4f} on this host ({host['runtime']}); {dev['windows']} windows")
        if abs(dev["accuracy"] - host["accuracy"]) > 1e-9 or dev["windows"] != host["windows"]:
            fails.append(f"{rt}: replay accuracy differs from the host's")

    r = ssh(cfg, f"du -sm $(readlink -f {home}/venv) | cut -f1")
    size = float(r.stdout.strip() or "nan")
    say(f"[{rt}] venv size on arm64: {size:.0f} MB (target <= {limit_mb:.0f} MB)")
    if not size <= limit_mb:
        fails.append(f"{rt}: venv is {size:.0f} MB > {limit_mb:.0f} MB")
    return fails


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--live-seconds", type=float, default=20.0)
    ap.add_argument("--venv-limit-mb", type=float, default=150.0)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES))
    a = ap.parse_args()
    os.environ.setdefault("HAR_CACHE_DIR", str(a.cache / "har-cache"))
    t0 = time.monotonic()
    host = host_replay()
    fails: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="har-check-pi-") as tmp,
        mounted(a.root),
        root_sshd(a.root, Path(tmp)) as cfg,
    ):
        r = ssh(cfg, "uname -m; python3 --version")
        say(f"device over ssh: {' '.join(r.stdout.split())}")
        for rt in a.runtimes.split(","):
            with emulator() as (pty, _):  # the service's stream
                fails += check_runtime(rt, cfg, a.root, pty, a.live_seconds, a.venv_limit_mb, host)
    say("not exercised here: systemd (no systemd as PID 1 in a chroot: --service ran `har run` under "
        "har-supervise.sh instead), boot start, real serial hardware, device timings")
    say(f"done in {time.monotonic() - t0:.0f} s")
    for f in fails:
        print(f"FAIL: {f}")
    if not fails:
        print("check_pi: all checks passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
