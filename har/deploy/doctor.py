"""`har doctor`: can this machine run a bundle? One line per check, each ok / warn / fail.

Checks the Python version, the TFLite runtime (ai-edge-litert, tflite-runtime, or TensorFlow's
``tf.lite`` as a last resort, each tried in a child process by `choose_runtime`, so a runtime
that crashes fails the check instead of doctor), numpy (tflite-runtime needs numpy < 2), that
TensorFlow is not needed, a bundle's checksums and that its model loads and classifies one
window, the active and previous bundles of a har home, serial port access and free disk space.
TensorFlow is imported in this process only when it is the runtime that works and a bundle is
given (never at import time); a serial port is never opened (opening resets many boards)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from har import __version__

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PYTHON = (3, 10)
DISK_WARN_MB = 100
DISK_FAIL_MB = 10
EDGE_INSTALL = "pip install 'har-edge[edge]'"

@dataclass(frozen=True)
class Check:
    """One result: ``status`` is ok, warn or fail; ``detail`` is one line."""

    name: str
    status: str
    detail: str


@dataclass
class DoctorReport:
    """All checks of one `har doctor` run."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status != FAIL for c in self.checks)

    def add(self, name: str, status: str, detail: str) -> Check:
        c = Check(name, status, " ".join(detail.split()))
        self.checks.append(c)
        return c

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "har_version": __version__, "checks": [asdict(c) for c in self.checks]}

    def format(self) -> str:
        """Aligned text, one line per check, and a summary line."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"[{c.status.upper():4}] {c.name:<{width}}  {c.detail}" for c in self.checks]
        n_fail = sum(c.status == FAIL for c in self.checks)
        n_warn = sum(c.status == WARN for c in self.checks)
        lines.append("all checks passed" if not (n_fail or n_warn) else f"{n_fail} failed, {n_warn} warning(s)")
        return "\n".join(lines)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def _check_python(rep: DoctorReport) -> None:
    v = sys.version_info
    s = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable}), har {__version__}"
    if (v.major, v.minor) < MIN_PYTHON:
        rep.add("python", FAIL, f"{s}: har needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}")
    else:
        rep.add("python", OK, s)


def _check_runtime(rep: DoctorReport, model: Path | None) -> str | None:
    """Adds the runtime check; returns the runtime name har will use (None: none).

    Each runtime is tried in a child process (`choose_runtime`): with a bundle it loads the model
    and runs one inference there, so a runtime that crashes (SIGSEGV, SIGILL) fails this check
    instead of passing it or taking doctor down. Without a bundle the runtimes are only imported."""
    from har.errors import HarError
    from har.runtime.interpreter import choose_runtime

    try:
        choice = choose_runtime(model, use_cache=False)
    except HarError as e:
        rep.add("runtime", FAIL, str(e))
        return None
    if choice.name is None:
        rep.add("runtime", FAIL, f"{choice.line} (32-bit ARM: see the README, 'On the device')")
        return None
    detail = choice.line.removeprefix("runtime: ")
    if choice.name == "tensorflow":
        rep.add("runtime", WARN, f"{detail} (tf.lite fallback: slow start, large; lighter: {EDGE_INSTALL})")
    else:
        rep.add("runtime", OK, detail)
    return choice.name


def _verified_model(bundle: Path) -> Path | None:
    """The bundle's model file when the bundle passes its checksums (a tampered model is never
    handed to a runtime, not even in a child); None otherwise (the bundle check reports why)."""
    from har.artifacts.bundle import MODEL_FILE, verify_bundle
    from har.errors import HarError

    try:
        verify_bundle(bundle)
    except HarError:
        return None
    return bundle / MODEL_FILE


def _check_numpy(rep: DoctorReport, runtime: str | None) -> None:
    v = _dist_version("numpy")
    if v is None:
        rep.add("numpy", FAIL, "numpy is not installed: pip install numpy")
        return
    if runtime == "tflite-runtime" or (runtime != "ai-edge-litert" and _dist_version("tflite-runtime")):
        if _version_tuple(v) >= (2,):
            rep.add("numpy", FAIL, f"numpy {v}, but tflite-runtime needs numpy < 2: pip install 'numpy<2'")
            return
        rep.add("numpy", OK, f"numpy {v} (< 2, as tflite-runtime needs)")
        return
    rep.add("numpy", OK, f"numpy {v}")


def _check_tensorflow(rep: DoctorReport, runtime: str | None) -> None:
    v = _dist_version("tensorflow") or _dist_version("tensorflow-cpu")
    if v is None:
        rep.add("tensorflow", OK, "not installed (not needed to run a bundle)")
    elif runtime == "tensorflow":
        rep.add("tensorflow", WARN, f"{v} installed and used as the runtime (slow start, large; {EDGE_INSTALL})")
    else:
        rep.add("tensorflow", OK, f"{v} installed, not used by `har run` (not needed on a device)")


def _check_bundle(rep: DoctorReport, bundle: Path, runtime: str | None) -> None:
    from har.artifacts.bundle import read_manifest, verify_bundle
    from har.errors import HarError

    try:
        meta = verify_bundle(bundle)
        n_files = len(read_manifest(bundle))
    except HarError as e:
        rep.add("bundle", FAIL, str(e))
        rep.add("model", FAIL, "not loaded (the bundle check failed)")
        return
    quant = meta.export.quantize if meta.export else "?"
    rep.add(
        "bundle",
        OK,
        f"{bundle}: {n_files} files match manifest.json (sha256); {len(meta.classes)} classes, {quant}, "
        f"{meta.window.window_samples} samples at {meta.window.rate_hz:g} Hz",
    )
    if runtime is None:
        rep.add("model", FAIL, "not loaded: no TFLite runtime runs it here (see the runtime check)")
        return
    _check_model(rep, bundle, meta, runtime)


def _check_model(rep: DoctorReport, bundle: Path, meta: Any, runtime: str) -> None:
    import numpy as np

    from har.errors import HarError
    from har.runtime.classifier import WindowClassifier

    try:
        t0 = time.perf_counter()
        # the runtime was proven on this model in a child process: load it with that one only
        clf = WindowClassifier.from_bundle(
            bundle, verify=False, use_batch_model=False, prefer_runtime=runtime, only_runtime=True
        )
        t1 = time.perf_counter()
        window = np.zeros((meta.window.window_samples, meta.n_channels), dtype=np.float32)
        window[:, -1] = 1.0  # at rest: 1 g on the last axis
        probs = clf.predict_one(window)
        t2 = time.perf_counter()
    except HarError as e:
        rep.add("model", FAIL, str(e))
        return
    except Exception as e:  # noqa: BLE001 - a runtime crash is a finding, not a doctor crash
        rep.add("model", FAIL, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
        return
    if not np.all(np.isfinite(probs)) or abs(float(np.sum(probs)) - 1.0) > 0.05:
        rep.add("model", FAIL, f"one window gave invalid probabilities {np.round(probs, 3).tolist()}")
        return
    label, conf = clf.label_of(probs)
    rep.add(
        "model",
        OK,
        f"loads in {clf.runtime_name} ({(t1 - t0) * 1e3:.0f} ms) and classifies one window in "
        f"{(t2 - t1) * 1e3:.1f} ms (input {clf.input_dtype}; at rest -> {label} {conf:.2f})",
    )


def _check_bundles(rep: DoctorReport, bundle: Path) -> None:
    """In a har home (`har push --install`): which bundle is active and which one a rollback
    would bring back."""
    home = bundle.parent if bundle.name == "current" else bundle.parent.parent
    cur, prev = home / "current", home / "previous"
    if not (cur.is_symlink() and (home / "bundles").is_dir()):
        return

    def describe(link: Path) -> str:
        target = link.resolve()
        try:
            from har.artifacts.metadata import load_metadata

            meta = load_metadata(target)
            created = f", created {meta.created}" if getattr(meta, "created", None) else ""
            return f"{target.name} ({len(meta.classes)} classes{created})"
        except Exception:  # noqa: BLE001 - a broken previous bundle is still worth naming
            return f"{target.name} (unreadable)"

    n = sum(1 for d in (home / "bundles").iterdir() if d.is_dir() and not d.name.startswith("."))
    prev_s = describe(prev) if prev.is_symlink() else "none"
    rep.add("bundles", OK, f"active {describe(cur)}; previous {prev_s}; {n} in {home / 'bundles'}")


def _user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return os.environ.get("USER", "?")


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def _in_group(name: str) -> bool:
    try:
        import grp

        gid = grp.getgrnam(name).gr_gid
    except (ImportError, KeyError):
        return False
    return gid in os.getgroups() or os.getegid() == gid


def _candidate_ports() -> list[str]:
    import glob

    found: list[str] = []
    for pattern in ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/serial0", "/dev/ttyAMA*", "/dev/cu.usb*"):
        found.extend(sorted(glob.glob(pattern)))
    return found[:6]


def _check_port(rep: DoctorReport, port: str | None) -> None:
    import stat

    user = _user_name()
    if port is None:
        cands = _candidate_ports()
        seen = f"candidates: {', '.join(cands)}" if cands else "no /dev/ttyUSB*, /dev/ttyACM* or /dev/serial0 present"
        if (
            hasattr(os, "geteuid")
            and os.geteuid() != 0
            and sys.platform.startswith("linux")
            and not _in_group("dialout")
        ):
            rep.add(
                "serial",
                WARN,
                f"not checked (pass --port); user {user} is not in group 'dialout' "
                f"(sudo usermod -aG dialout {user}, then log in again); {seen}",
            )
        else:
            rep.add("serial", OK, f"not checked (pass --port); {seen}")
        return
    p = Path(port)
    if not p.exists():
        cands = _candidate_ports()
        hint = f"present: {', '.join(cands)}" if cands else "no serial devices present: is the device plugged in?"
        rep.add("serial", FAIL, f"{port} does not exist ({hint})")
        return
    st = p.stat()
    kind = "character device" if stat.S_ISCHR(st.st_mode) else "not a character device"
    group = _group_name(st.st_gid)
    if not os.access(p, os.R_OK | os.W_OK):
        rep.add(
            "serial",
            FAIL,
            f"{port}: user {user} cannot read and write it (owner group '{group}'): "
            f"sudo usermod -aG {group if group != 'root' else 'dialout'} {user}, then log in again",
        )
        return
    status = OK if stat.S_ISCHR(st.st_mode) else WARN
    rep.add("serial", status, f"{port}: {kind}, readable and writable by {user} (group '{group}')")


def _check_disk(rep: DoctorReport, where: Path) -> None:
    p = where if where.exists() else Path.home()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        free_mb = shutil.disk_usage(p).free / 1e6
    except OSError as e:
        rep.add("disk", WARN, f"cannot read free space of {p}: {e.strerror}")
        return
    s = f"{free_mb:,.0f} MB free on {p}"
    if free_mb < DISK_FAIL_MB:
        rep.add("disk", FAIL, f"{s} (need at least {DISK_FAIL_MB} MB)")
    elif free_mb < DISK_WARN_MB:
        rep.add("disk", WARN, f"{s} (logs and updates need space)")
    else:
        rep.add("disk", OK, s)


def doctor(bundle: Path | None = None, port: str | None = None) -> DoctorReport:
    """Run every check; ``bundle`` adds the checksum and model checks, ``port`` the serial check."""
    rep = DoctorReport()
    _check_python(rep)
    model = _verified_model(Path(bundle)) if bundle is not None else None
    runtime = _check_runtime(rep, model)
    _check_numpy(rep, runtime)
    _check_tensorflow(rep, runtime)
    if bundle is not None:
        _check_bundle(rep, Path(bundle), runtime)
        _check_bundles(rep, Path(bundle))
    _check_port(rep, port)
    _check_disk(rep, Path(bundle) if bundle is not None else Path.cwd())
    return rep
