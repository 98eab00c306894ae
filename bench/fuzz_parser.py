"""Mutation fuzzer for the wire protocol v1 parser (har.wire.protocol.LineParser).

Each input is a short valid stream (1-6 frames: samples, headers, log lines) with 0-3 mutations:
byte flips, insertions, deletions, garbage bursts (random bytes, newlines included) and
truncation. For every input the fuzzer checks that

* no exception escapes ``LineParser.feed``;
* every frame the mutations left intact (its bytes, its terminating ``\\n`` and the ``\\n`` before
  it untouched, nothing inserted in front of it) is decoded exactly, in order (the parser may
  return extra events for the damaged parts, including, rarely, a valid-looking line
  made by a mutation: intact frames must be a subsequence of the decoded events);
* an unmutated stream decodes to exactly its frames;
* one input in eight, fed in random chunks, gives the same events as fed whole.

    .venv/bin/python bench/fuzz_parser.py                 # 1,000,000 inputs
    .venv/bin/python bench/fuzz_parser.py --count 20000 --seed 7

Exit status 1 (with a reproducer on stderr) if any check fails.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from har.wire.protocol import Corrupt, Header, LineParser, Log, Sample, encode_header, encode_log, encode_sample

Frame = tuple[bytes, Header | Sample | Log]

# bytes a mutation likes to produce: protocol punctuation and digits make near-valid lines
_NEAR = b"0123456789,-*#!\n\r=ABCDEF" * 4 + bytes(range(256))


def build_pool(rng: random.Random, size: int = 4096) -> list[Frame]:
    """Valid frames with their expected events (extreme values included)."""
    edge_seq = [0, 1, 9, 10, 2**31, 2**32 - 2, 2**32 - 1]
    edge_val = [0, 1, -1, 999, -1000, 32767, -32767, 4000, -4000]
    pool: list[Frame] = []
    for i in range(size):
        r = rng.random()
        if r < 0.8:
            seq = rng.choice(edge_seq) if i % 5 == 0 else rng.randrange(2**32)
            x, y, z = (rng.choice(edge_val) if rng.random() < 0.2 else rng.randint(-4096, 4096) for _ in range(3))
            pool.append((encode_sample(seq, x, y, z), Sample(seq, x, y, z)))
        elif r < 0.92:
            name = "".join(rng.choice("abcxyzABC019_.-") for _ in range(rng.randint(1, 24)))
            h = Header(float(rng.choice([25, 50, 100, 200, 500, 1000, 12.5])), float(rng.choice([2, 4, 8, 16])),
                       device=name)  # fmt: skip
            pool.append((encode_header(h), h))
        else:
            text = "".join(chr(rng.randint(0x20, 0x7E)) for _ in range(rng.randint(0, 30)))
            pool.append((encode_log(text), Log(text)))
    return pool


def garbage(rng: random.Random, n: int) -> bytes:
    near = _NEAR
    m = len(near)
    return bytes(near[int(rng.random() * m)] for _ in range(n))


def mutate(rng: random.Random, data: bytes, stats: Counter[str]) -> tuple[bytes, list[tuple[int, int]], list[int]]:
    """Applies 1-3 mutations. Returns (mutated, dirty byte ranges [lo, hi), dirty insertion gaps), in
    original coordinates (gap g = just before original byte g).

    Flips, insertions and deletions never overlap (in doubled coordinates: byte i = 2i+1, gap g = 2g),
    and are applied from the highest position down, so every one of them lands exactly where the
    dirty sets say. A truncation cuts everything from its position on, whatever came before."""
    n = len(data)
    ops: list[tuple[int, str, int, bytes]] = []  # (doubled start, kind, pos, payload / length)
    taken: list[tuple[int, int]] = []
    dirty: list[tuple[int, int]] = []
    gaps: list[int] = []
    cut = n
    for _ in range(1 + int(rng.random() * 3)):
        kind = rng.choices(("flip", "insert", "delete", "burst", "truncate"), (4, 2, 2, 1, 1))[0]
        if kind == "truncate":
            cut = min(cut, int(rng.random() * n))
            stats[kind] += 1
            continue
        if kind == "flip":
            pos = int(rng.random() * n)
            old = data[pos]
            new = old ^ (1 << int(rng.random() * 8)) if rng.random() < 0.5 else garbage(rng, 1)[0]
            payload = bytes((new if new != old else old ^ 0x80,))  # a flip always changes the byte
            span = (2 * pos + 1, 2 * pos + 1)
        elif kind == "delete":
            pos = int(rng.random() * n)
            end = min(pos + 1 + int(rng.random() * 12), n)
            payload = bytes(end - pos)
            span = (2 * pos + 1, 2 * end - 1)
        else:
            pos = int(rng.random() * (n + 1))
            payload = garbage(rng, 1 + int(rng.random() * (8 if kind == "insert" else 120)))
            span = (2 * pos, 2 * pos)
        if any(lo <= span[1] and span[0] <= hi for lo, hi in taken):
            continue  # would overlap an earlier mutation: skip it
        taken.append(span)
        stats[kind] += 1
        ops.append((span[0], kind, pos, payload))
        if kind == "flip":
            dirty.append((pos, pos + 1))
        elif kind == "delete":
            dirty.append((pos, pos + len(payload)))
        else:
            gaps.append(pos)
    buf = bytearray(data)
    for _, kind, pos, payload in sorted(ops, reverse=True):
        if kind == "flip":
            buf[pos] = payload[0]
        elif kind == "delete":
            del buf[pos : pos + len(payload)]
        else:
            buf[pos:pos] = payload
    if cut < n:
        # everything at or after original byte `cut` is gone (ops above `cut` only moved bytes above it)
        shift = 0
        for d, k, pos, p in ops:
            if d < 2 * cut and k in ("insert", "burst"):
                shift += len(p)
            elif d < 2 * cut and k == "delete":
                shift -= min(pos + len(p), cut) - pos
        del buf[cut + shift :]
        dirty.append((cut, n))
    return bytes(buf), dirty, gaps


def intact_events(frames: list[Frame], dirty: list[tuple[int, int]], gaps: list[int]) -> list[object]:
    """Frames whose bytes [start, end), the '\\n' before them (start - 1) and the insertion gaps
    start .. end - 1 are all untouched."""
    out: list[object] = []
    start = 0
    for line, ev in frames:
        end = start + len(line)
        lo = start - 1 if start else 0
        for a, b in dirty:
            if a < end and lo < b:
                break
        else:
            for g in gaps:
                if start <= g < end:
                    break
            else:
                out.append(ev)
        start = end
    return out


def is_subsequence(needle: list[object], haystack: list[object]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needle)


def run(count: int, seed: int) -> int:
    rng = random.Random(seed)
    pool = build_pool(rng)
    npool = len(pool)
    stats: Counter[str] = Counter()
    failures = 0
    t0 = time.perf_counter()
    for i in range(count):
        frames = [pool[int(rng.random() * npool)] for _ in range(1 + int(rng.random() * 6))]
        clean = b"".join(f[0] for f in frames)
        if rng.random() < 0.1:
            data, dirty, gaps = clean, [], []
        else:
            data, dirty, gaps = mutate(rng, clean, stats)
        stats["bytes"] += len(data)
        stats["frames"] += len(frames)
        problem = ""
        try:
            events = LineParser().feed(data)
            want = intact_events(frames, dirty, gaps)
            stats["intact"] += len(want)
            stats["events"] += len(events)
            stats["corrupt"] += sum(1 for e in events if isinstance(e, Corrupt))
            if not dirty and not gaps:
                if events != want:
                    problem = "clean stream not decoded exactly"
            elif not is_subsequence(want, events):
                problem = "an intact frame was not recovered"
            if not problem and i % 8 == 0 and len(data) > 1:
                p = LineParser()
                cut1 = 1 + int(rng.random() * (len(data) - 1))
                cut2 = cut1 + int(rng.random() * (len(data) - cut1))
                chunked = p.feed(data[:cut1]) + p.feed(data[cut1:cut2]) + p.feed(data[cut2:])
                stats["chunked"] += 1
                if chunked != events:
                    problem = f"chunked feed ({cut1}, {cut2}) differs from whole feed"
        except Exception as e:  # noqa: BLE001 - the point is to catch anything that escapes
            problem = f"exception {type(e).__name__}: {e}"
        if problem:
            failures += 1
            if failures <= 5:
                print(f"FAIL input #{i} (seed {seed}): {problem}\n  clean={clean!r}\n  input={data!r}", file=sys.stderr)
    dt = time.perf_counter() - t0
    print(f"inputs        {count:,} (seed {seed})")
    print(f"time          {dt:.1f} s  ->  {count / dt:,.0f} inputs/s, {stats['bytes'] / dt / 1e6:.2f} MB/s")
    print(f"bytes fed     {stats['bytes']:,}")
    print(f"frames        {stats['frames']:,} generated, {stats['intact']:,} left intact (all recovered: "
          f"{'yes' if not failures else 'NO'})")  # fmt: skip
    print(f"events        {stats['events']:,} decoded, {stats['corrupt']:,} Corrupt")
    print("mutations     " + ", ".join(f"{k} {stats[k]:,}" for k in ("flip", "insert", "delete", "burst", "truncate")))
    print(f"chunked runs  {stats['chunked']:,} (same events as whole feed)")
    print(f"failures      {failures}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1_000_000, help="number of inputs (default 1000000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = ap.parse_args(argv)
    return run(args.count, args.seed)


if __name__ == "__main__":
    sys.exit(main())
