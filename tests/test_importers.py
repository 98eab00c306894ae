"""`har import` / `har export`: every importer on a small fixture written in its original format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import require_shared
from fixtures_importers import (
    HAPT_SPANS,
    G,
    signal,
    write_edge_impulse,
    write_generic_csv,
    write_ts,
    write_uci_hapt,
    write_uci_har,
    write_wisdm2019,
    write_wisdm_v11,
)

from har.cli import cli
from har.errors import DataError, ImportFormatError
from har.recording.format import read_recording
from har.recording.importers import IMPORTERS, HarImportWarning, run_export, run_import
from har.recording.importers.wisdm2019 import ACTIVITY_CODES

ATOL = 2e-5  # g: the recording CSV keeps 5 decimals


def seg_lengths(rec) -> list[int]:  # noqa: ANN001
    return [s.stop - s.start for s in rec.segments()]


def cli_error(args: list[str]) -> str:
    """Run the CLI; it must fail with exactly one 'Error: ...' line. Returns that line."""
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


# --- csv -----------------------------------------------------------------------------------------
def test_csv_time_col_units_labels_subject_from_folder(tmp_path: Path) -> None:
    a = signal(60, 1, G)
    a[0] = [G, 0.0, -2 * G]
    t_ms = [1000 + 40 * i for i in range(30)] + [5000 + 40 * i for i in range(30)]  # 25 Hz, a 2.8 s jump
    rows = [
        [t_ms[i], f"{a[i, 0]:.6f}", f"{a[i, 1]:.6f}", f"{a[i, 2]:.6f}", "Walk" if i < 40 else "sit/down"]
        for i in range(60)
    ]
    src = write_generic_csv(tmp_path / "in" / "alice" / "log1.csv", ["ms", "ax", "ay", "az", "act"], rows)
    out = run_import(
        "csv",
        src,
        tmp_path / "out",
        time_col="ms",
        time_unit="ms",
        x_col="ax",
        y_col="ay",
        z_col="az",
        label_col="act",
        units="m/s2",
    )
    assert [p.name for p in out] == ["log1.csv"]
    rec = read_recording(out[0])
    assert len(rec) == 60 and rec.subject == "alice" and rec.rate_hz == pytest.approx(25.0)
    np.testing.assert_allclose(rec.xyz[0], [1.0, 0.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(rec.xyz, a / G, atol=ATOL)
    assert rec.labels[0] == "Walk" and rec.labels[59] == "sit_down"
    assert rec.time[0] == 0.0 and rec.time[30] == pytest.approx(4.0)
    assert seg_lengths(rec) == [30, 30]
    assert "csv" in rec.meta.source and str(src) in rec.meta.source and rec.meta.units == "g"


def test_csv_rate_subject_column_rename_delimiter(tmp_path: Path) -> None:
    a = signal(40, 2)
    rows = [
        [("s1" if i % 20 < 10 else "s2"), f"{a[i, 0]:.6f}", f"{a[i, 1]:.6f}", f"{a[i, 2]:.6f}", "a"] for i in range(40)
    ]
    src = write_generic_csv(tmp_path / "in.csv", ["who", "x", "y", "z", "lab"], rows, delimiter=";")
    out = run_import(
        "csv", src, tmp_path / "out", rate=10.0, subject_col="who", label_col="lab", delimiter=";", rename=["a=alpha"]
    )
    recs = {read_recording(p).subject: read_recording(p) for p in out}
    assert sorted(recs) == ["s1", "s2"] and sorted(p.name for p in out) == ["in_s1.csv", "in_s2.csv"]
    r1 = recs["s1"]
    assert len(r1) == 20 and r1.rate_hz == 10.0 and set(r1.labels) == {"alpha"}
    assert seg_lengths(r1) == [10, 10]  # its rows came in two runs
    np.testing.assert_allclose(r1.xyz[10], a[20], atol=ATOL)


def test_csv_subject_pattern_and_directory(tmp_path: Path) -> None:
    for name in ("run_p01.csv", "run_p02.csv"):
        write_generic_csv(tmp_path / "in" / name, ["x", "y", "z"], [[0, 0, 1]] * 5)
    out = run_import("csv", tmp_path / "in", tmp_path / "in" / "out", rate=50, subject_pattern=r"_(?P<subject>p\d+)")
    assert sorted(read_recording(p).subject for p in out) == ["p01", "p02"]
    # DEST inside SRC: a second run must not import its own outputs
    out2 = run_import("csv", tmp_path / "in", tmp_path / "in" / "out", rate=50, subject="x", overwrite=True)
    assert len(out2) == 2


@pytest.mark.parametrize(
    ("rows", "opts", "match"),
    [
        ([[0, 0, 1]], {}, "exactly one of --time-col"),
        ([[0, 0, 1]], {"rate": 50, "label_col": "lab"}, r"no column 'lab' \(columns: x, y, z\)"),
        ([[0, 0, 1], [0, "oops", 1]], {"rate": 50}, r"in\.csv:3: non-numeric"),
        ([[0, 0, 1], [0, 1]], {"rate": 50}, r"in\.csv:3: expected 3 fields, got 2"),
        ([[0, 0, 700]], {"rate": 50}, r"in\.csv: median \|acceleration\| is 700 g.*look like mg \(try --units mg\)"),
    ],
)
def test_csv_errors(tmp_path: Path, rows: list, opts: dict, match: str) -> None:
    src = write_generic_csv(tmp_path / "in.csv", ["x", "y", "z"], rows)
    with pytest.raises(DataError, match=match):
        run_import("csv", src, tmp_path / "out", **opts)
    assert not (tmp_path / "out").exists()


# --- wisdm v1.1 --------------------------------------------------------------------------------
def test_wisdm_v11_quirks(tmp_path: Path) -> None:
    src = tmp_path / "WISDM_ar_v1.1_raw.txt"
    blocks = write_wisdm_v11(src)
    with pytest.warns(HarImportWarning, match=r"dropped 1 row\(s\) with missing values \(first at line 61\)"):
        out = run_import("wisdm", src, tmp_path / "out")
    recs = {read_recording(p).subject: read_recording(p) for p in out}
    assert sorted(recs) == ["3", "7"]
    r7 = recs["7"]
    assert r7.rate_hz == 20.0 and r7.meta.device.startswith("WISDM v1.1")
    assert len(r7) == 99 + 80 + 40
    np.testing.assert_allclose(r7.xyz[0], [1.0, -1.0, 0.5], atol=1e-6)
    want = np.concatenate([np.delete(blocks["walk"], 60, axis=0), blocks["jog"], blocks["up"]]) / G
    np.testing.assert_allclose(r7.xyz, want, atol=ATOL)
    # the dropped row is a 1-sample gap; the 10 s jump and the other user's rows are breaks
    assert seg_lengths(r7) == [60, 39, 80, 40]
    assert r7.meta.dropped == 1 and r7.meta.corrupt == 1 and r7.meta.gaps == [[60, 1]]
    assert r7.label_names() == ["walking", "jogging", "upstairs"]
    assert len(recs["3"]) == 60 and seg_lengths(recs["3"]) == [60] and set(recs["3"].labels) == {"sitting"}


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("7,Walking,1000,1.0,abc,2.0;", r"raw\.txt:2: non-numeric"),
        ("7,Walking,1000,1.0,2.0,3.0,4.0;", r"raw\.txt:2: expected 6 fields"),
        ("hello", r"raw\.txt:2: not a WISDM row"),
    ],
)
def test_wisdm_v11_errors(tmp_path: Path, line: str, match: str) -> None:
    src = tmp_path / "raw.txt"
    src.write_text("7,Walking,0,1.0,2.0,3.0;\n" + line + "\n")
    with pytest.raises(ImportFormatError, match=match):
        run_import("wisdm", src, tmp_path / "out")


# --- wisdm 2019 ----------------------------------------------------------------------------------
def test_wisdm2019_blocks_are_breaks(tmp_path: Path) -> None:
    path, vals = write_wisdm2019(tmp_path / "raw", subject=1601, codes="ABDM", rows=50)
    out = run_import("wisdm2019", path, tmp_path / "out")
    rec = read_recording(out[0])
    assert out[0].name == "data_1601_accel_watch.csv" and rec.subject == "1601" and rec.rate_hz == 20.0
    assert "smartwatch" in rec.meta.device and "wisdm2019" in rec.meta.source
    np.testing.assert_allclose(rec.xyz, vals / G, atol=ATOL)
    assert seg_lengths(rec) == [50, 50, 50, 50]
    assert rec.label_names() == ["walking", "jogging", "sitting", "kicking"]


def test_wisdm2019_duplicate_half_dropped(tmp_path: Path) -> None:
    write_wisdm2019(tmp_path / "raw", subject=1629, codes="AB", rows=30, duplicate=True)
    write_wisdm2019(tmp_path / "raw", subject=1630, codes="AB", rows=30)
    with pytest.warns(HarImportWarning, match=r"data_1629_accel_watch\.txt: rows 61-120 repeat the first 60"):
        out = run_import("wisdm2019", tmp_path / "raw", tmp_path / "out")
    assert [len(read_recording(p)) for p in out] == [60, 60]
    assert json.loads(out[0].with_suffix(".json").read_text())["extra"]["duplicate_half_dropped"] is True


def test_wisdm2019_with_timestamps(tmp_path: Path) -> None:
    # the original release has a timestamp (ns) column: a time jump inside a block is a break too
    ts = [i * 50_000_000 for i in range(10)] + [10**10 + i * 50_000_000 for i in range(10)]
    lines = [f"1605,{'A' if i < 15 else 'E'},{t},{G:.5f},0.0,{-G:.5f};" for i, t in enumerate(ts)]
    src = tmp_path / "data_1605_accel_phone.txt"
    src.write_text("\n".join(lines) + "\n")
    rec = read_recording(run_import("wisdm2019", src, tmp_path / "out")[0])
    assert seg_lengths(rec) == [10, 5, 5] and "smartphone" in rec.meta.device
    np.testing.assert_allclose(rec.xyz[0], [1.0, 0.0, -1.0], atol=1e-6)


def test_wisdm2019_errors(tmp_path: Path) -> None:
    path, _ = write_wisdm2019(tmp_path / "raw", codes="AB", rows=5)
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace(",B,", ",N,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFormatError, match=r"data_1600_accel_watch\.txt:7: unknown activity code 'N'"):
        run_import("wisdm2019", path, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match="no input files matching data_"):
        run_import("wisdm2019", tmp_path / "empty", tmp_path / "out2")
    assert set(ACTIVITY_CODES) == set("ABCDEFGHIJKLMOPQRS")


# --- uci-har ----------------------------------------------------------------------------------
def test_uci_har_deoverlap(tmp_path: Path) -> None:
    streams = write_uci_har(tmp_path / "UCI HAR Dataset")
    out = run_import("uci-har", tmp_path, tmp_path / "out")
    recs = {read_recording(p).subject: read_recording(p) for p in out}
    r1, r2 = recs["1"], recs["2"]
    assert r1.rate_hz == 50.0 and r1.meta.extra["split"] == "train" and r2.meta.extra["split"] == "test"
    # stream A (5 + 4 windows, label change inside) and stream B (3 windows): no sample twice
    assert seg_lengths(r1) == [320, 320, 256]
    np.testing.assert_allclose(r1.xyz, np.concatenate(streams[1]), atol=ATOL)
    assert list(r1.labels[[0, 319, 320, 895]]) == ["walking", "walking", "walking_upstairs", "walking_upstairs"]
    assert len(r2) == 320 and seg_lengths(r2) == [320] and set(r2.labels) == {"walking_downstairs"}
    np.testing.assert_allclose(r2.xyz, streams[2][0], atol=ATOL)


def test_uci_har_errors(tmp_path: Path) -> None:
    root = tmp_path / "UCI HAR Dataset"
    write_uci_har(root)
    y = root / "train" / "y_train.txt"
    y.write_text(y.read_text() + "1\n")
    with pytest.raises(ImportFormatError, match=r"y_train\.txt: 13 rows but total_acc_x_train\.txt has 12"):
        run_import("uci-har", root, tmp_path / "out")
    with pytest.raises(ImportFormatError, match="not a UCI HAR data set"):
        run_import("uci-har", root / "train", tmp_path / "out")


# --- uci-hapt ---------------------------------------------------------------------------------
def test_uci_hapt_spans(tmp_path: Path) -> None:
    data = write_uci_hapt(tmp_path / "hapt")
    out = run_import("uci-hapt", tmp_path / "hapt", tmp_path / "out")
    assert [p.name for p in out] == ["uci-hapt_exp01_user01.csv", "uci-hapt_exp02_user01.csv"]
    r = read_recording(out[0])
    assert r.subject == "1" and r.rate_hz == 50.0 and len(r) == 300 and seg_lengths(r) == [300]
    np.testing.assert_allclose(r.xyz, data[1], atol=ATOL)
    lab = r.labels
    assert lab[19] == "" and lab[20] == "standing" and lab[119] == "standing" and lab[120] == "stand_to_sit"
    assert lab[149] == "stand_to_sit" and lab[150] == "" and lab[199] == "sitting" and lab[289] == "sitting"
    assert (lab[290:] == "").all()
    assert set(read_recording(out[1]).labels) == {"walking"}


def test_uci_hapt_span_errors(tmp_path: Path) -> None:
    write_uci_hapt(tmp_path / "a", spans=[*HAPT_SPANS, (2, 1, 2, 150, 201)])
    with pytest.raises(ImportFormatError, match=r"labels\.txt:5: span 150-201 ends beyond the 200 samples"):
        run_import("uci-hapt", tmp_path / "a", tmp_path / "out")
    write_uci_hapt(tmp_path / "b", spans=[(1, 1, 5, 10, 20), (1, 1, 4, 20, 30)])
    with pytest.raises(ImportFormatError, match=r"labels\.txt:2: span 20-30 overlaps"):
        run_import("uci-hapt", tmp_path / "b", tmp_path / "out")


# --- ts ---------------------------------------------------------------------------------------
def test_ts_cases_are_segments(tmp_path: Path) -> None:
    cases = [(signal(30, k, G), lab) for k, lab in enumerate(["Walking", "Running", "Walking"])]
    src = write_ts(tmp_path / "Tiny_TRAIN.ts", cases)
    out = run_import("ts", src, tmp_path / "out", rate=10.0, units="m/s2")
    rec = read_recording(out[0])
    assert rec.subject == "ts-Tiny_TRAIN" and rec.rate_hz == 10.0 and seg_lengths(rec) == [30, 30, 30]
    np.testing.assert_allclose(rec.xyz, np.concatenate([a for a, _ in cases]) / G, atol=ATOL)
    assert rec.label_names() == ["Walking", "Running"] and rec.meta.extra["problem"] == "TinyMotions"
    out = run_import("ts", src, tmp_path / "split", rate=10.0, split=True, subject="bob")
    assert len(out) == 3 and read_recording(out[1]).labels[0] == "Running" and read_recording(out[1]).subject == "bob"


def test_ts_errors(tmp_path: Path) -> None:
    cases = [(signal(10, k), "a") for k in range(3)]
    src = write_ts(tmp_path / "m.ts", cases, missing=True)
    with pytest.raises(ImportFormatError, match=r"m\.ts:12: missing value '\?' in dimension 2"):
        run_import("ts", src, tmp_path / "out", rate=10)
    with pytest.raises(ImportFormatError, match="--rate HZ is required"):
        run_import("ts", src, tmp_path / "out")
    src.write_text(src.read_text().replace("@dimensions 3", "@dimensions 2"))
    with pytest.raises(ImportFormatError, match=r"m\.ts:6: @dimensions 2: expected 3"):
        run_import("ts", src, tmp_path / "out", rate=10)


# --- edge impulse -----------------------------------------------------------------------------
def test_edge_impulse_import(tmp_path: Path) -> None:
    vals = signal(50, 5, G)
    vals[0] = [G, 2 * G, -G]
    src = write_edge_impulse(tmp_path / "in" / "walking.abc123.json", vals, interval_ms=16)
    out = run_import("edge-impulse", tmp_path / "in", tmp_path / "out", subject="ann")
    rec = read_recording(out[0])
    assert out[0].name == "walking.abc123.csv" and rec.subject == "ann" and rec.meta.device == "TEST_BOARD"
    assert rec.rate_hz == 62.5 and set(rec.labels) == {"walking"} and len(rec) == 50
    np.testing.assert_allclose(rec.xyz[0], [1.0, 2.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(rec.xyz, vals / G, atol=ATOL)
    out = run_import("edge-impulse", src, tmp_path / "out2", label="run")
    assert set(read_recording(out[0]).labels) == {"run"}
    src.write_text(src.read_text().replace('"interval_ms": 16', '"interval_ms": -1'))
    with pytest.raises(ImportFormatError, match="interval_ms must be a positive number"):
        run_import("edge-impulse", src, tmp_path / "out3")
    src.write_text("{\n  oops")
    with pytest.raises(ImportFormatError, match=r"walking\.abc123\.json:2: invalid JSON"):
        run_import("edge-impulse", src, tmp_path / "out3")


def test_edge_impulse_round_trip(tmp_path: Path) -> None:
    path, _ = write_wisdm2019(tmp_path / "raw", codes="AD", rows=40)
    (rec_path,) = run_import("wisdm2019", path, tmp_path / "rec")
    original = read_recording(rec_path)
    files = run_export("edge-impulse", [rec_path], tmp_path / "ei")
    assert [p.name for p in files] == ["walking.data_1600_accel_watch.0.json", "sitting.data_1600_accel_watch.1.json"]
    doc = json.loads(files[0].read_text())
    assert doc["signature"] == "0" * 64 and doc["protected"]["alg"] == "none"
    assert doc["payload"]["interval_ms"] == 50.0 and [s["name"] for s in doc["payload"]["sensors"]] == [
        "accX", "accY", "accZ"]  # fmt: skip
    assert {s["units"] for s in doc["payload"]["sensors"]} == {"m/s2"}
    back = [read_recording(p) for p in run_import("edge-impulse", tmp_path / "ei", tmp_path / "back")]
    back.sort(key=lambda r: r.labels[0] != "walking")
    np.testing.assert_allclose(np.concatenate([r.xyz for r in back]), original.xyz, atol=1e-6)
    assert [r.labels[0] for r in back] == ["walking", "sitting"] and all(r.rate_hz == 20.0 for r in back)
    with pytest.raises(DataError, match="exists"):
        run_export("edge-impulse", [rec_path], tmp_path / "ei")


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_import_help_overwrite_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["import", "--help"])
    assert res.exit_code == 0 and all(f in res.output for f in IMPORTERS)
    path, _ = write_wisdm2019(tmp_path / "raw", rows=5)
    dest = str(tmp_path / "out")
    res = runner.invoke(cli, ["import", "wisdm2019", str(path), dest])
    assert res.exit_code == 0 and "wrote 1 recording(s)" in res.output
    assert "pass --overwrite" in cli_error(["import", "wisdm2019", str(path), dest])
    assert runner.invoke(cli, ["import", "wisdm2019", str(path), dest, "--overwrite"]).exit_code == 0
    assert "--time-col do not apply to format wisdm2019" in cli_error(
        ["import", "wisdm2019", str(path), dest, "--time-col", "t"]
    )
    bad = write_generic_csv(tmp_path / "bad.csv", ["x", "y", "z"], [[0, 0, 1], [0, "x", 1]])
    line = cli_error(["import", "csv", str(bad), dest, "--rate", "50"])
    assert line.endswith("bad.csv:3: non-numeric value in '0,x,1'")
    res = runner.invoke(cli, ["export", "edge-impulse", dest, str(tmp_path / "ei")])
    assert res.exit_code == 0 and len(list((tmp_path / "ei").glob("*.json"))) == 4


# --- real data ----------------------------------------------------------------------------------
@pytest.mark.shared
def test_real_wisdm2019_files(tmp_path: Path) -> None:
    data = require_shared()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("data_1600_accel_watch.txt", "data_1629_accel_watch.txt"):  # links, not copies
        if not (data / name).is_file():
            pytest.skip(f"{data / name} not present")
        (src / name).symlink_to(data / name)
    with pytest.warns(HarImportWarning, match="data_1629"):
        out = run_import("wisdm2019", src, tmp_path / "out")
    for p in out:
        rec = read_recording(p)
        assert len(rec) == 6 * 2400 and seg_lengths(rec) == [2400] * 6
        assert rec.label_names() == ["walking", "jogging", "stairs", "sitting", "standing", "kicking"]
        assert rec.rate_hz == 20.0 and np.abs(rec.xyz).max() < 8.0  # g, not m/s^2
    meta = json.loads(out[1].with_suffix(".json").read_text())
    assert meta["subject"] == "1629" and meta["extra"]["duplicate_half_dropped"] is True
