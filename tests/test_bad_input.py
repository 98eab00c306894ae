"""The bad-input table: bad or unusual inputs over every command.

Each case builds its files in a fresh folder, runs one command (click's CliRunner; a real process
where one is needed, e.g. a named pipe) and asserts the exit code, the one-line message (no
traceback) or the ``Warning:`` line, and that no file that existed before changed (sha256 before
and after); a failing command leaves no new file behind either.

Fast: no TensorFlow (the `har train` cases fail in the preflight, before TensorFlow is imported;
one test checks that in a fresh process); `har replay`/`har run` use the shipped default bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from har.cli import cli
from har.recording.format import Recording, RecordingMeta, read_recording, write_recording

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "models" / "default"
HAR = [sys.executable, "-c", "from har.cli import main; main()"]
_MODEL_MEAN = np.asarray(json.loads((BUNDLE / "metadata.json").read_text())["normalization"]["mean"])

Builder = Callable[[Path], None]


# --- file builders --------------------------------------------------------------------------------
def _signal(n: int, rate: float, gravity: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    g = np.array([0.0, 0.0, 1.0]) if gravity is None else np.asarray(gravity, dtype=float)
    xyz = np.tile(g, (n, 1))
    xyz[:, 0] += 0.3 * np.sin(2 * np.pi * 1.7 * t)
    xyz[:, 1] += 0.2 * np.cos(2 * np.pi * 0.9 * t)
    return (xyz + rng.normal(0, 0.02, xyz.shape)).astype(np.float32)


def rec(name: str = "src.csv", seconds: float = 60.0, rate: float = 50.0, label: str | list[str] = "walking",
        scale: float = 1.0, time: Callable[[np.ndarray], np.ndarray] | None = None, subject: str = "s1",
        gravity: np.ndarray | None = None, sidecar: dict | None = None, no_sidecar: bool = False,
        seed: int = 0) -> Builder:
    """A recording written by har itself, then edited: ``scale`` multiplies the values, ``time``
    maps the time column, ``sidecar`` overrides sidecar fields."""
    def build(d: Path) -> None:
        n = int(seconds * rate)
        t = np.arange(n) / rate
        labels = np.repeat(np.asarray(label), -(-n // len(label)))[:n] if isinstance(label, list) else label
        xyz = _signal(n, rate, gravity, seed) * scale
        r = Recording(time=t, xyz=xyz, labels=np.asarray(np.broadcast_to(labels, (n,)), dtype=str),
                      seq=None, meta=RecordingMeta(subject=subject, rate_hz=rate, complete=True))
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if scale > 60:  # the writer itself is fine with any float: write the scaled values by hand
            r.xyz = np.zeros_like(xyz)
        write_recording(p, r)
        lines = p.read_text().splitlines()
        if time is not None or scale > 60:
            tt = time(t) if time is not None else t
            out = [lines[0]]
            for i, line in enumerate(lines[1:]):
                f = line.split(",")
                f[0] = repr(float(tt[i]))
                if scale > 60:
                    f[1:4] = [f"{v:.5f}" for v in xyz[i]]
                out.append(",".join(f))
            p.write_text("\n".join(out) + "\n")
        side = p.with_suffix(".json")
        if no_sidecar:
            side.unlink()
        elif sidecar:
            meta = json.loads(side.read_text())
            meta.update(sidecar)
            side.write_text(json.dumps(meta))
    return build


def raw(name: str, text: str | bytes) -> Builder:
    def build(d: Path) -> None:
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text, encoding="utf-8")
    return build


def side(name: str, data: object) -> Builder:
    """A recording ``name`` (.csv) with a hand-made sidecar."""
    def build(d: Path) -> None:
        rec(name)(d)
        (d / name).with_suffix(".json").write_text(data if isinstance(data, str) else json.dumps(data))
    return build


_BW = json.loads((BUNDLE / "metadata.json").read_text())["window"]  # the default bundle's window grid
_N_WIN = (3000 - round(_BW["window_s"] * _BW["rate_hz"])) // round(_BW["hop_s"] * _BW["rate_hz"]) + 1

def bundle(name: str = "B", break_checksum: bool = False, drop_manifest: bool = False) -> Builder:
    def build(d: Path) -> None:
        shutil.copytree(BUNDLE, d / name)
        if break_checksum:
            with open(d / name / "report.txt", "a") as f:
                f.write("edited\n")
        if drop_manifest:
            (d / name / "manifest.json").unlink()
    return build


def model_dir(name: str = "M", weights: bytes | None = None, truncated_h5: bool = False, h5: bool = False) -> Builder:
    """A model directory (metadata without export settings) with the given weights file."""
    def build(d: Path) -> None:
        m = d / name
        m.mkdir()
        meta = json.loads((BUNDLE / "metadata.json").read_text())
        meta["export"] = None
        meta["verification"] = {}
        (m / "metadata.json").write_text(json.dumps(meta))
        if truncated_h5 or h5:
            h5py = pytest.importorskip("h5py", reason="h5py comes with the train extra (tensorflow)")

            with h5py.File(m / "model.weights.h5", "w") as f5:
                f5.create_dataset("w", data=np.arange(20000, dtype=np.float32))
            data = (m / "model.weights.h5").read_bytes()
            if truncated_h5:
                (m / "model.weights.h5").write_bytes(data[: len(data) // 2])
        elif weights is not None:
            (m / "model.weights.h5").write_bytes(weights)
    return build


def fifo(name: str) -> Builder:
    def build(d: Path) -> None:
        os.mkfifo(d / name)
    return build


def tiny_set(missing_test_class: bool = False, seconds: float = 40.0) -> Builder:
    """Three subjects with two classes each (s3 also has a class nobody else has)."""
    def build(d: Path) -> None:
        for i, s in enumerate(("s1", "s2", "s3")):
            rec(f"data/{s}.csv", seconds=seconds, rate=25.0, label=["walking", "sitting"], subject=s, seed=i)(d)
        if missing_test_class:
            rec("data/s3b.csv", seconds=seconds, rate=25.0, label="jumping", subject="s3", seed=7)(d)
    return build


# --- the table ------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    message: str  # regex: in the one error line (code != 0), in a Warning: line or stdout (code 0)
    files: list[Builder] = field(default_factory=list)
    warning: bool = False  # code 0: the message is a Warning: line on stderr
    process: bool = False  # run as a real process (named pipes: a hang would block CliRunner)
    may_change: tuple[str, ...] = ()  # existing files the command is meant to change (its own log)
    after: Callable[[Path], None] | None = None  # extra assertions on the folder
    report: bool = False  # code != 0 reported as a check list on stdout (har doctor), not one Error: line


G = rec("src.csv")
MS2 = rec("ms2.csv", scale=9.80665)
MG = rec("mg.csv", scale=1000.0)
R100 = rec("r100.csv", sidecar={"rate_hz": 100.0})
R3PCT = rec("r3.csv", sidecar={"rate_hz": 51.5})
CONST = rec("const.csv", time=lambda t: 0 * t)
DUP = rec("dup.csv", time=lambda t: np.repeat(t[::2], 2)[: t.size])
E15 = rec("e15.csv", time=lambda t: t + 1e15)
E303 = rec("e303.csv", time=lambda t: t * 1e303)
MS_TIME = rec("mst.csv", time=lambda t: t * 1000.0, no_sidecar=True)
UNITS = rec("units.csv", sidecar={"units": "m/s2"})
AXES = rec("axes.csv", sidecar={"axes": ["z", "y", "x"]})
LABELS = rec("lab.csv", sidecar={"labels": ["walking", "running"]})
SAMPLES = rec("n.csv", sidecar={"samples": 9999})
HEADER = "time_s,x_g,y_g,z_g,label,seq\n"
SWAPPED = rec("swap.csv", gravity=-_MODEL_MEAN / np.linalg.norm(_MODEL_MEAN), label="sitting")


def _rows(n: int, label: str = "walking", step: float = 0.02) -> str:
    return "".join(f"{i * step:.4f},0.01,0.02,0.99,{label},{i}\n" for i in range(n))


def _hand(n: int, label: str = "walking") -> str:
    return "t,x,y,z,label\n" + "".join(f"{i * 0.02:.3f},0.01,0.02,0.99,{label}\n" for i in range(n))


def _labels_read(path: str, expected: list[str]) -> Callable[[Path], None]:
    def check(d: Path) -> None:
        assert read_recording(d / path).label_names() == expected
    return check


CASES: list[Case] = [
    # ---- har info: recordings ----
    Case("info-ms2-as-g", ["info", "ms2.csv"], 1, r"ms2\.csv: median \|acceleration\| is \d+\.\d+ g.*m/s2", [MS2]),
    Case("info-mg-as-g", ["info", "mg.csv"], 1, r"mg\.csv:\d+: acceleration -?\d+(\.\d+)? is over 64 g.*milli-g", [MG]),
    Case("info-constant-time", ["info", "const.csv"], 1, r"const\.csv: time_s is 0 on all 3000 rows", [CONST]),
    Case("info-duplicate-time", ["info", "dup.csv"], 1, r"dup\.csv:\d+: time_s .* do not increase at 1500 of 2999",
         [DUP]),
    Case("info-time-1e15", ["info", "e15.csv"], 1, r"e15\.csv:2: time_s is 1e\+15", [E15]),
    Case("info-time-1e303", ["info", "e303.csv"], 1, r"e303\.csv:\d+: time_s is \d.*e\+30\d", [E303]),
    Case("info-time-in-ms", ["info", "mst.csv"], 1, r"mst\.csv: time_s steps of 20 s .* 0\.05 Hz.*looks like ms",
         [MS_TIME]),
    Case("info-sidecar-rate-100", ["info", "r100.csv"], 1, r"r100\.json: field 'rate_hz' is 100 Hz .* 50 Hz", [R100]),
    Case("info-sidecar-rate-3pct", ["info", "r3.csv"], 0, r"r3\.json: field 'rate_hz' is 51\.5 Hz.*-2\.9%", [R3PCT],
         warning=True),
    Case("info-sidecar-units", ["info", "units.csv"], 1, r"units\.json: field 'units' is 'm/s2'", [UNITS]),
    Case("info-sidecar-axes", ["info", "axes.csv"], 1, r"axes\.json: field 'axes' is z,y,x", [AXES]),
    Case("info-sidecar-labels", ["info", "lab.csv"], 0, r"lab\.json: field 'labels' lists walking, running", [LABELS],
         warning=True),
    Case("info-sidecar-samples", ["info", "n.csv"], 0, r"n\.json: field 'samples' is 9999 but the CSV has 3000",
         [SAMPLES], warning=True),
    Case("info-header-only", ["info", "h.csv"], 0, r"h\.csv: no samples", [raw("h.csv", HEADER)], warning=True),
    Case("info-force-ms2", ["info", "--force", "ms2.csv"], 0, r"median \|acceleration\|.*accepted: --force", [MS2],
         warning=True),
    Case("info-missing", ["info", "nope.csv"], 1, r"no such file or directory: nope\.csv"),
    Case("info-not-a-recording", ["info", "a.txt"], 1, r"a\.txt: not a recording", [raw("a.txt", "hello\n")]),
    Case("info-seq-3.5", ["info", "q.csv"], 1, r"q\.csv:3: seq '3\.5' is not an integer",
         [raw("q.csv", HEADER + "0,0,0,1,a,0\n0.02,0,0,1,a,3.5\n")]),
    Case("info-seq-huge", ["info", "q.csv"], 1, r"q\.csv:2: seq '9+' is not a sample index within 64 bits",
         [raw("q.csv", HEADER + "0,0,0,1,a," + "9" * 30 + "\n")]),
    Case("info-quoted-label", ["info", "q.csv"], 0, r"walk, fast=3",
         [raw("q.csv", HEADER + "".join(f'{i * 0.02},0,0,1,"walk, fast",{i}\n' for i in range(3)))]),
    Case("info-unicode-label", ["info", "q.csv"], 0, r"café=50", [raw("q.csv", HEADER + _rows(50, "café"))]),
    Case("info-tab-in-label", ["info", "q.csv"], 1, r"q\.csv:2: invalid label 'a\\tb': character '\\t'",
         [raw("q.csv", HEADER + _rows(3, "a\tb"))]),
    Case("info-label-65-chars", ["info", "q.csv"], 1, r"q\.csv:2: invalid label .*65 characters",
         [raw("q.csv", HEADER + _rows(3, "a" * 65))]),
    Case("info-latin1", ["info", "q.csv"], 1, r"q\.csv: not UTF-8 text \(byte \d+\)",
         [raw("q.csv", (HEADER + _rows(3, "café")).encode("latin-1"))]),
    Case("info-binary", ["info", "q.csv"], 1, r"q\.csv: (not UTF-8|empty file|header)",
         [raw("q.csv", bytes(range(256)) * 4)]),
    Case("info-empty", ["info", "q.csv"], 1, r"q\.csv: empty file", [raw("q.csv", "")]),
    Case("info-missing-column", ["info", "q.csv"], 1, r"q\.csv: header .* lacks column\(s\) z_g",
         [raw("q.csv", "time_s,x_g,y_g\n0,0,0\n")]),
    Case("info-field-count", ["info", "q.csv"], 1, r"q\.csv:3: expected 6 fields, got 7",
         [raw("q.csv", HEADER + "0,0,0,1,a,0\n0.02,0,0,1,a,b,1\n")]),
    Case("info-nan", ["info", "q.csv"], 1, r"q\.csv:3: NaN or infinite value",
         [raw("q.csv", HEADER + "0,0,0,1,a,0\n0.02,nan,0,1,a,1\n")]),
    Case("info-inf-time", ["info", "q.csv"], 1, r"q\.csv:2: NaN or infinite",
         [raw("q.csv", HEADER + "inf,0,0,1,a,0\n")]),
    Case("info-sidecar-bad-json", ["info", "q.csv"], 1, r"q\.json: invalid JSON", [side("q.csv", "{not json")]),
    Case("info-sidecar-version-text", ["info", "q.csv"], 1, r"q\.json: field 'version' must be an integer",
         [side("q.csv", {"version": "x"})]),
    Case("info-sidecar-samples-text", ["info", "q.csv"], 1, r"q\.json: field 'samples' must be a non-negative integer",
         [side("q.csv", {"samples": "abc"})]),
    Case("info-sidecar-rate-negative", ["info", "q.csv"], 1, r"q\.json: field 'rate_hz' must be a positive",
         [side("q.csv", {"rate_hz": -5})]),
    Case("info-sidecar-list", ["info", "q.csv"], 1, r"q\.json: expected a JSON object", [side("q.csv", [1, 2])]),
    Case("info-sidecar-deep", ["info", "q.csv"], 1, r"q\.json: invalid JSON", [side("q.csv", "[" * 100000)]),
    Case("info-sidecar-labels-number", ["info", "q.csv"], 1, r"q\.json: field 'labels' must be a list of text",
         [side("q.csv", {"labels": 5})]),
    Case("info-sidecar-other-format", ["info", "q.csv"], 1, r"q\.json: not a har recording",
         [side("q.csv", {"format": "something"})]),
    Case("info-empty-dir", ["info", "d"], 1, r"d is neither a model directory", [lambda d: (d / "d").mkdir()]),
    Case("info-truncated-tail", ["info", "q.csv"], 0, r"q\.csv: truncated tail",
         [raw("q.csv", HEADER + _rows(50) + "1.0000,0.01,0.0")], warning=True),
    Case("info-incomplete", ["info", "q.csv"], 0, r"q\.csv: session did not end cleanly",
         [side("q.csv", {"complete": False})], warning=True),
    Case("info-hand-made-csv", ["info", "h.csv"], 0, r"rate_hz\s+50", [raw("h.csv", _hand(100))]),
    # ---- har info: models and bundles ----
    Case("info-bundle-bad-checksum", ["info", "B"], 1, r"B: report\.txt does not match its checksum",
         [bundle(break_checksum=True)]),
    Case("info-bundle-no-manifest", ["info", "B"], 1, r"B: a bundle without manifest\.json",
         [bundle(drop_manifest=True)]),
    Case("info-model-no-weights", ["info", "M"], 1, r"M: model directory without model\.weights\.h5", [model_dir()]),
    Case("info-bundle-bad-checksum-force", ["info", "--force", "B"], 0, r"does not match its checksum.*--force",
         [bundle(break_checksum=True)], warning=True),
    Case("info-bundle-ok", ["info", "B"], 0, r"checksums_ok\s+True", [bundle()]),
    Case("info-bundle-metadata-file", ["info", "B/metadata.json"], 0, r"bundle: B\n", [bundle()]),
    Case("info-bundle-manifest-bad", ["info", "B/manifest.json"], 1, r"report\.txt does not match",
         [bundle(break_checksum=True)]),
    Case("info-named-pipe", ["info", "p.csv"], 1, r"p\.csv is a named pipe, not a regular file", [fifo("p.csv")],
         process=True),
    # ---- har replay ----
    Case("replay-ms2", ["replay", "B", "ms2.csv"], 1, r"ms2\.csv: median \|acceleration\| is \d+\.\d+ g",
         [bundle(), MS2]),
    Case("replay-ms2-force", ["replay", "--force", "B", "ms2.csv"], 0, r"median \|acceleration\|.*--force",
         [bundle(), MS2], warning=True),
    Case("replay-sidecar-rate", ["replay", "B", "r100.csv"], 1, r"r100\.json: field 'rate_hz' is 100 Hz",
         [bundle(), R100]),
    Case("replay-sidecar-axes", ["replay", "B", "axes.csv"], 1, r"field 'axes' is z,y,x", [bundle(), AXES]),
    Case("replay-header-only", ["replay", "B", "h.csv"], 1, r"h\.csv: no complete [\d.]+ s window: 0 sample",
         [bundle(), raw("h.csv", HEADER)]),
    Case("replay-one-row", ["replay", "B", "h.csv"], 1, r"h\.csv: no complete [\d.]+ s window: 1 sample",
         [bundle(), raw("h.csv", HEADER + _rows(1))]),
    Case("replay-short", ["replay", "B", "h.csv"], 1, r"h\.csv: no complete [\d.]+ s window: 100 sample\(s\).* 2\.00 s",
         [bundle(), raw("h.csv", HEADER + _rows(100))]),
    Case("replay-1e303", ["replay", "B", "e303.csv"], 1, r"e303\.csv:\d+: time_s is", [bundle(), E303]),
    Case("replay-duplicate-time", ["replay", "B", "dup.csv"], 1, r"dup\.csv:\d+: time_s .*do not increase",
         [bundle(), DUP]),
    Case("replay-constant-time", ["replay", "B", "const.csv"], 1, r"constant timestamps", [bundle(), CONST]),
    Case("replay-swapped-axes", ["replay", "B", "swap.csv"], 0, r"swap\.csv: the mean gravity .* axes swapped\?",
         [bundle(), SWAPPED], warning=True),
    Case("replay-missing-recording", ["replay", "B", "nope.csv"], 1, r"no such recording: nope\.csv", [bundle()]),
    Case("replay-missing-bundle", ["replay", "nope", "src.csv"], 1, r"nope", [G]),
    Case("replay-bad-smooth", ["replay", "--smooth", "bogus", "B", "src.csv"], 1, r"bogus", [bundle(), G]),
    Case("replay-bad-checksum", ["replay", "B", "src.csv"], 1, r"report\.txt does not match its checksum",
         [bundle(break_checksum=True), G]),
    Case("replay-named-pipe", ["replay", "B", "p.csv"], 1, r"p\.csv is a named pipe", [bundle(), fifo("p.csv")],
         process=True),
    Case("replay-ok", ["replay", "B", "src.csv"], 0, r"accuracy .* on \d+ of \d+ windows", [bundle(), G]),
    # ---- har run: outputs never write into recordings, sidecars, models, bundles ----
    Case("run-jsonl-onto-recording", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "rec.csv"], 1,
         r"--jsonl: rec\.csv is a recording", [bundle(), G, rec("rec.csv")]),
    Case("run-csv-onto-recording", ["run", "B", "--file", "src.csv", "--speed", "0", "--csv", "rec.csv"], 1,
         r"--csv: rec\.csv is a recording", [bundle(), G, rec("rec.csv")]),
    Case("run-jsonl-onto-sidecar", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "rec.json"], 1,
         r"--jsonl: rec\.json is a har-recording file", [bundle(), G, rec("rec.csv")]),
    Case("run-jsonl-onto-hand-made", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "h.csv"], 1,
         r"--jsonl: h\.csv is a recording", [bundle(), G, raw("h.csv", _hand(10))]),
    Case("run-jsonl-into-bundle", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "B/log.jsonl"], 1,
         r"--jsonl: B/log\.jsonl is inside a model directory or bundle", [bundle(), G]),
    Case("run-csv-onto-tflite", ["run", "B", "--file", "src.csv", "--speed", "0", "--csv", "m.tflite"], 1,
         r"--csv: m\.tflite is a model file", [bundle(), G, raw("m.tflite", b"TFL3")]),
    Case("run-jsonl-onto-metadata", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "meta.json"], 1,
         r"--jsonl: meta\.json is a har-model file",
         [bundle(), G, lambda d: shutil.copy(BUNDLE / "metadata.json", d / "meta.json")]),
    Case("run-jsonl-to-directory", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "d"], 2,
         r"'--jsonl': File 'd' is a directory", [bundle(), G, lambda d: (d / "d").mkdir()]),
    Case("run-jsonl-appends-own-log", ["run", "B", "--file", "src.csv", "--speed", "0", "--jsonl", "log.jsonl"], 0,
         rf"{_N_WIN} windows from 3000 samples", [bundle(), G, raw("log.jsonl", '{"time": 0}\n')],
         may_change=("log.jsonl",), after=lambda d: _lines(d / "log.jsonl", _N_WIN + 1)),
    Case("run-two-sources", ["run", "B", "--file", "src.csv", "--port", "/dev/null"], 1, r"exactly one source",
         [bundle(), G]),
    Case("run-missing-file", ["run", "B", "--file", "nope.csv", "--speed", "0"], 1, r"nope\.csv", [bundle()]),
    Case("fleet-jsonl-onto-recording", ["fleet", "--mqtt", "127.0.0.1:1", "--jsonl", "rec.csv", "--duration", "1"], 1,
         r"--jsonl: rec\.csv is a recording", [rec("rec.csv")]),
    Case("fleet-csv-onto-sidecar", ["fleet", "--mqtt", "127.0.0.1:1", "--csv", "rec.json", "--duration", "1"], 1,
         r"--csv: rec\.json is a har-recording file", [rec("rec.csv")]),
    # ---- har record ----
    Case("record-orphan-sidecar", ["record", "--file", "src.csv", "--label", "walking", "--out", "orphan.csv"], 1,
         r"orphan\.json exists", [G, raw("orphan.json", "{}\n")]),
    Case("record-existing-csv", ["record", "--file", "src.csv", "--label", "walking", "--out", "old.csv"], 1,
         r"old\.csv exists", [G, raw("old.csv", "x\n")]),
    Case("record-cafe", ["record", "--file", "src.csv", "--label", "café", "--out", "o.csv"], 0, r"Recorded 3000",
         [G], after=_labels_read("o.csv", ["café"])),
    Case("record-comma-label", ["record", "--file", "src.csv", "--label", "walk, fast", "--out", "o.csv"], 0,
         r"Recorded 3000", [G], after=_labels_read("o.csv", ["walk, fast"])),
    Case("record-quote-label", ["record", "--file", "src.csv", "--label", 'a"b', "--out", "o.csv"], 1,
         r"invalid label 'a\"b': character '\"' not allowed", [G]),
    Case("record-long-label", ["record", "--file", "src.csv", "--label", "x" * 65, "--out", "o.csv"], 1,
         r"65 characters \(at most 64\)", [G]),
    Case("record-sidecar-rate-100", ["record", "--file", "r100.csv", "--out", "o.csv"], 1,
         r"r100\.json: field 'rate_hz' is 100 Hz", [R100]),
    Case("record-sidecar-rate-3pct", ["record", "--file", "r3.csv", "--out", "o.csv"], 0, r"field 'rate_hz' is 51\.5",
         [R3PCT], warning=True),
    Case("record-constant-time", ["record", "--file", "const.csv", "--out", "o.csv"], 1, r"constant timestamps",
         [CONST]),
    Case("record-ms2", ["record", "--file", "ms2.csv", "--out", "o.csv"], 1, r"median \|acceleration\| is \d+\.",
         [MS2]),
    Case("record-ms2-force", ["record", "--force", "--file", "ms2.csv", "--out", "o.csv"], 0,
         r"median \|acceleration\|.*--force", [MS2], warning=True),
    Case("record-out-not-csv", ["record", "--file", "src.csv", "--out", "o.txt"], 1, r"--out must be a \.csv", [G]),
    Case("record-missing-file", ["record", "--file", "nope.csv", "--out", "o.csv"], 1, r"no such recording"),
    Case("record-no-out", ["record", "--file", "src.csv"], 1, r"missing --out", [G]),
    # ---- har import ----
    Case("import-ms2-as-g", ["import", "csv", "in.csv", "out", "--time-col", "t"], 1,
         r"in\.csv: median \|acceleration\| is \d+\.\d+ g.*try --units m/s2", [raw("in.csv", _hand(200).replace(
             ",0.99,", ",9.81,"))]),
    Case("import-mg-as-g", ["import", "csv", "in.csv", "out", "--time-col", "t"], 1, r"try --units mg",
         [raw("in.csv", _hand(200).replace(",0.99,", ",990,"))]),
    Case("import-time-unit-ms", ["import", "csv", "in.csv", "out", "--time-col", "t", "--time-unit", "ms"], 1,
         r"in\.csv: t steps of 0\.02 ms .* 50,000 Hz.*try --time-unit s", [raw("in.csv", _hand(200))]),
    Case("import-epoch-ns", ["import", "csv", "in.csv", "out", "--time-col", "t", "--time-unit", "ns"], 0,
         r"wrote 1 recording",
         [raw("in.csv", "t,x,y,z\n" + "".join(f"{1_700_000_000_000_000_000 + i * 20_000_000},0,0,1\n"
                                             for i in range(100)))]),
    Case("import-epoch-ms-as-s", ["import", "csv", "in.csv", "out", "--time-col", "t"], 1,
         r"in\.csv:2: t is 1\.7e\+12: not seconds from the start of the session",
         [raw("in.csv", "t,x,y,z\n" + "".join(f"{1_700_000_000_000 + i * 20},0,0,1\n" for i in range(100)))]),
    Case("import-force", ["import", "csv", "in.csv", "out", "--time-col", "t", "--force"], 0,
         r"median \|acceleration\|.*--force", [raw("in.csv", _hand(200).replace(",0.99,", ",9.81,"))], warning=True),
    Case("import-quoted-label", ["import", "csv", "in.csv", "out", "--time-col", "t", "--label-col", "label"], 0,
         r"wrote 1 recording", [raw("in.csv", _hand(100, '"walk, fast"'))], after=_labels_read("out/in.csv",
                                                                                             ["walk, fast"])),
    Case("import-existing-output", ["import", "csv", "in.csv", "out", "--time-col", "t"], 1, r"out/in\.json exists",
         [raw("in.csv", _hand(100)), raw("out/in.json", "{}\n")]),
    Case("import-constant-time", ["import", "csv", "in.csv", "out", "--time-col", "t"], 1,
         r"in\.csv: t is 5 on all 100 rows", [raw("in.csv", "t,x,y,z\n" + "5,0,0,1\n" * 100)]),
    Case("import-non-numeric", ["import", "csv", "in.csv", "out", "--rate", "50"], 1, r"in\.csv:3: non-numeric",
         [raw("in.csv", "x,y,z\n0,0,1\n0,zz,1\n")]),
    Case("import-no-time", ["import", "csv", "in.csv", "out"], 1, r"exactly one of --time-col",
         [raw("in.csv", _hand(10))]),
    Case("import-missing-column", ["import", "csv", "in.csv", "out", "--rate", "50"], 1, r"no column 'z'",
         [raw("in.csv", "x,y\n0,0\n")]),
    Case("import-latin1", ["import", "csv", "in.csv", "out", "--rate", "50"], 1, r"in\.csv: not a UTF-8 text file",
         [raw("in.csv", "x,y,z,label\n0,0,1,café\n".encode("latin-1"))]),
    Case("import-wisdm-garbage", ["import", "wisdm", "in.txt", "out"], 1, r"in\.txt", [raw("in.txt", "garbage\n")]),
    Case("import-wrong-option", ["import", "wisdm", "in.txt", "out", "--time-col", "t"], 1,
         r"--time-col do not apply", [raw("in.txt", "garbage\n")]),
    # ---- har train (all fail in the preflight, before TensorFlow) ----
    Case("train-class-without-test-windows",
         ["train", "data", "--out", "m", "--test-subjects", "s1", "--epochs", "1"], 1,
         r"class\(es\) jumping \(\d+ training windows\) have no test windows \(test subjects: s1\)",
         [tiny_set(missing_test_class=True)]),
    Case("train-window-too-long", ["train", "data", "--out", "m", "--window", "100"], 1,
         r"--window 100 s is longer than the longest stretch .*\(40\.0 s in ", [tiny_set()]),
    Case("train-out-unwritable", ["train", "data", "--out", "f.txt/m"], 1, r"--out f\.txt/m: cannot write there",
         [tiny_set(), raw("f.txt", "x\n")]),
    Case("train-out-is-file", ["train", "data", "--out", "f.txt"], 1, r"f\.txt exists and is not a directory",
         [tiny_set(), raw("f.txt", "x\n")]),
    Case("train-ms2", ["train", "data", "--out", "m"], 1, r"median \|acceleration\| is \d+\.",
         [tiny_set(), rec("data/ms2.csv", rate=25.0, scale=9.80665, subject="s4")]),
    Case("train-duplicate-time", ["train", "data", "--out", "m"], 1, r"dup\.csv:\d+: time_s .*do not increase",
         [tiny_set(), rec("data/dup.csv", rate=25.0, subject="s4", time=lambda t: np.repeat(t[::2], 2)[: t.size])]),
    Case("train-sidecar-rate", ["train", "data", "--out", "m"], 1, r"field 'rate_hz' is 100 Hz",
         [tiny_set(), rec("data/r.csv", rate=25.0, subject="s4", sidecar={"rate_hz": 100.0})]),
    Case("train-missing-data", ["train", "nope", "--out", "m"], 1, r"no such file or directory: nope"),
    Case("train-bad-lstm-units", ["train", "data", "--out", "m", "--lstm-units", "a,b"], 1, r"--lstm-units must be",
         [tiny_set()]),
    Case("train-bad-label-in-csv", ["train", "data", "--out", "m"], 1, r"invalid label",
         [tiny_set(), raw("data/q.csv", HEADER + _rows(3, 'a"b'))]),
    # ---- har deploy, emulate, evaluate, export, plot, simulate ----
    Case("deploy-truncated-weights", ["deploy", "M", "--out", "out"], 1,
         r"M/model\.weights\.h5: unreadable weights .*truncated or corrupted", [model_dir(truncated_h5=True)]),
    Case("deploy-weights-not-hdf5", ["deploy", "M", "--out", "out"], 1, r"M/model\.weights\.h5: not an HDF5",
         [model_dir(weights=b"not hdf5 at all")]),
    Case("deploy-a-bundle", ["deploy", "B", "--out", "out"], 1, r"B is a bundle, not a model directory", [bundle()]),
    Case("emulate-1e303", ["emulate", "e303.csv", "--duration", "1"], 1, r"e303\.csv:\d+: time_s is", [E303]),
    Case("emulate-ms2", ["emulate", "ms2.csv", "--duration", "1"], 1, r"median \|acceleration\|", [MS2]),
    Case("deploy-out-onto-recording", ["deploy", "M", "--out", "src.csv"], 1, r"src\.csv exists and is not a directory",
         [model_dir(h5=True), G]),
    Case("export-mcu-existing", ["export-mcu", "B", "--out", "mcu"], 1, r"mcu/har_model_data\.h exists",
         [bundle(), raw("mcu/har_model_data.h", "// mine\n")]),
    Case("export-mcu-missing-bundle", ["export-mcu", "nope", "--out", "mcu"], 1, r"nope"),
    Case("push-missing-bundle", ["push", "nope", "--to", "localhost:/tmp/x"], 1, r"refusing to push: no such bundle"),
    Case("push-bad-target", ["push", "B", "--to", "bad host"], 1, r"bad target 'bad host'", [bundle()]),
    Case("push-bad-checksum", ["push", "B", "--to", "localhost:/tmp/x"], 1, r"report\.txt does not match",
         [bundle(break_checksum=True)]),
    Case("doctor-missing-bundle", ["doctor", "--bundle", "nope"], 1, r"\[FAIL\] bundle\s+no such bundle: nope",
         report=True),
    Case("simulate-out-is-file", ["simulate", "--out", "src.csv", "--subjects", "1", "--seconds", "2"], 2,
         r"'src\.csv' is a file", [G]),
    Case("import-dest-is-recording", ["import", "csv", "in.csv", "src.csv", "--time-col", "t"], 2,
         r"'src\.csv' is a file", [G, raw("in.csv", _hand(100))]),
    Case("evaluate-missing-data", ["evaluate", "B", "nope.csv"], 1, r"nope\.csv", [bundle()]),
    Case("evaluate-ms2", ["evaluate", "B", "ms2.csv"], 1, r"ms2\.csv: median \|acceleration\|", [bundle(), MS2]),
    Case("evaluate-report-into-model-dir", ["evaluate", "B", "src.csv", "--out", "B"], 1,
         r"B/report\.txt exists", [bundle(), G]),
    Case("export-existing", ["export", "edge-impulse", "src.csv", "out"], 1, r"exists",
         [G, lambda d: _export_once(d)]),
    Case("plot-missing", ["plot", "nope.csv"], 1, r"nope\.csv"),
    Case("plot-existing-png", ["plot", "src.csv"], 1, r"src\.png exists", [G, raw("src.png", b"png")]),
    Case("plot-header-only", ["plot", "h.csv"], 1, r"h\.csv holds no samples", [raw("h.csv", HEADER)]),
    Case("plot-not-png", ["plot", "src.csv", "--out", "x.jpg"], 1, r"--out must end in \.png", [G]),
    Case("simulate-existing", ["simulate", "--out", "sim", "--subjects", "1", "--seconds", "2"], 1, r"exists",
         [raw("sim/sim01.csv", "x\n")]),
    # ---- click usage errors: one line naming the command, exit 2 (no usage block) ----
    Case("usage-train-bad-choice", ["train", "data", "--pooling", "foo"], 2,
         r"^Error: har train: invalid value for '--pooling': 'foo' is not one of 'last', 'mean', 'attention' "
         r"\(har train --help\)$"),
    Case("usage-train-missing-data", ["train"], 2, r"^Error: har train: missing argument 'DATA\.\.\.'"),
    Case("usage-deploy-bad-quantize", ["deploy", "m", "--quantize", "int4"], 2,
         r"^Error: har deploy: invalid value for '--quantize': 'int4' is not one of"),
    Case("usage-run-bad-int", ["run", "B", "--baud", "fast"], 2,
         r"^Error: har run: invalid value for '--baud': 'fast' is not a valid integer"),
    Case("usage-tune-unknown-option", ["tune", "data", "--trails", "3"], 2,
         r"^Error: har tune: no such option '--trails'. Did you mean '--trials'\?"),
    Case("usage-unknown-command", ["trian"], 2,
         r"^Error: har: no such command 'trian'\. Did you mean 'train'\? \(har --help\)$"),
    Case("usage-unknown-har-option", ["--verbose", "info"], 2, r"^Error: har: no such option '--verbose'"),
    Case("usage-export-bad-format", ["export", "csv2", "src.csv", "out"], 2,
         r"^Error: har export: invalid value for 'FORMAT': 'csv2' is not 'edge-impulse'", [G]),
]


def _lines(p: Path, n: int) -> None:
    assert len(p.read_text().splitlines()) == n


def _export_once(d: Path) -> None:
    r = CliRunner().invoke(cli, ["export", "edge-impulse", str(d / "src.csv"), str(d / "out")])
    assert r.exit_code == 0, r.output


# --- running ------------------------------------------------------------------------------------
def _snapshot(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and not p.is_symlink()}


def _invoke(case: Case, d: Path) -> tuple[int, str, str]:
    if case.process:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.run(HAR + case.argv, cwd=d, capture_output=True, text=True, timeout=20, env=env)
        return p.returncode, p.stdout, p.stderr
    old = os.getcwd()
    os.chdir(d)
    try:
        r = CliRunner().invoke(cli, case.argv, catch_exceptions=True)
    finally:
        os.chdir(old)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"{case.id}: exception reached the CLI runner: {r.exception!r}")
    return r.exit_code, r.stdout, r.stderr


def _stderr_lines(err: str) -> list[str]:
    """stderr without the runtime's own chatter (TFLite's XNNPACK notice, progress lines)."""
    return [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("INFO:")]


def test_table_size() -> None:
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES}
    assert {"info", "replay", "run", "record", "import", "train", "deploy", "emulate", "evaluate", "export",
            "plot", "simulate", "fleet", "export-mcu", "push", "doctor"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    for build in case.files:
        build(tmp_path)
    before = _snapshot(tmp_path)
    code, out, err = _invoke(case, tmp_path)
    assert "Traceback" not in out + err, err
    assert code == case.code, f"exit {code}, stdout {out[-500:]!r}, stderr {err[-500:]!r}"
    lines = _stderr_lines(err)
    if case.report:
        assert re.search(case.message, out), out
    elif case.code != 0:
        errors = [ln for ln in lines if ln.startswith("Error: ")]
        assert len(errors) == 1, lines
        assert errors[0] == lines[-1], lines  # the error is the last word
        assert re.search(case.message, errors[0]), errors[0]
        if case.code == 2:  # a usage error: no usage block, no "Try ... --help" line
            assert lines == errors, lines
    elif case.warning:
        warnings = [ln for ln in lines if ln.startswith("Warning: ")]
        assert any(re.search(case.message, w) for w in warnings), lines
    else:
        assert re.search(case.message, out + err), out + err
    after = _snapshot(tmp_path)
    for name, digest in before.items():
        if name in case.may_change:
            continue
        assert after.get(name) == digest, f"{name} was changed or removed"
    if case.code != 0:
        assert sorted(set(after) - set(before)) == [], "a failing command left files behind"
    if case.after is not None:
        case.after(tmp_path)


def test_usage_errors_keep_help_and_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """--help is click's as before; with --debug or HAR_DEBUG=1 a usage error shows click's usage
    block (still exit 2)."""
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--help"])
    assert r.exit_code == 0 and r.output.startswith("Usage: har train [OPTIONS] DATA..."), r.output
    r = runner.invoke(cli, ["--debug", "train", "data", "--pooling", "foo"])
    assert r.exit_code == 2 and "Usage: har train" in r.stderr and "Try 'har train --help'" in r.stderr, r.stderr
    monkeypatch.setenv("HAR_DEBUG", "1")
    r = runner.invoke(cli, ["--verbose"])
    assert r.exit_code == 2 and "Usage: har" in r.stderr and "No such option '--verbose'" in r.stderr, r.stderr


def test_train_preflight_fails_before_tensorflow(tmp_path: Path) -> None:
    """The train preflight runs before TensorFlow is even imported (a fresh process)."""
    tiny_set(missing_test_class=True)(tmp_path)
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom har.cli import cli\n"
        "r = CliRunner().invoke(cli, ['train', 'data', '--out', 'm', '--test-subjects', 's1'])\n"
        "print(r.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert p.stdout.split() == ["1", "False", "False"], p.stdout + p.stderr


def test_macro_f1_names_classes_without_test_windows() -> None:
    from har.scoring.metrics import compute_metrics, format_report

    m = compute_metrics(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), ["a", "b", "c"])
    assert m["no_test_windows"] == ["c"]
    text = format_report(m)
    assert "macro-F1:  1.0000 (over 2 of 3 classes; no test windows: c)" in text
    m = compute_metrics(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), ["a", "b", "c"])  # c predicted once
    assert m["no_test_windows"] == ["c"] and "(over 3 of 3 classes; no test windows: c)" in format_report(m)


def test_label_rule_is_one_rule(tmp_path: Path) -> None:
    """What `har record --label` accepts is what the reader accepts, and the other way round."""
    from har.errors import DataError
    from har.recording.format import check_label

    for label in ["café", "walk, fast", "ходьба", "步行", "sit-stand (slow)", "a" * 64, "e\u0301t\u00e9"]:
        clean = check_label(label)
        p = tmp_path / "r.csv"
        for q in (p, p.with_suffix(".json")):
            q.unlink(missing_ok=True)
        r = Recording(time=np.arange(3) / 50.0, xyz=np.zeros((3, 3), np.float32), labels=np.array([label] * 3),
                      seq=None, meta=RecordingMeta())
        write_recording(p, r)
        assert read_recording(p).label_names() == [clean]
    for label in ['a"b', "a\tb", "a\nb", "a" * 65, "a;b", "x/y"]:
        with pytest.raises(DataError):
            check_label(label)
        p = tmp_path / "bad.csv"
        p.write_text(HEADER + "0,0,0,1," + (f'"{label}"' if "," in label or "\n" in label else label) + ",0\n")
        with pytest.raises(DataError):
            read_recording(p)


def test_checks_name_the_likely_units() -> None:
    from har.recording.checks import time_unit_guess, unit_guess

    assert unit_guess(9.81) == "m/s2"
    assert unit_guess(1000.0) == "mg"
    assert unit_guess(1.02) == "g"
    assert unit_guess(1.0 / 9.80665, "m/s2") == "g"  # numbers of ~1 declared as m/s2: they are g
    assert unit_guess(30.0) == "m/s2"  # a very active m/s^2 recording
    assert unit_guess(100.0) is None
    assert time_unit_guess(20.0) == "ms"  # 20 "s" steps: milliseconds
    assert time_unit_guess(0.02e-3, "ms") == "s"
    assert time_unit_guess(20_000_000.0) == "ns"


def test_train_warns_about_axes_swapped_in_a_static_activity(tmp_path: Path) -> None:
    from har.config import TrainConfig
    from har.training.preflight import check_data

    for i, s in enumerate(("s1", "s2", "s3", "s4")):
        g = np.array([0.0, 0.0, 1.0]) if s != "s4" else np.array([1.0, 0.0, 0.0])  # s4: x and z swapped
        rec(f"{s}.csv", seconds=20, rate=25.0, label="sitting", subject=s, gravity=g, seed=i)(tmp_path)
    said: list[str] = []
    check_data([read_recording(tmp_path / f"{s}.csv") for s in ("s1", "s2", "s3", "s4")], TrainConfig(),
               echo=said.append)
    assert len(said) == 1, said
    assert re.match(r"Warning: .*s4\.csv: in 'sitting' gravity is \(\+1\.00, [+-]0\.0\d, [+-]0\.0\d\) g but "
                    r"\(.*\) g in the other 3 recordings .*axes swapped\? reading them as z,y,x would match",
                    said[0]), said


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_train_out_in_a_read_only_folder(tmp_path: Path) -> None:
    from har.errors import TrainingError
    from har.training.preflight import check_out_dir

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(TrainingError, match=r"--out .*ro/m: cannot write there \(Permission denied\)"):
            check_out_dir(ro / "m")
        assert not (ro / "m").exists()
    finally:
        ro.chmod(0o700)


def test_record_port_names_implausible_units(tmp_path: Path) -> None:
    """A device sending m/s^2 as milli-g: everything is recorded, and a Warning names the median."""
    from har.wire.emulator import Emulator

    rec("ms2.csv", seconds=20, scale=9.80665)(tmp_path)
    out = tmp_path / "live.csv"
    with Emulator(recording=str(tmp_path / "ms2.csv"), rate_hz=50, range_g=16, seed=1) as emu:
        emu.start()
        r = CliRunner().invoke(cli, ["record", "--port", emu.port, "--label", "walking", "--duration", "2",
                                     "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert re.search(r"Warning: .*live\.csv: median \|acceleration\| is \d+(\.\d+)? g.*m/s2", r.stderr), r.stderr
    assert len(read_recording(out)) > 50
