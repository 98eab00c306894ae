"""Fuzzing the recording readers (CSV and JSON sidecar) and the plausibility checks.

Properties: no exception other than a HarError (one-line message) ever leaves the reader, nothing
hangs (every example has a deadline), and a file that reads without error holds exactly the
samples that were written (never a silently wrong sample)."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from har.errors import HarError
from har.recording.checks import check_recording
from har.recording.format import MAX_ABS_G, label_problem, read_recording

FUZZ = settings(max_examples=100, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
HEADER = "time_s,x_g,y_g,z_g,label,seq"

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2.0, max_value=2.0),
    st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 5e-324, 1e300, 64.0, 64.000001, -64.0, 1e15, 1e303]),
)
labels = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["", "walking", "walk, fast", "café", "e\u0301", " sit ", 'a"b', "a\tb", "x" * 64, "x" * 65]),
)


def _read(path: Path) -> object:
    """read_recording, or the HarError it raised; anything else fails the test."""
    try:
        rec = read_recording(path)
    except HarError as e:
        assert "\n" not in str(e), str(e)
        return e
    check_recording(rec)  # the checks never raise on anything the reader accepts
    return rec


def _write(tmp: Path, text: bytes, sidecar: bytes | None = None) -> Path:
    p = tmp / "r.csv"
    p.write_bytes(text)
    s = p.with_suffix(".json")
    if sidecar is None:
        s.unlink(missing_ok=True)
    else:
        s.write_bytes(sidecar)
    return p


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        _read(_write(Path(d), data))
        _read(_write(Path(d), HEADER.encode() + b"\n" + data))


@FUZZ
@given(st.lists(st.tuples(floats, floats, floats, floats, labels, st.integers(-2**70, 2**70)), max_size=25),
       st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
def test_valid_looking_rows_read_exactly_or_fail_cleanly(rows: list, encoding: str) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER.split(","))
    for t, x, y, z, lab, seq in rows:
        w.writerow([repr(t), repr(x), repr(y), repr(z), lab, seq])
    text = buf.getvalue()
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        assume(False)
        return
    with tempfile.TemporaryDirectory() as d:
        got = _read(_write(Path(d), data))
    if isinstance(got, HarError):
        return  # a clean one-line error is always allowed; what must never happen is a wrong sample
    rec = got
    assert len(rec) == len(rows)  # type: ignore[arg-type]
    for i, (t, x, y, z, lab, seq) in enumerate(rows):
        assert rec.time[i] == t  # type: ignore[attr-defined]
        assert np.array_equal(rec.xyz[i], np.float32([x, y, z]))  # type: ignore[attr-defined]
        assert rec.labels[i] == unicodedata.normalize("NFC", lab.strip())  # type: ignore[attr-defined]
        assert rec.seq[i] == seq  # type: ignore[attr-defined]
        assert label_problem(lab) is None
        assert all(math.isfinite(v) and abs(v) <= MAX_ABS_G for v in (x, y, z))


@settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3),
                          st.sampled_from(["walking", "sitting", "walk, fast", "café", "", "x" * 30])),
                min_size=1, max_size=20))
def test_the_fast_parser_agrees(base: list) -> None:
    """Files of 1000+ plain rows go through numpy's parser: the same values as the line parser."""
    rows = (base * (1000 // len(base) + 1))[:1000 + len(base)]
    lines = [HEADER] + [f"{t!r},{x!r},{y!r},{z!r},{lab if ',' not in lab else chr(34) + lab + chr(34)},{i}"
                        for i, (t, x, y, z, lab) in enumerate(rows)]
    with tempfile.TemporaryDirectory() as d:
        rec = _read(_write(Path(d), ("\n".join(lines) + "\n").encode()))
    assert not isinstance(rec, HarError), rec
    assert np.array_equal(rec.time, np.array([r[0] for r in rows]))  # type: ignore[attr-defined]
    assert np.array_equal(rec.xyz, np.float32([r[1:4] for r in rows]))  # type: ignore[attr-defined]
    assert rec.labels.tolist() == [r[4] for r in rows]  # type: ignore[attr-defined]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
SIDECAR_KEYS = ["session_id", "subject", "device", "start_time", "rate_hz", "measured_rate_hz", "units", "axes",
                "labels", "samples", "dropped", "corrupt", "resets", "reconnects", "gaps", "source", "complete",
                "format", "version", "extra"]


@FUZZ
@given(st.dictionaries(st.sampled_from(SIDECAR_KEYS), json_values, max_size=8))
def test_random_sidecars(fields: dict) -> None:
    body = (HEADER + "\n" + "".join(f"{i / 50:.4f},0.01,0.02,0.99,walking,{i}\n" for i in range(60))).encode()
    try:
        side = json.dumps(fields).encode()
    except ValueError:
        assume(False)
        return
    with tempfile.TemporaryDirectory() as d:
        got = _read(_write(Path(d), body, side))
    if not isinstance(got, HarError):
        assert len(got) == 60 and got.xyz[0, 2] == np.float32(0.99)  # type: ignore[attr-defined, arg-type]


@FUZZ
@given(st.binary(max_size=300))
def test_random_sidecar_bytes(data: bytes) -> None:
    body = (HEADER + "\n0,0,0,1,a,0\n").encode()
    with tempfile.TemporaryDirectory() as d:
        _read(_write(Path(d), body, data))


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.one_of(st.binary(max_size=600),
                 st.lists(st.tuples(floats, floats, floats, floats, labels), max_size=15).map(
                     lambda rows: ("t,x,y,z,label\n" + "".join(
                         f"{t!r},{x!r},{y!r},{z!r},{json.dumps(lab)}\n" for t, x, y, z, lab in rows)).encode())))
def test_import_csv_reader_fails_cleanly(data: bytes) -> None:
    """`har import csv`'s reader (no writing: fsync under load would time the test, not the code):
    a clean HarError, or sessions whose labels follow the rule and whose values pass the checks."""
    import warnings

    from har.recording.importers.generic_csv import _read_file

    cols = {"time": "t", "x": "x", "y": "y", "z": "z", "label": "label", "subject": None}
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = Path(d) / "in.csv"
        src.write_bytes(data)
        try:
            sessions = _read_file(src, "in", cols, ",", 1.0, None, 1.0, "s", "unknown")
            for sess in sessions:
                sess.check()
                assert all(label_problem(lab) is None for lab in set(sess.labels.tolist()))
        except HarError as e:
            assert "\n" not in str(e)
