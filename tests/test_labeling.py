"""Live labelling: the timing rule (unit), the key reader on a real pty, and `har record` driven by
key presses on a pty (stdin/stdout) while an emulator streams on another pty."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from har.recording.format import read_recording
from har.recording.labeling import STOP, KeyReader, LiveLabels, apply_label_events, key_action
from har.wire.emulator import Emulator

HAR = [sys.executable, "-c", "from har.cli import main; main()"]


def test_label_events_exact_boundaries() -> None:
    t = np.arange(10) * 0.1  # samples at 0.0, 0.1, ..., 0.9 s
    ev = [(0.1, "a"), (0.25, "b"), (0.5, ""), (0.5000001, "c")]
    labs = apply_label_events(t, ev, initial="x")
    # an event applies from the first sample with time >= its time; equal time counts
    assert labs.tolist() == ["x", "a", "a", "b", "b", "", "c", "c", "c", "c"]
    assert apply_label_events(t, [], "x").tolist() == ["x"] * 10
    assert apply_label_events(t, [(-5.0, "a")], "").tolist() == ["a"] * 10
    assert apply_label_events(np.zeros(0), ev, "x").shape == (0,)


def test_key_actions() -> None:
    labs = ["walking", "sitting"]
    assert key_action("1", labs) == "walking" and key_action("2", labs) == "sitting"
    assert key_action("3", labs) is None and key_action("x", labs) is None
    assert key_action("0", labs) == "" and key_action(" ", labs) == ""
    assert key_action("q", labs) is STOP


class _FakeReader:
    """Feeds LiveLabels preset key presses (the reader itself is tested on a pty below)."""

    def __init__(self) -> None:
        self.keys: list = []
        self.mark = 0.0

    def take(self) -> tuple[list, float]:
        k, self.keys = self.keys, []
        return k, self.mark

    def close(self) -> None:
        pass


def test_live_labels_chunked_equals_one_shot() -> None:
    """Labelling block by block as keys trickle in gives exactly the one-shot rule."""
    from har.recording.labeling import KeyPress

    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.005, 0.015, 2000))
    names = ["a", "b", "c"]
    keys = [KeyPress(float(p) + 100.0, str(k)) for p, k in
            zip(np.sort(rng.uniform(0, t[-1], 40)), rng.integers(0, 5, 40), strict=True)]  # '4' is ignored
    r = _FakeReader()
    live = LiveLabels(r, names, offset=100.0)  # type: ignore[arg-type]
    out: list[str] = []
    i = 0
    todo = list(keys)
    for cut in [*np.unique(rng.integers(1, len(t), 80)).tolist(), len(t)]:
        r.mark = float(t[cut - 1]) + 100.0 + 0.003  # the reader has seen every key up to here
        r.keys = [k for k in todo if k.time <= r.mark]
        todo = todo[len(r.keys):]
        live.poll()
        out += live.assign(t[i:cut], first_row=i, origin=0.0).tolist()
        i = cut
    events = [(k.time - 100.0, key_action(k.key, names)) for k in keys if key_action(k.key, names) is not None]
    assert out == apply_label_events(t, events).tolist()  # type: ignore[arg-type]
    boundaries = [k for k in range(1, len(out)) if out[k] != out[k - 1]]
    assert boundaries == [row for row, _, _ in live.changes if row > 0]
    for row, et, lab in live.changes:
        assert out[row] == lab and t[row] >= et and (row == 0 or t[row - 1] < et)
    assert live.counts == {k: out.count(k) for k in set(out)}


def test_key_reader_on_a_pty() -> None:
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    try:
        got: list[str] = []
        with KeyReader(slave, poll_s=0.02, on_key=lambda k: got.append(k.key)) as r:
            mode = termios.tcgetattr(slave)
            assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO and mode[3] & termios.ISIG
            t0 = time.monotonic()
            os.write(master, b"1")
            time.sleep(0.15)
            t1 = time.monotonic()
            os.write(master, b"2q")
            time.sleep(0.15)
            keys, mark = r.take()
        assert [k.key for k in keys] == ["1", "2", "q"] == got
        assert t0 <= keys[0].time < t0 + 0.1 and t1 <= keys[1].time < t1 + 0.1
        assert mark >= keys[-1].time
        assert termios.tcgetattr(slave) == before  # restored
    finally:
        os.close(master)
        os.close(slave)


def test_key_reader_eof_makes_every_time_final() -> None:
    r_fd, w_fd = os.pipe()  # not a TTY: no mode change, bytes are keys all the same
    try:
        reader = KeyReader(r_fd, poll_s=0.02).start()
        os.write(w_fd, b"2")
        os.close(w_fd)
        time.sleep(0.2)
        keys, mark = reader.take()
        reader.close()
        assert [k.key for k in keys] == ["2"] and reader.eof and mark == float("inf")
    finally:
        os.close(r_fd)


class _Pty:
    """A pty whose slave is the child's stdin/stdout/stderr; the master side is drained in a thread."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.out = bytearray()
        self._stop = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    self.out += os.read(self.master, 65536)
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        time.sleep(0.1)
        os.close(self.master)
        os.close(self.slave)


def _wait_rows(out: Path, proc: subprocess.Popen, tty: _Pty) -> None:
    deadline = time.monotonic() + 20
    while not (out.exists() and out.read_text().count("\n") > 20):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"har record did not start: {tty.out.decode(errors='replace')}")
        time.sleep(0.02)


@pytest.mark.parametrize("end", ["q", "sigterm", "sigint"])
def test_record_with_keys_on_a_pty(tmp_path: Path, end: str) -> None:
    out = tmp_path / "live.csv"
    tty = _Pty()
    with Emulator(simulate=True, rate_hz=100, seed=11) as emu:
        emu.start()
        proc = subprocess.Popen(
            [*HAR, "record", "--port", emu.port, "--labels", "walking,sitting,running", "--out", str(out)],
            stdin=tty.slave, stdout=tty.slave, stderr=tty.slave, start_new_session=True,
        )
        try:
            _wait_rows(out, proc, tty)
            mode = termios.tcgetattr(tty.slave)
            assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO  # single keys
            sent: list[tuple[float, str]] = []
            for key, label in (("1", "walking"), ("2", "sitting"), (" ", ""), ("3", "running"), ("x", None),
                               ("0", "")):
                t = time.monotonic()
                os.write(tty.master, key.encode())
                if label is not None:
                    sent.append((t, label))
                time.sleep(0.6)
            if end == "q":
                os.write(tty.master, b"q")
            else:  # SIGINT is what Ctrl-C sends (the terminal keeps ISIG in single-key mode)
                proc.send_signal(signal.SIGTERM if end == "sigterm" else signal.SIGINT)
            rc = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    screen = tty.out.decode(errors="replace")
    restored = termios.tcgetattr(tty.slave) == tty.before
    tty.close()
    assert rc == 0, screen
    assert restored, "terminal mode not restored"
    assert "Traceback" not in screen and "1:walking=" in screen and "label=sitting" in screen
    rec = read_recording(out)
    meta = json.loads(out.with_suffix(".json").read_text())
    extra = meta["extra"]
    assert meta["complete"] and meta["samples"] == len(rec) and meta["dropped"] == 0
    changes = extra["label_changes"]
    assert [c[2] for c in changes] == [lab for _, lab in sent]
    # the CSV label column switches exactly at the recorded rows, by the documented rule
    labs = rec.labels.tolist()
    assert [k for k in range(1, len(labs)) if labs[k] != labs[k - 1]] == [c[0] for c in changes]
    assert labs[0] == ""
    for row, t_ev, lab in changes:
        assert labs[row] == lab
        assert rec.time[row - 1] < t_ev + 1e-4 and t_ev <= rec.time[row] + 1e-4  # first sample at/after the key
    # key events are as far apart as the presses were sent (host read latency only)
    ev_dt = np.diff([c[1] for c in changes])
    sent_dt = np.diff([t for t, _ in sent])
    assert np.abs(ev_dt - sent_dt).max() < 0.1, (ev_dt, sent_dt)
    # per-label counts in sidecar and summary match the CSV
    counts = extra["label_counts"]
    assert counts == {k: labs.count(k) for k in set(labs)}
    assert sum(counts.values()) == len(rec)
    assert f"walking {labs.count('walking')}" in screen and f"(unlabeled) {labs.count('')}" in screen
    assert "Recorded" in screen and "reconnects 0" in screen
    if end == "q":
        assert rec.time[-1] < extra["stop_time_s"] <= rec.time[-1] + 0.1  # nothing after q, nothing lost before
    d = np.diff(rec.seq)
    assert (d == 1).all()
