"""FileSource / ReplaySource / open_source, and SerialSource over pyserial's loop:// (no device)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from har.errors import CaptureError, DataError, PortError, ProtocolError
from har.recording.format import Recording, RecordingMeta, write_recording
from har.sources import open_source
from har.sources.file import FileSource, ReplaySource
from har.sources.serial import SerialSource
from har.wire.protocol import Header, encode_header, encode_sample


def _rec_with_breaks(path: Path, rate: float = 100.0) -> Recording:
    """300 samples: a seq gap (3 lost) before row 100, a time break before row 200; two labels."""
    n = 300
    seq = np.arange(n, dtype=np.int64)
    seq[100:] += 3
    t = seq / rate
    t[200:] += 5.0
    xyz = np.random.default_rng(0).normal(0, 0.5, (n, 3)).astype(np.float32)
    labels = np.array(["walking"] * 150 + ["sitting"] * 150)
    rec = Recording(t, xyz, labels, seq, RecordingMeta(subject="s7", device="dev", rate_hz=rate, complete=True))
    write_recording(path, rec)
    return rec


def _concat(blocks: list) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([getattr(b, k) for b in blocks]) for k in ("time", "xyz", "seq", "labels"))


def test_file_source_blocks_labels_segments(tmp_path: Path) -> None:
    rec = _rec_with_breaks(tmp_path / "r.csv")
    src = FileSource(tmp_path / "r.csv", block=64)
    assert src.info.rate_hz == 100.0 and src.info.subject == "s7"
    blocks = list(src.blocks())
    assert all(len(b) <= 64 for b in blocks)
    t, xyz, seq, labels = _concat(blocks)
    np.testing.assert_allclose(t, rec.time, atol=1e-4)
    np.testing.assert_allclose(xyz, rec.xyz, atol=1e-5)
    assert (seq == rec.seq).all() and (labels == rec.labels).all()
    starts = np.cumsum([0] + [len(b) for b in blocks[:-1]])
    assert [int(s) for s, b in zip(starts, blocks, strict=True) if b.break_before] == [100, 200]
    assert src.stats.samples == 300 and src.stats.dropped == 3 and src.stats.gaps == [[100, 3]]


def test_file_source_stop_and_missing(tmp_path: Path) -> None:
    _rec_with_breaks(tmp_path / "r.csv")
    src = FileSource(tmp_path / "r.csv", block=10)
    got = 0
    for b in src.blocks():
        got += len(b)
        src.stop()
    assert got == 10
    with pytest.raises(DataError, match="no such recording"):
        FileSource(tmp_path / "nope.csv")


def test_replay_paces_to_speed(tmp_path: Path) -> None:
    n, rate = 200, 100.0  # 2 s of data
    rec = Recording(np.arange(n) / rate, np.zeros((n, 3), np.float32), np.array(["a"] * n), np.arange(n),
                    RecordingMeta(rate_hz=rate, complete=True))
    write_recording(tmp_path / "r.csv", rec)
    src = ReplaySource(tmp_path / "r.csv", speed=4.0)
    t0 = time.monotonic()
    arrivals = []
    sizes = []
    for b in src.blocks():
        arrivals.append(time.monotonic() - t0)
        sizes.append(len(b))
    wall = time.monotonic() - t0
    assert 0.4 <= wall <= 0.9, wall  # 2 s of data at 4x
    assert sum(sizes) == n and max(sizes) == 5  # ~50 ms of samples per block
    assert arrivals[len(arrivals) // 2] > 0.15  # spread out, not all at once
    t0 = time.monotonic()
    assert sum(len(b) for b in ReplaySource(tmp_path / "r.csv", speed=None).blocks()) == n
    assert time.monotonic() - t0 < 0.3
    with pytest.raises(CaptureError):
        ReplaySource(tmp_path / "r.csv", speed=0)


def test_replay_stop_from_other_thread(tmp_path: Path) -> None:
    _rec_with_breaks(tmp_path / "r.csv")  # ~8 s of virtual time
    src = ReplaySource(tmp_path / "r.csv", speed=1.0)
    threading.Timer(0.3, src.stop).start()
    t0 = time.monotonic()
    got = sum(len(b) for b in src.blocks())
    assert time.monotonic() - t0 < 1.0 and 0 < got < 100


def test_open_source_dispatch(tmp_path: Path) -> None:
    _rec_with_breaks(tmp_path / "r.csv")
    assert type(open_source(file=str(tmp_path / "r.csv"))) is FileSource
    assert type(open_source(file=str(tmp_path / "r.csv"), speed=2.0)) is ReplaySource
    with pytest.raises(CaptureError, match="exactly one"):
        open_source()
    with pytest.raises(CaptureError, match="exactly one"):
        open_source(port="loop://", file=str(tmp_path / "r.csv"))
    src = open_source(port="loop://", rate_hz=25.0)
    assert isinstance(src, SerialSource) and src.info.rate_hz == 25.0
    src.close()


def test_nonexistent_port_is_one_line_port_error() -> None:
    with pytest.raises(PortError) as ei:
        SerialSource("/dev/does-not-exist-har")
    msg = str(ei.value)
    assert msg.startswith("could not open port '/dev/does-not-exist-har': ") and "\n" not in msg
    assert "No such file" in msg


def _collect(src: SerialSource, n: int, timeout: float = 5.0) -> list:
    out: list = []
    t0 = time.monotonic()
    for b in src.blocks():
        out.append(b)
        if sum(len(x) for x in out) >= n or time.monotonic() - t0 > timeout:
            src.stop()
    return out


def test_loop_url_header_samples_wrap_and_duplicates() -> None:
    src = SerialSource("loop://")
    ser = src._ser
    assert ser is not None
    stream = encode_header(Header(20, 4, device="loopdev"))
    for s in (4294967294, 4294967295, 0, 0, 1, 5):  # wrap, a duplicate, a gap of 3
        stream += encode_sample(s, 1000, -500, 2)
    ser.write(stream)
    blocks = _collect(src, 5)
    seq = np.concatenate([b.seq for b in blocks])
    assert seq.tolist() == [0, 1, 2, 3, 7]
    xyz = np.concatenate([b.xyz for b in blocks])
    np.testing.assert_allclose(xyz[0], [1.0, -0.5, 0.002], atol=1e-6)
    assert src.info.rate_hz == 20 and src.info.device == "loopdev" and src.info.range_g == 4
    assert src.stats.dropped == 3 and src.stats.gaps == [[4, 3]] and src.stats.corrupt == 1
    t = np.concatenate([b.time for b in blocks])
    assert (np.diff(t) > 0).all()
    src.close()


def test_samples_before_header_wait_for_it() -> None:
    src = SerialSource("loop://")
    ser = src._ser
    assert ser is not None
    ser.write(b"".join(encode_sample(i, 0, 0, 1000) for i in range(10)))
    threading.Timer(0.3, lambda: ser.write(encode_header(Header(50, 2)) + encode_sample(10, 0, 0, 1000))).start()
    blocks = _collect(src, 11)
    assert np.concatenate([b.seq for b in blocks]).tolist() == list(range(11))


def test_no_header_and_no_rate_is_protocol_error() -> None:
    src = SerialSource("loop://", header_timeout=0.4)
    ser = src._ser
    assert ser is not None

    def feed() -> None:
        for i in range(40):
            if src.stopped:
                return
            ser.write(encode_sample(i, 0, 0, 1000))
            time.sleep(0.02)

    threading.Thread(target=feed, daemon=True).start()
    with pytest.raises(ProtocolError, match="no header"):
        list(src.blocks())
    src.close()


def test_rate_given_accepts_samples_without_header() -> None:
    src = SerialSource("loop://", rate_hz=50.0)
    assert src._ser is not None
    src._ser.write(b"".join(encode_sample(i, 0, 0, 1000) for i in range(5)))
    blocks = _collect(src, 5)
    assert sum(len(b) for b in blocks) == 5


def test_wrong_baud_garbage_is_protocol_error() -> None:
    src = SerialSource("loop://", garbage_timeout=0.5)
    ser = src._ser
    assert ser is not None
    rng = np.random.default_rng(1)

    def feed() -> None:
        for _ in range(100):
            if src.stopped:
                return
            ser.write(rng.integers(0, 256, 40).astype(np.uint8).tobytes())
            time.sleep(0.02)

    threading.Thread(target=feed, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(ProtocolError, match=r"does not speak har protocol v1: \d+ bytes, 0 valid lines.*--baud"):
        list(src.blocks())
    assert time.monotonic() - t0 < 2.0
    src.stop()
    src.close()


def test_other_protocol_version_is_not_read_as_v1() -> None:
    from har.wire.protocol import crc8

    src = SerialSource("loop://", rate_hz=50.0, garbage_timeout=0.5)
    ser = src._ser
    assert ser is not None
    body = b"#HAR,v=2,rate=50,range=4"
    v2 = body + b"*%02X\n" % crc8(body)

    def feed() -> None:
        for i in range(60):
            if src.stopped:
                return
            ser.write((v2 if i % 10 == 0 else b"") + encode_sample(i, 0, 0, 1000))
            time.sleep(0.02)

    threading.Thread(target=feed, daemon=True).start()
    with pytest.raises(ProtocolError, match="another protocol version"):
        for b in src.blocks():
            raise AssertionError(f"v2 samples yielded as v1: {b}")
    src.stop()
    src.close()


def test_config_change_is_a_break() -> None:
    src = SerialSource("loop://")
    ser = src._ser
    assert ser is not None
    ser.write(encode_header(Header(50, 4)) + b"".join(encode_sample(i, 0, 0, 1000) for i in range(5))
              + encode_header(Header(50, 8)) + b"".join(encode_sample(i, 0, 0, 1000) for i in range(5, 10)))
    blocks = _collect(src, 10)
    assert sum(b.break_before for b in blocks) == 1 and src.info.range_g == 8
    seq = np.concatenate([b.seq for b in blocks])
    assert seq.tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]  # a one-step hole marks the break


def test_read_pause_shrinks_for_fast_devices() -> None:
    """`har run` pauses up to 1 s between reads at 50 Hz; a fast device is read often enough that
    one pause never gathers more than BACKLOG_BYTES (a tty's buffer holds about 4 kB)."""
    src = SerialSource("loop://", read_interval_s=1.0)
    try:
        assert src.read_pause_s() == 1.0  # rate unknown until the header
        src.info.rate_hz = 50.0
        assert src.read_pause_s() == 1.0
        src.info.rate_hz = 2000.0
        pause = src.read_pause_s()
        assert pause < 0.05 and pause * 2000.0 * src.MAX_LINE_BYTES <= src.BACKLOG_BYTES <= 2048
        assert len(encode_sample(4294967295, -32768, -32768, -32768)) + 1 == src.MAX_LINE_BYTES  # + "\r"
    finally:
        src.close()


# The timeline behaviours (busy host, held-up link, device pause, slow clock) are tested on the
# I/O-free WireSession in tests/test_wire_session.py.
