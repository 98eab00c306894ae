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
_MODEL = _META["train_config"]["model"]
_REP = _MODEL.get("representation", "raw")
_WF = tuple(_MODEL.get("window_features") or ())  # the window-feature branch's MLP (har.training.window_features)
_EQ = bool(_MODEL.get("equalize_channels")) and _REP != "raw"  # fixed per-channel scales in the int8 export
N = round(_WIN["window_s"] * _WIN["rate_hz"])  # window samples
K = gravity_samples(N)  # gravity moving average taps (gravity_body*: "valid", the sequence loses K - 1)
T = N - K + 1 if _REP.startswith("gravity_body") else N  # samples the conv front end sees
C = input_channels(ModelConfig(representation=_REP))  # its channels (3 axes, 6 split, +1 magnitude)
STEPS = -(-T // 2)  # conv outputs at stride 2


def _window_features_fc() -> int:
    """The branch's matrix products: |m| (3 -> 1), the DFT of SPECTRA signals (N -> 2 x (N // 2 + 1)
    cos and sin rows), the band sums (2 x (N // 2 + 1) -> bands) and the MLP on N_FEATURES."""
    from har import signal_features as sf

    if not _WF:
        return 0
    f2 = 2 * (N // 2 + 1)
    units = (sf.N_FEATURES, *_WF)
    mlp = sum(a * b for a, b in zip(units[:-1], units[1:], strict=True))
    return 3 + sf.SPECTRA * N * f2 + sf.SPECTRA * f2 * len(sf.BANDS_HZ) + mlp


def _expected() -> dict[str, int]:
    # Conv1D 5 taps x C channels -> 32 filters, stride 2; in-graph representation: the gravity
    # moving average (depthwise, K taps per axis), the de-normalisation (depthwise, 1 tap per axis),
    # the equalizing scales (depthwise, 1 tap per channel) and the branch's de-normalisation
    conv = STEPS * 32 * 5 * C
    conv += T * 3 * K if _REP.startswith("gravity_body") else 0
    conv += T * 3 if _REP.endswith("magnitude") else 0
    conv += T * C if _EQ else 0
    conv += N * 3 if _WF else 0
    return {
        "conv": conv,
        # LSTM(64) over STEPS steps of 32 features: 4 gates x 64 x (32 + 64) per step
        "lstm gates": STEPS * 4 * 64 * (32 + 64),
        # Dense(6) on 64 (+ the branch's last layer) (+ the fixed sum of squares, 3 -> 1 per sample,
        # for |a|^2 - 1) (+ the branch's products)
        "fully-connected": 6 * (64 + (_WF[-1] if _WF else 0)) + (T * 3 if _REP.endswith("magnitude") else 0)
        + _window_features_fc(),
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
