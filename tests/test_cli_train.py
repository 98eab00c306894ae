"""`har train` and `har evaluate` through click's CliRunner, including one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_tiny_recordings

from har.cli import cli

TINY_ARGS = [
    "--window",
    "1",
    "--hop",
    "0.5",
    "--rate",
    "25",
    "--epochs",
    "1",
    "--lstm-units",
    "8",
    "--batch-size",
    "32",
    "--rocket-features",  # the MiniRocket branch costs an export of 30-100 s: tested in test_rocket.py
    "0",
]


def _run(args: list[str]) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, args)
    return r.exit_code, r.stdout, r.stderr


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


def test_help_states_units_and_defaults() -> None:
    code, out, _ = _run(["train", "--help"])
    assert code == 0
    for text in (
        "seconds",
        "Hz",
        "[default: 5.0]",
        "[default: 1.0]",
        "[default: 50.0]",
        "[default: 64]",
        "--overwrite",
    ):
        assert text in out, text
    code, out, _ = _run(["evaluate", "--help"])
    assert code == 0 and "--json" in out


def test_my_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "import har.cli.cmd_train, har.cli.cmd_evaluate, har.signal, har.dataset\n"
        "import har.scoring.metrics, har.scoring.plots\n"
        "import har.scoring.evaluate, har.training.train\n"
        "bad = [m for m in ('tensorflow', 'tf_keras', 'keras', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_data_path(tmp_path: Path) -> None:
    code, _, err = _run(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "m")])
    _assert_one_line_error(code, err, "nope")


def _bad_csv(tmp_path: Path, body: str, name: str = "bad.csv") -> Path:
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_text(body, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("time_s,x_g,y_g,z_g,label,seq\n0.0,0,0,1,a,0\n0.04,0,0,a\n", "bad.csv:3"),  # malformed row
        ("time_s,x_g,y_g,z_g,label,seq\n0.0,0,0,1,a,0\n0.04,nan,0,1,a,1\n", "NaN"),
        ("t,a,b,c\n0.0,0,0,1\n", "lacks column"),  # wrong columns
    ],
)
def test_bad_recording(tmp_path: Path, body: str, needle: str) -> None:
    p = _bad_csv(tmp_path, body)
    code, _, err = _run(["train", str(p), "--out", str(tmp_path / "m")])
    _assert_one_line_error(code, err, needle)


def test_one_class_only(tmp_path: Path) -> None:
    paths = make_tiny_recordings(tmp_path / "d", subjects=3, seconds_per_class=4, classes=("still",))
    code, _, err = _run(["train", str(tmp_path / "d"), "--out", str(tmp_path / "m"), *TINY_ARGS])
    _assert_one_line_error(code, err, "2 classes")
    assert paths


def test_bad_options(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d", subjects=2, seconds_per_class=2)
    base = ["train", str(tmp_path / "d"), "--out", str(tmp_path / "m")]
    _assert_one_line_error(*_run([*base, "--lstm-units", "8,x"])[::2], "lstm-units")
    _assert_one_line_error(*_run([*base, "--purity", "1.5"])[::2], "purity")
    _assert_one_line_error(*_run([*base, "--test-subjects", "zz"])[::2], "zz")


def test_refuses_non_empty_out(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d", subjects=2, seconds_per_class=2)
    out = tmp_path / "m"
    out.mkdir()
    (out / "x").write_text("x")
    code, _, err = _run(["train", str(tmp_path / "d"), "--out", str(out)])
    _assert_one_line_error(code, err, "--overwrite")


def test_evaluate_without_metadata(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d", subjects=1, seconds_per_class=2)
    (tmp_path / "m").mkdir()
    code, _, err = _run(["evaluate", str(tmp_path / "m"), str(tmp_path / "d")])
    _assert_one_line_error(code, err, "metadata.json")


@pytest.mark.slow
def test_train_then_evaluate(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d")
    out = tmp_path / "m"
    code, stdout, err = _run(["train", str(tmp_path / "d"), "--out", str(out), "--test-subjects", "s1", *TINY_ARGS])
    assert code == 0, err
    assert "epoch 1/1" in stdout and "accuracy:" in stdout and "macro-F1:" in stdout
    assert str(out / "report.txt") in stdout
    # refuses to overwrite, then accepts --overwrite
    code, _, err = _run(["train", str(tmp_path / "d"), "--out", str(out), *TINY_ARGS])
    _assert_one_line_error(code, err, "--overwrite")
    code, stdout, err = _run(["evaluate", str(out), str(tmp_path / "d" / "s1.csv"), "--json"])
    assert code == 0, err
    res = json.loads(stdout)
    assert res["n_windows"] > 0 and 0.0 <= res["accuracy"] <= 1.0 and "per_class" in res["metrics"]
    code, stdout, _ = _run(["evaluate", str(out), str(tmp_path / "d" / "s1.csv")])
    assert code == 0 and "macro-F1" in stdout and "confusion matrix" in stdout


@pytest.mark.slow
def test_train_cv_reports_mean_and_std(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d", subjects=5, seconds_per_class=6)
    out = tmp_path / "m"
    args = ["train", str(tmp_path / "d"), "--out", str(out), "--test-subjects", "s4", "--cv", "2", *TINY_ARGS]
    # one member per model (--ensemble 1): the folds are what this checks; ensembles have their own tests
    code, stdout, err = _run([*args, "--no-augment", "--conv-filters", "4", "--conv-stride", "2", "--ensemble", "1"])
    assert code == 0, err
    assert "cv fold 1/2" in stdout and "cv fold 2/2" in stdout
    assert "cv 2-fold: accuracy" in stdout and "+-" in stdout
    report = json.loads((out / "report.json").read_text())
    cv = report["cv"]
    assert cv["k"] == 2 and len(cv["folds"]) == 2
    held = [s for f in cv["folds"] for s in f["test_subjects"]]
    assert sorted(held) == ["s0", "s1", "s2", "s3"]  # every non-test subject held out exactly once
    assert "s4" not in held and sorted(cv["per_subject"]) == ["s0", "s1", "s2", "s3"]
    for f in cv["folds"]:
        assert not set(f["test_subjects"]) & set(f["val_subjects"])
    assert 0.0 <= cv["accuracy_mean"] <= 1.0 and cv["accuracy_std"] >= 0.0
    text = (out / "report.txt").read_text()
    assert "cross-validation" in text and "mean  accuracy" in text and "s4" in text  # per-subject table
    assert report["per_subject"]["s4"]["n"] > 0


def test_train_help_lists_new_options() -> None:
    code, out, _ = _run(["train", "--help"])
    assert code == 0
    for text in (
        "--cv",
        "--conv-filters",
        "--augment / --no-augment",
        "--rotation",
        "degrees",
        "--lr-schedule",
        "--mix",
        "--weight-decay",
    ):
        assert text in out, text


def test_bad_new_options(tmp_path: Path) -> None:
    make_tiny_recordings(tmp_path / "d", subjects=2, seconds_per_class=2)
    base = ["train", str(tmp_path / "d"), "--out", str(tmp_path / "m")]
    _assert_one_line_error(*_run([*base, "--cv", "1"])[::2], "cv_folds")
    _assert_one_line_error(*_run([*base, "--rotation", "200"])[::2], "rotation")
    _assert_one_line_error(*_run([*base, "--conv-filters", "-1"])[::2], "conv")
    _assert_one_line_error(*_run([*base, "--mix", "blend"])[::2], "mix")
    _assert_one_line_error(*_run([*base, "--weight-decay", "1.5"])[::2], "weight_decay")
    _assert_one_line_error(*_run([*base, "--conv-multiscale", "2,x"])[::2], "conv-multiscale")
