"""The recording format: writer, reader, truncated tails, malformed input, and `har info`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from har.cli import cli
from har.config import TrainConfig, WindowConfig, config_from_dict, config_to_dict
from har.errors import ConfigError, DataError, RecordingFormatError
from har.recording.format import CSV_COLUMNS, RecordingMeta, RecordingWriter, find_recordings, read_recording


def _write(path: Path, n: int = 100, rate: float = 50.0, label: str = "walking") -> Path:
    with RecordingWriter(path, RecordingMeta(subject="s1", rate_hz=rate)) as w:
        t = np.arange(n) / rate
        xyz = np.stack([np.sin(t), np.cos(t), np.ones(n)], axis=1)
        w.write(t, xyz, label)
    return path


def test_roundtrip_and_sidecar(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", n=120)
    rec = read_recording(p)
    assert len(rec) == 120
    assert rec.xyz.dtype == np.float32 and rec.xyz.shape == (120, 3)
    assert rec.labels[0] == "walking" and rec.meta.labels == ["walking"]
    assert rec.seq is not None and (np.diff(rec.seq) == 1).all()
    assert rec.meta.complete and not rec.truncated
    assert rec.segments() == [slice(0, 120)]
    header = p.read_text().splitlines()[0]
    assert header == ",".join(CSV_COLUMNS)
    side = json.loads(p.with_suffix(".json").read_text())
    assert side["format"] == "har-recording" and side["samples"] == 120 and side["units"] == "g"
    assert side["axes"] == ["x", "y", "z"]


def test_readable_with_plain_csv_module(tmp_path: Path) -> None:
    import csv

    p = _write(tmp_path / "a.csv", n=10)
    rows = list(csv.DictReader(p.open()))
    assert len(rows) == 10 and float(rows[3]["time_s"]) == pytest.approx(0.06)
    assert rows[0]["label"] == "walking"


def test_sequence_gap_splits_segments(tmp_path: Path) -> None:
    p = tmp_path / "gap.csv"
    with RecordingWriter(p, RecordingMeta(rate_hz=50)) as w:
        w.write(np.arange(10) / 50, np.zeros((10, 3)), "a", seq=np.arange(10))
        w.write(np.arange(13, 23) / 50, np.zeros((10, 3)), "a", seq=np.arange(13, 23))
    rec = read_recording(p)
    assert rec.segments() == [slice(0, 10), slice(10, 20)]


def test_truncated_tail_is_reported_not_fatal(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv", n=50)
    with p.open("a") as f:
        f.write("1.0000,0.1,0.2")  # killed mid-row
    rec = read_recording(p)
    assert len(rec) == 50 and rec.truncated
    r = CliRunner().invoke(cli, ["info", str(p)])
    assert r.exit_code == 0, r.output
    assert "truncated tail" in r.output


def test_writer_flushes_while_open(tmp_path: Path) -> None:
    """What was written is on disk (readable by another process) before close."""
    p = tmp_path / "live.csv"
    w = RecordingWriter(p, RecordingMeta(rate_hz=50), flush_interval=0.0)
    w.write(np.arange(5) / 50, np.zeros((5, 3)), "x")
    rec = read_recording(p)
    assert len(rec) == 5 and not rec.meta.complete
    w.close()
    assert read_recording(p).meta.complete


@pytest.mark.parametrize(
    "body, message",
    [
        ("time_s,x_g,y_g,z_g,label,seq\n0,0,0,1,a,0\n0.02,0,0,a\n", "expected 6 fields"),
        ("time_s,x_g,y_g,z_g,label,seq\n0,0,0,1,a,0\n0.02,0,zz,1,a,1\n", "non-numeric"),
        ("time_s,x_g,y_g,z_g,label,seq\n0,0,0,1,a,0\n0.02,0,nan,1,a,1\n", "NaN"),
        ("time_s,x_g,y_g,z_g,label,seq\n0,0,0,1,a,0\n0.02,0,inf,1,a,1\n", "NaN or infinite"),
        ("time,ax,ay,az\n0,0,0,1\n", "lacks column"),
        ("", "empty file"),
        ("time_s,x_g,y_g,z_g,label\n0,0,0,9.81,a\n0.02,300,0,9.8,a\n", r"not m/s\^2"),
    ],
)
def test_malformed_input_gives_one_line_error(tmp_path: Path, body: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(RecordingFormatError, match=message):
        read_recording(p)
    r = CliRunner().invoke(cli, ["info", str(p)])
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and r.output.startswith("Error: ")
    assert "Traceback" not in r.output


def test_bad_sidecar(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv")
    p.with_suffix(".json").write_text("{not json")
    with pytest.raises(RecordingFormatError, match="invalid JSON"):
        read_recording(p)


def test_csv_without_sidecar_infers_rate(tmp_path: Path) -> None:
    p = tmp_path / "subjX" / "hand.csv"
    p.parent.mkdir()
    p.write_text("t,x,y,z,label\n" + "".join(f"{i / 20:.3f},0,0,1,sit\n" for i in range(40)))
    rec = read_recording(p)
    assert rec.rate_hz == pytest.approx(20.0, rel=1e-3)
    assert rec.subject == "subjX" and rec.seq is None


def test_find_recordings(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "x" / "a.csv")
    _write(tmp_path / "d" / "b.csv")
    found = find_recordings([tmp_path / "d"])
    assert [f.name for f in found] == ["b.csv", "a.csv"] or sorted(f.name for f in found) == ["a.csv", "b.csv"]
    with pytest.raises(DataError, match="no such file"):
        find_recordings([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no recordings"):
        find_recordings([tmp_path / "empty"])


def test_writer_refuses_overwrite_and_bad_labels(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.csv")
    with pytest.raises(DataError, match="exists"):
        RecordingWriter(p, RecordingMeta())
    w = RecordingWriter(tmp_path / "b.csv", RecordingMeta())
    with pytest.raises(DataError, match="invalid label"):
        w.write([0.0], np.zeros((1, 3)), "a\tb")
    w.close()


def test_configs_are_strict() -> None:
    cfg = TrainConfig(window=WindowConfig(rate_hz=25, window_s=2.0, hop_s=0.5))
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict(TrainConfig, {**config_to_dict(cfg), "lr": 1})
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_dict(TrainConfig, {**config_to_dict(cfg), "batch_size": "ten"})
    with pytest.raises(ConfigError, match="epochs must be an integer or 'auto'"):
        config_from_dict(TrainConfig, {**config_to_dict(cfg), "epochs": "ten"})
    with pytest.raises(ConfigError):
        WindowConfig(rate_hz=50, window_s=0.01)


def test_info_missing_and_unknown_paths(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "missing.csv")])
    assert r.exit_code == 1 and r.output.startswith("Error: no such file")
    r = CliRunner().invoke(cli, ["info", str(tmp_path)])
    assert r.exit_code == 1 and "neither a model directory" in r.output
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "metadata.json").write_text('{"format": "other"}')
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "m")])
    assert r.exit_code == 1 and "not har model metadata" in r.output


def _long_csv(path: Path, n: int, label_of: object = None, newline: str = "\n", extra: str = "") -> Path:
    rng = np.random.default_rng(5)
    xyz = rng.normal(0, 1, (n, 3))
    labels = ["walking", "", "sitting", "stairs"]
    rows = [",".join(CSV_COLUMNS)]
    for i in range(n):
        lab = labels[(i // 300) % 4] if label_of is None else label_of(i)  # type: ignore[operator]
        rows.append(f"{i / 50:.4f},{xyz[i, 0]:.5f},{xyz[i, 1]:.5f},{xyz[i, 2]:.5f},{lab}{extra},{i}")
    path.write_text(newline.join(rows) + newline, encoding="utf-8")
    return path


@pytest.mark.parametrize("variant", ["plain", "crlf", "spaces", "long-label", "truncated"])
def test_fast_and_line_parsers_agree(tmp_path: Path, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long plain files go through numpy's parser; unusual ones through the line loop. Both give
    the same recording."""
    import har.recording.format as hr

    kw: dict[str, object] = {}
    if variant == "crlf":
        kw["newline"] = "\r\n"
    elif variant == "spaces":
        kw["extra"] = " "
    elif variant == "long-label":
        kw["label_of"] = lambda i: "a_very_long_activity_label_name_" + str(i // 500)
    p = _long_csv(tmp_path / "r.csv", 3000, **kw)  # type: ignore[arg-type]
    if variant == "truncated":  # killed mid-write: a partial last row
        with p.open("a") as f:
            f.write("60.0000,0.1,0.2")
    fast = read_recording(p)
    assert fast.truncated == (variant == "truncated")
    monkeypatch.setattr(hr, "_parse_rows_fast", lambda *a: None)
    slow = read_recording(p)
    np.testing.assert_array_equal(fast.time, slow.time)
    np.testing.assert_array_equal(fast.xyz, slow.xyz)
    np.testing.assert_array_equal(fast.seq, slow.seq)
    assert fast.labels.tolist() == slow.labels.tolist()
    assert len(fast) == 3000 and ("" in fast.labels.tolist()) == (variant != "long-label")


def test_fast_parser_declines_malformed_rows(tmp_path: Path) -> None:
    """A bad row in a long file still gives the line-numbered error of the line parser."""
    p = _long_csv(tmp_path / "r.csv", 2000)
    lines = p.read_text().split("\n")
    lines[1500] = lines[1500].replace(",", ",,", 1)
    p.write_text("\n".join(lines))
    with pytest.raises(RecordingFormatError, match=r"r.csv:1501: expected 6 fields"):
        read_recording(p)
    lines[1500] = "0.1,abc,0,0,walking,1499"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingFormatError, match=r"r.csv:1501: non-numeric"):
        read_recording(p)
