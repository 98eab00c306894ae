"""A device emulator on a pseudo-terminal: streams wire protocol v1 like real firmware.

The emulator opens a pty (slave in raw mode), exposes its path as :attr:`Emulator.port` and
writes header + sample lines at ``rate_hz`` with absolute-deadline pacing (several samples per
wake-up at high rates, no drift). Writes never block: when nobody reads and the pty buffer is
full, lines are dropped like a UART with a full FIFO (counted in ``stats.tx_dropped``).

Samples come from a recording (resampled to ``rate_hz``, optionally looped) or from the activity
simulator. Fault injection (for robustness tests): ``drop_every`` (skip every Nth sample; seq
still advances), ``garbage_every`` (a burst of random bytes every S seconds), ``truncate_every``
(cut every Nth line short), ``reset_after`` (device reset: seq restarts after a new header),
``stall_after`` / ``stall_s`` (the device freezes, then resumes).
"""

from __future__ import annotations

import errno
import math
import os
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from har.errors import CaptureError, ConfigError
from har.wire.protocol import SEQ_MOD, Header, encode_header, encode_log, encode_sample

TX_BUFFER = 4096  # bytes the emulated UART may hold while the pty is full
MAX_RATE_HZ = 20000  # highest emulated rate (Hz); the simulator's samples are held above its own limit


@dataclass
class EmulatorStats:
    samples: int = 0  # samples generated (seq advanced)
    sent: int = 0  # sample lines handed to the pty
    injected_drops: int = 0  # drop_every
    tx_dropped: int = 0  # lines lost because nobody read (pty full)
    truncated: int = 0
    garbage_bursts: int = 0
    headers: int = 0
    resets: int = 0
    stalls: int = 0


class _RecordingFeed:
    """A recording resampled to ``rate_hz`` (linear), looped if asked."""

    def __init__(self, path: str | os.PathLike[str], rate_hz: float, loop: bool) -> None:
        from har.recording.format import read_recording

        rec = read_recording(path)
        if len(rec) < 2:
            raise CaptureError(f"{path}: too few samples to emulate")
        src_t = np.arange(len(rec)) / rec.rate_hz  # the nominal timeline (breaks ignored)
        n = max(2, int(round(src_t[-1] * rate_hz)) + 1)
        t = np.arange(n) / rate_hz
        self.xyz = np.stack([np.interp(t, src_t, rec.xyz[:, k]) for k in range(3)], axis=1).astype(np.float32)
        idx = np.clip(np.round(t * rec.rate_hz).astype(np.int64), 0, len(rec) - 1)
        self.labels = rec.labels[idx]
        self.loop = loop
        self.pos = 0
        self.subject = rec.subject

    def take(self, n: int) -> tuple[np.ndarray, str] | None:
        if self.pos >= len(self.xyz):
            if not self.loop:
                return None
            self.pos = 0
        end = min(len(self.xyz), self.pos + n)
        out = self.xyz[self.pos : end]
        label = str(self.labels[self.pos])
        self.pos = end
        return out, label


class _SimFeed:
    """The activity simulator, cycling through ``activities`` every ``segment_s`` seconds.

    Above the simulator's highest rate each simulated sample is repeated ``hold`` times (sample
    and hold), so the stream still has ``rate_hz`` samples per second."""

    def __init__(self, activities: Sequence[str], segment_s: float, subject: int, rate_hz: float, seed: int | None):
        from har.recording.simulate import ACTIVITIES, ActivitySimulator
        from har.recording.simulate import MAX_RATE_HZ as SIM_MAX_HZ

        acts = list(activities) or ["walking"]
        for a in acts:
            if a not in ACTIVITIES:
                raise ConfigError(f"unknown activity {a!r} (choose from {', '.join(ACTIVITIES)})")
        if not segment_s > 0:
            raise ConfigError(f"--segment must be positive (got {segment_s})")
        self.hold = max(1, math.ceil(rate_hz / SIM_MAX_HZ))
        self.sim = ActivitySimulator(subject_seed=subject, rate_hz=rate_hz / self.hold, seed=seed)
        self.acts = acts
        self.seg_n = max(1, int(round(segment_s * rate_hz)))
        self.n = 0
        self.subject = f"sim{subject}"
        self._spare = np.zeros((0, 3), dtype=np.float32)

    def take(self, n: int) -> tuple[np.ndarray, str]:
        k = self.n // self.seg_n
        act = self.acts[k % len(self.acts)]
        m = min(n, (k + 1) * self.seg_n - self.n)
        self.n += m
        if self.hold == 1:
            return self.sim.generate(act, m), act
        if self._spare.shape[0] < m:
            fresh = np.repeat(self.sim.generate(act, -(-(m - self._spare.shape[0]) // self.hold)), self.hold, axis=0)
            self._spare = np.concatenate([self._spare, fresh.astype(np.float32)])
        out, self._spare = self._spare[:m], self._spare[m:]
        return out, act


class Emulator:
    """Stream wire protocol v1 on a fresh pty. Use as a context manager or call :meth:`close`.

    Args:
        recording: a recording to play (resampled to ``rate_hz``); or ``simulate=True``.
        simulate: use the activity simulator (``activities`` cycle every ``segment_s`` seconds).
        rate_hz: sample rate (Hz). range_g: announced full scale (g); values are clipped to it.
        loop: replay the recording forever (else the stream ends with it).
        header_every: seconds between header repeats.
        drop_every / truncate_every: every Nth sample is skipped / its line cut short (0 = off).
        garbage_every: seconds between bursts of random bytes (0 = off).
        reset_after: seconds until one device reset (None = never).
        stall_after / stall_s: seconds until the device freezes for ``stall_s`` seconds (once).
        clock_error: the device's real rate is ``rate_hz * (1 + clock_error)`` (header unchanged).
    """

    def __init__(
        self,
        recording: str | os.PathLike[str] | None = None,
        simulate: bool = False,
        activities: Sequence[str] = ("walking",),
        segment_s: float = 30.0,
        subject: int = 0,
        rate_hz: float = 50.0,
        range_g: float = 8.0,
        loop: bool = True,
        seed: int | None = None,
        device: str = "emulator",
        header_every: float = 2.0,
        drop_every: int = 0,
        garbage_every: float = 0.0,
        truncate_every: int = 0,
        reset_after: float | None = None,
        stall_after: float | None = None,
        stall_s: float = 3.0,
        clock_error: float = 0.0,
    ) -> None:
        if not 0 < rate_hz <= MAX_RATE_HZ:
            raise ConfigError(f"--rate must be in (0, {MAX_RATE_HZ}] Hz (got {rate_hz})")
        if (recording is None) == (not simulate):
            raise ConfigError("give a RECORDING to play or --simulate (not both)")
        self.rate_hz = float(rate_hz)
        self.header = Header(self.rate_hz, float(range_g), device=device)
        self._header_line = encode_header(self.header)
        self.feed: _RecordingFeed | _SimFeed
        if recording is not None:
            self.feed = _RecordingFeed(recording, self.rate_hz, loop)
        else:
            self.feed = _SimFeed(activities, segment_s, subject, self.rate_hz, seed)
        self.header_every = header_every
        self.drop_every = int(drop_every)
        self.garbage_every = float(garbage_every)
        self.truncate_every = int(truncate_every)
        self.reset_after = reset_after
        self.stall_after = stall_after
        self.stall_s = stall_s
        self.clock_error = float(clock_error)
        self._rng = np.random.default_rng(seed)
        self._clip = min(32767, int(range_g * 1000))
        self.stats = EmulatorStats()
        self.activity = ""  # the true activity of the last sample sent
        self.seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out = bytearray()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.port = os.ttyname(self._slave)
        self.finished = threading.Event()

    # -- control ---------------------------------------------------------------------------
    def start(self, duration: float | None = None) -> Emulator:
        """Run in a background thread (for tests); returns self."""
        self._thread = threading.Thread(target=self.run, args=(duration,), name="har-emulator", daemon=True)
        self._thread.start()
        return self

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True if :meth:`stop` was called."""
        return self._stop.wait(seconds) if seconds > 0 else self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`run` to end (safe from signal handlers and other threads)."""
        self._stop.set()

    def close(self) -> None:
        """Stop and close the pty (a reader on :attr:`port` then sees the device vanish)."""
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self._slave = -1

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- streaming -------------------------------------------------------------------------
    def run(self, duration: float | None = None, on_tick: Callable[[Emulator], None] | None = None) -> None:
        """Stream until ``duration`` seconds, the end of a non-looped recording, or :meth:`stop`.
        ``on_tick`` is called about once a second (progress)."""
        try:
            self._run(duration, on_tick)
        finally:
            self.finished.set()

    def _run(self, duration: float | None, on_tick: Callable[[Emulator], None] | None) -> None:
        true_rate = self.rate_hz * (1.0 + self.clock_error)  # a crystal off by clock_error (fraction)
        period = 1.0 / true_rate
        t0 = time.monotonic()
        n = 0  # samples due so far on this clock
        next_header = t0 + self.header_every
        next_garbage = t0 + self.garbage_every if self.garbage_every > 0 else None
        next_tick = t0 + 1.0
        reset_at = t0 + self.reset_after if self.reset_after is not None else None
        stall_at = t0 + self.stall_after if self.stall_after is not None else None
        self._send(self._header_line)
        self.stats.headers += 1
        while not self._stop.is_set():
            now = time.monotonic()
            if duration is not None and now - t0 >= duration:
                break
            if stall_at is not None and now >= stall_at:
                stall_at = None
                self.stats.stalls += 1
                if self._stop.wait(self.stall_s):
                    break
                t0 += time.monotonic() - now  # frozen: nothing produced meanwhile
                continue
            if reset_at is not None and now >= reset_at:
                reset_at = None
                self._reset()
                next_header = now + self.header_every
            due = int((now - t0) * true_rate) + 1 - n
            if due > int(true_rate / 4) + 1:  # we were suspended: do not burst seconds of data
                t0 += (due - 1) * period
                due = 1
            if due > 0:
                if not self._emit(due):
                    break
                n += due
            if now >= next_header:
                self._send(self._header_line)
                self.stats.headers += 1
                next_header = max(next_header + self.header_every, now)
            if next_garbage is not None and now >= next_garbage:
                self._garbage()
                next_garbage = max(next_garbage + self.garbage_every, now)
            if on_tick is not None and now >= next_tick:
                next_tick += 1.0
                on_tick(self)
            self._pump()
            wake = t0 + n * period
            self._stop.wait(max(0.002, wake - time.monotonic()))
        self._drain_tx()

    def _drain_tx(self, patience: float = 0.1) -> None:
        """At the end: hand the emulated TX FIFO to the pty while the reader keeps taking bytes
        (give up after ``patience`` s without progress); what cannot be sent is counted in
        ``stats.tx_dropped`` (and no longer in ``stats.sent``)."""
        last = time.monotonic()
        while self._out and self.master >= 0 and time.monotonic() - last < patience:
            before = len(self._out)
            self._pump()
            if len(self._out) < before:
                last = time.monotonic()
            elif self._out:
                time.sleep(0.005)
        if self._out:
            lost = self._out.count(b"\n")
            self.stats.tx_dropped += lost
            self.stats.sent = max(0, self.stats.sent - lost)
            self._out.clear()

    def _emit(self, k: int) -> bool:
        got = self.feed.take(k)
        if got is None:
            return False
        parts: list[bytes] = []
        while True:
            xyz, label = got
            self.activity = label
            mg = np.clip(np.round(np.asarray(xyz, dtype=np.float64) * 1000.0), -self._clip, self._clip).astype(int)
            for x, y, z in mg.tolist():
                seq = self.seq
                self.seq = (self.seq + 1) % SEQ_MOD
                self.stats.samples += 1
                if self.drop_every and self.stats.samples % self.drop_every == 0:
                    self.stats.injected_drops += 1
                    continue
                line = encode_sample(seq, x, y, z)
                if self.truncate_every and self.stats.samples % self.truncate_every == 0:
                    line = line[: len(line) // 2]
                    self.stats.truncated += 1
                parts.append(line)
            k -= len(xyz)
            if k <= 0:
                break
            nxt = self.feed.take(k)
            if nxt is None:
                break
            got = nxt
        self._send(b"".join(parts), samples=len(parts))
        return True

    def _reset(self) -> None:
        self.stats.resets += 1
        self._send(encode_log("reset"))
        self.seq = 0
        self._send(self._header_line)
        self.stats.headers += 1

    def _garbage(self) -> None:
        self.stats.garbage_bursts += 1
        n = int(self._rng.integers(20, 120))
        junk = self._rng.integers(0, 256, n).astype(np.uint8).tobytes()
        self._send(junk + b"\n")

    def _send(self, data: bytes, samples: int = 0) -> None:
        """Queue ``data`` in the emulated TX FIFO (drop it when full) and push what the pty takes."""
        if not data:
            return
        if len(self._out) + len(data) > TX_BUFFER:
            self.stats.tx_dropped += max(samples, data.count(b"\n"))
            self._pump()
            return
        self._out += data
        self.stats.sent += samples
        self._pump()

    def _pump(self) -> None:
        while self._out and self.master >= 0:
            try:
                w = os.write(self.master, self._out)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EIO, errno.EBADF):
                    return
                raise
            if w <= 0:
                return
            del self._out[:w]


def describe(emu: Emulator) -> str:
    """One progress line for stderr."""
    s = emu.stats
    extra = f" tx_dropped={s.tx_dropped}" if s.tx_dropped else ""
    return f"seq={emu.seq} sent={s.sent} activity={emu.activity or '-'}{extra}"


def parse_describe(line: str) -> dict[str, int]:
    """The counters of a :func:`describe` line (``seq``, ``sent``, ``tx_dropped``; 0 if absent)."""
    out = {"seq": 0, "sent": 0, "tx_dropped": 0}
    for part in line.split():
        k, eq, v = part.partition("=")
        if eq and k in out and v.isdigit():
            out[k] = int(v)
    return out


__all__ = ["Emulator", "EmulatorStats", "describe", "parse_describe"]
