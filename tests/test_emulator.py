"""SerialSource over a real pty (opened by pyserial) fed by the Emulator in a thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_recordings
from serial_harness import VanishingPort

from har.sources.base import SampleBlock
from har.sources.serial import SerialSource
from har.wire.emulator import Emulator


def capture(emu: Emulator, seconds: float, **kw: object) -> tuple[SerialSource, list[SampleBlock]]:
    """Open the port, start the emulator, stop it after ``seconds``, then drain and stop the source."""
    src = SerialSource(emu.port, **kw)  # type: ignore[arg-type]
    emu.start(duration=seconds)
    blocks: list[SampleBlock] = []

    def stopper() -> None:
        emu.finished.wait(seconds + 5)
        time.sleep(0.3)
        src.stop()

    threading.Thread(target=stopper, daemon=True).start()
    blocks = list(src.blocks())
    src.close()
    return src, blocks


def cat(blocks: list[SampleBlock], key: str) -> np.ndarray:
    return np.concatenate([getattr(b, key) for b in blocks])


@pytest.mark.parametrize("rate", [50.0, 500.0])
def test_zero_loss(rate: float) -> None:
    with Emulator(simulate=True, rate_hz=rate, seed=3) as emu:
        src, blocks = capture(emu, 2.5)
        n = emu.stats.sent
    seq, t = cat(blocks, "seq"), cat(blocks, "time")
    assert n >= int(2.4 * rate) and emu.stats.tx_dropped == 0
    assert len(seq) == n and src.stats.samples == n
    assert (np.diff(seq) == 1).all() and seq[0] == 0
    assert src.stats.dropped == 0 and src.stats.corrupt == 0 and src.stats.resets == 0
    dt = np.diff(t)
    assert (dt > 0).all() and (dt < 2.5 / rate).all()  # no false breaks in a recording
    assert src.measured_rate_hz == pytest.approx(rate, rel=0.02)
    assert not any(b.break_before for b in blocks)
    xyz = cat(blocks, "xyz")
    assert xyz.dtype == np.float32 and 0.3 < np.linalg.norm(xyz, axis=1).mean() < 3.0  # g, not mg


def test_seq_gaps_counted() -> None:
    with Emulator(simulate=True, rate_hz=100, seed=1, drop_every=7) as emu:
        src, blocks = capture(emu, 1.5)
        sent, dropped = emu.stats.sent, emu.stats.injected_drops
    seq = cat(blocks, "seq")
    assert len(seq) == sent
    assert src.stats.dropped == dropped == len(src.stats.gaps) and dropped > 10
    d = np.diff(seq)
    assert set(d.tolist()) == {1, 2} and int((d == 2).sum()) == dropped
    for idx, missing in src.stats.gaps:
        assert missing == 1 and seq[idx] - seq[idx - 1] == 2


def test_garbage_skipped_and_truncated_lines() -> None:
    with Emulator(simulate=True, rate_hz=100, seed=2, garbage_every=0.2, truncate_every=37) as emu:
        src, blocks = capture(emu, 2.0)
        st = emu.stats
    seq = cat(blocks, "seq")
    # a truncated line swallows the next line (a sample, or a header/garbage): lost, counted as a gap
    assert st.sent - 2 * st.truncated <= len(seq) <= st.sent - st.truncated
    assert len(seq) + src.stats.dropped == st.sent
    assert src.stats.corrupt >= st.garbage_bursts + st.truncated and st.garbage_bursts >= 8
    assert np.abs(cat(blocks, "xyz")).max() <= 8.0


def test_reset_detected() -> None:
    with Emulator(simulate=True, rate_hz=100, seed=4, reset_after=1.0) as emu:
        src, blocks = capture(emu, 2.0)
        sent = emu.stats.sent
    assert src.stats.resets == 1
    brk = [i for i, b in enumerate(blocks) if b.break_before]
    assert len(brk) == 1
    seq = cat(blocks, "seq")
    assert len(seq) == sent and np.diff(seq).max() == 2 and (np.diff(seq) >= 1).all()


def test_stall_then_resume() -> None:
    with Emulator(simulate=True, rate_hz=50, seed=5, stall_after=0.5, stall_s=1.0) as emu:
        src, blocks = capture(emu, 2.5)
        sent = emu.stats.sent
    t = cat(blocks, "time")
    assert len(t) == sent and 0.8 < np.diff(t).max() < 1.5  # the freeze shows as a time jump
    assert (np.diff(cat(blocks, "seq")) == 1).all()


def test_reconnect_after_port_vanishes(tmp_path: Path) -> None:
    vp = VanishingPort(tmp_path, rate_hz=50, seeds=(6, 7))
    src = SerialSource(vp.port)
    vp.start()

    def end() -> None:
        vp.emulators[-1].stop()
        time.sleep(0.3)
        src.stop()

    # after emu1's second header the port vanishes (the link dangles) and a new device comes back
    vp.script(before_s=2.2, outage_s=0.3, after_s=1.5, then=end, unlink=False)
    blocks = list(src.blocks())
    src.close()
    vp.close()
    assert src.stats.reconnects == 1
    assert [i for i, b in enumerate(blocks) if b.break_before] != []
    n_after = sum(len(b) for b in blocks[[i for i, b in enumerate(blocks) if b.break_before][0]:])
    assert n_after >= 40  # the same session continued with the new device
    seq = cat(blocks, "seq")
    assert (np.diff(seq) >= 1).all() and (np.diff(cat(blocks, "time")) > 0).all()


def test_nobody_reading_does_not_block(tmp_path: Path) -> None:
    path = make_tiny_recordings(tmp_path, subjects=1, seconds_per_class=1.0, rate_hz=25.0)[0]
    emu = Emulator(recording=path, rate_hz=5000, loop=True)  # ~120 kB/s into a pty nobody reads
    t0 = time.monotonic()
    emu.run(duration=1.5)
    assert time.monotonic() - t0 < 2.0
    assert emu.stats.tx_dropped > 0 and emu.stats.samples >= 7000
    emu.close()


def test_emulate_recording_resampled(tmp_path: Path) -> None:
    path = make_tiny_recordings(tmp_path, subjects=1, seconds_per_class=1.0, rate_hz=25.0)[0]
    with Emulator(recording=path, rate_hz=50, loop=False) as emu:
        src, blocks = capture(emu, 5.0)
        assert emu.finished.is_set() and emu.activity == "wave"
    xyz = cat(blocks, "xyz")
    assert abs(len(xyz) - 150) <= 2  # 3 s at 50 Hz, then the recording ended
    assert np.abs(xyz[:, 2].mean() - 1.0) < 0.2


def test_simulated_activities_cycle() -> None:
    seen: list[str] = []
    emu = Emulator(simulate=True, activities=("sitting", "walking"), segment_s=0.3, rate_hz=50, seed=9)
    emu.start(duration=1.3)
    while not emu.finished.wait(0.05):
        if emu.activity and (not seen or seen[-1] != emu.activity):
            seen.append(emu.activity)
    emu.close()
    assert seen[:3] == ["sitting", "walking", "sitting"]


def test_emulate_cli() -> None:
    from click.testing import CliRunner

    from har.cli import cli

    res = CliRunner().invoke(cli, ["emulate", "--simulate", "--activity", "running", "--rate", "100",
                                   "--duration", "1.2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("/dev/") and first == first.strip()
    assert "activity=running" in res.output
    bad = CliRunner().invoke(cli, ["emulate"])
    assert bad.exit_code != 0 and bad.output.strip().startswith("Error: ") and len(bad.output.strip().splitlines()) == 1
    bad = CliRunner().invoke(cli, ["emulate", "--simulate", "--activity", "flying"])
    assert bad.exit_code != 0 and "flying" in bad.output


def test_rate_mismatch_warns() -> None:
    with Emulator(simulate=True, rate_hz=50, seed=10, clock_error=0.05) as emu:
        src = SerialSource(emu.port)
        src.session.RATE_CHECK_S = 1.5
        emu.start(duration=2.5)
        threading.Timer(2.8, src.stop).start()
        blocks = list(src.blocks())
        src.close()
    assert sum(len(b) for b in blocks) == emu.stats.sent
    assert src.measured_rate_hz == pytest.approx(52.5, rel=0.015)
    assert len(src.stats.warnings) == 1 and "announced 50 Hz" in src.stats.warnings[0]
    dt = np.diff(cat(blocks, "time"))
    assert (dt > 0).all() and (dt < 2.5 / 50).all()
