"""Smoothing of live predictions: SmoothingConfig / spec parsing, the streaming Smoother (hand-checked
sequences), offline == streaming, and the wiring into run_live, `har run`, `har replay`, `har deploy`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLASSES
from test_cli_run import _runner, recording  # noqa: F401 - fixture
from test_export import RATE_HZ, convert_once, fp32_bundle, tiny_model_dir  # noqa: F401 - fixtures
from test_runtime import ArraySource, _stream

from har.artifacts.bundle import verify_bundle, write_manifest
from har.cli import cli
from har.errors import HarError, SmoothingError
from har.runtime.smoothing import (
    DEFAULT_SPEC,
    Smoother,
    SmoothingConfig,
    parse_spec,
    resolve_smoothing,
    smooth_sequence,
)

AB = ("a", "b")


def _probs_b(pb: list[float]) -> np.ndarray:
    """(n, 2) probabilities of classes (a, b) from the probability of b."""
    p = np.asarray(pb, dtype=np.float32)
    return np.stack([1 - p, p], axis=1)


def _from_labels(labels: str) -> np.ndarray:
    return _probs_b([0.9 if c == "b" else 0.1 for c in labels])


def _run(cfg: SmoothingConfig, probs: np.ndarray, times: list[float] | None = None, resets: tuple[int, ...] = ()
         ) -> str:
    t = times if times is not None else [float(i) for i in range(len(probs))]
    return "".join(smooth_sequence(probs, t, cfg, AB, resets))


# --- config and spec ------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expect"), [
    ("none", SmoothingConfig()),
    ("off", SmoothingConfig()),
    ("vote:3/5", SmoothingConfig("vote", n=5, k=3)),
    ("vote:5", SmoothingConfig("vote", n=5, k=3)),
    ("vote", SmoothingConfig("vote")),
    ("VOTE:2/3, min=2", SmoothingConfig("vote", n=3, k=2, min_duration_s=2.0)),
    ("avg:5,enter=0.6", SmoothingConfig("average", n=5, enter=0.6)),
    ("avg", SmoothingConfig("average")),
    ("ema:0.4,margin=0.1,min=1.5", SmoothingConfig("average", alpha=0.4, margin=0.1, min_duration_s=1.5)),
    ("none,min=3", SmoothingConfig(min_duration_s=3.0)),
])
def test_parse_spec(spec: str, expect: SmoothingConfig) -> None:
    cfg = parse_spec(spec)
    assert cfg == expect
    assert parse_spec(cfg.spec) == cfg  # the canonical spec round-trips
    assert SmoothingConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.active == (cfg.method != "none" or cfg.min_duration_s > 0)


@pytest.mark.parametrize(("spec", "match"), [
    ("", "empty"),
    ("median:3", "unknown smoothing method"),
    ("vote:6/5", "k <= n"),
    ("vote:0/5", ">= 1"),
    ("vote:x/5", "integer"),
    ("avg:0", ">= 1"),
    ("avg:2.5", "integer"),
    ("ema", "needs a weight"),
    ("ema:1.5", "alpha"),
    ("vote:3/5,enter=0.6", "only applies to avg"),
    ("avg:5,enter=1.2", "enter"),
    ("avg:5,bogus=1", "bad item"),
    ("avg:5,enter", "bad item"),
    ("none:3", "no argument"),
    ("vote:3/5,min=-1", "minimum duration"),
    ("vote:3/5,min=abc", "number"),
])
def test_bad_specs_are_one_line_errors(spec: str, match: str) -> None:
    with pytest.raises(SmoothingError, match=match) as ei:
        parse_spec(spec)
    assert isinstance(ei.value, HarError) and "\n" not in str(ei.value)


def test_from_dict_and_resolve() -> None:
    assert SmoothingConfig.from_dict({}) == SmoothingConfig() and not SmoothingConfig().active
    with pytest.raises(SmoothingError, match="unknown smoothing setting"):
        SmoothingConfig.from_dict({"method": "vote", "window": 3})
    with pytest.raises(SmoothingError, match="method"):
        SmoothingConfig.from_dict({"method": "median"})
    stored = parse_spec("vote:3/5,min=2").to_dict()
    assert resolve_smoothing(stored) == parse_spec("vote:3/5,min=2")
    assert resolve_smoothing({}) == SmoothingConfig()
    assert not resolve_smoothing(stored, "none").active  # --smooth none turns it all off
    assert resolve_smoothing(stored, None, 0.0) == parse_spec("vote:3/5")  # --min-duration on the bundle's
    assert resolve_smoothing(stored, "avg:3", 1.0) == parse_spec("avg:3,min=1")
    assert parse_spec(DEFAULT_SPEC).active


# --- the smoother, hand-checked ---------------------------------------------------------------
def test_none_is_argmax() -> None:
    assert _run(SmoothingConfig(), _from_labels("abab")) == "abab"


def test_vote_k_of_n() -> None:
    # Start-up: raw labels until some class has 3 votes (window 3: a a b a -> a has 3).
    # Window 5: history a b a b b -> b has 3 and a only 2: switch.
    assert _run(parse_spec("vote:3/5"), _from_labels("aababbbaa")) == "aabaabbbb"
    # A decision stays while no class has k votes (3 of 3 here): a stays through b and a b.
    assert _run(parse_spec("vote:3/3"), _from_labels("aaabab")) == "aaaaaa"


def test_average_with_enter_threshold_and_margin() -> None:
    pb = [0.1, 0.1, 0.9, 0.9, 0.4, 0.9]  # raw: a a b b a b
    # means over 3: 0.1 0.1 0.367 0.633 0.733 0.733 -> b once its mean reaches 0.6
    assert _run(parse_spec("avg:3,enter=0.6"), _probs_b(pb)) == "aaabbb"
    assert _run(parse_spec("avg:3,enter=0.7"), _probs_b(pb)) == "aaaabb"
    # n = 1 (no averaging): b must beat a by 0.3: 0.6 vs 0.4 does not, 0.9 vs 0.1 does.
    assert _run(parse_spec("avg:1"), _probs_b([0.1, 0.6, 0.6, 0.9])) == "abbb"
    assert _run(parse_spec("avg:1,margin=0.3"), _probs_b([0.1, 0.6, 0.6, 0.9])) == "aaab"
    # EMA 0.5: b = 0, 0.5 (tie -> a stays), 0.75
    assert _run(parse_spec("ema:0.5"), _probs_b([0.0, 1.0, 1.0])) == "aab"


def test_min_duration() -> None:
    # A change is reported once proposed for >= 2 s (windows 1 s apart: the third in a row).
    assert _run(parse_spec("none,min=2"), _from_labels("abbaaabbbb")) == "aaaaaaaabb"
    # The first label is reported at once (no withholding at start-up).
    assert _run(parse_spec("none,min=5"), _from_labels("baaa"))[0] == "b"
    # Irregular times: the duration counts seconds, not windows.
    assert _run(parse_spec("none,min=2"), _from_labels("abb"), times=[0.0, 1.0, 3.0]) == "aab"


def test_reset_starts_afresh() -> None:
    probs = _from_labels("aaabbb")
    assert _run(parse_spec("vote:3/5"), probs) == "aaaaab"
    assert _run(parse_spec("vote:3/5"), probs, resets=(3,)) == "aaabbb"  # raw again after the reset


def test_streaming_equals_offline() -> None:
    rng = np.random.default_rng(0)
    classes = ("w", "x", "y", "z")
    specs = ["none", "vote:3/5", "vote:2/4,min=1.5", "avg:4,enter=0.5,margin=0.1", "ema:0.3,min=2", "none,min=1"]
    for seed in range(6):
        n = 120
        logits = rng.normal(0, 1.5, (n, 4)) + np.repeat(rng.normal(0, 2, (n // 20, 4)), 20, axis=0)
        probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
        times = np.cumsum(rng.uniform(0.5, 1.5, n))
        resets = sorted(rng.choice(np.arange(1, n), size=3, replace=False).tolist())
        for spec in specs:
            cfg = parse_spec(spec)
            sm = Smoother(cfg, classes)
            stream = []
            for i in range(n):
                if i in resets:
                    sm.reset()
                stream.append(sm.update(times[i], probs[i]))
            assert smooth_sequence(probs, times, cfg, classes, resets) == stream, (seed, spec)
            if spec == "none":
                assert stream == [classes[i] for i in probs.argmax(axis=1)]
    with pytest.raises(SmoothingError, match="expected 4 probabilities"):
        Smoother(parse_spec("vote"), classes).update(0.0, np.ones(3))


# --- wiring: run_live, replay, CLI ---------------------------------------------------------------
@pytest.mark.slow
def test_run_live_smooths_and_resets_at_a_gap(fp32_bundle: Path) -> None:  # noqa: F811
    from har.runtime.classifier import WindowClassifier
    from har.runtime.live import run_live

    clf = WindowClassifier.from_bundle(fp32_bundle)
    xyz = _stream(np.random.default_rng(5))  # still, shake, wave: 6 s (150 samples) each
    cfg = parse_spec("vote:3/5,min=1.2")
    raw: list = []
    run_live(clf, ArraySource(xyz, RATE_HZ, block=7, cut=150, kind="break"), raw.append)
    sm: list = []
    summary = run_live(clf, ArraySource(xyz, RATE_HZ, block=7, cut=150, kind="break"), sm.append, smoother=cfg)
    assert summary.gaps == 1 and len(sm) == len(raw)
    probs = np.stack([p.probs for p in raw])
    times = [p.time for p in raw]
    first_after = next(i for i, p in enumerate(raw) if p.time > 150 / RATE_HZ)
    expect = smooth_sequence(probs, times, cfg, clf.classes, resets=[first_after])
    assert [p.label for p in sm] == expect
    assert expect != smooth_sequence(probs, times, cfg, clf.classes)  # the reset matters here
    assert sm[first_after].label == raw[first_after].label  # after the gap: the raw label at once
    assert [p.raw_label for p in sm] == [p.label for p in raw]
    for p in sm:
        assert p.confidence == pytest.approx(float(p.probs[clf.classes.index(p.label)]))
    assert summary.counts == {c: expect.count(c) for c in set(expect)}
    # No smoother (or an inactive one): predictions as before, no raw_label.
    plain: list = []
    run_live(clf, ArraySource(xyz, RATE_HZ, block=7), plain.append, smoother=SmoothingConfig())
    assert all(p.raw_label is None for p in plain)


@pytest.fixture
def smoothed_bundle(tmp_path: Path, fp32_bundle: Path) -> Path:  # noqa: F811
    """fp32_bundle with `vote:3/5,min=1` stored as its smoothing (metadata + manifest rewritten)."""
    b = tmp_path / "b"
    shutil.copytree(fp32_bundle, b)
    meta = json.loads((b / "metadata.json").read_text())
    meta["smoothing"] = parse_spec("vote:3/5,min=1").to_dict()
    (b / "metadata.json").write_text(json.dumps(meta))
    write_manifest(b)
    return b


@pytest.mark.slow
def test_run_and_replay_use_the_bundle_setting_and_agree(smoothed_bundle: Path, recording: Path) -> None:  # noqa: F811
    from har.runtime.replay import replay

    r = _runner().invoke(cli, ["run", str(smoothed_bundle), "--file", str(recording), "--speed", "0", "--json"])
    assert r.exit_code == 0, r.stdout + r.stderr
    objs = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
    assert all(set(o) == {"t", "label", "confidence", "probs", "raw_label"} for o in objs)
    res = replay(smoothed_bundle, recording)
    assert res.smoothing == parse_spec("vote:3/5,min=1")
    assert [o["label"] for o in objs] == res.smoothed  # live and replay smooth identically
    assert [o["raw_label"] for o in objs] == res.predicted

    r = _runner().invoke(cli, ["replay", str(smoothed_bundle), str(recording), "--json"])
    d = json.loads(r.stdout)
    assert d["accuracy"] == res.accuracy and d["smoothing"]["spec"] == "vote:3/5,min=1"
    assert d["smoothed"]["accuracy"] == res.smoothed_accuracy is not None
    assert set(d["events"]) == {"raw", "smoothed"}
    for ev in d["events"].values():
        assert ev["true_segments"] == 3 and ev["true_changes"] == 2 and 0 <= ev["segment_f1"] <= 1
    r = _runner().invoke(cli, ["replay", str(smoothed_bundle), str(recording)])
    assert r.exit_code == 0 and "smoothing vote:3/5,min=1: accuracy" in r.stdout
    assert "segment F1@0.5" in r.stdout and "accuracy" in r.stdout.splitlines()[-1]

    # --smooth none turns it off; --smooth / --min-duration override the bundle's.
    r = _runner().invoke(cli, ["run", str(smoothed_bundle), "--file", str(recording), "--speed", "0", "--json",
                               "--smooth", "none"])
    assert r.exit_code == 0 and all("raw_label" not in json.loads(ln) for ln in r.stdout.strip().splitlines())
    r = _runner().invoke(cli, ["replay", str(smoothed_bundle), str(recording), "--json", "--smooth", "avg:3",
                               "--min-duration", "2"])
    d = json.loads(r.stdout)
    assert d["smoothing"]["spec"] == "avg:3,min=2"
    assert res.with_smoothing(parse_spec("avg:3,min=2")).smoothed_correct == d["smoothed"]["correct"]


@pytest.mark.slow
def test_replay_without_smoothing_reports_raw_twice(fp32_bundle: Path, recording: Path) -> None:  # noqa: F811
    r = _runner().invoke(cli, ["replay", str(fp32_bundle), str(recording), "--json"])
    d = json.loads(r.stdout)
    assert d["smoothing"]["method"] == "none" and d["smoothed"]["accuracy"] == d["accuracy"]
    assert d["events"]["raw"] == d["events"]["smoothed"]


@pytest.mark.parametrize("cmd", ["run", "replay", "deploy"])
def test_bad_smooth_spec_is_a_one_line_error(tmp_path: Path, cmd: str) -> None:
    # The spec is checked before anything is loaded or converted.
    args = {"run": ["run", str(tmp_path), "--file", str(tmp_path / "r.csv")],
            "replay": ["replay", str(tmp_path), str(tmp_path / "r.csv")],
            "deploy": ["deploy", str(tmp_path), "--out", str(tmp_path / "b")]}[cmd]
    r = _runner().invoke(cli, [*args, "--smooth", "vote:9/5"])
    assert r.exit_code == 1 and r.stderr.strip() == "Error: vote needs k <= n, got 9/5"
    r = _runner().invoke(cli, [*args, "--min-duration", "-1"])
    assert r.exit_code == 2 and "--min-duration" in r.stderr


@pytest.mark.slow
def test_deploy_stores_smoothing(tmp_path: Path, tiny_model_dir: Path, convert_once: None) -> None:  # noqa: F811
    out = tmp_path / "b"
    r = _runner().invoke(cli, ["deploy", str(tiny_model_dir), "--out", str(out), "--batch", "0",
                               "--smooth", "avg:3,enter=0.6", "--min-duration", "1.5"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "Smoothing stored in the bundle: avg:3,enter=0.6,min=1.5" in r.stdout
    meta = verify_bundle(out)  # the manifest covers the metadata with the smoothing in it
    assert SmoothingConfig.from_dict(meta.smoothing) == parse_spec("avg:3,enter=0.6,min=1.5")
    assert TINY_CLASSES == meta.classes


@pytest.mark.slow
def test_replay_resets_the_smoother_at_a_gap_like_run(
    tmp_path: Path, smoothed_bundle: Path, recording: Path  # noqa: F811
) -> None:
    from har.recording.format import Recording, read_recording, write_recording
    from har.runtime.replay import replay

    rec = read_recording(recording)
    keep = np.r_[0:100, 110:len(rec)]  # 10 samples lost at sample 100: a seq and time gap
    gapped = write_recording(tmp_path / "gap.csv", Recording(
        time=rec.time[keep], xyz=rec.xyz[keep], labels=rec.labels[keep], seq=rec.seq[keep], meta=rec.meta))
    res = replay(smoothed_bundle, gapped)
    assert len(res.run_starts) == 2 and res.run_starts[0] == 0
    # The gap is at the still -> shake change: with the reset, shake is reported at once.
    no_reset = smooth_sequence(res.probs, [e for _, e in res.spans], res.smoothing, res.classes)
    assert no_reset != res.smoothed and res.smoothed[res.run_starts[1]] == res.predicted[res.run_starts[1]]
    r = _runner().invoke(cli, ["run", str(smoothed_bundle), "--file", str(gapped), "--speed", "0", "--json"])
    assert r.exit_code == 0, r.stdout + r.stderr
    objs = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
    assert [o["label"] for o in objs] == res.smoothed
    assert [o["t"] for o in objs] == pytest.approx([e for _, e in res.spans], abs=1e-3)
