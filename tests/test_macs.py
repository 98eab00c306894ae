"""MACs counted from the TFLite graph of the shipped default model (conv + LSTM + dense)."""

from __future__ import annotations

import json
from pathlib import Path

from har.config import ModelConfig
from har.deploy.macs import count_macs, model_cost
from har.runtime.interpreter import load_interpreter
from har.training.model import gravity_samples, input_channels  # no TensorFlow at import

MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / "model.tflite"
_META = json.loads((MODEL.parent / "metadata.json").read_text())
_WIN = _META["window"]
_REP = _META["train_config"]["model"].get("representation", "raw")
N = round(_WIN["window_s"] * _WIN["rate_hz"])  # window samples
K = gravity_samples(N)  # gravity moving average taps (gravity_body*: "valid", the sequence loses K - 1)
T = N - K + 1 if _REP.startswith("gravity_body") else N  # samples the conv front end sees
C = input_channels(ModelConfig(representation=_REP))  # its channels (3 axes, 6 split, +1 magnitude)
STEPS = -(-T // 2)  # conv outputs at stride 2


def _expected() -> dict[str, int]:
    # Conv1D 5 taps x C channels -> 32 filters, stride 2; in-graph representation: the gravity
    # moving average (depthwise, K taps per axis) and the de-normalisation (depthwise, 1 tap per axis)
    conv = STEPS * 32 * 5 * C
    conv += T * 3 * K if _REP.startswith("gravity_body") else 0
    conv += T * 3 if _REP.endswith("magnitude") else 0
    return {
        "conv": conv,
        # LSTM(64) over STEPS steps of 32 features: 4 gates x 64 x (32 + 64) per step
        "lstm gates": STEPS * 4 * 64 * (32 + 64),
        # Dense(6) on 64 (+ the fixed sum of squares, 3 -> 1 per sample, for |a|^2 - 1)
        "fully-connected": 6 * 64 + (T * 3 if _REP.endswith("magnitude") else 0),
    }


def test_default_model_macs_by_hand() -> None:
    interp, _ = load_interpreter(MODEL)
    macs = count_macs(interp)
    exp = _expected()
    assert macs["conv"] == exp["conv"]
    assert macs["lstm gates"] == exp["lstm gates"]
    assert macs["fully-connected"] == exp["fully-connected"]


def test_model_cost_line(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HAR_CACHE_DIR", str(tmp_path))
    cost = model_cost(MODEL, repeats=3)
    assert cost.total == sum(_expected().values())
    assert cost.ms_per_window is not None and cost.ms_per_window > 0
    line = cost.line()
    assert line.startswith(f"live model: {cost.total / 1e6:.2f} M MACs per window") and "not a device timing" in line
