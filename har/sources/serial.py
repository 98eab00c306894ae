"""A device on a serial port (or any pyserial URL: ``/dev/ttyACM0``, ``loop://``, a pty).

A reader thread reads in bulk (every ``READ_INTERVAL_S`` = 20 ms, at once again while a backlog
is waiting), decodes with the vectorised :meth:`~har.wire.protocol.LineParser.feed_batch` (no
object per sample; throughput and CPU share: bench/bench_capture.py), stamps samples with the
host clock, unwraps the device's uint32 ``seq`` into the session timeline and hands batches to
:meth:`SerialSource.blocks` through a queue. Gaps (lost samples), device resets and reconnects
are counted in :attr:`stats`; garbage is never yielded as data. While the port is gone,
:attr:`SerialSource.status` reads ``reconnecting to PORT (attempt N)``.

Session ``seq``: +1 per sample; a device seq jump of k+1 gives the same jump (k counted in
``stats.dropped`` / ``stats.gaps``). A break (device reset, reconnect, rate change) leaves a
one-step hole in ``seq`` (not counted as dropped) and sets ``break_before``, so a recording shows
it as a segment boundary. Host times follow ``seq / rate`` on an offset that tracks the earliest
arrivals (read latency does not bend the timeline, clock drift is followed); a pause of more than
``STALL_S`` (device stalled) shows as a time jump."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import serial

from har.errors import CaptureError, PortError, ProtocolError
from har.sources.base import SampleBlock, SampleSource
from har.wire.protocol import SEQ_MOD, Corrupt, Header, LineParser, Sample


@dataclass
class _Batch:
    time: np.ndarray | list[float]  # host times (s), filled by _stamp
    mg: list[np.ndarray]  # chunks of (k, 3) int milli-g
    seq: list[int]  # session seq
    break_before: bool = False


def _reason(e: BaseException) -> str:
    """The most specific one-line reason in a pyserial/OS exception chain."""
    for ex in (e.__cause__, e.__context__, e):
        if isinstance(ex, OSError) and ex.strerror and "could not open port" not in ex.strerror:
            return ex.strerror
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    return msg


def open_port(port: str, baud: int) -> serial.SerialBase:
    """Open ``port`` (path or pyserial URL) at ``baud`` with a 50 ms read timeout; PortError on failure."""
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.05)
    except (serial.SerialException, OSError, ValueError) as e:
        raise PortError(f"could not open port '{port}': {_reason(e)}") from None


class SerialSource(SampleSource):
    """Samples from a device speaking har wire protocol v1.

    Args:
        port: device path or pyserial URL.
        baud: baud rate (bit/s).
        reconnect: reopen the port (backoff 0.1 s doubling to 2 s) if it vanishes mid-stream.
        header_timeout: seconds (after the first bytes) to wait for a header when no ``rate_hz``
            was given; the device repeats its header at least every 5 s.
        no_data_timeout: seconds without any byte before the source fails (None = wait forever).
        wait_on_stall: once data has flowed, silence never fails the source (``no_data_timeout``
            then only applies to a device that never sent anything); the consumer reports the
            stall (``har run`` does).
        garbage_timeout: seconds of bytes without a single valid line before ProtocolError.
        rate_hz: nominal rate (Hz) to assume before the first header; without it samples wait
            for a header.
        read_interval_s: pause between reads (default ``READ_INTERVAL_S``, 20 ms). Each read costs
            a thread wake-up and a parse of whatever arrived: `har run` uses 1 s and tells the
            source which sample its next prediction needs (:meth:`want`), so the port is read
            about once per hop, just after that sample is due. Once the rate is known the pause
            is shortened so that one pause never gathers more than ``BACKLOG_BYTES`` of full-width
            lines (the OS buffer of a tty holds about 4 kB).
    """

    RATE_CHECK_S = 10.0  # seconds of stream before measured and announced rates are compared
    READ_INTERVAL_S = 0.02  # pause between reads (s) unless a backlog is waiting: ~50 reads/s at any rate
    # A pause gathers at most this much (half a tty's 4 kB buffer); a read this large means data is
    # queueing: read again at once.
    BACKLOG_BYTES = 2048
    WANT_MARGIN_S = 0.01  # read this long after a wanted sample is due (arrival jitter)
    MIN_PAUSE_S = 0.02  # while a wanted sample is late, look again this often
    MAX_LINE_BYTES = 36  # the longest sample line: "4294967295,-32768,-32768,-32768*HH\r\n"
    STALL_S = 0.5  # arrivals this much later than the timeline predicts = the device paused (time jump)

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        reconnect: bool = True,
        header_timeout: float = 5.0,
        no_data_timeout: float | None = 10.0,
        garbage_timeout: float = 3.0,
        rate_hz: float | None = None,
        wait_on_stall: bool = False,
        read_interval_s: float | None = None,
    ) -> None:
        super().__init__()
        if read_interval_s is not None:
            if not 0.001 <= read_interval_s <= 1.0:
                raise CaptureError(f"read interval must be 0.001-1 s, got {read_interval_s}")
            self.READ_INTERVAL_S = float(read_interval_s)
        self.port = port
        self.wait_on_stall = wait_on_stall
        self.baud = int(baud)
        self.reconnect = reconnect
        self.header_timeout = header_timeout
        self.no_data_timeout = no_data_timeout
        self.garbage_timeout = garbage_timeout
        self.info.rate_hz = rate_hz
        self.info.description = f"serial {port} @ {self.baud} baud"
        self.parser = LineParser()
        self.skipped = 0  # samples dropped while waiting for the first header (beyond 100000 held)
        self._pre: list[tuple[np.ndarray, np.ndarray]] = []  # (seq, xyz) held until the first header
        self._pre_n = 0
        self._dups = 0  # repeated sequence numbers (counted as corrupt)
        self._foreign: bytes | None = None  # the last header of another protocol version
        self._ser: serial.SerialBase | None = open_port(port, self.baud)
        try:
            self._ser.reset_input_buffer()  # stale bytes from before we started
        except (serial.SerialException, OSError):
            pass
        self._q: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()  # host times are seconds since the port was opened
        # session timeline state (reader thread only)
        self._last_dev: int | None = None
        self._next_seq = 0
        self._last_t = -1.0
        self._offset: float | None = None
        self._off_t = 0.0
        self._pending_break = False
        self._header_seen = False
        self._accepted = 0
        self._valid_lines = 0
        self._rate_span = [0.0, 0.0]  # summed (seq span, host seconds) over segments
        self._seg: tuple[float, int] | None = None  # (first arrival, first session seq) of segment
        self._warned_rate = False
        self._last_arrival = 0.0
        self._now = 0.0
        self._attempt = 0  # reconnect attempts since the port vanished (0 = connected)
        self._want_seq: int | None = None  # the consumer's next needed sample (want())
        self._wake = threading.Event()  # set by want() and stop(): the reader re-plans its pause

    # -- consumer side -------------------------------------------------------------------
    def blocks(self) -> Iterator[SampleBlock]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_guarded, name=f"har-serial {self.port}", daemon=True)
            self._thread.start()
        while True:
            try:
                item = self._q.get(timeout=1.0)  # the reader always ends with None; this is a safety net
            except queue.Empty:
                if not self._thread.is_alive() and self._q.empty():
                    return
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, _Batch)
            # coalesce whatever else is queued (no breaks inside a block)
            items = [item]
            while True:
                try:
                    nxt = self._q.queue[0]
                except IndexError:
                    break
                if not isinstance(nxt, _Batch) or nxt.break_before:
                    break
                items.append(self._q.get_nowait())  # type: ignore[arg-type]
            yield self._to_block(items)

    def _to_block(self, items: list[_Batch]) -> SampleBlock:
        t = np.concatenate([np.asarray(b.time, dtype=np.float64) for b in items])
        seq = np.concatenate([np.asarray(b.seq, dtype=np.int64) for b in items])
        mg = np.concatenate([c for b in items for c in b.mg]).astype(np.float32).reshape(-1, 3)
        self.stats.samples += int(t.shape[0])
        return SampleBlock(time=t, xyz=mg / np.float32(1000.0), seq=seq, break_before=items[0].break_before)

    @property
    def clock_origin(self) -> float:
        """``time.monotonic()`` (s) at which this source's time axis is 0 (host timestamps of
        samples are ``arrival-based monotonic time - clock_origin``)."""
        return self._t0

    @property
    def status(self) -> str:
        """``"reconnecting to PORT (attempt N)"`` while the port is gone, else ``""``."""
        n = self._attempt
        return f"reconnecting to {self.port} (attempt {n})" if n else ""

    @property
    def measured_rate_hz(self) -> float | None:
        """Samples per second on the host clock (seq span / arrival span, breaks excluded)."""
        span, secs = self._rate_span
        if self._seg is not None and self._last_arrival > self._seg[0]:
            span += self._next_seq - 1 - self._seg[1]
            secs += self._last_arrival - self._seg[0]
        return span / secs if secs > 0.5 else None

    def stop(self) -> None:
        super().stop()
        self._wake.set()

    def want(self, seq: int) -> None:
        """Read as soon as session sample ``seq`` is due (its arrival time on this source's
        timeline plus ``WANT_MARGIN_S``), even inside a long read pause: with `har run`'s 1 s pause
        the port is read about once per prediction, right when the prediction's last sample is in."""
        self._want_seq = int(seq)
        self._wake.set()

    def close(self) -> None:
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._close_port()

    def _close_port(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass
            self._ser = None

    def read_pause_s(self) -> float:
        """The pause between reads: ``READ_INTERVAL_S``, shortened at high rates so that a pause
        gathers at most ``BACKLOG_BYTES`` (a fast device cannot overflow the OS buffer)."""
        rate = self.info.rate_hz
        if not rate:
            return self.READ_INTERVAL_S
        return min(self.READ_INTERVAL_S, max(0.001, self.BACKLOG_BYTES / (float(rate) * self.MAX_LINE_BYTES)))

    def _pause(self) -> None:
        """Sleep until the next read: ``read_pause_s()`` after this one, or earlier when the
        sample the consumer wants (:meth:`want`) is due; re-planned whenever :meth:`want` is called."""
        cap = time.monotonic() + self.read_pause_s()
        while not self._stop.is_set():
            self._wake.clear()
            until = cap
            want, rate, off = self._want_seq, self.info.rate_hz, self._offset
            if want is not None and rate and off is not None and want >= self._next_seq:
                due = self._t0 + off + want / float(rate) + self.WANT_MARGIN_S
                until = min(cap, max(due, time.monotonic() + min(self.MIN_PAUSE_S, self.read_pause_s())))
            left = until - time.monotonic()
            if left <= 0 or not self._wake.wait(left):
                return

    # -- reader thread -------------------------------------------------------------------
    def _run_guarded(self) -> None:
        try:
            self._run()
        except CaptureError as e:
            self._q.put(e)
        except Exception as e:  # never let a thread die silently
            self._q.put(CaptureError(f"serial reader on '{self.port}' failed: {e!r}"))
        finally:
            self._q.put(None)

    def _run(self) -> None:
        start = time.monotonic()
        last_byte = start
        first_byte: float | None = None
        last_valid = start
        bytes_since_valid = 0
        while not self._stop.is_set():
            ser = self._ser
            try:
                if ser is None:
                    raise serial.SerialException("port closed")
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as e:
                if not self.reconnect:
                    raise PortError(f"port '{self.port}' vanished: {_reason(e)}") from None
                if not self._reopen():
                    return
                last_byte = last_valid = time.monotonic()
                bytes_since_valid = 0
                continue
            now = time.monotonic()
            if not data:
                if (
                    self.no_data_timeout is not None
                    and now - last_byte > self.no_data_timeout
                    and not (self.wait_on_stall and first_byte is not None)
                ):
                    what = "no data" if first_byte is None else "data stopped"
                    raise CaptureError(
                        f"{what} from '{self.port}' for {self.no_data_timeout:g} s: is the device running and sending?"
                    )
                continue
            last_byte = now
            if first_byte is None:
                first_byte = now
            valid = self._handle(data, now - self._t0)
            if valid:
                last_valid = now
                bytes_since_valid = 0
            else:
                bytes_since_valid += len(data)
                if now - last_valid > self.garbage_timeout and bytes_since_valid >= 32:
                    if self._foreign is not None:
                        head = self._foreign[:40].decode("ascii", "replace")
                        raise ProtocolError(f"'{self.port}' speaks another protocol version ({head}...); har reads v1")
                    raise ProtocolError(
                        f"'{self.port}' does not speak har protocol v1: {bytes_since_valid} bytes, 0 valid lines "
                        f"in {now - last_valid:.0f} s; wrong --baud (now {self.baud})?"
                    )
            if self.info.rate_hz is None and now - first_byte > self.header_timeout:
                raise ProtocolError(
                    f"no header from '{self.port}' in {self.header_timeout:g} s ({self._valid_lines} valid lines): "
                    "the device must send '#HAR,v=1,rate=...' (or give the rate)"
                )
            if len(data) < self.BACKLOG_BYTES:
                self._pause()  # let bytes accumulate: fewer, larger reads
        self._drain()

    def _drain(self) -> None:
        """On stop: take in what the OS already holds, so nothing received is lost."""
        try:
            if self._ser is not None and self._ser.in_waiting:
                self._handle(self._ser.read(self._ser.in_waiting), time.monotonic() - self._t0)
        except (serial.SerialException, OSError, TypeError, AttributeError):
            pass

    def _reopen(self) -> bool:
        """Reopen the port with backoff until it works or the source is stopped."""
        self._close_port()
        delay = 0.1
        self._attempt = 1
        while not self._stop.wait(delay):
            try:
                self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05)
            except (serial.SerialException, OSError, ValueError):
                delay = min(2.0, delay * 2)
                self._attempt += 1
                continue
            self._attempt = 0
            self.parser.reset()
            self.stats.reconnects += 1
            self._break()
            return True
        return False

    def _break(self, pending: bool = True) -> None:
        self._pending_break = self._pending_break or pending
        self._last_dev = None
        self._close_segment()

    def _close_segment(self) -> None:
        if self._seg is not None and self._last_arrival > self._seg[0]:
            self._rate_span[0] += self._next_seq - 1 - self._seg[1]
            self._rate_span[1] += self._last_arrival - self._seg[0]
        self._seg = None

    def _handle(self, data: bytes, now: float) -> bool:
        """Parse ``data`` (arrived at ``now`` s since start); queue samples. True if any line was valid."""
        self._now = now
        pb = self.parser.feed_batch(data)
        batch = _Batch([], [], [], self._pending_break)
        self._pending_break = False
        valid = False
        k = 0
        for i, ev in [*pb.others, (len(pb), None)]:
            if i > k:
                valid = self._samples(pb.seq[k:i], pb.xyz[k:i], batch) or valid
                k = i
            if isinstance(ev, Header):
                valid = True
                self._valid_lines += 1
                self._foreign = None
                if self._changes(ev) and batch.seq:
                    self._flush_partial(batch)  # hand over the samples before the change first
                if self._header(ev):  # configuration change: a break before the next sample
                    batch.break_before = True
                pre, self._pre, self._pre_n = self._pre, [], 0
                for seq, xyz in pre:
                    self._accept(seq, xyz, batch)
            elif isinstance(ev, Corrupt) and ev.reason == "version":
                self._foreign = ev.raw
        self.stats.corrupt = self.parser.corrupt + self._dups
        if batch.seq:
            self._stamp(batch, now)
            self._q.put(batch)
            self._check_rate()
        elif batch.break_before:
            self._pending_break = True  # carry the break to the next sample
        return valid

    def _samples(self, seq: np.ndarray, xyz: np.ndarray, batch: _Batch) -> bool:
        """A run of parsed samples (device seq, milli-g); True if they count as valid lines."""
        n = int(seq.shape[0])
        if self._foreign is not None:  # after a header of another protocol version
            self.skipped += n
            return False
        self._valid_lines += n
        if self.info.rate_hz is None:  # hold until the header tells the rate
            room = max(0, 100_000 - self._pre_n)
            if room:
                self._pre.append((seq[:room], xyz[:room]))
                self._pre_n += min(room, n)
            self.skipped += max(0, n - room)
            return True
        self._accept(seq, xyz, batch)
        return True

    def _accept(self, seq: np.ndarray, xyz: np.ndarray, batch: _Batch) -> None:
        """Put device samples on the session timeline: vectorised while every step is a normal
        advance or a gap, sample by sample around breaks, resets and duplicates."""
        rate = float(self.info.rate_hz or 1.0)
        limit = max(1000, int(rate * 60))
        start = 0
        if self._last_dev is None and seq.shape[0]:
            self._sample(Sample(int(seq[0]), *(int(v) for v in xyz[0])), batch)
            start = 1
        s = seq[start:]
        if not s.shape[0]:
            return
        sl = s.tolist()
        m = len(sl)
        if sl == list(range(sl[0], sl[0] + m)) and sl[0] == (self._last_dev + 1) % SEQ_MOD:
            # the common case, checked cheaply: every step +1 (a wrap past 2^32 - 1 takes the general path)
            batch.seq.extend(range(self._next_seq, self._next_seq + m))
            batch.mg.append(xyz[start:])
            self._last_dev = sl[-1]
            self._next_seq += m
            return
        prev = np.empty_like(s)
        prev[0] = self._last_dev
        prev[1:] = s[:-1]
        d = (s - prev) % SEQ_MOD
        if ((d >= 1) & (d <= limit)).all():
            sess = self._next_seq - 1 + np.cumsum(d)
            gap = np.flatnonzero(d > 1)
            if gap.shape[0]:
                base = self._accepted + len(batch.seq)
                self.stats.dropped += int((d[gap] - 1).sum())
                self.stats.gaps.extend([base + int(j), int(d[j]) - 1] for j in gap)
            self._last_dev = int(s[-1])
            self._next_seq = int(sess[-1]) + 1
            batch.seq.extend(sess.tolist())
            batch.mg.append(xyz[start:])
            return
        for q, (x, y, z) in zip(s.tolist(), xyz[start:].tolist(), strict=True):
            self._sample(Sample(q, x, y, z), batch)

    def _changes(self, h: Header) -> bool:
        info = self.info
        return self._header_seen and (h.rate_hz, h.range_g, h.device) != (info.rate_hz, info.range_g, info.device)

    def _header(self, h: Header) -> bool:
        """Apply a header; True if it changes the configuration (a break)."""
        if h.units != "mg" or h.axes != "xyz":
            raise ProtocolError(f"'{self.port}' sends units={h.units} axes={h.axes}; har expects units=mg axes=xyz")
        info = self.info
        if self._changes(h):
            if h.rate_hz != info.rate_hz:
                self.stats.warnings.append(f"device changed its rate from {info.rate_hz:g} to {h.rate_hz:g} Hz")
            self._break(pending=False)
            changed = True
        else:
            changed = False
        self.info.rate_hz = h.rate_hz
        self.info.range_g = h.range_g
        self.info.device = h.device
        self._header_seen = True
        return changed

    def _sample(self, s: Sample, batch: _Batch) -> None:
        rate = float(self.info.rate_hz or 1.0)
        if self._last_dev is None:
            seq = self._next_seq if not self._accepted else self._next_seq + 1  # a break: leave a hole
        else:
            delta = (s.seq - self._last_dev) % SEQ_MOD
            if delta == 0:  # duplicate line
                self._dups += 1
                return
            if delta <= max(1000, int(rate * 60)):
                seq = self._next_seq + delta - 1
                if delta > 1:
                    self.stats.dropped += delta - 1
                    self.stats.gaps.append([self._accepted + len(batch.seq), delta - 1])
            else:  # sequence restarted (or jumped absurdly): a device reset
                if batch.seq:  # the break is inside this batch: hand over what came before
                    self._flush_partial(batch)
                batch.break_before = True
                self.stats.resets += 1
                self._close_segment()
                seq = self._next_seq + 1
        self._last_dev = s.seq
        self._next_seq = seq + 1
        batch.seq.append(seq)
        batch.mg.append(np.array([[s.x, s.y, s.z]], dtype=np.int32))

    def _flush_partial(self, batch: _Batch) -> None:
        part = _Batch(batch.time, batch.mg, batch.seq, batch.break_before)
        self._stamp(part, self._now)
        self._q.put(part)
        batch.time, batch.mg, batch.seq = [], [], []

    def _stamp(self, batch: _Batch, now: float) -> None:
        """Host times for a batch that arrived at ``now``: seq/rate on a clock offset that follows
        the earliest arrivals (latency jitter does not bend the timeline; drift is tracked)."""
        rate = float(self.info.rate_hz or 1.0)
        last_seq = batch.seq[-1]
        n = len(batch.seq)
        obs = now - last_seq / rate
        ramp = 0.0  # how much of the offset's rise is spread over this batch's samples
        if self._offset is None or batch.break_before or self._seg is None:
            self._offset = obs
        elif obs < self._offset or obs - self._offset > self.STALL_S:  # faster clock / device stalled
            self._offset = obs
        else:
            # A late arrival is either drift (the device clock is slow: it persists) or a link
            # that held samples back and catches up (it does not). Follow it slowly, by at most
            # half a sample period plus 2% of the batch's span, spread over the batch's samples:
            # the timeline stretches by at most ~0.52 periods per sample, never a break.
            alpha = min(1.0, max(0.0, now - self._off_t) / 2.0)
            ramp = min((obs - self._offset) * alpha, (0.5 + 0.02 * n) / rate)
            self._offset += ramp
        self._off_t = now
        if self._seg is None:
            self._seg = (now - (batch.seq[-1] - batch.seq[0]) / rate, batch.seq[0])
        self._last_arrival = now
        min_dt = 0.25 / rate
        # t_i = max(offset + seq_i / rate, t_{i-1} + min_dt): strictly increasing, as a running max
        q = np.asarray(batch.seq, dtype=np.float64)
        step = np.arange(q.shape[0]) * min_dt
        w = self._offset + q / rate - step
        if ramp > 0.0:  # sample i of n gets (i + 1) / n of the rise
            w -= ramp * (1.0 - np.arange(1, n + 1, dtype=np.float64) / n)
        w[0] = max(w[0], self._last_t + min_dt if self._last_t >= 0 else 0.0)
        times = np.maximum.accumulate(w) + step
        self._last_t = float(times[-1])
        batch.time = times
        self._accepted += len(batch.seq)

    def _check_rate(self) -> None:
        if self._warned_rate or self.info.rate_hz is None:
            return
        span, secs = self._rate_span
        if self._seg is not None:
            span += self._next_seq - 1 - self._seg[1]
            secs += self._last_arrival - self._seg[0]
        if secs < self.RATE_CHECK_S:
            return
        m = span / secs
        if abs(m - self.info.rate_hz) > 0.02 * self.info.rate_hz:
            self._warned_rate = True
            self.stats.warnings.append(
                f"measured rate {m:.2f} Hz differs from the announced {self.info.rate_hz:g} Hz by "
                f"{100 * (m / self.info.rate_hz - 1):+.1f}%"
            )
