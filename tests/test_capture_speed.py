"""Zero loss at 1 kHz for a minute: `har emulate` (its own process) streams 3-axis samples over a
real pty into `har record`'s capture code (SerialSource + record). Behaviour only, no timing
assertions: every sample the emulator sent is in the recording, in order, with no gap."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from har.recording.capture import record
from har.recording.format import read_recording
from har.sources.serial import SerialSource
from har.wire.emulator import parse_describe

HAR = [sys.executable, "-c", "from har.cli import main; main()"]
RATE_HZ = 1000
SECONDS = 60


@pytest.mark.slow
def test_one_khz_for_a_minute_without_loss(tmp_path: Path) -> None:
    emu = subprocess.Popen(
        [*HAR, "emulate", "--simulate", "--rate", str(RATE_HZ), "--duration", str(SECONDS), "--seed", "1",
         "--delay", "0.5", "--linger", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert emu.stdout is not None and emu.stderr is not None
        port = emu.stdout.readline().strip()
        assert port.startswith("/dev/"), emu.stderr.read()
        src = SerialSource(port, reconnect=False)  # opened before the emulator starts streaming (--delay)
        final: dict[str, int] = {}

        def watch() -> None:
            for line in emu.stderr:  # type: ignore[union-attr]
                if line.startswith("emulator stopped:"):
                    final.update(parse_describe(line))
                    time.sleep(1.0)  # the reader takes in what the pty still holds
                    src.stop()

        threading.Thread(target=watch, daemon=True).start()
        out = tmp_path / "khz.csv"
        res = record(src, out)
        emu.terminate()  # the recorder is done: no need to sit out the rest of the emulator's --linger
        emu.wait(20)
    finally:
        if emu.poll() is None:
            emu.kill()
    rec = read_recording(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    sent = final["sent"]
    assert sent >= RATE_HZ * (SECONDS - 1) and final["tx_dropped"] == 0
    assert res.samples == len(rec) == meta["samples"] == sent  # every sample sent was recorded
    assert res.dropped == meta["dropped"] == 0 and res.corrupt == meta["corrupt"] == 0 and meta["gaps"] == []
    assert res.resets == 0 and res.reconnects == 0 and meta["complete"] and not rec.truncated
    assert rec.seq[0] == 0 and (np.diff(rec.seq) == 1).all()
    dt = np.diff(rec.time)
    assert (dt > 0).all() and (dt < 2.5 / RATE_HZ).all()  # one contiguous segment
    assert len(rec.segments()) == 1
    assert meta["measured_rate_hz"] == pytest.approx(RATE_HZ, rel=0.02)
