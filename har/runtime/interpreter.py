"""Find a TFLite interpreter: ai-edge-litert, then tflite-runtime, then (last resort, when it
happens to be installed) TensorFlow's own ``tf.lite``. Only the last one imports TensorFlow."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from har.errors import RuntimeInferenceError

# (module, attribute, name shown to the user)
_RUNTIMES = (
    ("ai_edge_litert.interpreter", "Interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "Interpreter", "tflite-runtime"),
)


def _interpreter_class(prefer: str | None = None) -> tuple[Any, str]:
    """The first importable interpreter class and its runtime name."""
    order = list(_RUNTIMES)
    if prefer:
        order.sort(key=lambda r: r[2] != prefer)
    for mod_name, attr, name in order:
        try:
            mod = importlib.import_module(mod_name)
        except Exception:  # noqa: BLE001 - ImportError, or a wheel built for another numpy
            continue
        cls = getattr(mod, attr, None)
        if cls is not None:
            return cls, name
    if importlib.util.find_spec("tensorflow") is not None:
        try:
            import tensorflow as tf  # noqa: PLC0415 - last resort only

            return tf.lite.Interpreter, "tensorflow"
        except Exception:  # noqa: BLE001
            pass
    raise RuntimeInferenceError(
        "no TFLite runtime found: install one with pip install 'har-edge[edge]' (ai-edge-litert)"
    )


def load_interpreter(
    model_path: str | os.PathLike[str], num_threads: int = 1, prefer: str | None = None
) -> tuple[Any, str]:
    """Load a ``.tflite`` file and allocate its tensors.

    Returns ``(interpreter, runtime_name)``; ``runtime_name`` is ``ai-edge-litert``,
    ``tflite-runtime`` or ``tensorflow``. ``num_threads`` is the CPU threads the interpreter may
    use. A missing runtime or a file that is not a valid model raise RuntimeInferenceError."""
    p = Path(model_path)
    if not p.is_file():
        raise RuntimeInferenceError(f"no such model file: {p}")
    if num_threads < 1:
        raise RuntimeInferenceError(f"num_threads must be at least 1, got {num_threads}")
    cls, name = _interpreter_class(prefer)
    data = p.read_bytes()
    # A TFLite flatbuffer carries the identifier "TFL3" at bytes 4..8; checking it first avoids
    # handing obvious garbage to the C++ loader.
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise RuntimeInferenceError(f"{p} is not a valid TFLite model (bad file identifier; re-run `har deploy`)")
    try:
        interp = cls(model_content=data, num_threads=num_threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RuntimeInferenceError(f"{p} could not be loaded by {name}: {first}") from None
    return interp, name
