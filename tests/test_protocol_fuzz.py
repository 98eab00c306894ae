"""Property tests of the wire protocol v1 parser (har.wire.protocol.LineParser) under hostile input:
it never raises, resynchronises at the next newline after garbage, and does not depend on how the
byte stream is chunked. See bench/fuzz_parser.py for the million-input mutation fuzzer."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from har.wire.protocol import Corrupt, Header, LineParser, Log, Sample, encode_header, encode_log, encode_sample

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

i16 = st.integers(-32767, 32767)
u32 = st.integers(0, 2**32 - 1)
dev_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.-", min_size=1, max_size=20)
log_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)

Event = Header | Sample | Log


@st.composite
def frames(draw: st.DrawFn) -> tuple[bytes, Event]:
    """One valid line and the event it must decode to."""
    kind = draw(st.sampled_from(["sample", "sample", "sample", "header", "log"]))
    if kind == "sample":
        seq, x, y, z = draw(u32), draw(i16), draw(i16), draw(i16)
        return encode_sample(seq, x, y, z), Sample(seq, x, y, z)
    if kind == "header":
        h = Header(float(draw(st.sampled_from([1, 25, 50, 100, 200, 500, 1000, 12.5]))),
                   float(draw(st.sampled_from([2, 4, 8, 16]))), device=draw(dev_names))  # fmt: skip
        return encode_header(h), h
    text = draw(log_text)
    return encode_log(text), Log(text)


garbage_no_nl = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))
garbage_any = st.binary(max_size=120)


def feed_chunked(data: bytes, cuts: list[int]) -> list[object]:
    p = LineParser()
    events: list[object] = []
    prev = 0
    for c in sorted(set(cuts)) + [len(data)]:
        events += p.feed(data[prev:c])
        prev = c
    return events


def is_subsequence(needle: list[object], haystack: list[object]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needle)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_any_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    events = feed_chunked(data, [c for c in cuts if c <= len(data)])
    assert all(isinstance(e, Header | Sample | Log | Corrupt) for e in events)
    assert all(len(e.raw) <= 80 for e in events if isinstance(e, Corrupt))


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=200), max_size=6))
def test_long_lines_without_newline_never_raise(chunks: list[bytes]) -> None:
    p = LineParser()
    for c in chunks:
        p.feed(c.replace(b"\n", b"x") * 3)
    p.feed(b"\n" + encode_sample(7, 1, 2, 3))
    # after any amount of junk, one newline resynchronises the parser
    assert p.feed(encode_sample(8, 4, 5, 6)) == [Sample(8, 4, 5, 6)]


@FUZZ
@given(st.lists(st.tuples(frames(), garbage_no_nl), min_size=1, max_size=12))
def test_frames_separated_by_newline_free_garbage_are_all_recovered(
    items: list[tuple[tuple[bytes, Event], bytes]],
) -> None:
    # garbage without '\n' merges into the line before it only if placed before a frame's start;
    # here it is followed by its own '\n', so it always forms a separate (corrupt or junk) line.
    stream = b"".join(line + junk + b"\n" for (line, _), junk in items)
    events = LineParser().feed(stream)
    want = [ev for (_, ev), _ in items]
    got = [e for e in events if isinstance(e, Header | Sample | Log)]
    assert is_subsequence(want, got)


@FUZZ
@given(st.lists(st.tuples(garbage_no_nl, frames()), min_size=1, max_size=12))
def test_garbage_glued_before_a_frame_costs_only_that_frame(items: list[tuple[bytes, tuple[bytes, Event]]]) -> None:
    # junk (no '\n') directly in front of a frame corrupts that frame only; frames with no junk in front survive
    stream = b"".join(junk + line for junk, (line, _) in items)
    events = LineParser().feed(stream)
    want = [ev for junk, (_, ev) in items if not junk]
    assert is_subsequence(want, [e for e in events if isinstance(e, Header | Sample | Log)])


@FUZZ
@given(st.lists(st.one_of(frames(), garbage_any), min_size=1, max_size=16))
def test_frames_after_garbage_with_newlines_are_recovered(parts: list[tuple[bytes, Event] | bytes]) -> None:
    # garbage may contain newlines and end anywhere; a frame preceded by a '\n' (or at the start) is intact
    stream = b""
    want: list[Event] = []
    for part in parts:
        if isinstance(part, tuple):
            line, ev = part
            if stream == b"" or stream.endswith(b"\n"):
                want.append(ev)
            stream += line
        else:
            stream += part
    got = [e for e in LineParser().feed(stream) if isinstance(e, Header | Sample | Log)]
    assert is_subsequence(want, got)


@FUZZ
@given(st.lists(st.one_of(frames().map(lambda f: f[0]), garbage_any), max_size=12), st.data())
def test_chunking_does_not_change_events(parts: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(parts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    whole = LineParser().feed(stream)
    assert feed_chunked(stream, cuts) == whole
    assert feed_chunked(stream, list(range(len(stream)))) == whole  # one byte at a time


@FUZZ
@given(st.lists(frames(), min_size=1, max_size=10), st.sampled_from([b"\n", b"\r\n"]))
def test_clean_stream_decodes_exactly(items: list[tuple[bytes, Event]], eol: bytes) -> None:
    stream = b"".join(line[:-1] + eol for line, _ in items)
    assert LineParser().feed(stream) == [ev for _, ev in items]
