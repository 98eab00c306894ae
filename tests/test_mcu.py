"""`har export-mcu`: TFLite Micro sources from an int8 bundle, compiled with the host g++."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sshd_fixture import CLASSES, tiny_bundle

from har.cli import cli
from har.deploy.mcu import c_string, export_mcu, tflm_add_method
from har.errors import ExportError
from har.runtime.interpreter import load_interpreter


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("mcu") / "bundle8", quantize="int8")


def _array_bytes(cc: str) -> bytes:
    m = re.search(r"alignas\(16\) const unsigned char g_har_model\[\] = \{(.*?)\};", cc, re.S)
    assert m, "no g_har_model array"
    return bytes(int(tok, 16) for tok in re.findall(r"0x[0-9a-fA-F]{2}", m.group(1)))


def test_export_mcu_files_and_bytes(int8_bundle: Path, tmp_path: Path) -> None:
    paths = export_mcu(int8_bundle, tmp_path / "mcu")
    assert sorted(p.name for p in paths) == ["har_model_config.h", "har_model_data.cc", "har_model_data.h"]
    raw = (int8_bundle / "model.tflite").read_bytes()
    cc = (tmp_path / "mcu" / "har_model_data.cc").read_text()
    assert _array_bytes(cc) == raw
    assert f"const unsigned int g_har_model_len = {len(raw)}u;" in cc
    cfg = (tmp_path / "mcu" / "har_model_config.h").read_text()
    interp, _ = load_interpreter(int8_bundle / "model.tflite")
    scale, zero = interp.get_input_details()[0]["quantization"]
    assert f"constexpr int kHarInputZeroPoint = {zero};" in cfg
    got = float(re.search(r"kHarInputScale = ([^f;]+)f;", cfg).group(1))
    assert np.float32(got) == np.float32(scale)
    assert "kHarInputIsInt8 = true" in cfg and "#define HAR_WINDOW_SAMPLES 16" in cfg
    assert '{"still", "shake", "wave"}' in cfg


def test_headers_compile_with_gxx(int8_bundle: Path, tmp_path: Path) -> None:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not installed (Debian package: g++)")
    out = tmp_path / "mcu"
    export_mcu(int8_bundle, out)
    raw_len = (int8_bundle / "model.tflite").stat().st_size
    adds = re.findall(r"\(resolver\)\.(Add\w+)\(\);", (out / "har_model_config.h").read_text())
    assert "AddFullyConnected" in adds and "AddSoftmax" in adds
    resolver_methods = " ".join(f"void {a}() {{}}" for a in adds)  # stands in for MicroMutableOpResolver
    n_ops = len(adds)
    check = tmp_path / "check.cc"
    check.write_text(
        f"""#include "har_model_data.h"
#include "har_model_config.h"
static_assert(HAR_MODEL_LEN == {raw_len}u, "model length");
static_assert(kHarNumClasses == {len(CLASSES)}, "classes");
static_assert(sizeof(kHarClassNames) / sizeof(kHarClassNames[0]) == {len(CLASSES)}, "names");
static_assert(kHarWindowSamples == 16 && kHarHopSamples == 4 && kHarNumChannels == 3, "window");
static_assert(sizeof(kHarNormMean) / sizeof(float) == 3 && sizeof(kHarNormStd) / sizeof(float) == 3, "norm");
static_assert(sizeof(kHarAxisOrder) == 4 && kHarAxisOrder[0] == 'x', "axes");
static_assert(kHarSampleRateHz == 25.0f && kHarInputIsInt8 && kHarOutputIsInt8, "rate, types");
static_assert(kHarInputScale > 0.0f && kHarOutputScale > 0.0f, "scales");
static_assert(kHarTensorArenaSize >= 1024 && kHarTensorArenaSize % 1024 == 0, "arena");
struct Resolver {{ {resolver_methods} }};
static_assert(HAR_NUM_OPS == {n_ops}, "op count");
int main() {{ Resolver r; HAR_ADD_OPS(r); return g_har_model_len == HAR_MODEL_LEN ? 0 : 1; }}
"""
    )
    for src in (check, out / "har_model_data.cc"):
        p = subprocess.run(
            [gxx, "-std=c++17", "-Wall", "-Werror", "-fsyntax-only", f"-I{out}", str(src)],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stderr


def test_refuses_non_int8_bundle(tmp_path: Path) -> None:
    b = tiny_bundle(tmp_path / "fp32", quantize="fp32")
    with pytest.raises(ExportError, match="int8"):
        export_mcu(b, tmp_path / "out")
    r = CliRunner().invoke(cli, ["export-mcu", str(b), "--out", str(tmp_path / "out")])
    assert r.exit_code != 0
    assert [ln for ln in r.output.splitlines() if ln.startswith("Error:")] == [r.output.strip()]
    assert not (tmp_path / "out").exists()


def test_refuses_a_minirocket_model_in_one_line(tmp_path: Path) -> None:
    """A model with the MiniRocket branch (hundreds of kB, megabytes of tensors) is refused by
    export-mcu and by `har deploy --target mcu` before converting, naming --rocket-features 0."""
    b = tiny_bundle(tmp_path / "rocket", quantize="int8", rocket_features=10000)
    with pytest.raises(ExportError, match=r"MiniRocket branch .*--rocket-features 0"):
        export_mcu(b, tmp_path / "mcu")
    assert not (tmp_path / "mcu").exists()
    r = CliRunner().invoke(cli, ["deploy", str(b), "--out", str(tmp_path / "out"), "--target", "mcu"])
    assert r.exit_code != 0 and "--rocket-features 0" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "out").exists()


def test_cli_export_mcu(int8_bundle: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["export-mcu", str(int8_bundle), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert r.output.count("wrote ") == 3


def test_c_string_escapes() -> None:
    assert c_string('a"b\\c') == '"a\\"b\\\\c"'
    assert c_string("é?") == '"\\303\\251\\077"'


def test_tflm_add_method_names() -> None:
    assert tflm_add_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert tflm_add_method("UNIDIRECTIONAL_SEQUENCE_LSTM") == "AddUnidirectionalSequenceLSTM"
    assert tflm_add_method("STRIDED_SLICE") == "AddStridedSlice"
    assert tflm_add_method("BATCH_MATMUL") == "AddBatchMatMul"
    assert tflm_add_method("CONCATENATION") == "AddConcatenation"


def test_header_registers_every_op_the_model_holds(int8_bundle: Path, tmp_path: Path) -> None:
    """The header registers exactly the ops the flatbuffer holds, in its order."""
    from har.deploy.mcu import model_ops

    export_mcu(int8_bundle, tmp_path / "mcu")
    cfg = (tmp_path / "mcu" / "har_model_config.h").read_text()
    interp, _ = load_interpreter(int8_bundle / "model.tflite")
    ops = model_ops(interp, (int8_bundle / "model.tflite").read_bytes())
    assert "DELEGATE" not in ops
    assert {"FULLY_CONNECTED", "SOFTMAX"} <= set(ops)
    assert f"#define HAR_NUM_OPS {len(ops)}" in cfg
    assert re.findall(r"\(resolver\)\.(Add\w+)\(\);", cfg) == [tflm_add_method(o) for o in ops]


def test_default_bundle_is_refused_in_one_line(tmp_path: Path) -> None:
    """models/default has the window features branch (float32 LOG, SQRT, comparisons and a DFT in an
    int8 model, not checked under TensorFlow Lite Micro): export-mcu says so in one line."""
    bundle = Path(__file__).resolve().parents[1] / "models" / "default"
    with pytest.raises(ExportError, match=r"window features branch .*without --window-features"):
        export_mcu(bundle, tmp_path / "mcu")
    assert not (tmp_path / "mcu").exists()
    r = CliRunner().invoke(cli, ["export-mcu", str(bundle), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1 and "--window-features" in r.output, r.output
