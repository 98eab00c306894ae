"""Every model variant runs in BOTH device runtimes: the int8 export of the default recipe
(ensemble of 2, channel-equalized representation), of gravity_body_magnitude + attention
pooling and of a model with the MiniRocket branch (har.training.rocket; its int8 export keeps the
branch float32: float and int8 ops in one model), run in ai-edge-litert
(this venv) and in tflite-runtime 2.14 (the fallback runtime; it
needs numpy<2, so it runs in its own venv, built once under the cache directory
``$HAR_TFLITE_RUNTIME_VENV`` or ``~/.cache/har/tflite-runtime-2.14-py3.11``), on the same windows.

With the builtin reference kernels the two runtimes give bit-identical outputs. With their default
delegates (what `har run` uses) they are NOT bit-identical: ai-edge-litert 2.3's XNNPACK takes some
int8 ops that tflite-runtime 2.14 leaves to the reference kernels and rounds them differently, by
1-3 steps of the int8 probability output (1/256) on a tenth of the windows (measured on trained
models: same argmax on every window); the test bounds that.

Skips with the reason when that venv cannot be built here (no PyPI, no wheel for this Python)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from har.config import ModelConfig

TFLITE_RUNTIME = "tflite-runtime==2.14.*"
VENV = Path(os.environ.get("HAR_TFLITE_RUNTIME_VENV") or Path.home() / ".cache" / "har" / "tflite-runtime-2.14-py3.11")

# One window at a time with the LSTM state reset (as har.runtime.classifier); every output, raw.
RUN = """
import sys
import numpy as np
from {mod} import Interpreter
kw = {{}}
if sys.argv[4] == "reference":
    from {mod} import OpResolverType
    kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
it = Interpreter(model_path=sys.argv[1], num_threads=1, **kw)
it.allocate_tensors()
inp = it.get_input_details()[0]
outs = sorted(it.get_output_details(), key=lambda d: (-int(np.prod(d["shape"])), d["name"]))  # probabilities last
x = np.load(sys.argv[2], allow_pickle=False)
rows = []
for w in x:
    it.reset_all_variables()
    it.set_tensor(inp["index"], w[None].astype(inp["dtype"]))
    it.invoke()
    rows.append(np.concatenate([it.get_tensor(d["index"]).astype(np.float64).reshape(-1) for d in outs]))
np.save(sys.argv[3], np.asarray(rows), allow_pickle=False)
"""


@pytest.fixture(scope="session")
def tflite_runtime_python() -> Path:
    """The python of a venv with tflite-runtime and numpy<2 (built on first use, then reused)."""
    if sys.version_info[:2] > (3, 11):
        pytest.skip(f"tflite-runtime 2.14 has no wheel for Python {sys.version_info[0]}.{sys.version_info[1]}")
    py = VENV / "bin" / "python"
    check = [str(py), "-c", "import tflite_runtime.interpreter, numpy; assert numpy.__version__ < '2'"]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    VENV.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a venv for tflite-runtime: {made.stderr.strip()[-200:]}")
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", TFLITE_RUNTIME,
                          "numpy<2"], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0 or subprocess.run(check, capture_output=True).returncode != 0:
        last = (pip.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"cannot install {TFLITE_RUNTIME} with numpy<2 from PyPI here: {last[:200]}")
    return py


def _run(python: str, mod: str, model: Path, x: Path, out: Path, kernels: str) -> np.ndarray:
    p = subprocess.run([python, "-c", RUN.format(mod=mod), str(model), str(x), str(out), kernels],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return np.load(out, allow_pickle=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mc",
    [
        ModelConfig(lstm_units=(8,), conv_filters=8, ensemble=2),  # the default recipe's shape, small
        ModelConfig(lstm_units=(8,), conv_filters=8, representation="gravity_body_magnitude", pooling="attention"),
        ModelConfig(lstm_units=(8,), conv_filters=8, rocket_features=168),  # MiniRocket branch beside the LSTM
        ModelConfig(lstm_units=(8,), conv_filters=8, representation="gravity_body_magnitude", float_representation=True,
                    window_features=(16, 8)),  # models/default's shape: window features beside the LSTM
    ],
    ids=["default-ensemble-equalized", "gravity_body_magnitude-attention", "rocket", "window-features"],
)
def test_int8_export_gives_identical_outputs_in_both_runtimes(
    mc: ModelConfig, tflite_runtime_python: Path, tmp_path: Path
) -> None:
    from har.training._convert_worker import convert, export_graph, patch_and_list_ops
    from har.training._tf import import_tf
    from har.training.model import build_model, set_normalization

    tf, keras = import_tf()
    keras.utils.set_random_seed(0)
    w, c, k, rate = 50, 3, 4, 25.0
    m = build_model(mc, w, c, k, batch_size=1, rate_hz=rate)
    set_normalization(m, [0.1, 0.2, 0.9], [0.5, 0.5, 0.4])
    rng = np.random.default_rng(0)
    calib = (rng.normal(size=(24, w, c)) * 0.5 + [0.0, 0.0, 1.0]).astype(np.float32)
    if mc.window_features:  # the branch's standardisation from these windows in g (as har train sets it)
        from har.training.window_features import set_feature_stats, training_stats

        set_feature_stats(m, *training_stats(calib * np.float32([0.5, 0.5, 0.4]) + np.float32([0.1, 0.2, 0.9]), rate))
    if mc.rocket_features:  # the branch's fixed layers from a MiniRocket fitted on these windows
        pytest.importorskip("aeon", reason="aeon (MiniRocket) is not installed: pip install 'har-edge[reference]'")
        from har.training import rocket

        mean, std = [0.1, 0.2, 0.9], [0.5, 0.5, 0.4]  # the model's input is normalised; MiniRocket sees g
        mr = rocket.fit_minirocket(calib * np.float32(std) + np.float32(mean), mc.rocket_features, seed=0)
        rocket.set_rocket_weights(m, rocket.rocket_weights(mr.parameters, w, c, mc.rocket_features, mean, std))
        peaks = rocket.conv_peaks(m, calib)
        rocket.set_rocket_weights(m, rocket.rocket_weights(mr.parameters, w, c, mc.rocket_features, mean, std, peaks))
    assert mc.equalize_channels  # as `har deploy` exports it (har.training._convert_worker.export_graph)
    ref = build_model(mc, w, c, k, batch_size=None, rate_hz=rate)
    ref.set_weights(m.get_weights())
    single = export_graph(keras, mc, m, ref, calib, rate_hz=rate)[0]
    blob, ops, _ = patch_and_list_ops(convert(tf, single, "int8", calib, 1, False))
    assert all(o["builtin"] for o in ops)
    (tmp_path / "model.tflite").write_bytes(blob)
    if mc.rocket_features:  # the export keeps the branch float32: float CONV_2D / DEPTHWISE / MEAN beside int8
        from test_rocket import _op_output_dtypes

        kinds = _op_output_dtypes(tmp_path / "model.tflite")
        assert kinds["rocket_same_"] == {"float32"} and kinds["UNIDIRECTIONAL_SEQUENCE_LSTM"] == {"int8"}, kinds
    np.save(tmp_path / "x.npy", calib, allow_pickle=False)
    out = {}
    for kernels in ("reference", "default"):
        for name, python, mod in (("litert", sys.executable, "ai_edge_litert.interpreter"),
                                  ("tflrt", str(tflite_runtime_python), "tflite_runtime.interpreter")):
            out[name, kernels] = _run(python, mod, tmp_path / "model.tflite", tmp_path / "x.npy",
                                      tmp_path / f"{name}-{kernels}.npy", kernels)
    a, b = out["litert", "reference"], out["tflrt", "reference"]
    assert a.shape == b.shape and a.shape[0] == calib.shape[0]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)  # the same kernels: the same numbers
    probs = slice(a.shape[1] - k, None)  # outputs by size: the (wider) embedding, then the probabilities
    np.testing.assert_array_equal(a[:, probs], b[:, probs])
    a, b = out["litert", "default"], out["tflrt", "default"]
    assert np.abs(a[:, probs] - b[:, probs]).max() <= 4 / 256  # XNNPACK's rounding: a few int8 steps
