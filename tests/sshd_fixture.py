"""Test helpers: a real, throw-away OpenSSH server on 127.0.0.1, and tiny real bundles.

`start_sshd(tmp)` runs ``/usr/sbin/sshd -D -f <config>`` as the current user on a free port with a
fresh host key and user key (ssh-keygen) and writes an ssh client config (``-F``) with the host
alias ``hartest``. Needs the Debian packages openssh-server, openssh-client (and rsync for the
rsync path); callers skip with `missing_ssh_tools()` as the reason when they are absent.

`tiny_bundle(dir, quantize)` builds a real bundle (a tf_keras Dense model converted with tf.lite,
in a subprocess so the test process never imports TensorFlow; cached per process)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HOST_ALIAS = "hartest"
CLASSES = ("still", "shake", "wave")
RATE_HZ = 25.0
WINDOW_S = 0.64  # 16 samples
HOP_S = 0.16  # 4 samples


def missing_ssh_tools() -> str | None:
    """Why the ssh tests cannot run here (None: they can)."""
    missing = [t for t in (SSHD, "ssh", "ssh-keygen", "scp") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: apt-get install openssh-server openssh-client)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sftp_server() -> str | None:
    for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server"):
        if os.path.exists(p):
            return p
    return None


@dataclass
class SshServer:
    """A running test sshd: ``ssh_options`` (``-F config``) reach it as ``alias``."""

    alias: str
    port: int
    config: Path
    user: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def ssh_options(self) -> list[str]:
        return ["-F", str(self.config)]

    def target(self, path: str | os.PathLike[str]) -> str:
        return f"{self.alias}:{path}"


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def start_sshd(tmp: Path) -> Iterator[SshServer]:
    """Start sshd in ``tmp`` and stop it on exit."""
    tmp.mkdir(parents=True, exist_ok=True)
    host_key, user_key = tmp / "host_ed25519", tmp / "user_ed25519"
    _keygen(host_key)
    _keygen(user_key)
    auth = tmp / "authorized_keys"
    auth.write_text(Path(str(user_key) + ".pub").read_text())
    auth.chmod(0o600)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    port = _free_port()
    sftp = _sftp_server()
    cfg = tmp / "sshd_config"
    cfg.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {tmp / 'sshd.pid'}",
                f"AuthorizedKeysFile {auth}",
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "LogLevel ERROR",
                *([f"Subsystem sftp {sftp}"] if sftp else []),
                "",
            ]
        )
    )
    client = tmp / "ssh_config"
    client.write_text(
        "\n".join(
            [
                f"Host {HOST_ALIAS}",
                "  HostName 127.0.0.1",
                f"  Port {port}",
                f"  IdentityFile {user_key}",
                "  IdentitiesOnly yes",
                "  UserKnownHostsFile /dev/null",
                "  StrictHostKeyChecking no",
                "  LogLevel ERROR",
                "  BatchMode yes",
                "",
            ]
        )
    )
    log = tmp / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-f", str(cfg), "-E", str(log)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {proc.returncode}: {log.read_text() if log.exists() else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start listening within 10 s")
            time.sleep(0.05)
        yield SshServer(HOST_ALIAS, port, client, pwd.getpwuid(os.geteuid()).pw_name, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- tiny real bundles ------------------------------------------------------------------------------
_CONVERT = r"""
import sys
import numpy as np
from har.training._tf import import_tf
tf, tfk = import_tf()
out, window, n_ch, n_cls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tf.random.set_seed(0)
inp = tfk.Input(shape=(window, n_ch), batch_size=1)
x = tfk.layers.Flatten()(inp)
x = tfk.layers.Dense(8, activation="relu")(x)
model = tfk.Model(inp, tfk.layers.Dense(n_cls, activation="softmax")(x))
conv = tf.lite.TFLiteConverter.from_keras_model(model)
open(out + "/fp32.tflite", "wb").write(conv.convert())
rng = np.random.default_rng(0)
def rep():
    for _ in range(32):
        yield [rng.normal(0, 1, (1, window, n_ch)).astype(np.float32)]
conv = tf.lite.TFLiteConverter.from_keras_model(model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = rep
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
open(out + "/int8.tflite", "wb").write(conv.convert())
"""


@functools.cache
def _tflite_dir() -> Path:
    """fp32.tflite and int8.tflite of a tiny Dense classifier, converted once per process."""
    from har.config import WindowConfig

    w = WindowConfig(rate_hz=RATE_HZ, window_s=WINDOW_S, hop_s=HOP_S)
    d = Path(tempfile.mkdtemp(prefix="har-tiny-tflite-"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run(
        [sys.executable, "-c", _CONVERT, str(d), str(w.window_samples), "3", str(len(CLASSES))],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if p.returncode != 0:
        raise RuntimeError(f"tiny model conversion failed: {p.stderr[-2000:]}")
    return d


def tiny_bundle(directory: Path, quantize: str = "fp32", rocket_features: int = 0) -> Path:
    """A real bundle in ``directory``: model.tflite (fp32 or int8), metadata.json, report.txt and
    manifest.json. Its metadata's training config is har's default with ``rocket_features`` (the
    MiniRocket branch: 0 = none, as the tiny model has none)."""
    from har.artifacts.bundle import write_manifest
    from har.artifacts.metadata import ModelMetadata, Normalization, save_metadata
    from har.config import ExportConfig, TrainConfig, WindowConfig

    train_config = TrainConfig(window=WindowConfig(rate_hz=RATE_HZ, window_s=WINDOW_S, hop_s=HOP_S))
    train_config = dataclasses.replace(
        train_config, model=dataclasses.replace(train_config.model, rocket_features=rocket_features)
    )

    src = _tflite_dir() / ("int8.tflite" if quantize == "int8" else "fp32.tflite")
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, directory / "model.tflite")
    w = WindowConfig(rate_hz=RATE_HZ, window_s=WINDOW_S, hop_s=HOP_S)
    meta = ModelMetadata(
        classes=CLASSES,
        window=w,
        normalization=Normalization(mean=(0.01, -0.02, 0.98), std=(0.3, 0.25, 0.1)),
        train_config=train_config,
        data_fingerprint="test",
        export=ExportConfig(quantize=quantize),
        created="2026-01-01T00:00:00Z",
    )
    save_metadata(directory, meta)
    (directory / "report.txt").write_text("tiny test bundle\n")
    write_manifest(directory)
    return directory
