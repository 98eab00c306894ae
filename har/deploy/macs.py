"""The live model's cost: multiply-accumulates per window counted from the TFLite graph, and its
measured time per window on this machine.

Counted ops: CONV_2D (output elements x kernel h x w x input channels), DEPTHWISE_CONV_2D (output
elements x kernel h x w), FULLY_CONNECTED (output elements x input features), BATCH_MATMUL, and the
fused UNIDIRECTIONAL_SEQUENCE_LSTM (batch x steps x 4 gates x units x (inputs + units)).
Element-wise work (activations, gate products, softmax) is not counted: it is small next to these.
A time measured here says nothing about a Raspberry Pi; see the README for what is known."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelCost:
    """MACs per window by op kind, and the measured time per window here."""

    macs: dict[str, int] = field(default_factory=dict)
    ms_per_window: float | None = None
    runtime: str = ""
    machine: str = ""

    @property
    def total(self) -> int:
        return sum(self.macs.values())

    def line(self) -> str:
        parts = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(self.macs.items(), key=lambda kv: -kv[1]))
        s = f"live model: {_fmt(self.total)} MACs per window ({parts or 'no counted ops'})"
        if self.ms_per_window is not None:
            s += (f"; {self.ms_per_window:.2f} ms per window measured on this machine ({self.machine}, {self.runtime}, "
                  "1 thread; not a device timing)")
        return s


def _fmt(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 100_000 else f"{n / 1e3:.1f} K"


def _prod(shape: Any) -> int:
    return int(np.prod([int(v) for v in shape])) if len(shape) else 1


def count_macs(interp: Any) -> dict[str, int]:
    """MACs per invoke by op kind, from an allocated interpreter's op list."""
    tensors = {int(t["index"]): t for t in interp.get_tensor_details()}

    def shape(i: int) -> tuple[int, ...]:
        return tuple(int(v) for v in tensors[i]["shape"]) if i >= 0 and i in tensors else ()

    out: dict[str, int] = {}
    for op in interp._get_ops_details():  # the public API has no op list; every runtime has this one
        name = str(op.get("op_name", ""))
        ins = [int(i) for i in op.get("inputs", [])]
        outs = [int(i) for i in op.get("outputs", [])]
        if not outs:
            continue
        y = shape(outs[0])
        if name == "CONV_2D" and len(ins) >= 2:
            w = shape(ins[1])  # (out_ch, kh, kw, in_ch)
            n, kind = _prod(y) * _prod(w[1:]), "conv"
        elif name == "DEPTHWISE_CONV_2D" and len(ins) >= 2:
            w = shape(ins[1])  # (1, kh, kw, ch)
            n, kind = _prod(y) * w[1] * w[2], "conv"
        elif name == "FULLY_CONNECTED" and len(ins) >= 2:
            w = shape(ins[1])  # (units, in_features)
            n, kind = _prod(y) * w[-1], "fully-connected"
        elif name == "BATCH_MATMUL" and len(ins) >= 2:
            a = shape(ins[0])
            n, kind = _prod(y) * a[-1], "fully-connected"
        elif name == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(ins) >= 6:
            x = shape(ins[0])  # (batch, steps, inputs) (time-major models: (steps, batch, inputs))
            units = shape(ins[5])[0] if shape(ins[5]) else shape(ins[2])[0]  # recurrent weights (units, units)
            n, kind = _prod(x[:-1]) * 4 * units * (x[-1] + units), "lstm gates"
        else:
            continue
        out[kind] = out.get(kind, 0) + int(n)
    return out


def model_cost(model_path: str | Path, repeats: int = 50) -> ModelCost:
    """Count the MACs of ``model_path`` and time one window (median of ``repeats`` invokes after a
    warm-up) with the runtime `har run` would pick here (proven in a child process first)."""
    import platform

    from har.runtime.interpreter import choose_runtime, load_interpreter

    choice = choose_runtime(model_path)
    if choice.name is None:
        interp, runtime = load_interpreter(model_path)  # raises the usual one-line error
    else:
        interp, runtime = load_interpreter(model_path, prefer=choice.name, only=True)
    macs = count_macs(interp)
    inp = interp.get_input_details()[0]
    x = np.zeros(inp["shape"], dtype=inp["dtype"])
    times = []
    for i in range(repeats + 3):
        interp.reset_all_variables()
        interp.set_tensor(inp["index"], x)
        t = time.perf_counter()
        interp.invoke()
        if i >= 3:
            times.append((time.perf_counter() - t) * 1e3)
    cpu = platform.processor() or platform.machine()
    return ModelCost(macs=macs, ms_per_window=statistics.median(times), runtime=runtime, machine=cpu)
