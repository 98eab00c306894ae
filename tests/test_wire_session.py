"""WireSession on its own: plain byte strings and synthetic arrival times in, sample blocks out
(no port, no thread). The same class runs inside SerialSource (tests/test_sources.py,
test_emulator.py and test_record.py test it there over loop:// and real ptys)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from har.errors import ProtocolError
from har.sources.base import SampleBlock
from har.wire.protocol import SEQ_MOD, Header, crc8, encode_header, encode_log, encode_sample
from har.wire.session import WireSession


def _lines(seqs: list[int] | range, x: int = 0) -> bytes:
    return b"".join(encode_sample(s, x, -500, 1000) for s in seqs)


def _cat(blocks: list[SampleBlock]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """(time, xyz, seq, indices of the samples that follow a break) of consecutive blocks."""
    starts = np.cumsum([0] + [len(b) for b in blocks[:-1]]).tolist()
    breaks = [s for s, b in zip(starts, blocks, strict=True) if b.break_before]
    return (np.concatenate([b.time for b in blocks]), np.concatenate([b.xyz for b in blocks]),
            np.concatenate([b.seq for b in blocks]), breaks)


def test_header_then_samples() -> None:
    s = WireSession(name="dev0")
    assert s.feed(encode_log("boot") + encode_header(Header(50, 4, device="wrist")), 0.0) == []
    blocks = s.feed(_lines(range(10)), 0.2)
    assert len(blocks) == 1 and not blocks[0].break_before
    t, xyz, seq, _ = _cat(blocks)
    assert seq.tolist() == list(range(10)) and xyz.dtype == np.float32 and t.dtype == np.float64
    np.testing.assert_allclose(xyz[0], [0.0, -0.5, 1.0])
    np.testing.assert_allclose(np.diff(t), 0.02, atol=1e-9)  # seq / rate on the arrival clock
    assert t[-1] == pytest.approx(0.2)  # the last sample arrived just now
    assert (s.info.rate_hz, s.info.range_g, s.info.device) == (50, 4, "wrist")
    assert s.valid_lines == 11 and s.next_seq == 10 and s.stats.corrupt == 0
    assert s.due_time(60) == pytest.approx(1.22)  # sample 9 arrived at 0.2 s: sample 0 was due at 0.02 s


def test_samples_wait_for_the_header_unless_a_rate_is_given() -> None:
    s = WireSession()
    assert s.feed(_lines(range(5)), 0.1) == [] and s.due_time(0) is None
    blocks = s.feed(encode_header(Header(50, 2)) + _lines([5]), 0.2)
    assert _cat(blocks)[2].tolist() == list(range(6))
    given = WireSession()
    given.info.rate_hz = 25.0
    assert _cat(given.feed(_lines(range(3)), 0.1))[2].tolist() == [0, 1, 2]


def test_wrap_duplicate_and_gap() -> None:
    s = WireSession()
    blocks = s.feed(encode_header(Header(20, 4)) + _lines([4294967294, 4294967295, 0, 0, 1, 5]), 1.0)
    _, _, seq, breaks = _cat(blocks)
    assert seq.tolist() == [0, 1, 2, 3, 7] and breaks == []
    assert s.stats.dropped == 3 and s.stats.gaps == [[4, 3]] and s.stats.corrupt == 1 and s.duplicates == 1


def test_a_device_reset_inside_one_read_splits_the_block() -> None:
    s = WireSession()
    s.feed(encode_header(Header(100, 4)) + _lines(range(1000, 1010)), 0.1)
    blocks = s.feed(_lines(range(1010, 1015)) + encode_header(Header(100, 4)) + _lines(range(0, 5)), 0.2)
    assert [len(b) for b in blocks] == [5, 5] and [b.break_before for b in blocks] == [False, True]
    assert blocks[1].seq.tolist() == [16, 17, 18, 19, 20]  # a one-step hole, not counted as lost
    assert s.stats.resets == 1 and s.stats.dropped == 0 and s.stats.gaps == []


def test_a_configuration_change_is_a_break() -> None:
    s = WireSession()
    stream = encode_header(Header(50, 4)) + _lines(range(5)) + encode_header(Header(100, 4)) + _lines(range(5, 10))
    blocks = s.feed(stream, 0.2)
    t, _, seq, breaks = _cat(blocks)
    assert seq.tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10] and breaks == [5]
    np.testing.assert_allclose(np.diff(t[:5]), 0.02)  # stamped at the rate they were sent at
    assert s.info.rate_hz == 100 and s.stats.warnings == ["device changed its rate from 50 to 100 Hz"]
    # the same header again (the device repeats it every few seconds) changes nothing
    _, _, seq, breaks = _cat(s.feed(encode_header(Header(100, 4)) + _lines(range(10, 12)), 0.3))
    assert seq.tolist() == [11, 12] and breaks == []


def test_a_break_with_no_sample_after_it_carries_to_the_next_read() -> None:
    s = WireSession()
    s.feed(encode_header(Header(50, 4)) + _lines(range(3)), 0.1)
    assert s.feed(encode_header(Header(50, 8)), 0.2) == []
    blocks = s.feed(_lines(range(3, 5)), 0.3)
    assert blocks[0].break_before and blocks[0].seq.tolist() == [4, 5]


def test_restart_after_a_reconnect() -> None:
    s = WireSession()
    s.feed(encode_header(Header(50, 4)) + _lines(range(3)) + b"12,0,0", 0.1)  # a partial line
    s.restart()
    blocks = s.feed(b",1000*00\n" + _lines(range(3, 5)), 0.5)  # the tail of the lost line is garbage
    assert blocks[0].break_before and blocks[0].seq.tolist() == [4, 5]
    assert s.stats.dropped == 0 and s.stats.resets == 0 and s.stats.corrupt == 1


def test_another_protocol_version_is_not_read_as_v1() -> None:
    body = b"#HAR,v=2,rate=50,range=4"
    s = WireSession()
    s.info.rate_hz = 50.0
    assert s.feed(body + b"*%02X\n" % crc8(body) + _lines(range(5)), 0.1) == []
    assert s.foreign_header == body + b"*%02X" % crc8(body) and s.valid_lines == 0 and s.skipped == 5
    assert len(_cat(s.feed(encode_header(Header(50, 4)) + _lines(range(5, 8)), 0.2))[2]) == 3
    assert s.foreign_header is None


def test_garbage_is_no_valid_line() -> None:
    s = WireSession()
    rng = np.random.default_rng(1)
    for k in range(20):
        assert s.feed(rng.integers(0, 256, 40).astype(np.uint8).tobytes(), k * 0.02) == []
    assert s.valid_lines == 0 and s.stats.corrupt > 0


def test_units_har_cannot_read_are_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="'ttyX' sends units=g axes=xyz"):
        WireSession(name="ttyX").feed(encode_header(Header(50, 4, units="g")), 0.0)


def _reference(dev: list[int], rate: float) -> tuple[list[int], list[int], int, int, int]:
    """The unwrapping rule of PROTOCOL.md, one sample at a time: (session seq, break positions,
    dropped, resets, duplicates)."""
    limit = max(1000, int(rate * 60))
    out: list[int] = []
    breaks: list[int] = []
    last: int | None = None
    nxt = dropped = resets = dups = 0
    for q in dev:
        if last is None:
            s = nxt
        else:
            d = (q - last) % SEQ_MOD
            if d == 0:
                dups += 1
                continue
            if d <= limit:
                s, dropped = nxt + d - 1, dropped + d - 1
            else:
                s, resets = nxt + 1, resets + 1
                breaks.append(len(out))
        out.append(s)
        last, nxt = q, s + 1
    return out, breaks, dropped, resets, dups


@pytest.mark.parametrize("seed", range(6))
def test_unwrapping_matches_the_protocol_rule_in_any_chunking(seed: int) -> None:
    """Random device seqs (steps, gaps, repeats, resets, wraps) fed in random chunks: the session
    seq, breaks and counters are those of the per-sample rule, whatever the chunk boundaries."""
    rng = np.random.default_rng(seed)
    dev, q = [], int(rng.integers(0, SEQ_MOD))
    for _ in range(3000):
        dev.append(q)
        r = rng.random()
        q = (q + (1 if r < 0.9 else 0 if r < 0.93 else int(rng.integers(2, 50)) if r < 0.98
                  else int(rng.integers(0, SEQ_MOD)))) % SEQ_MOD
    stream = encode_header(Header(50, 4)) + _lines(dev)
    cuts = np.sort(rng.integers(0, len(stream), int(rng.integers(1, 300)))).tolist()
    s = WireSession()
    blocks: list[SampleBlock] = []
    for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(stream)], strict=True)):
        blocks += s.feed(stream[a:b], 0.01 * k)
    t, _, seq, breaks = _cat(blocks)
    want, want_breaks, dropped, resets, dups = _reference(dev, 50.0)
    assert seq.tolist() == want and breaks == want_breaks
    assert (s.stats.dropped, s.stats.resets, s.duplicates) == (dropped, resets, dups)
    assert sum(k for _, k in s.stats.gaps) == dropped and (np.diff(t) > 0).all()
    for i, k in s.stats.gaps:  # a gap is a jump of k + 1 in the session seq before sample i
        assert seq[i] - seq[i - 1] == k + 1


# -- the host-clock timeline -----------------------------------------------------------------
def _timeline(reads: list[tuple[float, range]], rate: float = 1000.0) -> tuple[np.ndarray, np.ndarray, WireSession]:
    """Feed a session the sample lines of each ``(arrival time, device seq range)`` read."""
    s = WireSession()
    blocks = s.feed(encode_header(Header(rate, 4)), 0.0)
    for now, seqs in reads:
        blocks += s.feed(_lines(seqs), now)
    t, _, seq, _ = _cat(blocks)
    return t, seq, s


def _reads(rate: float, until: float, every: float, late: dict[int, float],
           held: tuple[float, float] | None = None) -> list[tuple[float, range]]:
    """Reads every ``every`` s of a device sampling at ``rate`` since t=0; read k is ``late[k]`` s
    late (the host was busy: what was sent meanwhile waits in the OS buffer). ``held=(at, secs)``:
    the link held samples back from ``at`` for ``secs`` (a sender or USB bridge held up); the
    first read after it finds only the first 10 ms of the backlog, the next one the rest."""
    out, sent, k, t = [], 0, 0, every
    partial = True
    while t <= until:
        now = t + late.get(k, 0.0)
        upto = int(now * rate)
        if held is not None and held[0] <= now:
            if now < held[0] + held[1]:
                upto = int(held[0] * rate)
            elif partial:
                upto, partial = int((held[0] + 0.01) * rate), False
        upto = max(sent, upto)
        out.append((now, range(sent, upto)))
        sent, k, t = upto, k + 1, now + every
    return out


@pytest.mark.parametrize("late_s", [0.15, 0.6, 2.0])
def test_a_busy_host_does_not_bend_the_timeline(late_s: float) -> None:
    """The host reading late (GC, a loaded CPU) delays arrivals, not the samples: the device kept
    sending, so the timeline stays contiguous: no time jump, no break, nothing compressed."""
    t, seq, _ = _timeline(_reads(1000.0, 6.0, 0.02, {100: late_s}))
    assert (np.diff(seq) == 1).all()
    dt = np.diff(t)
    assert dt.max() < 1.5e-3 and dt.min() > 0.5e-3, (dt.min(), dt.max())


@pytest.mark.parametrize("stale_s", [0.15, 0.3, 0.45])
def test_a_held_up_link_does_not_break_the_timeline(stale_s: float) -> None:
    """A read that finds only old samples (the sender, or a USB bridge, was held up for less than
    a stall and then caught up) arrives late for its samples: the timeline may stretch by at most
    half a sample period there, never a gap that would count as a break."""
    t, seq, _ = _timeline(_reads(1000.0, 6.0, 0.02, {}, (2.0, stale_s)))
    assert (np.diff(seq) == 1).all()
    dt = np.diff(t)
    assert dt.max() <= 1.5e-3 + 1e-9 and dt.min() >= 0.25e-3 - 1e-9, (dt.min(), dt.max())


def test_a_device_pause_is_a_time_jump() -> None:
    """The device itself stopped sending for 1 s and resumed with seq continuing: a time jump."""
    reads = _reads(1000.0, 2.0, 0.02, {})
    resume = reads[-1][0] + 1.0
    last = reads[-1][1].stop
    for k in range(1, 50):  # after the pause: the normal rate again, on the device's new timeline
        now = resume + 0.02 * k
        reads.append((now, range(last, last + 20)))
        last += 20
    t, seq, _ = _timeline(reads)
    assert (np.diff(seq) == 1).all()
    dt = np.diff(t)
    assert (dt > 0.9).sum() == 1 and np.sort(dt)[-2] < 1.5e-3


@pytest.mark.parametrize("every", [0.02, 0.25, 1.0])
def test_a_slow_device_clock_is_followed_without_breaks(every: float) -> None:
    """A device announcing 1000 Hz whose crystal runs 1% slow (990 Hz), read in small or in
    one-second bursts: the timeline follows the host clock (drift is tracked), with no break;
    the rate is measured (1% off is within the 2% that would be warned about)."""
    t, seq, s = _timeline(_reads(990.0, 30.0, every, {}))
    dt = np.diff(t)
    assert (np.diff(seq) == 1).all() and dt.max() < 1.6e-3 and dt.min() > 0.0
    sent_at = seq[-1] / 990.0  # when the device actually took the last sample
    assert abs(t[-1] - sent_at) < 0.1, (t[-1], sent_at)
    assert s.measured_rate_hz == pytest.approx(990.0, rel=0.005)
    assert s.stats.warnings == []


def test_a_rate_far_from_the_announced_one_is_warned_about_once() -> None:
    _, _, s = _timeline(_reads(950.0, 25.0, 0.25, {}))
    assert s.measured_rate_hz == pytest.approx(950.0, rel=0.005)
    assert len(s.stats.warnings) == 1  # after 10 s of stream, with the rate measured until then
    want = r"measured rate 95\d\.\d\d Hz differs from the announced 1000 Hz by -[45]\.\d%"
    assert re.fullmatch(want, s.stats.warnings[0])


def test_lost_samples_keep_their_place_on_the_timeline() -> None:
    """Samples lost on the link leave a seq gap and a time gap of the same length, not a break."""
    reads = [(0.02 * (k + 1), range(20 * k, 20 * (k + 1))) for k in range(50)]
    reads[10] = (reads[10][0], range(200, 215))  # 5 samples lost at the end of read 10
    t, seq, s = _timeline(reads)
    i = int(np.flatnonzero(np.diff(seq) > 1)[0]) + 1
    assert seq[i] - seq[i - 1] == 6 and t[i] - t[i - 1] == pytest.approx(6e-3, abs=1e-4)
    assert s.stats.gaps == [[i, 5]] and s.stats.dropped == 5 and s.stats.resets == 0


def test_a_reset_starts_a_new_timeline_at_the_arrival() -> None:
    """After a device reset the timeline restarts from the arrivals (not from the old seq)."""
    reads = [(0.02 * (k + 1), range(20 * k, 20 * (k + 1))) for k in range(50)]
    reads += [(5.0 + 0.02 * (k + 1), range(20 * k, 20 * (k + 1))) for k in range(10)]  # reset, 4 s later
    t, seq, s = _timeline(reads)
    i = 1000
    assert s.stats.resets == 1 and seq[i] - seq[i - 1] == 2
    assert t[i - 1] == pytest.approx(1.0, abs=2e-3) and t[i + 19] == pytest.approx(5.02, abs=2e-3)
