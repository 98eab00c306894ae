"""Firmware side of wire protocol v1: the C encoder (firmware_bridge/firmware/har_protocol.c) against
the shared test vectors, the Python encoder and the Python parser; the AVR build (size) and a short
simavr run whose UART output must parse as protocol lines."""

from __future__ import annotations

import filecmp
import json
import random
import re
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

from har.wire.protocol import MAX_LINE, Corrupt, Header, LineParser, Log, Sample, crc8, encode_header, encode_sample

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "firmware_bridge"
FW = BRIDGE / "firmware"
VECTORS: list[dict[str, Any]] = json.loads((BRIDGE / "test_vectors.json").read_text())
ATMEGA328P_FLASH = 32768 - 512  # minus the Optiboot bootloader of an Uno
ATMEGA328P_SRAM = 2048
AVR_SKIP = "gcc-avr not installed (scripts/test.sh installs it)"


def _command(v: dict[str, Any], cap: int = MAX_LINE + 1) -> str:
    if v["kind"] == "header":
        return f"H {v['rate_hz']} {v['range_g']} {cap} {v['device']}"
    return f"S {v['seq']} {v['x']} {v['y']} {v['z']} {cap}"


def _python_line(v: dict[str, Any]) -> bytes:
    if v["kind"] == "header":
        return encode_header(Header(float(v["rate_hz"]), float(v["range_g"]), device=v["device"]))
    return encode_sample(v["seq"], v["x"], v["y"], v["z"])


def _expected_event(v: dict[str, Any]) -> Header | Sample:
    if v["kind"] == "header":
        return Header(float(v["rate_hz"]), float(v["range_g"]), "mg", "xyz", v["device"], 1)
    return Sample(v["seq"], v["x"], v["y"], v["z"])


def _int16_min(v: dict[str, Any]) -> bool:
    return v["kind"] == "sample" and -32768 in (v["x"], v["y"], v["z"])


def _build(cmd: list[str], timeout: float = 120) -> None:
    """Runs a compiler command; a failure shows the compiler's messages."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"build failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def host_vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no host C compiler (gcc/cc) on PATH: C encoder not tested")
    exe = tmp_path_factory.mktemp("host_vectors") / "host_vectors"
    _build(
        [gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(FW), "-o", str(exe),
         str(FW / "host_vectors.c"), str(FW / "har_protocol.c")]
    )  # fmt: skip
    return exe


def _run_c(exe: Path, commands: list[str]) -> list[bytes]:
    out = subprocess.run([str(exe)], input="\n".join(commands).encode() + b"\n", capture_output=True, check=True,
                         timeout=30).stdout  # fmt: skip
    lines = out.split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == len(commands)
    return [line + b"\n" for line in lines]


def test_vectors_are_well_formed() -> None:
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == {"header", "sample"}
    samples = [v for v in VECTORS if v["kind"] == "sample"]
    assert {0, 2**32 - 1} <= {v["seq"] for v in samples}
    assert {-32768, 0, 32767} <= {v[k] for v in samples for k in "xyz"}
    assert len({v["rate_hz"] for v in VECTORS if v["kind"] == "header"}) >= 6
    for v in VECTORS:
        if v["line"] is not None:
            line = v["line"].encode("ascii")
            assert line.endswith(b"\n") and len(line) <= MAX_LINE
            body, hh = line[:-1].rsplit(b"*", 1)
            assert int(hh, 16) == crc8(body) and hh == hh.upper()


def test_c_crc8_check_value(host_vectors: Path) -> None:
    assert _run_c(host_vectors, ["C 123456789", "C #HAR", "C "]) == [
        b"!crc=F4\n",
        b"!crc=%02X\n" % crc8(b"#HAR"),
        b"!crc=00\n",
    ]


def test_c_encoder_matches_vectors(host_vectors: Path) -> None:
    got = _run_c(host_vectors, [_command(v) for v in VECTORS])
    for v, line in zip(VECTORS, got, strict=True):
        want = b"!ERR\n" if v["line"] is None else v["line"].encode("ascii")
        assert line == want, v


def test_c_encoder_respects_buffer_capacity(host_vectors: Path) -> None:
    valid = [v for v in VECTORS if v["line"] is not None]
    commands = [_command(v, cap=len(v["line"]) + 1) for v in valid] + [_command(v, cap=len(v["line"])) for v in valid]
    got = _run_c(host_vectors, commands)
    assert got[: len(valid)] == [v["line"].encode("ascii") for v in valid]
    assert got[len(valid) :] == [b"!ERR\n"] * len(valid)


def test_python_encoder_matches_vectors() -> None:
    for v in VECTORS:
        if _int16_min(v):
            continue  # checked by test_int16_min_is_a_valid_sample_value
        if v["line"] is None:
            with pytest.raises(ValueError):
                _python_line(v)
        else:
            assert _python_line(v) == v["line"].encode("ascii"), v


def test_c_and_python_encoders_agree_on_random_input(host_vectors: Path) -> None:
    rng = random.Random(1234)
    name_chars = string.ascii_letters + string.digits + "_.-"
    vs: list[dict[str, Any]] = []
    for _ in range(2000):
        vs.append(
            {
                "kind": "sample",
                "seq": rng.choice([rng.randrange(2**32), rng.randrange(1000)]),
                "x": rng.randint(-32767, 32767),
                "y": rng.randint(-4096, 4096),
                "z": rng.randint(-32767, 32767),
            }
        )
    for _ in range(300):
        vs.append(
            {
                "kind": "header",
                "rate_hz": rng.choice([rng.randint(1, 65535), 25, 50, 100]),
                "range_g": rng.randint(1, 255),
                "device": "".join(rng.choices(name_chars, k=rng.randint(1, 24))),
            }
        )
    c_lines = _run_c(host_vectors, [_command(v) for v in vs])
    assert c_lines == [_python_line(v) for v in vs]
    assert LineParser().feed(b"".join(c_lines)) == [_expected_event(v) for v in vs]


def test_python_parser_decodes_c_output_exactly(host_vectors: Path) -> None:
    valid = [v for v in VECTORS if v["line"] is not None and not _int16_min(v)]
    stream = b"".join(_run_c(host_vectors, [_command(v) for v in valid]))
    events = LineParser().feed(stream)
    assert events == [_expected_event(v) for v in valid]


def test_int16_min_is_a_valid_sample_value(host_vectors: Path) -> None:
    """PROTOCOL.md: x/y/z are int16 (-32768..32767). The C encoder (int16_t arguments) can send
    -32768; the Python encoder and parser must accept it, or a device reading full scale loses samples."""
    vs = [v for v in VECTORS if _int16_min(v)]
    assert vs
    c_lines = _run_c(host_vectors, [_command(v) for v in vs])
    assert c_lines == [v["line"].encode("ascii") for v in vs]
    assert LineParser().feed(b"".join(c_lines)) == [_expected_event(v) for v in vs]
    assert [_python_line(v) for v in vs] == c_lines


def test_sketch_uses_the_same_protocol_unit() -> None:
    for name in ("har_protocol.c", "har_protocol.h"):
        assert filecmp.cmp(FW / name, FW / "har_stream" / "src" / name, shallow=False), (
            f"har_stream/src/{name} differs from firmware/{name}: "
            "run `make -C firmware_bridge/firmware/avr sync-sketch`"
        )


# --- AVR build and simulation --------------------------------------------------------------------
@pytest.fixture(scope="module")
def avr_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("avr-gcc") is None:
        pytest.skip(AVR_SKIP)
    out = tmp_path_factory.mktemp("avr")
    elf = out / "har_stream.elf"
    _build(
        ["avr-gcc", "-mmcu=atmega328p", "-DF_CPU=16000000UL", "-Os", "-std=gnu99", "-Wall", "-Wextra", "-Werror",
         "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-o", str(elf),
         str(FW / "avr" / "main.c"), str(FW / "har_protocol.c")]
    )  # fmt: skip
    return elf


def _avr_sizes(elf: Path) -> tuple[int, int]:
    """(flash bytes = text + data, sram bytes = data + bss) from `avr-size` (Berkeley format)."""
    out = subprocess.run(["avr-size", str(elf)], capture_output=True, text=True, check=True, timeout=30).stdout
    text, data, bss = (int(x) for x in out.splitlines()[1].split()[:3])
    return text + data, data + bss


def test_avr_firmware_fits_atmega328p(avr_elf: Path) -> None:
    flash, sram = _avr_sizes(avr_elf)
    print(f"har_stream.elf: flash {flash} B of {ATMEGA328P_FLASH}, static sram {sram} B of {ATMEGA328P_SRAM}")
    assert 0 < flash <= ATMEGA328P_FLASH
    assert sram <= ATMEGA328P_SRAM // 2  # leave room for the stack (line buffers live there)


def test_avr_makefile_builds(tmp_path: Path) -> None:
    if shutil.which("avr-gcc") is None or shutil.which("make") is None:
        pytest.skip(AVR_SKIP if shutil.which("avr-gcc") is None else "make not installed")
    _build(["make", "-C", str(FW / "avr"), f"OUT={tmp_path}", "RATE=100"])
    assert (tmp_path / "har_stream.hex").stat().st_size > 0


def test_sketch_compiles_against_core_stubs(tmp_path: Path) -> None:
    """The Arduino sketch cannot be built with Debian's Arduino core (see firmware_bridge/README.md);
    compile it with avr-g++ against declaration-only stubs so syntax/type errors are still caught."""
    if shutil.which("avr-g++") is None:
        pytest.skip(AVR_SKIP)
    _build(
        ["avr-g++", "-mmcu=atmega328p", "-DF_CPU=16000000UL", "-Os", "-Wall", "-Wextra", "-Werror", "-x", "c++",
         "-include", "Arduino.h", "-I", str(FW / "ci_stubs"), "-c", "-o", str(tmp_path / "sketch.o"),
         str(FW / "har_stream" / "har_stream.ino")]
    )  # fmt: skip


_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def simavr_uart_bytes(console: bytes) -> bytes:
    """simavr prints each UART line as ESC[32m<line, control chars shown as '.'>ESC[0m; rebuild the bytes."""
    out = []
    for raw in _ANSI.sub(b"", console).splitlines():
        if raw.endswith(b"."):  # the '\n' the firmware sent
            out.append(raw[:-1] + b"\n")
    return b"".join(out)


def test_avr_firmware_streams_protocol_in_simavr(avr_elf: Path) -> None:
    if shutil.which("simavr") is None:
        pytest.skip("simavr not installed (apt-get install simavr)")
    try:
        proc = subprocess.run(["simavr", "-m", "atmega328p", "-f", "16000000", str(avr_elf)], capture_output=True,
                              timeout=1.5)  # fmt: skip
        console = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:  # the firmware never exits: the timeout is the normal end
        console = (e.stdout or b"") + (e.stderr or b"")
    events = LineParser().feed(simavr_uart_bytes(console))
    assert not [e for e in events if isinstance(e, Corrupt)], console[:2000]
    logs = [e for e in events if isinstance(e, Log)]
    headers = [e for e in events if isinstance(e, Header)]
    samples = [e for e in events if isinstance(e, Sample)]
    assert logs and logs[0].text.startswith("har_stream avr boot")
    assert headers and headers[0].rate_hz == 50 and headers[0].range_g == 4 and headers[0].units == "mg"
    assert headers[0].device in ("uno-synthetic", "uno-mpu6050")
    assert isinstance(events[len(logs)], Header), "the header must precede the first sample"
    assert len(samples) >= 10, f"only {len(samples)} samples in the simavr run"
    assert [s.seq for s in samples] == list(range(len(samples))), "seq must start at 0 and have no gaps"
    for s in samples:
        assert all(-4096 <= v <= 4096 for v in (s.x, s.y, s.z))  # +-4 g in milli-g
    if len(samples) > 100:  # more than 2 s simulated: the header must have been repeated
        assert len(headers) >= 2
