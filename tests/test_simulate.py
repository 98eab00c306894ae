"""The activity simulator (har.recording.simulate) and `har simulate`. Fast: no TensorFlow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from har.cli import cli
from har.errors import ConfigError, DataError, HarError
from har.recording.format import read_recording, write_recording
from har.recording.simulate import ACTIVITIES, ActivitySimulator, generate_dataset, simulate_recording

RATE = 50.0


def _gen(activity: str, n: int = 1500, subject_seed: int = 1, seed: int = 2) -> np.ndarray:
    return ActivitySimulator(subject_seed=subject_seed, rate_hz=RATE, seed=seed).generate(activity, n)


def _dominant_hz(x: np.ndarray, rate: float = RATE) -> float:
    m = np.linalg.norm(x.astype(np.float64), axis=1)
    m = m - m.mean()
    spec = np.abs(np.fft.rfft(m * np.hanning(m.size)))
    freqs = np.fft.rfftfreq(m.size, 1.0 / rate)
    band = freqs > 0.5
    return float(freqs[band][spec[band].argmax()])


def test_shape_dtype_units() -> None:
    for act in ACTIVITIES:
        x = _gen(act, 500)
        assert x.shape == (500, 3) and x.dtype == np.float32
        assert np.isfinite(x).all()
        # Gravity included: the magnitude is about 1 g at rest, oscillates around it in motion.
        mag = float(np.linalg.norm(x, axis=1).mean())
        assert (0.95 < mag < 1.05) if act in ("sitting", "standing", "lying") else (0.9 < mag < 1.6), (act, mag)
    assert ActivitySimulator().generate("sitting", 0).shape == (0, 3)


def test_clipped_and_quantised_to_milli_g() -> None:
    x = np.concatenate([_gen(a, 2000, subject_seed=s) for a in ("running", "stairs") for s in range(3)])
    assert np.abs(x).max() <= 4.0
    mg = x.astype(np.float64) * 1000.0
    assert np.abs(mg - np.round(mg)).max() < 1e-3


def test_deterministic_by_seed() -> None:
    a = _gen("walking", 400, subject_seed=3, seed=7)
    b = _gen("walking", 400, subject_seed=3, seed=7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _gen("walking", 400, subject_seed=3, seed=8))
    assert not np.array_equal(a, _gen("walking", 400, subject_seed=4, seed=7))


@pytest.mark.parametrize("activity", ["walking", "stairs", "sitting"])
def test_continuous_across_calls(activity: str) -> None:
    one = ActivitySimulator(5, RATE, seed=1).generate(activity, 600)
    sim = ActivitySimulator(5, RATE, seed=1)
    parts = np.concatenate([sim.generate(activity, k) for k in (37, 200, 1, 362)])
    # Chunking does not change the stream (state is kept), up to rare 1 mg rounding flips.
    assert np.abs(one - parts).max() <= 0.0011
    # No jump at a call boundary: the step there is like any other step.
    steps = np.abs(np.diff(parts.astype(np.float64), axis=0)).max(axis=1)
    assert steps[36] <= np.percentile(steps, 99.5) + 1e-6
    assert steps[236] <= np.percentile(steps, 99.5) + 1e-6


def test_running_has_more_energy_than_walking() -> None:
    for s in range(4):
        walk = _gen("walking", 1500, subject_seed=s).std(axis=0).sum()
        run = _gen("running", 1500, subject_seed=s).std(axis=0).sum()
        still = _gen("standing", 1500, subject_seed=s).std(axis=0).sum()
        assert run > 1.5 * walk > 3 * still


def test_walking_dominant_frequency_in_step_band() -> None:
    for s in range(4):
        f_walk = _dominant_hz(_gen("walking", 2000, subject_seed=s))
        assert 1.4 <= f_walk <= 2.2, f_walk
        # At the wrist running is dominated by the arm swing (stride rate = half the step rate);
        # at the waist the step rate dominates.
        run = ActivitySimulator(subject_seed=s, rate_hz=RATE, seed=2, placement="waist").generate("running", 2000)
        f_run = _dominant_hz(run)
        assert 2.4 <= f_run <= 3.1, f_run


def test_lying_gravity_on_another_axis_than_standing() -> None:
    for s in range(6):
        stand = np.abs(_gen("standing", 500, subject_seed=s).mean(axis=0))
        lie = np.abs(_gen("lying", 500, subject_seed=s).mean(axis=0))
        assert int(stand.argmax()) != int(lie.argmax()), (s, stand, lie)
        assert int(lie.argmax()) == 1  # wrist rolled: gravity on y


def test_sitting_and_standing_differ_in_tilt() -> None:
    # The hard pair: on average the forearm is more horizontal when sitting (less gravity on x).
    sx = [_gen("sitting", 500, subject_seed=s).mean(axis=0)[0] for s in range(8)]
    tx = [_gen("standing", 500, subject_seed=s).mean(axis=0)[0] for s in range(8)]
    assert np.mean(tx) - np.mean(sx) > 0.15


def test_bad_input_raises_har_errors() -> None:
    sim = ActivitySimulator()
    with pytest.raises(DataError, match="unknown activity"):
        sim.generate("dancing", 10)
    with pytest.raises(DataError):
        sim.generate("walking", -1)
    with pytest.raises(ConfigError):
        ActivitySimulator(rate_hz=0)
    with pytest.raises(ConfigError):
        ActivitySimulator(placement="ankle")
    with pytest.raises(DataError):
        simulate_recording([("walking", 0.0)])
    with pytest.raises(DataError):
        simulate_recording([])
    for exc in (DataError, ConfigError):
        assert issubclass(exc, HarError)


def test_simulate_recording_roundtrip(tmp_path: Path) -> None:
    rec = simulate_recording([("walking", 3.0), ("lying", 2.0)], subject="simx", subject_seed=4, rate_hz=RATE, seed=1)
    assert len(rec) == 250 and rec.xyz.dtype == np.float32
    assert rec.labels[0] == "walking" and rec.labels[-1] == "lying" and (rec.labels == "walking").sum() == 150
    assert rec.seq is not None and np.array_equal(rec.seq, np.arange(250))
    assert rec.meta.device == "simulator" and rec.meta.subject == "simx" and rec.meta.complete
    path = write_recording(tmp_path / "simx.csv", rec)
    back = read_recording(path)
    assert back.meta.complete and back.meta.subject == "simx" and back.rate_hz == RATE
    assert back.meta.labels == ["walking", "lying"]
    assert np.array_equal(back.xyz, rec.xyz)
    assert np.array_equal(back.labels, rec.labels)
    assert len(back.segments()) == 1


def test_generate_dataset(tmp_path: Path) -> None:
    paths = generate_dataset(tmp_path / "d", subjects=2, seconds_per_activity=3.0, seed=5)
    assert [p.name for p in paths] == ["sim01.csv", "sim02.csv"]
    orders = []
    for p in paths:
        rec = read_recording(p)
        assert sorted(rec.meta.labels) == sorted(ACTIVITIES)
        assert all((rec.labels == a).sum() == 150 for a in ACTIVITIES)
        orders.append(rec.meta.labels)
    assert orders[0] != orders[1]
    with pytest.raises(DataError, match="overwrite"):
        generate_dataset(tmp_path / "d", subjects=2, seconds_per_activity=3.0, seed=5)
    # Byte-for-byte reproducible.
    again = generate_dataset(tmp_path / "e", subjects=2, seconds_per_activity=3.0, seed=5)
    for a, b in zip(paths, again, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()
    meta = json.loads(paths[0].with_suffix(".json").read_text())
    assert meta["extra"]["synthetic"] is True


def test_cli_simulate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sim"
    r = runner.invoke(cli, ["simulate", "--out", str(out), "--subjects", "2", "--seconds", "2", "--seed", "1"])
    assert r.exit_code == 0, r.output
    assert (out / "sim01.csv").is_file() and (out / "sim02.json").is_file()
    assert "sim02.csv" in r.output
    r = runner.invoke(cli, ["simulate", "--out", str(out), "--subjects", "2", "--seconds", "2"])
    assert r.exit_code != 0 and "Error:" in r.output and "--overwrite" in r.output
    r = runner.invoke(cli, ["simulate", "--out", str(out), "--subjects", "2", "--seconds", "2", "--overwrite"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("rate", ["0", "-5", "nan", "5000"])
def test_cli_bad_rate(tmp_path: Path, rate: str) -> None:
    r = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "x"), "--rate", rate])
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "rate" in lines[0]
    assert not (tmp_path / "x").exists()


def test_cli_help_states_units_and_defaults() -> None:
    r = CliRunner().invoke(cli, ["simulate", "--help"])
    assert r.exit_code == 0
    for text in ("Hz", "default: 50.0", "default: 8", "default: 40.0", "Seconds", "SYNTHETIC"):
        assert text in r.output, text
