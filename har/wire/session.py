"""The host side of a wire protocol v1 session, without I/O: bytes and their arrival times in,
sample blocks out.

:class:`WireSession` is what :class:`~har.sources.serial.SerialSource` does with the bytes it
reads, apart from the port: framing (:class:`~har.wire.protocol.LineParser`), the header (rate,
range, device; a change of configuration is a break; samples before the first header wait for
it), the device's uint32 ``seq`` unwrapped into the session timeline (:meth:`WireSession.feed`),
and the host-clock estimate that stamps every sample. It is fed plain byte strings and
arrival times, so every behaviour can be tested without a port (tests/test_wire_session.py).

Session ``seq``: +1 per sample; a device seq jump of k+1 gives the same jump (k counted in
``stats.dropped`` / ``stats.gaps``). A break (device reset, reconnect, configuration change)
leaves a one-step hole in ``seq`` (not counted as dropped) and starts a new block with
``break_before``, so a recording shows it as a segment boundary. Host times follow
``seq / rate`` on an offset that tracks the earliest arrivals (read latency does not bend the
timeline, clock drift is followed); a pause of more than ``STALL_S`` (device stalled) shows as a
time jump."""

from __future__ import annotations

import numpy as np

from har.errors import ProtocolError
from har.sources.base import SampleBlock, SourceInfo, SourceStats
from har.wire.protocol import SEQ_MOD, Corrupt, Header, LineParser

_MG = np.float32(1000.0)


class WireSession:
    """Decode one device's byte stream into :class:`~har.sources.base.SampleBlock` s.

    Args:
        info: updated from headers (rate, range, device); ``info.rate_hz`` set beforehand is the
            rate assumed until the first header (without it samples wait for a header).
        stats: dropped / gaps / corrupt / resets / warnings are counted here (``samples`` is
            left to whoever hands the blocks on, so it counts what a consumer really got).
        name: the port or stream name used in error messages.

    Call :meth:`feed` with each read and the time it arrived (seconds on any monotonic axis;
    SerialSource uses seconds since the port was opened), :meth:`restart` after the link was
    reopened. Raises :class:`~har.errors.ProtocolError` only for a header announcing units or
    axes har cannot read.
    """

    STALL_S = 0.5  # arrivals this much later than the timeline predicts = the device paused (time jump)
    RATE_CHECK_S = 10.0  # seconds of stream before measured and announced rates are compared
    MAX_HELD = 100_000  # samples held while waiting for the first header (beyond: skipped)

    def __init__(self, info: SourceInfo | None = None, stats: SourceStats | None = None, name: str = "device") -> None:
        self.info = info if info is not None else SourceInfo()
        self.stats = stats if stats is not None else SourceStats()
        self.name = name
        self.parser = LineParser()
        self.valid_lines = 0  # headers and accepted sample lines (a stream of garbage keeps this at 0)
        self.skipped = 0  # samples not used: beyond MAX_HELD before the header, or after a foreign header
        self.foreign_header: bytes | None = None  # the last header of another protocol version, until a v1 one
        self.duplicates = 0  # repeated sequence numbers (counted as corrupt)
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # (seq, mg) before the first header
        self._held_n = 0
        self._header_seen = False
        # seq unwrapping
        self._last_dev: int | None = None  # the last accepted device seq (None after a break)
        self._next_seq = 0  # the session seq of the next sample
        self._emitted = 0  # samples handed out (gap positions count from here)
        self._pending_break = False
        # the run of samples of the current read not yet stamped: session seq, milli-g chunks
        self._run_seq: list[np.ndarray] = []
        self._run_mg: list[np.ndarray] = []
        self._run_n = 0
        self._run_break = False
        # host clock estimate
        self._offset: float | None = None  # host time of session seq 0 on the current timeline
        self._off_t = 0.0  # when the offset last moved
        self._last_t = -1.0  # the last stamped time
        self._seg: tuple[float, int] | None = None  # (first arrival, first session seq) of the segment
        self._rate_span = [0.0, 0.0]  # summed (seq span, host seconds) over closed segments
        self._last_arrival = 0.0
        self._warned_rate = False

    # -- public -------------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> list[SampleBlock]:
        """Decode ``data`` that arrived at ``now`` (s); the blocks of samples it completes, in
        order. A block never spans a break; only its first sample can follow one."""
        pb = self.parser.feed_batch(data)
        out: list[SampleBlock] = []
        k = 0
        for i, ev in [*pb.others, (len(pb), None)]:
            if i > k:
                self._samples(pb.seq[k:i], pb.xyz[k:i], now, out)
                k = i
            if isinstance(ev, Header):
                self.valid_lines += 1
                self.foreign_header = None
                if self._changes(ev):  # a configuration change: a break before the next sample
                    self._flush(now, out)  # (stamped at the old rate)
                    self._apply_header(ev)
                    self._break()
                else:
                    self._apply_header(ev)
                held, self._held, self._held_n = self._held, [], 0
                for seq, mg in held:
                    self._accept(seq, mg, now, out)
            elif isinstance(ev, Corrupt) and ev.reason == "version":
                self.foreign_header = ev.raw
        self.stats.corrupt = self.parser.corrupt + self.duplicates
        self._flush(now, out)
        if out:
            self._check_rate()
        return out

    def restart(self) -> None:
        """The link was reopened: forget a partial line; the next sample starts a new segment."""
        self.parser.reset()
        self._break()

    @property
    def next_seq(self) -> int:
        """The session seq the next sample will get (if no sample is lost)."""
        return self._next_seq

    def due_time(self, seq: int) -> float | None:
        """When session sample ``seq`` should arrive on the current timeline (s, the axis of the
        ``now`` given to :meth:`feed`); None while the rate or the clock offset is unknown."""
        rate, off = self.info.rate_hz, self._offset
        if not rate or off is None:
            return None
        return off + seq / float(rate)

    @property
    def measured_rate_hz(self) -> float | None:
        """Samples per second on the arrival clock (seq span / arrival span, breaks excluded)."""
        span, secs = self._span()
        return span / secs if secs > 0.5 else None

    # -- header and samples ----------------------------------------------------------------------
    def _changes(self, h: Header) -> bool:
        """Whether header ``h`` changes the configuration (rate, range, device) of this session."""
        info = self.info
        return self._header_seen and (h.rate_hz, h.range_g, h.device) != (info.rate_hz, info.range_g, info.device)

    def _apply_header(self, h: Header) -> None:
        if h.units != "mg" or h.axes != "xyz":
            raise ProtocolError(f"'{self.name}' sends units={h.units} axes={h.axes}; har expects units=mg axes=xyz")
        info = self.info
        if self._changes(h) and h.rate_hz != info.rate_hz:
            self.stats.warnings.append(f"device changed its rate from {info.rate_hz:g} to {h.rate_hz:g} Hz")
        info.rate_hz, info.range_g, info.device = h.rate_hz, h.range_g, h.device
        self._header_seen = True

    def _samples(self, seq: np.ndarray, mg: np.ndarray, now: float, out: list[SampleBlock]) -> None:
        """A run of parsed sample lines (device seq, milli-g)."""
        n = int(seq.shape[0])
        if self.foreign_header is not None:  # after a header of another protocol version
            self.skipped += n
            return
        self.valid_lines += n
        if self.info.rate_hz is None:  # hold until the header tells the rate
            room = max(0, self.MAX_HELD - self._held_n)
            if room:
                self._held.append((seq[:room], mg[:room]))
                self._held_n += min(room, n)
            self.skipped += max(0, n - room)
            return
        self._accept(seq, mg, now, out)

    def _break(self) -> None:
        """The next sample starts a new segment (a one-step seq hole, ``break_before``)."""
        self._pending_break = True
        self._last_dev = None
        self._close_segment()

    def _accept(self, s: np.ndarray, mg: np.ndarray, now: float, out: list[SampleBlock]) -> None:
        """Unwrap device seqs ``s`` into session seqs and add the samples to the current run.

        The one place where device seqs become session seqs. For each sample ``d`` = (seq -
        previous seq) mod 2^32: 0 is a repeated line (dropped, counted as corrupt), 1..L a
        normal step or a gap of d-1 lost samples (L = a minute of samples, at least 1000), more
        a device reset (``stats.resets``). A reset and the first sample after a break start a
        new segment: a one-step hole in the session seq and a block with ``break_before``."""
        m = int(s.shape[0])
        if not m:
            return
        if self._last_dev is not None:
            # the common case, checked cheaply: every step +1 from the last sample (a wrap past
            # 2^32 - 1 takes the general path)
            sl = s.tolist()
            if sl[0] == self._last_dev + 1 and sl == list(range(sl[0], sl[0] + m)):
                self._run_seq.append(np.arange(self._next_seq, self._next_seq + m, dtype=np.int64))
                self._run_mg.append(mg)
                self._run_n += m
                self._last_dev = sl[-1]
                self._next_seq += m
                return
        limit = max(1000, int(float(self.info.rate_hz or 1.0) * 60))
        prev = np.empty_like(s)
        prev[1:] = s[:-1]
        prev[0] = s[0] if self._last_dev is None else self._last_dev
        d = (s - prev) % SEQ_MOD
        starts = np.flatnonzero(d > limit).tolist()  # device resets
        if self._last_dev is None:
            starts.insert(0, 0)
        if not starts:
            self._extend(d, s, mg, new_segment=False)
            return
        if starts[0] > 0:
            self._extend(d[: starts[0]], s[: starts[0]], mg[: starts[0]], new_segment=False)
        for j, a in enumerate(starts):
            b = starts[j + 1] if j + 1 < len(starts) else m
            self._flush(now, out)  # hand over what came before the new segment
            if self._last_dev is None:  # after a break (or at the very start: no hole, no break)
                brk, d[a] = self._pending_break, 2 if self._next_seq else 1
            else:  # a device reset
                self.stats.resets += 1
                self._close_segment()
                brk, d[a] = True, 2
            self._pending_break = False
            self._run_break = brk
            self._extend(d[a:b], s[a:b], mg[a:b], new_segment=True)

    def _extend(self, d: np.ndarray, s: np.ndarray, mg: np.ndarray, new_segment: bool) -> None:
        """Add samples with seq steps ``d`` (normal steps, gaps, repeats: 0) to the run; with
        ``new_segment`` the first step is the hole of a new segment (not a loss)."""
        dup = d == 0
        if dup.any():
            self.duplicates += int(dup.sum())
            keep = ~dup
            d, s, mg = d[keep], s[keep], mg[keep]
        if not d.shape[0]:
            return
        sess = self._next_seq - 1 + np.cumsum(d)
        gap = np.flatnonzero(d > 1)
        if new_segment and gap.shape[0] and gap[0] == 0:
            gap = gap[1:]
        if gap.shape[0]:
            base = self._emitted + self._run_n
            self.stats.dropped += int((d[gap] - 1).sum())
            self.stats.gaps.extend([base + int(j), int(d[j]) - 1] for j in gap)
        self._run_seq.append(sess)
        self._run_mg.append(mg)
        self._run_n += int(d.shape[0])
        self._last_dev = int(s[-1])
        self._next_seq = int(sess[-1]) + 1

    def _flush(self, now: float, out: list[SampleBlock]) -> None:
        """Stamp the current run (it arrived at ``now``) and hand it out as one block."""
        if not self._run_n:
            return
        seq = self._run_seq[0] if len(self._run_seq) == 1 else np.concatenate(self._run_seq)
        mg = self._run_mg[0] if len(self._run_mg) == 1 else np.concatenate(self._run_mg)
        brk = self._run_break
        self._run_seq, self._run_mg, self._run_n, self._run_break = [], [], 0, False
        t = self._stamp(seq, brk, now)
        out.append(SampleBlock(time=t, xyz=mg.astype(np.float32) / _MG, seq=seq, break_before=brk))
        self._emitted += int(seq.shape[0])

    # -- host clock ----------------------------------------------------------------------------
    def _stamp(self, seq: np.ndarray, brk: bool, now: float) -> np.ndarray:
        """Host times for samples that arrived at ``now``: seq/rate on a clock offset that follows
        the earliest arrivals (latency jitter does not bend the timeline; drift is tracked)."""
        rate = float(self.info.rate_hz or 1.0)
        n = int(seq.shape[0])
        first, last = int(seq[0]), int(seq[-1])
        obs = now - last / rate
        ramp = 0.0  # how much of the offset's rise is spread over these samples
        if self._offset is None or brk or self._seg is None:
            self._offset = obs
        elif obs < self._offset or obs - self._offset > self.STALL_S:  # faster clock / device stalled
            self._offset = obs
        else:
            # A late arrival is either drift (the device clock is slow: it persists) or a link
            # that held samples back and catches up (it does not). Follow it slowly, by at most
            # half a sample period plus 2% of the read's span, spread over its samples: the
            # timeline stretches by at most ~0.52 periods per sample, never a break.
            alpha = min(1.0, max(0.0, now - self._off_t) / 2.0)
            ramp = min((obs - self._offset) * alpha, (0.5 + 0.02 * n) / rate)
            self._offset += ramp
        self._off_t = now
        if self._seg is None:
            self._seg = (now - (last - first) / rate, first)
        self._last_arrival = now
        min_dt = 0.25 / rate
        # t_i = max(offset + seq_i / rate, t_{i-1} + min_dt): strictly increasing, as a running max
        step = np.arange(n) * min_dt
        w = self._offset + seq / rate - step
        if ramp > 0.0:  # sample i of n gets (i + 1) / n of the rise
            w -= ramp * (1.0 - np.arange(1, n + 1, dtype=np.float64) / n)
        w[0] = max(w[0], self._last_t + min_dt if self._last_t >= 0 else 0.0)
        times = np.maximum.accumulate(w) + step
        self._last_t = float(times[-1])
        return times

    def _close_segment(self) -> None:
        if self._seg is not None and self._last_arrival > self._seg[0]:
            self._rate_span[0] += self._next_seq - 1 - self._seg[1]
            self._rate_span[1] += self._last_arrival - self._seg[0]
        self._seg = None

    def _span(self) -> tuple[float, float]:
        span, secs = self._rate_span
        if self._seg is not None and self._last_arrival > self._seg[0]:
            span += self._next_seq - 1 - self._seg[1]
            secs += self._last_arrival - self._seg[0]
        return span, secs

    def _check_rate(self) -> None:
        if self._warned_rate or not self.info.rate_hz:
            return
        span, secs = self._span()
        if secs < self.RATE_CHECK_S:
            return
        m, nominal = span / secs, float(self.info.rate_hz)
        if abs(m - nominal) > 0.02 * nominal:
            self._warned_rate = True
            self.stats.warnings.append(
                f"measured rate {m:.2f} Hz differs from the announced {nominal:g} Hz by {100 * (m / nominal - 1):+.1f}%"
            )
