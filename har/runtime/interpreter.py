"""Find a TFLite interpreter that really works here: ai-edge-litert, then tflite-runtime (needs
numpy < 2), then (last resort, when it happens to be installed) TensorFlow's own ``tf.lite``.

A runtime can import fine and still crash the process when it loads a model (a wheel built for
another CPU, an emulator bug: ai-edge-litert segfaults under qemu-user 7.2). `choose_runtime`
therefore loads the model and runs one inference in a CHILD process per candidate, in order,
and picks the first that survives; the result is cached per (model sha256, runtime versions,
interpreter, machine) in ``$HAR_CACHE_DIR`` (default ``~/.cache/har``), so a later start pays only
a hash. `RuntimeChoice.line` says in one line which runtime runs and why the others were skipped.

``HAR_RUNTIME=name[,name...]`` restricts (and orders) the candidates: ai-edge-litert,
tflite-runtime, tensorflow. Only the ``tensorflow`` candidate imports TensorFlow, and only when the
others fail."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from har.errors import RuntimeInferenceError

# (module, attribute, name shown to the user, distribution)
_RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime", "tflite-runtime"),
)
RUNTIME_NAMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")
EDGE_INSTALL_HINT = "pip install ai-edge-litert (or tflite-runtime 'numpy<2')"
PROBE_TIMEOUT_S = 120.0
_CACHE_VERSION = 1

# The child: import the runtime, load the model, allocate, run one inference on zeros. Prints
# one JSON line; anything else (an exception) goes to stderr as one line, exit 3. It imports
# neither har nor anything but numpy and the runtime, so it starts fast.
_PROBE_CHILD = r"""
import json, sys, time
mod_name, attr, path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
try:
    import numpy as np
    if mod_name == "tensorflow":
        import tensorflow as tf
        cls = tf.lite.Interpreter
    else:
        import importlib
        cls = getattr(importlib.import_module(mod_name), attr)
    t1 = time.perf_counter()
    if not path:
        print(json.dumps({"import_ms": (t1 - t0) * 1e3}))
        sys.exit(0)
    it = cls(model_path=path, num_threads=threads)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    it.invoke()
    for d in it.get_output_details():
        it.get_tensor(d["index"])
    t2 = time.perf_counter()
except BaseException as e:
    msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
    sys.stderr.write("HAR-PROBE-ERROR " + type(e).__name__ + ": " + msg + "\n")
    sys.exit(3)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_ms": (t2 - t1) * 1e3}))
"""


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime loads and runs a model here (``name`` None: none does), its version, and
    why each runtime before it was skipped (``skipped``: name -> reason)."""

    name: str | None
    version: str | None
    skipped: dict[str, str] = field(default_factory=dict)
    cached: bool = False
    probe_ms: float = 0.0
    model_loaded: bool = True  # False: the runtimes were only imported (no model to load)

    @property
    def line(self) -> str:
        """One line: which runtime runs, why the others were skipped."""
        why = "; ".join(f"{k} skipped: {v}" for k, v in self.skipped.items())
        if self.name is None:
            return f"no TFLite runtime can run the model ({why or 'none installed'}): {EDGE_INSTALL_HINT}"
        done = "loaded and ran the model" if self.model_loaded else "imported"
        how = "probe cached" if self.cached else f"{done} in a child process, {self.probe_ms:.0f} ms"
        return f"runtime: {self.name} {self.version or '?'} ({how})" + (f"; {why}" if why else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"line": self.line}


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _candidates() -> list[tuple[str, str, str, str]]:
    """(module, attr, name, distribution) in the order to try; HAR_RUNTIME restricts it."""
    all_ = [*_RUNTIMES, ("tensorflow", "lite.Interpreter", "tensorflow", "tensorflow")]
    want = os.environ.get("HAR_RUNTIME", "").strip()
    if not want:
        return all_
    names = [w.strip() for w in want.split(",") if w.strip()]
    bad = [n for n in names if n not in RUNTIME_NAMES]
    if bad:
        raise RuntimeInferenceError(f"HAR_RUNTIME: unknown runtime {bad[0]!r} (choose from {', '.join(RUNTIME_NAMES)})")
    by_name = {r[2]: r for r in all_}
    return [by_name[n] for n in names]


def _installed(mod_name: str) -> bool:
    return _origin(mod_name) is not None


def _origin(mod_name: str) -> str | None:
    """Where the runtime's top-level package is (and when it last changed); None: not installed."""
    try:
        spec = importlib.util.find_spec(mod_name.split(".")[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    where = spec.origin or ",".join(spec.submodule_search_locations or []) or "?"
    with contextlib.suppress(OSError, TypeError):
        where += f"@{os.stat(spec.origin).st_mtime_ns}" if spec.origin else ""
    return where


def _version_of(name: str, dist: str) -> str | None:
    if name == "tensorflow":
        return _dist_version("tensorflow") or _dist_version("tensorflow-cpu")
    return _dist_version(dist)


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _numpy_major() -> int | None:
    v = _dist_version("numpy")
    if not v:
        return None
    digits = "".join(ch for ch in v.split(".")[0] if ch.isdigit())
    return int(digits) if digits else None


def probe_runtime(
    mod_name: str, attr: str, model_path: Path | None, num_threads: int = 1
) -> tuple[bool, str, float]:
    """Load ``model_path`` with one runtime in a child process and run one inference (None:
    only import the runtime there).

    Returns ``(ok, reason, milliseconds)``; ``reason`` is one line when not ok (a crash by a
    signal is named: "crashed with SIGSEGV loading the model")."""
    import time

    t0 = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        p = subprocess.run(
            [sys.executable, "-c", _PROBE_CHILD, mod_name, attr, str(model_path or ""), str(num_threads)],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, f"did not load the model within {PROBE_TIMEOUT_S:.0f} s", (time.perf_counter() - t0) * 1e3
    ms = (time.perf_counter() - t0) * 1e3
    if p.returncode == 0:
        return True, "", ms
    if p.returncode < 0:
        what = "loading the model" if model_path else "on import"
        return False, f"crashed with {_signal_name(p.returncode)} {what}", ms
    err = [ln for ln in p.stderr.splitlines() if ln.startswith("HAR-PROBE-ERROR ")]
    if err:
        return False, err[-1][len("HAR-PROBE-ERROR "):][:200], ms
    tail = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
    return False, f"exited with {p.returncode}" + (f" ({tail[-1][:160]})" if tail else ""), ms


def _cache_dir() -> Path:
    if os.environ.get("HAR_CACHE_DIR"):
        return Path(os.environ["HAR_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "har"


def _cache_key(model_path: Path, cands: Sequence[tuple[str, str, str, str]]) -> str:
    h = hashlib.sha256()
    h.update(hashlib.sha256(model_path.read_bytes()).digest())
    parts = [str(_CACHE_VERSION), sys.executable, sys.version, platform.machine(), str(_dist_version("numpy"))]
    for mod, _attr, name, dist in cands:
        origin = _origin(mod)  # the module found first on sys.path, not just the installed distribution
        parts.append(f"{name}={_version_of(name, dist) if origin else None}@{origin}")
    h.update("\n".join(parts).encode())
    return h.hexdigest()


def _cache_read(key: str) -> RuntimeChoice | None:
    path = _cache_dir() / "runtime-probe.json"
    try:
        data = json.loads(path.read_text())
        hit = data.get(key) if isinstance(data, dict) else None
        if not isinstance(hit, dict):
            return None
        return RuntimeChoice(hit.get("name"), hit.get("version"), dict(hit.get("skipped") or {}), cached=True)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _cache_write(key: str, choice: RuntimeChoice) -> None:
    """Best effort (a read-only home, e.g. under systemd's ProtectHome, just means no cache)."""
    d = _cache_dir()
    path = d / "runtime-probe.json"
    with contextlib.suppress(OSError, ValueError):
        d.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        if len(data) > 32:  # a small cache: keep the newest entries
            data = dict(list(data.items())[-16:])
        data[key] = {"name": choice.name, "version": choice.version, "skipped": choice.skipped}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)


def choose_runtime(
    model_path: str | os.PathLike[str] | None, num_threads: int = 1, use_cache: bool = True
) -> RuntimeChoice:
    """The first runtime that loads ``model_path`` and runs it, each tried in a child process
    (``model_path`` None: the first that imports there; never cached). ``use_cache`` False probes
    afresh (and still records the result).

    Never raises for a broken runtime (it is a reason in ``skipped``); ``name`` is None when none
    works. Raises RuntimeInferenceError for a missing or invalid model file or a bad HAR_RUNTIME."""
    p = Path(model_path) if model_path is not None else None
    if p is not None:
        if not p.is_file():
            raise RuntimeInferenceError(f"no such model file: {p}")
        head = p.read_bytes()[:8]
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise RuntimeInferenceError(f"{p} is not a valid TFLite model (bad file identifier; re-run `har deploy`)")
    cands = _candidates()
    key = _cache_key(p, cands) if p is not None else ""
    if use_cache and key:
        hit = _cache_read(key)
        if hit is not None:
            return hit
    skipped: dict[str, str] = {}
    chosen: RuntimeChoice | None = None
    total_ms = 0.0
    for mod, attr, name, dist in cands:
        if not _installed(mod):
            skipped[name] = "not installed"
            continue
        version = _version_of(name, dist)
        if name == "tflite-runtime" and (_numpy_major() or 0) >= 2:
            skipped[name] = f"needs numpy<2 (numpy {_dist_version('numpy')} is installed)"
            continue
        ok, reason, ms = probe_runtime(mod, attr, p, num_threads)
        total_ms += ms
        if ok:
            chosen = RuntimeChoice(name, version, dict(skipped), probe_ms=total_ms, model_loaded=p is not None)
            break
        skipped[name] = reason
    if chosen is None:
        chosen = RuntimeChoice(None, None, skipped, probe_ms=total_ms, model_loaded=p is not None)
    if key:  # written even when not read (`har doctor` proves afresh; `har run` then starts from it)
        _cache_write(key, chosen)
    return chosen


def _interpreter_class(prefer: str | None = None, only: bool = False) -> tuple[Any, str]:
    """The first importable interpreter class and its runtime name (``only``: just ``prefer``)."""
    order = [r[:3] for r in _RUNTIMES]
    if prefer:
        order.sort(key=lambda r: r[2] != prefer)
        if only:
            order = [r for r in order if r[2] == prefer]
    for mod_name, attr, name in order:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001 - ImportError, or a wheel built for another numpy
            continue
        cls = getattr(mod, attr, None)
        if cls is not None:
            return cls, name
    if (not only or prefer == "tensorflow") and importlib.util.find_spec("tensorflow") is not None:
        try:
            import tensorflow as tf  # noqa: PLC0415 - last resort only

            return tf.lite.Interpreter, "tensorflow"
        except Exception:  # noqa: BLE001
            pass
    if only:
        raise RuntimeInferenceError(f"the TFLite runtime {prefer} cannot be imported")
    raise RuntimeInferenceError(f"no TFLite runtime found: {EDGE_INSTALL_HINT}")


def load_interpreter(
    model_path: str | os.PathLike[str], num_threads: int = 1, prefer: str | None = None, only: bool = False
) -> tuple[Any, str]:
    """Load a ``.tflite`` file and allocate its tensors, in this process.

    Returns ``(interpreter, runtime_name)``; ``runtime_name`` is ``ai-edge-litert``,
    ``tflite-runtime`` or ``tensorflow``. ``prefer`` tries that runtime first; with ``only`` it is
    the only one tried (after `choose_runtime` proved it in a child). ``num_threads`` is the CPU
    threads the interpreter may use. A missing runtime or a file that is not a valid model raise
    RuntimeInferenceError."""
    p = Path(model_path)
    if not p.is_file():
        raise RuntimeInferenceError(f"no such model file: {p}")
    if num_threads < 1:
        raise RuntimeInferenceError(f"num_threads must be at least 1, got {num_threads}")
    data = p.read_bytes()
    # A TFLite flatbuffer carries the identifier "TFL3" at bytes 4..8; checking it first avoids
    # handing obvious garbage to the C++ loader.
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise RuntimeInferenceError(f"{p} is not a valid TFLite model (bad file identifier; re-run `har deploy`)")
    cls, name = _interpreter_class(prefer, only=only)
    try:
        interp = cls(model_content=data, num_threads=num_threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RuntimeInferenceError(f"{p} could not be loaded by {name}: {first}") from None
    return interp, name
