"""A device on a serial port (or any pyserial URL: ``/dev/ttyACM0``, ``loop://``, a pty).

:class:`SerialSource` is the port: open, reconnect with backoff, and a reader thread that reads
in bulk (every ``READ_INTERVAL_S`` = 20 ms, at once again while a backlog is waiting, or when the
sample the consumer :meth:`~SerialSource.want` s is due), with the no-data / garbage / header
timeouts. What the bytes mean is :class:`~har.wire.session.WireSession`'s job (framing, header,
``seq`` unwrapping, the host-clock timeline; no I/O): the reader hands it each read with its
arrival time and queues the blocks it returns for :meth:`SerialSource.blocks`. Gaps (lost
samples), device resets and reconnects are counted in :attr:`stats`; garbage is never yielded
as data. While the port is gone, :attr:`SerialSource.status` reads ``reconnecting to PORT
(attempt N)``."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import numpy as np
import serial

from har.errors import CaptureError, PortError, ProtocolError
from har.sources.base import SampleBlock, SampleSource
from har.wire.session import WireSession


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

    ``session`` is the :class:`~har.wire.session.WireSession` the reader thread feeds; it shares
    :attr:`info` and :attr:`stats` with this source (``stats.samples`` counts what
    :meth:`blocks` yielded).
    """

    READ_INTERVAL_S = 0.02  # pause between reads (s) unless a backlog is waiting: ~50 reads/s at any rate
    # A pause gathers at most this much (half a tty's 4 kB buffer); a read this large means data is
    # queueing: read again at once.
    BACKLOG_BYTES = 2048
    WANT_MARGIN_S = 0.01  # read this long after a wanted sample is due (arrival jitter)
    MIN_PAUSE_S = 0.02  # while a wanted sample is late, look again this often
    MAX_LINE_BYTES = 36  # the longest sample line: "4294967295,-32768,-32768,-32768*HH\r\n"

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
        self.session = WireSession(self.info, self.stats, name=port)  # reader thread only
        self._ser: serial.SerialBase | None = open_port(port, self.baud)
        try:
            self._ser.reset_input_buffer()  # stale bytes from before we started
        except (serial.SerialException, OSError):
            pass
        self._q: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()  # host times are seconds since the port was opened
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
            assert isinstance(item, SampleBlock)
            # coalesce whatever else is queued (no breaks inside a block)
            items = [item]
            while True:
                try:
                    nxt = self._q.queue[0]
                except IndexError:
                    break
                if not isinstance(nxt, SampleBlock) or nxt.break_before:
                    break
                items.append(self._q.get_nowait())  # type: ignore[arg-type]
            block = items[0] if len(items) == 1 else concat_blocks(items)
            self.stats.samples += len(block)
            yield block

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
        return self.session.measured_rate_hz

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
            want = self._want_seq
            due = self.session.due_time(want) if want is not None and want >= self.session.next_seq else None
            if due is not None:
                due += self._t0 + self.WANT_MARGIN_S
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
            valid = self._handle(data, now)
            if valid:
                last_valid = now
                bytes_since_valid = 0
            else:
                bytes_since_valid += len(data)
                if now - last_valid > self.garbage_timeout and bytes_since_valid >= 32:
                    if self.session.foreign_header is not None:
                        head = self.session.foreign_header[:40].decode("ascii", "replace")
                        raise ProtocolError(f"'{self.port}' speaks another protocol version ({head}...); har reads v1")
                    raise ProtocolError(
                        f"'{self.port}' does not speak har protocol v1: {bytes_since_valid} bytes, 0 valid lines "
                        f"in {now - last_valid:.0f} s; wrong --baud (now {self.baud})?"
                    )
            if self.info.rate_hz is None and now - first_byte > self.header_timeout:
                raise ProtocolError(
                    f"no header from '{self.port}' in {self.header_timeout:g} s "
                    f"({self.session.valid_lines} valid lines): "
                    "the device must send '#HAR,v=1,rate=...' (or give the rate)"
                )
            if len(data) < self.BACKLOG_BYTES:
                self._pause()  # let bytes accumulate: fewer, larger reads
        self._drain()

    def _drain(self) -> None:
        """On stop: take in what the OS already holds, so nothing received is lost."""
        try:
            if self._ser is not None and self._ser.in_waiting:
                self._handle(self._ser.read(self._ser.in_waiting), time.monotonic())
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
            self.session.restart()
            self.stats.reconnects += 1
            return True
        return False

    def _handle(self, data: bytes, now: float) -> bool:
        """Decode ``data`` (read at monotonic time ``now``) and queue its blocks; True if any line was valid."""
        before = self.session.valid_lines
        for block in self.session.feed(data, now - self._t0):
            self._q.put(block)
        return self.session.valid_lines > before


def concat_blocks(blocks: list[SampleBlock]) -> SampleBlock:
    """One block of consecutive blocks (only the first may follow a break)."""
    return SampleBlock(
        time=np.concatenate([b.time for b in blocks]),
        xyz=np.concatenate([b.xyz for b in blocks]),
        seq=np.concatenate([b.seq for b in blocks]),
        break_before=blocks[0].break_before,
    )
