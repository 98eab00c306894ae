"""`har record` end to end: CliRunner against an emulator pty, errors, and durability under
SIGKILL / SIGTERM / SIGINT (a real subprocess)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings
from serial_harness import VanishingPort

from har.cli import cli
from har.errors import ProtocolError
from har.recording.capture import record
from har.recording.format import read_recording
from har.sources.file import FileSource
from har.sources.serial import SerialSource
from har.wire.emulator import Emulator

HAR = [sys.executable, "-c", "from har.cli import main; main()"]


def _one_error_line(res) -> str:  # noqa: ANN001
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert res.exit_code != 0, res.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    return lines[0]


def test_record_cli_against_emulator(tmp_path: Path) -> None:
    out = tmp_path / "rec" / "walk.csv"
    with Emulator(simulate=True, rate_hz=50, seed=1, drop_every=20, garbage_every=0.5) as emu:
        emu.start()
        res = CliRunner().invoke(
            cli, ["record", "--port", emu.port, "--label", "walking", "--subject", "s3", "--duration", "2.5",
                  "--out", str(out)],
        )
    assert res.exit_code == 0, res.output
    assert "Recorded" in res.output and str(out) in res.output
    rec = read_recording(out)
    m = rec.meta
    assert m.complete and m.subject == "s3" and m.device == "emulator" and m.rate_hz == 50
    assert m.samples == len(rec) and 110 <= len(rec) <= 130  # 2.5 s at 50 Hz, 1 in 20 dropped
    assert set(rec.labels.tolist()) == {"walking"} and m.labels == ["walking"]
    d = np.diff(rec.seq)
    assert m.dropped == int((d - 1).sum()) == len(m.gaps) > 0
    for idx, missing in m.gaps:
        assert rec.seq[idx] - rec.seq[idx - 1] == missing + 1
    assert m.corrupt >= 3  # garbage bursts
    assert m.measured_rate_hz == pytest.approx(50, rel=0.03)
    assert rec.time[0] == 0 and rec.time[-1] == pytest.approx(2.5, abs=0.1)
    assert "serial" in m.source and emu.port in m.source


def test_record_file_into_directory(tmp_path: Path) -> None:
    src_path = make_tiny_recordings(tmp_path / "in", subjects=1, seconds_per_class=2.0)[0]
    (tmp_path / "out").mkdir()
    res = CliRunner().invoke(cli, ["record", "--file", str(src_path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    (path,) = (tmp_path / "out").glob("*.csv")
    assert path.name.startswith("s0_unlabeled_")
    rec, orig = read_recording(path), read_recording(src_path)
    assert len(rec) == len(orig) and (rec.labels == orig.labels).all() and rec.meta.subject == "s0"
    # capture API: duration cuts on sample time, the file source keeps its labels
    r = record(FileSource(src_path), tmp_path / "cut.csv", duration=1.0)
    assert r.samples == 25 and r.labels == ["still"] and read_recording(tmp_path / "cut.csv").meta.complete
    res = CliRunner().invoke(cli, ["record", "--file", str(src_path), "--out", str(tmp_path / "cut.csv")])
    assert "exists" in _one_error_line(res)


def test_record_bad_input(tmp_path: Path) -> None:
    r = CliRunner()
    args = ["record", "--port", "/dev/nonexistent-har", "--out", str(tmp_path / "a.csv")]
    line = _one_error_line(r.invoke(cli, args))
    assert "could not open port '/dev/nonexistent-har'" in line
    assert "--out" in _one_error_line(r.invoke(cli, ["record", "--port", "/dev/nonexistent-har"]))
    assert "no such recording" in _one_error_line(
        r.invoke(cli, ["record", "--file", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "b.csv")]))
    assert "exactly one" in _one_error_line(r.invoke(cli, ["record", "--out", str(tmp_path / "c.csv")]))
    assert "label" in _one_error_line(
        r.invoke(cli, ["record", "--port", "x", "--label", "a\"b", "--out", str(tmp_path / "d.csv")]))
    assert not list(tmp_path.glob("*.csv"))


def test_help_states_units_and_defaults() -> None:
    out = CliRunner().invoke(cli, ["record", "--help"]).output
    for s in ("bit/s", "115200", "Hz", "seconds", "default"):
        assert s in out
    out = CliRunner().invoke(cli, ["emulate", "--help"]).output
    for s in ("Hz", "50", "--simulate", "--activity", "seconds"):
        assert s in out


def _start_record(emu: Emulator, out: Path) -> tuple[subprocess.Popen, float]:
    proc = subprocess.Popen([*HAR, "record", "--port", emu.port, "--label", "walking", "--out", str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not out.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"har record did not start: {proc.communicate()}")
        time.sleep(0.01)
    return proc, time.monotonic()


def test_sigkill_loses_at_most_a_second(tmp_path: Path) -> None:
    out = tmp_path / "k.csv"
    with Emulator(simulate=True, rate_hz=50, seed=2) as emu:
        emu.start()
        proc, t0 = _start_record(emu, out)
        time.sleep(3.0)
        proc.kill()
        elapsed = time.monotonic() - t0
        proc.wait(10)
    rec = read_recording(out)
    assert not rec.meta.complete
    assert abs(len(rec) - elapsed * 50) <= 50, (len(rec), elapsed)
    assert (np.diff(rec.seq) == 1).all()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_cleanly_without_loss(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "s.csv"
    with Emulator(simulate=True, rate_hz=50, seed=3) as emu:
        emu.start()
        proc, t0 = _start_record(emu, out)
        time.sleep(2.5)
        proc.send_signal(sig)
        elapsed = time.monotonic() - t0
        stdout, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0, stderr
    assert b"Recorded" in stdout and b"Traceback" not in stderr
    rec = read_recording(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["complete"] is True and meta["samples"] == len(rec) and not rec.truncated
    assert (np.diff(rec.seq) == 1).all() and meta["dropped"] == 0
    assert abs(len(rec) - elapsed * 50) <= 15, (len(rec), elapsed)  # nothing received was lost


def test_protocol_error_leaves_no_empty_recording(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def noise() -> None:  # a device at the wrong baud rate: bytes, never a valid line
        rng = np.random.default_rng(0)
        while not stop.wait(0.02):
            try:
                os.write(master, rng.integers(0, 256, 30).astype(np.uint8).tobytes())
            except OSError:
                return

    threading.Thread(target=noise, daemon=True).start()
    try:
        src = SerialSource(os.ttyname(slave), garbage_timeout=0.5)
        with pytest.raises(ProtocolError, match="does not speak har protocol v1"):
            record(src, tmp_path / "x.csv")
    finally:
        stop.set()
        os.close(master)
        os.close(slave)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.json").exists()


def test_progress_says_reconnecting_and_summary_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """While the port is gone the progress line names it and the attempt; the sidecar and the
    result count the reconnect; the seq hole and time jump mark the break in the CSV."""
    from har.cli.cmd_record import _Progress, summary_lines
    from har.recording.capture import CaptureProgress

    vp = VanishingPort(tmp_path, rate_hz=50, seeds=(6, 7))
    link = vp.link
    src = SerialSource(vp.port)
    vp.start()
    seen: list[CaptureProgress] = []
    # the port (and its link) vanish for 1.2 s: several reconnect attempts fail meanwhile
    vp.script(before_s=1.5, outage_s=1.2, after_s=1.5, then=src.stop)
    res = record(src, tmp_path / "r.csv", progress=seen.append, progress_interval=0.1)
    vp.close()
    statuses = [p.status for p in seen if p.status]
    assert statuses and statuses[0] == f"reconnecting to {link} (attempt 1)"
    assert any(s.endswith("(attempt 3)") or s.endswith("(attempt 4)") for s in statuses), statuses
    assert not seen[-1].status  # streaming again
    rec = read_recording(tmp_path / "r.csv")
    assert res.reconnects == rec.meta.reconnects == 1 and res.dropped == 0
    d = np.diff(rec.seq)
    assert sorted(set(d.tolist())) == [1, 2] and (d == 2).sum() == 1  # the one-step hole of the break
    assert np.diff(rec.time).max() > 1.0  # the outage as a time jump
    line = summary_lines(res)[0]
    for s in ("samples", "Hz measured", "dropped 0", "corrupt 0", "resets 0", "reconnects 1"):
        assert s in line, line
    # the progress line shows the status
    show = _Progress()
    show.tty = False
    show(CaptureProgress(1.0, 10, None, "", 0, 0, 0, 0, status=f"reconnecting to {link} (attempt 2)"))
    assert f"reconnecting to {link} (attempt 2)" in capsys.readouterr().err


def test_summary_warns_on_rate_mismatch(tmp_path: Path) -> None:
    with Emulator(simulate=True, rate_hz=50, seed=10, clock_error=0.05) as emu:
        emu.start()
        res = CliRunner().invoke(cli, ["record", "--port", emu.port, "--rate", "50", "--duration", "4", "--out",
                                       str(tmp_path / "w.csv")])
    assert res.exit_code == 0, res.output
    assert "Warning: measured rate" in res.output and "announced 50 Hz" in res.output
    assert re.search(r"by \+[3-6]\.\d%", res.output), res.output  # the device runs 5% fast
    meta = json.loads((tmp_path / "w.json").read_text())
    assert any("measured rate" in w for w in meta["extra"]["warnings"])
    with Emulator(simulate=True, rate_hz=50, seed=10) as emu:
        emu.start()
        res = CliRunner().invoke(cli, ["record", "--port", emu.port, "--duration", "2", "--out",
                                       str(tmp_path / "ok.csv")])
    assert res.exit_code == 0 and "Warning" not in res.output, res.output


def test_label_options_errors(tmp_path: Path) -> None:
    r = CliRunner()  # stdin is not a terminal here: no live labelling unless --keys
    base = ["record", "--port", "/dev/nonexistent-har", "--out", str(tmp_path / "a.csv")]
    assert "live labelling" in _one_error_line(r.invoke(cli, [*base, "--labels", "walking,sitting"]))
    assert "live labelling" in _one_error_line(r.invoke(cli, [*base, "--label", "a", "--label", "b"]))
    assert "needs a live device" in _one_error_line(
        r.invoke(cli, ["record", "--file", "x.csv", "--keys", "--out", str(tmp_path / "b.csv")]))
    many = ",".join(f"l{i}" for i in range(10))
    assert "at most 9" in _one_error_line(r.invoke(cli, [*base, "--keys", "--labels", many]))
    assert "empty label" in _one_error_line(r.invoke(cli, [*base, "--keys", "--labels", "a,,b"]))
    assert not list(tmp_path.glob("*.csv"))
