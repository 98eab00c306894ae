"""MACs counted from the TFLite graph of the shipped default model (conv + LSTM + dense)."""

from __future__ import annotations

import json
from pathlib import Path

from har.deploy.macs import count_macs, model_cost
from har.runtime.interpreter import load_interpreter

MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / "model.tflite"
_WIN = json.loads((MODEL.parent / "metadata.json").read_text())["window"]
STEPS = -(-round(_WIN["window_s"] * _WIN["rate_hz"]) // 2)  # conv outputs at stride 2 (125 for 250 samples)


def test_default_model_macs_by_hand() -> None:
    interp, _ = load_interpreter(MODEL)
    macs = count_macs(interp)
    # Conv1D 5 taps x 3 axes -> 32 filters, stride 2: STEPS outputs x 32 x 15
    assert macs["conv"] == STEPS * 32 * 5 * 3
    # LSTM(64) over STEPS steps of 32 features: 4 gates x 64 x (32 + 64) per step
    assert macs["lstm gates"] == STEPS * 4 * 64 * (32 + 64)
    # Dense(6) on 64
    assert macs["fully-connected"] == 6 * 64


def test_model_cost_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HAR_CACHE_DIR", str(tmp_path))
    cost = model_cost(MODEL, repeats=3)
    assert cost.total == STEPS * 32 * 15 + STEPS * 4 * 64 * 96 + 384
    assert cost.ms_per_window is not None and cost.ms_per_window > 0
    line = cost.line()
    assert line.startswith(f"live model: {cost.total / 1e6:.2f} M MACs per window") and "not a device timing" in line
