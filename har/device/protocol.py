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
from dataclasses import dataclass

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

_HEX = b"0123456789ABCDEF"
_HEX_VALUE = {b"%02X" % i: i for i in range(256)}  # only uppercase pairs are valid
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


class LineParser:
    """Incremental framing: feed arbitrary byte chunks, get events. No I/O; never raises.

    Counters: ``bytes_in`` (bytes fed), ``lines`` (non-empty lines seen, incl. corrupt ones),
    ``corrupt`` (Corrupt events). A line longer than ``max_line`` bytes gives one
    ``Corrupt("too_long")`` and the parser resynchronises at the next ``\\n``.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
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
        events: list[Event] = []
        if not data:
            return events
        self.bytes_in += len(data)
        parts = (self._buf + bytes(data)).split(b"\n")
        rest = parts.pop()
        for line in parts:
            if self._discard:
                self._discard = False
                continue
            self._line(line, events)
        if self._discard:
            rest = b""
        elif len(rest) > self.max_line + 1:  # +1: a trailing \r may still come
            self._emit(Corrupt("too_long", rest[: self.max_line]), events)
            self._discard = True
            rest = b""
        self._buf = rest
        return events

    def _emit(self, ev: Event, events: list[Event]) -> None:
        self.lines += 1
        if isinstance(ev, Corrupt):
            self.corrupt += 1
        events.append(ev)

    def _line(self, line: bytes, events: list[Event]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            return
        if len(line) > self.max_line:
            self._emit(Corrupt("too_long", line[: self.max_line]), events)
            return
        ev = parse_line(line)
        if ev is not None:
            self._emit(ev, events)
