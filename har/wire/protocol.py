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

# Fast path: CRC-8 is linear over GF(2) with init 0, so crc(body) = XOR over the bytes b_i of
# _CRC_POS[d_i, b_i], the CRC of b_i followed by d_i zero bytes (d_i = bytes after b_i in the body).
_FAST_MAX = 40  # longest line body (without \r) the vectorised path handles; longer lines go the slow way
_CRC_POS = np.zeros((_FAST_MAX, 256), dtype=np.uint8)
_CRC_POS[0] = np.frombuffer(_CRC_TABLE, dtype=np.uint8)
for _d in range(1, _FAST_MAX):
    _CRC_POS[_d] = _CRC_POS[0][_CRC_POS[_d - 1]]  # one more zero byte: crc = table[crc ^ 0]
del _d
_CRC_POS_FLAT = _CRC_POS.reshape(-1)
_HEX_NIBBLE = np.full(256, -1, dtype=np.int16)  # uppercase hex digit -> value, else -1
for _i, _ch in enumerate(b"0123456789ABCDEF"):
    _HEX_NIBBLE[_ch] = _i
del _i, _ch
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[48:58] = True

_HEX = b"0123456789ABCDEF"
_HEX_VALUE = {b"%02X" % i: i for i in range(256)}  # only uppercase pairs are valid
# A whole sample line, as LineParser._plain accepts it (anything else takes the general paths):
# seq, x, y, z in plain decimal (no '+', no spaces), '*', two uppercase hex digits, optional \r.
# The ranges are in the pattern (seq < 2^32, values in int16), so no value needs a check after it.
_U32 = (rb"(?:\d{1,9}|[1-3]\d{9}|4[01]\d{8}|42[0-8]\d{7}|429[0-3]\d{6}|4294[0-8]\d{5}|42949[0-5]\d{4}"
        rb"|429496[0-6]\d{3}|4294967[01]\d{2}|42949672[0-8]\d|429496729[0-5])")
_I16 = rb"(?:-?(?:\d{1,4}|[12]\d{4}|3[01]\d{3}|32[0-6]\d{2}|327[0-5]\d|3276[0-7])|-32768)"
_PLAIN_BODY = 31  # the longest plain sample body: "4294967295,-32768,-32768,-32768"
_PLAIN_VECTOR_CRC = 24  # from this many lines on, _plain checks the CRCs with numpy
_PLAIN_COLS = np.arange(_PLAIN_BODY)
_CRC_PLAIN = _CRC_POS[_PLAIN_BODY - 1 :: -1]  # column j of a left-padded body: _CRC_POS[31 - 1 - j]
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

    :meth:`feed_batch` is the fast interface (numpy arrays, no object per sample): chunks with
    at least ``fast_min_lines`` complete lines are checked and decoded vectorised (CRC by a
    per-position table, field syntax by byte classes); any line the vectorised checks do not
    accept is decoded by :func:`parse_line`, so both paths give identical results.
    """

    fast_min_lines = 8
    plain_max_lines = 400  # regions up to this many lines first try the plain-sample path

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
        n_lines = region.count(b"\n") if region else 0
        batch = self._plain(region, n_lines) if 0 < n_lines <= self.plain_max_lines else None
        if batch is None:
            if n_lines >= max(1, self.fast_min_lines):
                batch = self._fast(region)
            else:
                batch = self._slow(region.split(b"\n")[:-1] if region else [])
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

    def _plain(self, region: bytes, n_lines: int) -> SampleBatch | None:
        """The common case, in a few C calls per line: every line of ``region`` is a well-formed
        sample line (one regex over the region) with a valid CRC and values in range. None as
        soon as anything is unusual: then :meth:`_fast` / :meth:`_slow` decode the region."""
        found = _PLAIN_SAMPLE.findall(region)
        if len(found) != n_lines:  # some line is not a plain sample line
            return None
        hexval = _HEX_VALUE
        if n_lines >= _PLAIN_VECTOR_CRC:  # CRCs of all bodies at once: left-padded rows (zeros do not change a CRC)
            rows_b = np.frombuffer(b"".join([f[0].rjust(_PLAIN_BODY, b"\0") for f in found]), dtype=np.uint8)
            crc = np.bitwise_xor.reduce(_CRC_PLAIN[_PLAIN_COLS, rows_b.reshape(n_lines, _PLAIN_BODY)], axis=1)
            if crc.tolist() != [hexval[f[5]] for f in found]:
                return None
        elif any(crc8(f[0]) != hexval[f[5]] for f in found):
            return None
        a = np.array([(int(sq), int(x), int(y), int(z)) for _, sq, x, y, z, _ in found], dtype=np.int64)
        self.lines += n_lines
        return SampleBatch(a[:, 0].copy(), a[:, 1:].astype(np.int32), [])

    def _slow(self, lines: list[bytes]) -> SampleBatch:
        """Line by line with :func:`parse_line` (few lines, or the fallback of :meth:`_fast`)."""
        rows: list[tuple[int, int, int, int]] = []
        others: list[tuple[int, Event]] = []
        for line in lines:
            ev = self._line(line)
            if ev is None:
                continue
            if isinstance(ev, Sample):
                rows.append((ev.seq, ev.x, ev.y, ev.z))
            else:
                others.append((len(rows), ev))
        if not rows:
            return SampleBatch(_EMPTY_SEQ, _EMPTY_XYZ, others)
        a = np.array(rows, dtype=np.int64)
        return SampleBatch(a[:, 0].copy(), a[:, 1:].astype(np.int32), others)

    def _fast(self, region: bytes) -> SampleBatch:
        """Vectorised decoding of ``region`` (complete lines, ending in ``\\n``): one pass of
        array operations over all bytes; lines it does not accept go through :meth:`_line`."""
        a = np.frombuffer(region, dtype=np.uint8)
        size = a.shape[0]
        is_nl = a == 10
        nl = np.flatnonzero(is_nl)
        n = nl.shape[0]
        starts = np.empty(n, dtype=np.int64)
        starts[0] = 0
        starts[1:] = nl[:-1] + 1
        e = nl - ((nl > starts) & (a[nl - 1] == 13))  # body end (exclusive), without \r
        length = e - starts
        star = e - 3  # where '*' must be
        cand = (length >= 10) & (length <= min(_FAST_MAX, self.max_line))
        sc = np.where(cand, star, 0)
        hi, lo = _HEX_NIBBLE[a[np.where(cand, e - 2, 0)]], _HEX_NIBBLE[a[np.where(cand, e - 1, 0)]]
        cand &= _DIGIT[a[starts]] & (a[sc] == 42) & (hi >= 0) & (lo >= 0) & _DIGIT[a[sc - 1]]
        # per byte: line id, distance to the end of the body (-1 = not in a candidate body)
        lid = np.cumsum(is_nl) - is_nl
        dist = np.where(cand, star, -1)[lid] - 1 - np.arange(size)
        body = dist >= 0
        dist_c = np.minimum(np.maximum(dist, 0), _FAST_MAX - 1)
        crc = np.bitwise_xor.reduceat(np.where(body, _CRC_POS_FLAT[dist_c * 256 + a], 0).astype(np.uint8), starts)
        ok = cand & (crc == hi * 16 + lo)
        # syntax: only digits ',' '-'; '-' right after ',' and before a digit; ',' between a digit
        # and a digit or '-'; exactly 3 commas (first and last body bytes are digits, checked above)
        digit = _DIGIT[a]
        comma = (a == 44) & body
        minus = (a == 45) & body
        prev = np.empty_like(a)
        prev[0] = 10
        prev[1:] = a[:-1]
        nxt = np.empty_like(a)
        nxt[-1] = 10
        nxt[:-1] = a[1:]
        bad = body & ~(digit | comma | minus)
        bad |= minus & ((prev != 44) | ~_DIGIT[nxt])
        bad |= comma & (~_DIGIT[prev] | ~(_DIGIT[nxt] | (nxt == 45)))
        ok &= np.bincount(lid[bad], minlength=n) == 0
        ok &= np.add.reduceat(comma.astype(np.int16), starts) == 3
        # decimal values: a field starts at a line start or after ','; each digit counts
        # 10^(digits after it in the field); fields end at ',' or '*'
        sep = comma | (np.arange(size) == np.where(cand, star, -1)[lid])
        idx = np.where(sep, np.arange(size), size)
        next_sep = np.minimum.accumulate(idx[::-1])[::-1]
        fflag = np.zeros(size, dtype=bool)
        fflag[starts] = True
        fflag[np.flatnonzero(comma) + 1] = True
        fstart = np.flatnonzero(fflag)
        exp = np.minimum(np.maximum(next_sep - 1 - np.arange(size), 0), 18)
        contrib = np.where(digit & body, (a.astype(np.int64) - 48) * _POW10[exp], 0)
        mag = np.add.reduceat(contrib, fstart)
        fval = np.where(a[fstart] == 45, -mag, mag)
        fowner = lid[fstart]
        flen = next_sep[fstart] - fstart
        ok &= np.bincount(fowner[(flen > 11) & body[fstart]], minlength=n) == 0  # int64-safe fields only
        vals = fval[ok[fowner] & body[fstart]].reshape(-1, 4)
        if vals.shape[0]:
            v = vals[:, 1:]
            in_range = (vals[:, 0] < SEQ_MOD) & ((v >= INT16_MIN) & (v <= INT16_MAX)).all(axis=1)
            if not in_range.all():
                okl = np.flatnonzero(ok)
                ok[okl[~in_range]] = False
                vals = vals[in_range]
        good = ok
        gi = np.flatnonzero(good)
        self.lines += int(gi.shape[0])
        seq = vals[:, 0].copy()
        xyz = vals[:, 1:].astype(np.int32)
        slow = np.flatnonzero(~good)
        if not slow.shape[0]:
            return SampleBatch(seq, xyz, [])
        before = np.cumsum(good) - good  # fast samples before each line
        others: list[tuple[int, Event]] = []
        ins_at: list[int] = []
        ins_rows: list[tuple[int, int, int, int]] = []
        for i in slow.tolist():
            ev = self._line(region[starts[i] : nl[i]])
            if ev is None:
                continue
            k = int(before[i])
            if isinstance(ev, Sample):
                ins_at.append(k)
                ins_rows.append((ev.seq, ev.x, ev.y, ev.z))
            else:
                others.append((k + len(ins_at), ev))
        if ins_at:
            rows = np.array(ins_rows, dtype=np.int64)
            seq = np.insert(seq, ins_at, rows[:, 0])
            xyz = np.insert(xyz, ins_at, rows[:, 1:].astype(np.int32), axis=0)
        return SampleBatch(seq, xyz, others)

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
