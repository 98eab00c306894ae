"""Wire protocol v1: encoder and incremental byte parser (framing only, no I/O).

ASCII lines ending in ``\\n`` (a preceding ``\\r`` is tolerated)::

    #HAR,v=1,rate=50,range=4,units=mg,axes=xyz,dev=emulator*HH     header (boot, then every <= 5 s)
    123,-12,980,45*HH                                               sample: seq,x,y,z in milli-g
    !any text                                                       device log line (no checksum)

``HH`` is CRC-8 (poly 0x07, init 0, no reflection, no final xor) over every byte before ``*``,
two uppercase hex digits. ``seq`` is a decimal uint32 (+1 per sample, wraps at 2^32); x/y/z are
int16 milli-g (-32768..32767). The encoder emits lines of at most :data:`MAX_LINE` bytes including ``\\n``; the
parser accepts line bodies (without ``\\n`` / ``\\r``) of up to ``max_line`` bytes.

:class:`LineParser` never raises: anything it cannot use comes back as a :class:`Corrupt` event
with a short ``reason`` (``checksum``, ``fields``, ``number``, ``range``, ``too_long``, ``version``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1
MAX_LINE = 80
SEQ_MOD = 1 << 32
INT16_MIN, INT16_MAX = -32768, 32767

_TABLE = []
for _b in range(256):
    _c = _b
    for _ in range(8):
        _c = ((_c << 1) ^ 0x07) & 0xFF if _c & 0x80 else (_c << 1) & 0xFF
    _TABLE.append(_c)
_CRC_TABLE = bytes(_TABLE)
del _TABLE, _b, _c

# CRC-8 is linear over GF(2) with init 0, so crc(body) = XOR over the bytes b_i of _CRC_POS[d_i, b_i],
# the CRC of b_i followed by d_i zero bytes (d_i = bytes after b_i in the body): the fast path
# checks the CRCs of many lines at once with it.
_PLAIN_BODY = 31  # the longest plain sample body: "4294967295,-32768,-32768,-32768"
_CRC_POS = np.zeros((_PLAIN_BODY, 256), dtype=np.uint8)
_CRC_POS[0] = np.frombuffer(_CRC_TABLE, dtype=np.uint8)
for _d in range(1, _PLAIN_BODY):
    _CRC_POS[_d] = _CRC_POS[0][_CRC_POS[_d - 1]]  # one more zero byte: crc = table[crc ^ 0]
del _d

_HEX = b"0123456789ABCDEF"
_HEX_VALUE = {b"%02X" % i: i for i in range(256)}  # only uppercase pairs are valid
# A whole sample line, as LineParser's fast path accepts it (any other line goes to parse_line):
# seq, x, y, z in plain decimal (no '+', no spaces), '*', two uppercase hex digits, optional \r.
# The ranges are in the pattern (seq < 2^32, values in int16), so no value needs a check after it.
_U32 = (rb"(?:\d{1,9}|[1-3]\d{9}|4[01]\d{8}|42[0-8]\d{7}|429[0-3]\d{6}|4294[0-8]\d{5}|42949[0-5]\d{4}"
        rb"|429496[0-6]\d{3}|4294967[01]\d{2}|42949672[0-8]\d|429496729[0-5])")
_I16 = rb"(?:-?(?:\d{1,4}|[12]\d{4}|3[01]\d{3}|32[0-6]\d{2}|327[0-5]\d|3276[0-7])|-32768)"
_PLAIN_VECTOR_CRC = 24  # from this many lines on, _plain checks the CRCs with numpy
_PLAIN_COLS = np.arange(_PLAIN_BODY)
_CRC_PLAIN = _CRC_POS[::-1]  # column j of a left-padded body: _CRC_POS[31 - 1 - j]
_PLAIN_SAMPLE = re.compile(
    rb"^((" + _U32 + rb"),(" + _I16 + rb"),(" + _I16 + rb"),(" + _I16 + rb"))\*([0-9A-F]{2})\r?$", re.M
)
_DEC_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


def crc8(data: bytes) -> int:
    """CRC-8, polynomial 0x07, init 0x00, no reflection, no final xor (CRC-8/SMBUS)."""
    crc = 0
    table = _CRC_TABLE
    for b in data:
        crc = table[crc ^ b]
    return crc


@dataclass(frozen=True)
class Header:
    """Device announcement: nominal sample rate (Hz), full-scale range (g), units, axes, name."""

    rate_hz: float
    range_g: float
    units: str = "mg"
    axes: str = "xyz"
    device: str = "unknown"
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Sample:
    """One reading: ``seq`` (uint32) and x, y, z in milli-g (int16, -32768..32767)."""

    seq: int
    x: int
    y: int
    z: int


@dataclass(frozen=True)
class Log:
    """A device log line (``!text``), ignored as data."""

    text: str


@dataclass(frozen=True)
class Corrupt:
    """A rejected line: ``reason`` in checksum, fields, number, range, too_long, version."""

    reason: str
    raw: bytes


Event = Header | Sample | Log | Corrupt


def _fmt_num(v: float) -> str:
    """Integers without decimals ("50"), otherwise up to 3 decimals ("12.5")."""
    v = float(v)
    if v == int(v):
        return str(int(v))
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _frame(body: bytes) -> bytes:
    c = crc8(body)
    return body + b"*" + bytes((_HEX[c >> 4], _HEX[c & 15])) + b"\n"


def encode_header(h: Header) -> bytes:
    """``#HAR,v=1,rate=50,range=4,units=mg,axes=xyz,dev=NAME*HH\\n``. Raises ValueError for values
    the protocol cannot carry (non-positive rate/range, names with separators, line too long)."""
    if not (0 < h.rate_hz <= 100_000 and 0 < h.range_g <= 10_000):
        raise ValueError(f"rate_hz {h.rate_hz} / range_g {h.range_g} outside (0, 1e5] / (0, 1e4]")
    for what, val in (("units", h.units), ("axes", h.axes), ("device", h.device)):
        if not _NAME_RE.match(val):
            raise ValueError(f"header {what} {val!r}: use 1-32 letters, digits, '_', '.', '-'")
    body = (
        f"#HAR,v={int(h.version)},rate={_fmt_num(h.rate_hz)},range={_fmt_num(h.range_g)},"
        f"units={h.units},axes={h.axes},dev={h.device}"
    ).encode("ascii")
    line = _frame(body)
    if len(line) > MAX_LINE:
        raise ValueError(f"header line is {len(line)} bytes (max {MAX_LINE}); shorten the device name")
    if h.version == PROTOCOL_VERSION and not isinstance(parse_line(line[:-1]), Header):
        raise ValueError(f"header {h!r} cannot be expressed in protocol v1 (rate/range below 0.001?)")
    return line


def encode_sample(seq: int, x: int, y: int, z: int) -> bytes:
    """``seq,x,y,z*HH\\n`` with seq in 0..2^32-1 and x/y/z in milli-g, int16 (-32768..32767)."""
    if not 0 <= seq < SEQ_MOD:
        raise ValueError(f"seq {seq} outside 0..2^32-1")
    for v in (x, y, z):
        if not INT16_MIN <= v <= INT16_MAX:
            raise ValueError(f"sample value {v} outside the int16 range {INT16_MIN}..{INT16_MAX} mg")
    return _frame(b"%d,%d,%d,%d" % (seq, x, y, z))


def encode_log(text: str) -> bytes:
    """``!text\\n`` (a device log line; the host ignores it)."""
    clean = text.replace("\n", " ").replace("\r", " ")
    return ("!" + clean).encode("ascii", "replace")[: MAX_LINE - 1] + b"\n"


def parse_line(line: bytes) -> Event | None:
    """Decode one line body (no ``\\n``). Returns None for an empty line; never raises."""
    if not line:
        return None
    if line[:1] == b"!":
        return Log(line[1:].decode("ascii", "replace"))
    star = line.rfind(b"*")
    if star < 0 or len(line) - star != 3:
        return Corrupt("checksum", bytes(line))
    body = line[:star]
    if _HEX_VALUE.get(bytes(line[star + 1 :])) != crc8(body):
        return Corrupt("checksum", bytes(line))
    if body[:1] == b"#":
        return _parse_header(body, line)
    return _parse_sample(body, line)


def _in16(v: int) -> bool:
    return INT16_MIN <= v <= INT16_MAX


def _is_int(p: bytes) -> bool:
    """``-?[0-9]+`` (bytes.isdigit is ASCII-only; int() alone would accept '+1', ' 1', '1_0')."""
    d = p[1:] if p[:1] == b"-" else p
    return d.isdigit()


def _parse_sample(body: bytes, raw: bytes) -> Event:
    parts = body.split(b",")
    if len(parts) != 4:
        return Corrupt("fields", bytes(raw))
    ps, px, py, pz = parts
    if not (ps.isdigit() and _is_int(px) and _is_int(py) and _is_int(pz)):
        return Corrupt("number", bytes(raw))
    seq, x, y, z = int(ps), int(px), int(py), int(pz)
    if seq >= SEQ_MOD or not (_in16(x) and _in16(y) and _in16(z)):
        return Corrupt("range", bytes(raw))
    return Sample(seq, x, y, z)


def _parse_header(body: bytes, raw: bytes) -> Event:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return Corrupt("fields", bytes(raw))
    parts = text.split(",")
    if parts[0] != "#HAR":
        return Corrupt("fields", bytes(raw))
    kv: dict[str, str] = {}
    for p in parts[1:]:
        k, eq, v = p.partition("=")
        if not eq or not k or k in kv:
            return Corrupt("fields", bytes(raw))
        kv[k] = v
    if "v" not in kv:
        return Corrupt("fields", bytes(raw))
    if not kv["v"].isdigit() or len(kv["v"]) > 6:
        return Corrupt("number", bytes(raw))
    if int(kv["v"]) != PROTOCOL_VERSION:
        return Corrupt("version", bytes(raw))
    if "rate" not in kv or "range" not in kv:
        return Corrupt("fields", bytes(raw))
    if not _DEC_RE.match(kv["rate"]) or not _DEC_RE.match(kv["range"]):
        return Corrupt("number", bytes(raw))
    rate, rng = float(kv["rate"]), float(kv["range"])
    if not (0 < rate <= 100_000 and 0 < rng <= 10_000):
        return Corrupt("range", bytes(raw))
    names = {k: kv.get(k, d) for k, d in (("units", "mg"), ("axes", "xyz"), ("dev", "unknown"))}
    if not all(_NAME_RE.match(v) for v in names.values()):
        return Corrupt("fields", bytes(raw))
    return Header(rate, rng, names["units"], names["axes"], names["dev"], PROTOCOL_VERSION)


@dataclass
class SampleBatch:
    """The result of :meth:`LineParser.feed_batch`: the samples of the complete lines as arrays,
    in stream order, and the other events with their position.

    ``seq``: int64 (n,); ``xyz``: int32 (n, 3), milli-g; ``others``: ``(i, event)`` pairs, in
    stream order, where ``i`` is the number of samples (rows of ``seq``) that came before
    ``event``; events are :class:`Header`, :class:`Log` or :class:`Corrupt`."""

    seq: np.ndarray
    xyz: np.ndarray
    others: list[tuple[int, Event]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def events(self) -> list[Event]:
        """Everything as one ordered event list (what :meth:`LineParser.feed` returns)."""
        out: list[Event] = []
        rows = np.column_stack([self.seq, self.xyz]).tolist() if len(self) else []
        k = 0
        for i, ev in self.others:
            out.extend(Sample(*r) for r in rows[k:i])
            k = i
            out.append(ev)
        out.extend(Sample(*r) for r in rows[k:])
        return out


_EMPTY_SEQ = np.zeros(0, dtype=np.int64)
_EMPTY_XYZ = np.zeros((0, 3), dtype=np.int32)


class LineParser:
    """Incremental framing: feed arbitrary byte chunks, get events. No I/O; never raises.

    Counters: ``bytes_in`` (bytes fed), ``lines`` (non-empty lines seen, incl. corrupt ones),
    ``corrupt`` (Corrupt events). A line longer than ``max_line`` bytes gives one
    ``Corrupt("too_long")`` and the parser resynchronises at the next ``\\n``.

    Two paths, with identical results (tests/test_protocol_parser.py compares them on hostile
    streams): the reference decodes every line with :func:`parse_line`; the fast path (the
    default) takes the plain sample lines of a chunk (what a working device sends) with one
    regular expression and checks their CRCs together, and hands every other line (headers,
    logs, anything corrupt or unusual) to :func:`parse_line` in stream order. :meth:`feed_batch`
    returns numpy arrays (no object per sample).

    Args:
        max_line: the longest line body accepted (bytes, without ``\\n``).
        reference: decode every line with :func:`parse_line` (tests and benchmarks).
    """

    def __init__(self, max_line: int = MAX_LINE, reference: bool = False) -> None:
        self.max_line = max_line
        self.reference = reference or max_line < _PLAIN_BODY + 4  # a plain line could be too long
        self.bytes_in = 0
        self.lines = 0
        self.corrupt = 0
        self._buf = b""
        self._discard = False

    def reset(self) -> None:
        """Forget a partial line (e.g. after a reconnect)."""
        self._buf = b""
        self._discard = False

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the events of every line it completes."""
        if not data:
            return []
        return self.feed_batch(data).events()

    def feed_batch(self, data: bytes) -> SampleBatch:
        """Consume ``data``; return the samples (arrays) and other events of the lines it completes."""
        if not data:
            return SampleBatch(_EMPTY_SEQ, _EMPTY_XYZ, [])
        self.bytes_in += len(data)
        buf = self._buf + bytes(data)
        end = buf.rfind(b"\n")
        if end < 0:
            region, rest = b"", buf
        else:
            region, rest = buf[: end + 1], buf[end + 1 :]
            if self._discard:  # the tail of a runaway line
                cut = region.find(b"\n")
                region = region[cut + 1 :]
                self._discard = False
        if not region:
            batch = SampleBatch(_EMPTY_SEQ, _EMPTY_XYZ, [])
        elif self.reference:
            batch = self._reference(region)
        else:
            batch = self._fast(region)
        if self._discard:
            rest = b""
        elif len(rest) > self.max_line + 1:  # +1: a trailing \r may still come
            ev = Corrupt("too_long", rest[: self.max_line])
            self.lines += 1
            self.corrupt += 1
            batch.others.append((len(batch), ev))
            self._discard = True
            rest = b""
        self._buf = rest
        return batch

    def _fast(self, region: bytes) -> SampleBatch:
        """Complete lines (``region`` ends in ``\\n``): plain sample lines by one regular
        expression, their CRCs checked together; every other line by :meth:`_line`."""
        found = _PLAIN_SAMPLE.findall(region)
        n = len(found)
        ok = _crc_ok(found)
        if n == region.count(b"\n") and all(ok):  # the common case: nothing but good sample lines
            self.lines += n
            return _batch([(int(sq), int(x), int(y), int(z)) for _, sq, x, y, z, _ in found], [])
        # mixed: walk the lines in order; the regex matches say where the plain ones are
        rows: list[tuple[int, int, int, int]] = []
        others: list[tuple[int, Event]] = []
        pos = 0
        for m, f, good in zip(_PLAIN_SAMPLE.finditer(region), found, ok, strict=True):
            start = m.start()
            if start > pos:
                self._others(region[pos : start - 1], rows, others)
            if good:
                rows.append((int(f[1]), int(f[2]), int(f[3]), int(f[4])))
                self.lines += 1
            else:
                self._others(region[start : m.end()], rows, others)  # the reference reports it
            pos = m.end() + 1
        if pos < len(region):
            self._others(region[pos:-1], rows, others)
        return _batch(rows, others)

    def _others(self, lines: bytes, rows: list[tuple[int, int, int, int]], others: list[tuple[int, Event]]) -> None:
        """Decode ``lines`` (complete lines without the last ``\\n``) one by one with :meth:`_line`."""
        for line in lines.split(b"\n"):
            ev = self._line(line)
            if ev is None:
                continue
            if isinstance(ev, Sample):
                rows.append((ev.seq, ev.x, ev.y, ev.z))
            else:
                others.append((len(rows), ev))

    def _reference(self, region: bytes) -> SampleBatch:
        """Every line with :func:`parse_line` (the reference path)."""
        rows: list[tuple[int, int, int, int]] = []
        others: list[tuple[int, Event]] = []
        self._others(region[:-1], rows, others)
        return _batch(rows, others)

    def _line(self, line: bytes) -> Event | None:
        """One complete line (without ``\\n``): its event, counted; None for an empty line."""
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return None
        ev: Event | None
        if len(line) > self.max_line:
            ev = Corrupt("too_long", line[: self.max_line])
        else:
            ev = parse_line(line)
            if ev is None:
                return None
        self.lines += 1
        if isinstance(ev, Corrupt):
            self.corrupt += 1
        return ev


def _crc_ok(found: list[tuple[bytes, ...]]) -> list[bool]:
    """Whether each regex match (body, ..., hex CRC) carries the CRC of its body; from
    ``_PLAIN_VECTOR_CRC`` lines on all at once with numpy (left-padded bodies: leading zero bytes
    do not change a CRC-8 with init 0)."""
    hexval = _HEX_VALUE
    n = len(found)
    if n >= _PLAIN_VECTOR_CRC:
        rows_b = np.frombuffer(b"".join([f[0].rjust(_PLAIN_BODY, b"\0") for f in found]), dtype=np.uint8)
        crc = np.bitwise_xor.reduce(_CRC_PLAIN[_PLAIN_COLS, rows_b.reshape(n, _PLAIN_BODY)], axis=1)
        return [c == hexval[f[5]] for c, f in zip(crc.tolist(), found, strict=True)]
    return [crc8(f[0]) == hexval[f[5]] for f in found]


def _batch(rows: list[tuple[int, int, int, int]], others: list[tuple[int, Event]]) -> SampleBatch:
    if not rows:
        return SampleBatch(_EMPTY_SEQ, _EMPTY_XYZ, others)
    a = np.array(rows, dtype=np.int64)
    return SampleBatch(a[:, 0].copy(), a[:, 1:].astype(np.int32), others)
