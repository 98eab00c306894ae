"""`har adapt`: the numpy head refit, adaptation from recordings on a tiny real bundle, the guided
session over a real pty (the emulator), `har run` / info / replay / evaluate on the adapted bundle,
and the bad inputs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_CLASSES, make_tiny_recordings
from test_export import WINDOW, fp32_bundle, get_bundle, tiny_model_dir  # noqa: F401 - fixtures

from har.artifacts.metadata import ModelMetadata, Normalization
from har.cli import cli
from har.config import TrainConfig
from har.errors import AdaptError, BundleError
from har.recording.format import Recording, read_recording, write_recording
from har.runtime.adapt import (
    ANCHOR_WEIGHT,
    LinearHead,
    PersonalHead,
    beats,
    blend_probs,
    calibration_windows,
    choose,
    cross_validate,
    fit_calibrated,
    fit_head,
    load_head,
    personal_head,
    save_head,
    split_calibration,
)

ROOT = Path(__file__).resolve().parents[1]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


# --- the head refit on synthetic embeddings (numpy only, fast) ----------------------------------
def _person(rng: np.random.Generator, n_per: int = 30, d: int = 16, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    means = rng.normal(0, 1.5, (k, d))
    y = np.repeat(np.arange(k), n_per)
    return (means[y] + rng.normal(0, 0.5, (y.size, d))).astype(np.float32), y


def test_fit_head_regularisation_pulls_towards_the_base() -> None:
    rng = np.random.default_rng(0)
    x, y = _person(rng)
    base = LinearHead(rng.normal(0, 1, (16, 4)).astype(np.float32), np.zeros(4, np.float32))
    assert np.mean(base(x).argmax(1) == y) < 0.6  # the base head does not fit this person
    weak = fit_head(x, y, base, strength=1e-3)
    strong = fit_head(x, y, base, strength=1e3)
    assert np.mean(weak(x).argmax(1) == y) == 1.0
    dist = lambda h: float(np.abs(h.w - base.w).max())  # noqa: E731
    assert dist(strong) < 0.01 < dist(weak)
    assert np.allclose(weak(x).sum(1), 1.0, atol=1e-5)
    # classes without calibration keep their base weights exactly
    part = fit_head(x[y < 2], y[y < 2], base, strength=1e-2)
    assert np.array_equal(part.w[:, 2:], base.w[:, 2:]) and np.array_equal(part.b[2:], base.b[2:])
    with pytest.raises(AdaptError, match="strength"):
        fit_head(x, y, base, strength=0)


def test_uncalibrated_classes_keep_the_base_behaviour(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x, y = _person(rng)
    base = LinearHead(rng.normal(0, 1, (16, 4)).astype(np.float32), rng.normal(0, 1, 4).astype(np.float32))
    cal = np.array([True, True, True, False])  # class 3 skipped
    fitted = fit_calibrated(x[y < 3], y[y < 3], base, cal, strength=1e-2)
    assert np.array_equal(fitted.w[:, 3], base.w[:, 3]) and fitted.b[3] == base.b[3]
    assert not np.allclose(fitted.w[:, :3], base.w[:, :3])
    head = personal_head(base, fitted, cal, blend=1.0)
    assert isinstance(head, PersonalHead)
    probe = rng.normal(0, 2, (500, 16)).astype(np.float32)
    pb, pa = base(probe), head(probe)
    assert np.allclose(pa.sum(1), 1.0, atol=1e-5)
    assert np.allclose(pa[:, 3], pb[:, 3], atol=1e-6)  # the skipped class's probability is the base's
    gate = pb.argmax(1) == 3
    assert gate.any() and np.array_equal(pa[gate].argmax(1), pb[gate].argmax(1))  # its windows stay its own
    assert np.allclose(pa[gate], pb[gate])
    assert np.mean(pa[~gate].argmax(1) != pb[~gate].argmax(1)) > 0.05  # the calibrated classes did move
    # given the model's own probabilities (what the runtime passes), the skipped class keeps them bit
    # for bit, and the windows the model gives to it keep the model's output, even where the numpy
    # base head would say otherwise (an int8 model's own head is not head.npz's float arithmetic)
    own = np.clip(pb + rng.normal(0, 0.02, pb.shape).astype(np.float32), 0, None)
    own /= own.sum(1, keepdims=True)
    po = head(probe, own)
    assert np.array_equal(po[:, 3], own[:, 3])
    mine = own.argmax(1) == 3
    assert np.array_equal(po[mine], own[mine]) and np.allclose(po.sum(1), 1.0, atol=1e-5)
    # round trip through the bundle file; an all-calibrated head is a plain linear head
    loaded = load_head(save_head(tmp_path / "p.npz", head), 16, 4)
    assert isinstance(loaded, PersonalHead) and np.allclose(loaded(probe), pa, atol=1e-6)
    full = personal_head(base, fit_calibrated(x, y, base, np.ones(4, bool), 1e-2), np.ones(4, bool), 0.5)
    assert isinstance(load_head(save_head(tmp_path / "f.npz", full), 16, 4), LinearHead)
    # blend 0 is the base model exactly
    assert np.allclose(personal_head(base, fitted, cal, blend=0.0)(probe), pb, atol=1e-6)
    assert np.allclose(blend_probs(pb, base.logits(probe), np.ones(4, bool)), pb, atol=1e-5)


def test_a_minirocket_wide_head_refits_the_lstm_rows_only() -> None:
    """A model with the MiniRocket branch has a 10,000+ wide embedding: Newton over all of it would
    need a (d+1)k-square system (GBs). Its MiniRocket rows keep the base weights (a fixed part of the
    logits), the LSTM embedding's rows are refit; a wide embedding without the branch is refused."""
    from har.config import ModelConfig
    from har.runtime.adapt import MAX_NEWTON_PARAMS, head_rows

    rng = np.random.default_rng(3)
    x, y = _person(rng, d=16)
    ppv = rng.uniform(0, 1, (y.size, 5000)).astype(np.float32)  # MiniRocket's features: fixed rows
    emb = np.concatenate([x, ppv], axis=1)
    base = LinearHead(rng.normal(0, 1, (16 + 5000, 4)).astype(np.float32) * 0.01, np.zeros(4, np.float32))
    meta = dataclasses.replace(_meta(), train_config=TrainConfig(
        window=WINDOW, model=ModelConfig(lstm_units=(16,), rocket_features=5000)))
    assert (emb.shape[1] + 1) * 4 > MAX_NEWTON_PARAMS
    rows = head_rows(meta, emb.shape[1], 4, rocket_width=5000)  # the bundle's graph: 5000 MiniRocket columns
    assert rows == 16 and head_rows(_meta(), 16, 4, rocket_width=0) is None
    # the graph and the training config disagree: one line, never a wrong split of the rows
    for width, cfg in ((4990, meta), (0, meta), (5000, None)):
        m = dataclasses.replace(_meta(), train_config=TrainConfig(window=WINDOW, model=ModelConfig(lstm_units=(16,)))) \
            if cfg is None else cfg
        with pytest.raises(AdaptError, match=r"^the model's embedding holds .* \(redeploy it\)$") as e:
            head_rows(m, emb.shape[1], 4, rocket_width=width)
        assert "\n" not in str(e.value)
    fitted = fit_calibrated(emb, y, base, np.ones(4, bool), 1e-2, free_rows=rows)
    assert np.array_equal(fitted.w[16:], base.w[16:]) and not np.allclose(fitted.w[:16], base.w[:16])
    assert np.mean(fitted(emb).argmax(1) == y) > 0.95 > np.mean(base(emb).argmax(1) == y)
    plain = dataclasses.replace(_meta(), train_config=TrainConfig(window=WINDOW, model=ModelConfig(lstm_units=(16,))))
    with pytest.raises(AdaptError, match="5016-wide embedding"):
        head_rows(plain, emb.shape[1], 4, rocket_width=0)


def test_cross_validation_never_fits_on_what_it_scores(tmp_path: Path) -> None:
    rec = read_recording(make_tiny_recordings(tmp_path, subjects=1, seconds_per_class=8.0)[0])
    cal = calibration_windows([rec], _meta(), folds=4, hop_s=0.5)
    assert cal.activities == list(TINY_CLASSES) and cal.x.shape == (cal.y.size, 25, 3)
    for f, tr in enumerate(cal.train):
        te = cal.fold == f
        assert not (tr & te).any()
        for c in range(3):  # every fold scores and is fitted on windows of every activity
            assert np.any(te & (cal.y == c)) and np.sum(tr & (cal.y == c)) >= 2
    # windows overlapping a scored window (1 s windows, hop 0.5 s) are not fitted on
    assert all(tr.sum() + (cal.fold == f).sum() < cal.y.size for f, tr in enumerate(cal.train))
    short = Recording(rec.time[:240], rec.xyz[:240], rec.labels[:240], rec.seq[:240], rec.meta)
    with pytest.raises(AdaptError, match="too little usable calibration"):
        calibration_windows([short], _meta(), folds=4)


def test_the_personal_head_is_kept_only_when_it_beats_the_base_out_of_fold() -> None:
    rng = np.random.default_rng(2)
    means = rng.normal(0, 1.5, (4, 16))
    y = np.repeat(np.arange(4), 40)
    x = (means[y] + rng.normal(0, 0.5, (y.size, 16))).astype(np.float32)
    fold = np.tile(np.repeat(np.arange(4), 10), 4)
    from har.runtime.adapt import Calibration

    cal = Calibration(x, y, fold, [fold != f for f in range(4)], ["a", "b", "c", "d"])
    everyone = np.ones(4, bool)
    # a base head that already fits this person: nothing to gain, the base is kept
    good = fit_head(x, y, LinearHead(np.zeros((16, 4), np.float32), np.zeros(4, np.float32)), strength=1e-2)
    oof = cross_validate(x, cal, good, everyone, (0.01, 1.0), (0.5, 1.0))
    assert set(oof) == {(0.01, 0.5), (0.01, 1.0), (1.0, 0.5), (1.0, 1.0)}
    *_, kept = choose(oof, y, good(x))
    assert not kept
    # a base head that does not: the personal head wins out of fold and is kept
    bad = LinearHead(rng.normal(0, 1, (16, 4)).astype(np.float32), np.zeros(4, np.float32))
    oof = cross_validate(x, cal, bad, everyone, (0.01, 1.0), (0.5, 1.0))
    key, s_new, s_base, kept = choose(oof, y, bad(x))
    assert kept and s_new[0] > s_base[0] + 0.2
    assert not choose(oof, y, bad(x), margin=1.0)[3]  # a margin no head can beat keeps the base


def test_never_worse_rule() -> None:
    assert beats((0.9, 0.5), (0.8, 0.1))
    assert not beats((0.9, 0.5), (0.8, 0.1), margin=0.1)
    assert not beats((0.8, 0.01), (0.8, 0.5))  # a tie keeps the base model
    assert not beats((0.7, 0.01), (0.8, 0.5))


def test_head_files_load_safely(tmp_path: Path) -> None:
    h = LinearHead(np.ones((4, 3), np.float32), np.zeros(3, np.float32))
    p = save_head(tmp_path / "head.npz", h)
    assert np.array_equal(load_head(p, 4, 3).w, h.w)
    with pytest.raises(BundleError, match="needs"):
        load_head(p, 5, 3)
    np.savez(tmp_path / "obj.npz", W=np.array([object()], dtype=object), b=np.zeros(3))
    with pytest.raises(BundleError, match="not a classifier head"):
        load_head(tmp_path / "obj.npz")


def _meta() -> ModelMetadata:
    return ModelMetadata(classes=TINY_CLASSES, window=WINDOW, normalization=Normalization((0.0,) * 3, (1.0,) * 3),
                         train_config=TrainConfig(window=WINDOW), data_fingerprint="t")


def test_calibration_split_holds_out_the_end_and_rejects_bad_calibration(tmp_path: Path) -> None:
    rec = read_recording(make_tiny_recordings(tmp_path, subjects=1, seconds_per_class=6.0)[0])
    sp = split_calibration([rec], _meta(), holdout=0.3, hop_s=0.5)
    assert sp.activities == list(TINY_CLASSES)
    # 6 s per activity: 4.2 s fit -> 7 windows of 1 s at hop 0.5; 1.8 s held out -> 1-2 windows
    assert np.bincount(sp.fit_y).tolist() == [7, 7, 7] and np.bincount(sp.hold_y).min() >= 1
    assert sp.fit_x.shape[1:] == (25, 3) and sp.hold_x.shape[0] == sp.hold_y.size
    one = Recording(rec.time, rec.xyz, np.where(rec.labels == "still", "still", ""), rec.seq, rec.meta)
    with pytest.raises(AdaptError, match="one activity"):
        split_calibration([one], _meta())
    odd = Recording(rec.time, rec.xyz, np.where(rec.labels == "still", "juggling", rec.labels), rec.seq, rec.meta)
    with pytest.raises(AdaptError, match="juggling unknown to the model"):
        split_calibration([odd], _meta())
    short = Recording(rec.time[:200], rec.xyz[:200], rec.labels[:200], rec.seq[:200], rec.meta)
    with pytest.raises(AdaptError, match="too little usable calibration for shake"):
        split_calibration([short], _meta())


# --- on a real (tiny) bundle --------------------------------------------------------------------
def _other_person(out: Path, seconds: float = 12.0, seed: int = 7) -> Path:
    """The tiny classes worn differently: x and y swapped, weaker shake (the base model errs)."""
    rec = read_recording(make_tiny_recordings(out.parent / f"src_{out.stem}", subjects=1,
                                              seconds_per_class=seconds, seed=seed)[0])
    xyz = rec.xyz[:, [1, 0, 2]].copy()
    xyz[:, :2] *= 0.6
    rec.meta.subject = "alice"
    return write_recording(out, Recording(rec.time, xyz, rec.labels, rec.seq, rec.meta), overwrite=True)


@pytest.mark.slow
def test_adapt_from_recordings_then_run_info_replay_evaluate(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    cal = _other_person(tmp_path / "alice_cal.csv")
    test = _other_person(tmp_path / "alice_test.csv", seed=8)
    out = tmp_path / "alice_bundle"
    r = _runner().invoke(cli, ["adapt", str(fp32_bundle), str(cal), "--out", str(out)])
    assert r.exit_code == 0, r.output + r.stderr
    assert "held-out accuracy" in r.stdout and "personal head kept" in r.stdout
    names = sorted(p.name for p in out.iterdir())
    assert "head_adapted.npz" in names and "head.npz" in names and not any(n.startswith(".") for n in names)
    assert not list(tmp_path.glob(".har-adapt-*"))
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert set(manifest) == set(names) - {"manifest.json"}
    a = json.loads((out / "metadata.json").read_text())["adaptation"]
    assert a["person"] == "alice" and a["kept"] is True
    assert len(a["base_bundle"]["sha256"]) == 64 and len(a["calibration"]["fingerprint"]) == 64
    assert a["holdout"]["adapted_accuracy"] > a["holdout"]["base_accuracy"]
    # the personal head is what runs: replay / evaluate score better than the base bundle
    accs, models = [], []
    for b in (fp32_bundle, out):
        rr = _runner().invoke(cli, ["replay", str(b), str(test), "--json"])
        assert rr.exit_code == 0, rr.stderr
        accs.append(json.loads(rr.stdout)["accuracy"])
        models.append(json.loads(rr.stdout)["model"])
    assert accs[1] > accs[0]
    # the base bundle replays with its batched model; the adapted one with the live model + its head
    assert models == ["model_batch.tflite", "model.tflite + head_adapted.npz"]
    rt = _runner().invoke(cli, ["replay", str(out), str(test)])
    assert rt.exit_code == 0 and "model.tflite + head_adapted.npz: the live model" in rt.stdout
    re = _runner().invoke(cli, ["evaluate", str(out), str(test), "--json"])
    assert re.exit_code == 0, re.stderr
    assert json.loads(re.stdout)["accuracy"] == accs[1]  # the same model, the same windows
    ri = _runner().invoke(cli, ["info", str(out)])
    assert "person=alice" in ri.stdout and "personal_head=True" in ri.stdout and "checksums_ok       True" in ri.stdout
    rrun = _runner().invoke(cli, ["run", str(out), "--file", str(test), "--duration", "2"])
    assert rrun.exit_code == 0, rrun.stderr
    assert f"adapted for alice ({a['created'][:10]})" in rrun.stderr
    # adapting the adapted bundle starts from the base model again
    out2 = tmp_path / "again"
    r2 = _runner().invoke(cli, ["adapt", str(out), str(cal), "--out", str(out2), "--person", "bob"])
    assert r2.exit_code == 0, r2.stderr
    a2 = json.loads((out2 / "metadata.json").read_text())["adaptation"]
    assert a2["base_bundle"]["sha256"] == a["base_bundle"]["sha256"] and a2["person"] == "bob"
    assert (out2 / "head.npz").read_bytes() == (fp32_bundle / "head.npz").read_bytes()
    assert a2["holdout"]["base_accuracy"] == a["holdout"]["base_accuracy"]


@pytest.mark.slow
def test_a_skipped_activity_keeps_the_base_behaviour_in_the_bundle(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811,E501
    from har.runtime.classifier import WindowClassifier
    from har.signal import make_windows

    rec = read_recording(_other_person(tmp_path / "cal_all.csv"))
    test = read_recording(_other_person(tmp_path / "test.csv", seed=8))
    base = WindowClassifier.from_bundle(fp32_bundle)
    x = make_windows(test, base.metadata.window).x
    kept = []
    for skip in TINY_CLASSES:  # whichever activities the personal head is kept for
        cal = write_recording(tmp_path / f"cal_{skip}.csv", Recording(rec.time, rec.xyz, np.where(
            rec.labels == skip, "", rec.labels), rec.seq, rec.meta))
        out = tmp_path / f"skip_{skip}"
        r = _runner().invoke(cli, ["adapt", str(fp32_bundle), str(cal), "--out", str(out)])
        assert r.exit_code == 0, r.output + r.stderr
        a = json.loads((out / "metadata.json").read_text())["adaptation"]
        assert a["calibration"]["skipped"] == [skip]
        if not a["kept"]:
            continue
        kept.append(skip)
        assert isinstance(load_head(out / "head_adapted.npz"), PersonalHead)
        adapted = WindowClassifier.from_bundle(out)
        assert adapted.head is not None
        k = list(base.metadata.classes).index(skip)
        # the personal head runs on the live model `har run` uses, whatever the caller asks for
        pa = adapted.predict_proba(x, batched=False)
        assert not adapted.has_batch_model and not adapted.uses_batch_model
        for batched in (None, True):
            assert np.array_equal(adapted.predict_proba(x, batched=batched), pa)
        pbm = base.predict_proba(x, batched=False)  # the base bundle's live model
        assert np.array_equal(pa[:, k], pbm[:, k])  # its probability is the base model's, bit for bit
        said = pbm.argmax(1) == k
        assert np.array_equal(pa[said], pbm[said])  # windows the base model gives to it keep its output
        assert not np.allclose(pa, pbm, atol=1e-4)  # the personal head is in use for the calibrated ones
    assert kept, "no personal head kept with any one activity skipped"


@pytest.mark.slow
def test_the_personal_head_is_fitted_on_the_live_models_embeddings(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`har run` applies the personal head to the int8 LIVE model's embeddings: `har adapt` fits it on
    those (and cross-validates it on them), not on the float batched replay model's, which differ.
    Recomputed from the live model's embeddings and own probabilities, the cross-validation gives
    the adapted bundle's reported scores and the refit gives its head_adapted.npz, bit for bit; from
    the batched model's they do not. The anchors in head.npz are the live model's embeddings too.
    `har replay` / `har evaluate` of the adapted bundle give `har run`'s output (the live model with
    the head), not the head on the batched model's embeddings; `--model replay` is refused."""
    from har.runtime.classifier import WindowClassifier
    from har.runtime.replay import replay
    from har.signal import runs

    bundle = get_bundle(tmp_path_factory, "int8")
    cal_path = _other_person(tmp_path / "alice_cal.csv")
    out = tmp_path / "alice_int8"
    r = _runner().invoke(cli, ["adapt", str(bundle), str(cal_path), "--out", str(out)])
    assert r.exit_code == 0, r.output + r.stderr
    a = json.loads((out / "metadata.json").read_text())["adaptation"]
    clf = WindowClassifier.from_bundle(bundle)
    assert clf.has_batch_model
    meta = clf.metadata
    cal = calibration_windows([read_recording(cal_path)], meta)
    base = load_head(bundle / "head.npz", clf.embedding_dim, len(clf.classes))
    assert isinstance(base, LinearHead) and base.anchors is not None
    calibrated = np.isin(np.arange(len(meta.classes)), np.unique(cal.y))
    live = clf.predict_with_embedding(cal.x, batched=False)
    batched = clf.predict_with_embedding(cal.x, batched=True)
    assert not np.allclose(live[1], batched[1], atol=1e-3)  # int8 vs float embeddings: the choice matters

    def redo(pb: np.ndarray, emb: np.ndarray) -> tuple[tuple[float, float], list[float], bool, LinearHead]:
        oof = cross_validate(emb, cal, base, calibrated, anchor_weight=ANCHOR_WEIGHT, base_probs=pb)
        key, s_new, s_base, kept = choose(oof, cal.y, pb)
        return key, [s_base[0], s_new[0], s_base[1], s_new[1]], kept, fit_calibrated(
            emb, cal.y, base, calibrated, key[0], anchor_weight=ANCHOR_WEIGHT)

    h = a["holdout"]
    reported = [h["base_accuracy"], h["adapted_accuracy"], h["base_log_loss"], h["adapted_log_loss"]]
    key, sc, kept, fitted = redo(*live)
    assert (key, sc, kept) == ((a["strength"], a["blend"]), reported, a["kept"])
    assert sc != redo(*batched)[1]  # the batched model's embeddings give other scores
    if kept:
        mine = personal_head(base, fitted, calibrated, key[1])
        theirs = load_head(out / "head_adapted.npz", clf.embedding_dim, len(clf.classes))
        assert np.array_equal(theirs.w, mine.w) and np.array_equal(theirs.b, mine.b)
    # the anchors sit on the live model's int8 embedding grid (the batched float model's embeddings do not)
    scale, zero = _int8_embedding_grid(clf)
    grid = lambda e: float(np.abs(e / scale + zero - np.round(e / scale + zero)).max())  # noqa: E731
    assert grid(base.anchors) < 1e-3 and grid(live[1]) < 1e-3 and grid(batched[1]) > 0.1
    if not kept:
        return
    # replay and evaluate of the adapted bundle apply the head to the live model's embeddings, as
    # `har run` does (predict_one per window), bit for bit; the batched float model is not used
    test_path = _other_person(tmp_path / "alice_test.csv", seed=8)
    ad = WindowClassifier.from_bundle(out)
    res = replay(ad, test_path)
    assert not res.batched and res.model == "model.tflite + head_adapted.npz" and res.windows >= 8
    w, hop = meta.window.window_samples, meta.window.hop_samples
    wins = [r.xyz[s : s + w] for r in runs(read_recording(test_path), meta.window.rate_hz)
            for s in range(0, r.xyz.shape[0] - w + 1, hop)]
    assert len(wins) == res.windows
    device = np.stack([ad.predict_one(v) for v in wins])
    assert res.probs is not None and np.array_equal(res.probs, device)
    base_replay = replay(WindowClassifier.from_bundle(bundle), test_path)
    assert base_replay.batched and base_replay.model == "model_batch.tflite"  # the base bundle: batched, as before
    # what replay gave before: the head on the batched float model's embeddings, which differ
    pbf, ebf = clf.predict_with_embedding(np.stack(wins), batched=True)
    assert not np.array_equal(theirs(ebf, pbf), device)
    ev = _runner().invoke(cli, ["evaluate", str(out), str(test_path), "--json"])
    assert ev.exit_code == 0, ev.stderr
    j = json.loads(ev.stdout)
    assert j["scored"].startswith("model.tflite + head_adapted.npz (live model, int8, batch 1")
    assert j["n_windows"] == res.scored and j["accuracy"] == res.accuracy  # the same windows, the same answers
    er = _runner().invoke(cli, ["evaluate", str(out), str(test_path), "--model", "replay"])
    assert er.exit_code != 0 and "is adapted" in er.stderr and "Traceback" not in er.stderr + er.stdout
    assert len(er.stderr.strip().splitlines()) == 1


def _int8_embedding_grid(clf: object) -> tuple[float, float]:
    """(scale, zero point) of the int8 tensor behind the live model's embedding output (dequantised
    to float32 for float I/O)."""
    m = clf._single  # type: ignore[attr-defined]
    scale, zero = (float(v) for v in m.emb["quantization"])
    if scale <= 0:
        tensors = {t["index"]: t for t in m.interp.get_tensor_details()}
        (op,) = [o for o in m.interp._get_ops_details()
                 if o.get("op_name") == "DEQUANTIZE" and m._emb_index in list(o["outputs"])]
        scale, zero = (float(v) for v in tensors[int(op["inputs"][0])]["quantization"])
    assert scale > 0
    return scale, zero


@pytest.mark.slow
def test_adapt_bad_inputs(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    cal = _other_person(tmp_path / "cal.csv")
    rec = read_recording(cal)
    only_still = np.where(rec.labels == "still", "still", "")
    one = write_recording(tmp_path / "one.csv", Recording(rec.time, rec.xyz, only_still, rec.seq, rec.meta))
    odd = write_recording(tmp_path / "odd.csv", Recording(rec.time, rec.xyz, np.where(
        rec.labels == "still", "juggling", rec.labels), rec.seq, rec.meta))
    old = tmp_path / "old_bundle"  # deployed by a har without the embedding output
    shutil.copytree(fp32_bundle, old)
    (old / "head.npz").unlink()
    from har.artifacts.bundle import write_manifest

    write_manifest(old)
    cases = [
        ([str(fp32_bundle), str(one)], "one activity"),
        ([str(fp32_bundle), str(odd)], "juggling unknown to the model"),
        ([str(old), str(cal)], "redeploy with a har that writes it"),
        ([str(fp32_bundle)], "give either --port"),
        ([str(fp32_bundle), "--port", "/dev/null", "--labels", "still,juggling"], "juggling unknown"),
        ([str(fp32_bundle), "--port", "/dev/null", "--labels", "still"], "at least two"),
        ([str(fp32_bundle), "--port", "/dev/null", "--seconds", "2"], "too short for 1 s windows"),
    ]
    for args, msg in cases:
        r = _runner().invoke(cli, ["adapt", *args, "--out", str(tmp_path / "out")])
        assert r.exit_code != 0 and msg in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
        assert not (tmp_path / "out").exists()


# --- the guided session over a real pty ----------------------------------------------------------
class _Emulate:
    """`har emulate RECORDING --loop` in its own process (not a thread of the test process, where it
    would share the GIL with the session under test); the pty path is its first line of stdout."""

    def __init__(self, recording: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from har.cli import main; main()", "emulate", str(recording), "--rate", "25",
             "--loop", *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )
        assert self.proc.stdout is not None
        self.port = self.proc.stdout.readline().strip()
        assert self.port.startswith("/dev/"), self.port

    def __enter__(self) -> _Emulate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.slow
def test_guided_session_on_the_emulator(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    stream = _other_person(tmp_path / "stream.csv", seconds=20.0)
    out = tmp_path / "b"
    with _Emulate(stream) as emu:
        r = _runner().invoke(cli, ["adapt", str(fp32_bundle), "--port", emu.port, "--out", str(out),
                                   "--seconds", "5", "--person", "carol"], input="\ns\n\n")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "[1/3] still: do it normally for 5 s, press Enter to start" in r.stderr
    assert "skipped shake" in r.stderr and "held-out accuracy" in r.stdout
    cal = sorted((tmp_path / "b-calibration").glob("*.csv"))
    assert [read_recording(p).label_names() for p in cal] == [["still"], ["wave"]] or \
        sorted(read_recording(p).label_names()[0] for p in cal) == ["still", "wave"]
    for p in cal:
        rec = read_recording(p)
        assert rec.subject == "carol" and rec.meta.complete and len(rec) >= 0.95 * 5 * 25
    a = json.loads((out / "metadata.json").read_text())["adaptation"]
    assert a["calibration"]["skipped"] == ["shake"] and a["person"] == "carol"


@pytest.mark.slow
def test_guided_session_stall_is_one_line_and_keeps_recordings(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    stream = _other_person(tmp_path / "stream.csv", seconds=20.0)
    with _Emulate(stream, "--stall-after", "1.5", "--stall", "3") as emu:
        r = _runner().invoke(cli, ["adapt", str(fp32_bundle), "--port", emu.port, "--out", str(tmp_path / "b"),
                                   "--seconds", "5"], input="\n\n\n")
    assert r.exit_code == 1, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "stalled or dropped out during still" in errors[0] and "Traceback" not in r.stderr
    assert list((tmp_path / "b-calibration").glob("*_still_*.csv")) and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_guided_session_device_gone_is_one_line(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    stream = _other_person(tmp_path / "stream.csv", seconds=20.0)
    with _Emulate(stream, "--duration", "2") as emu:  # the device goes away 2 s into the first activity
        r = _runner().invoke(cli, ["adapt", str(fp32_bundle), "--port", emu.port, "--out", str(tmp_path / "b"),
                                   "--seconds", "5"], input="\n\n\n")
    assert r.exit_code == 1, r.stdout + r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "still" in errors[0] and "kept in" in errors[0], r.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_guided_session_ctrl_c_keeps_recordings_and_writes_no_bundle(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811,E501
    stream = _other_person(tmp_path / "stream.csv", seconds=20.0)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with _Emulate(stream) as emu:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from har.cli import main; main()", "adapt", str(fp32_bundle), "--port", emu.port,
             "--out", str(tmp_path / "b"), "--seconds", "5"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write("\n\n")  # still (recorded), then shake starts
        proc.stdin.flush()
        cal = tmp_path / "b-calibration"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(cal.glob("*_shake_*.csv")):
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted during shake" in err and "no bundle written" in err
    assert not (tmp_path / "b").exists() and not list(tmp_path.glob(".har-adapt-*"))
    kept = sorted(p.name.split("_")[1] for p in cal.glob("*.csv"))
    assert kept == ["shake", "still"]


_NO_TF = r"""
import sys
BLOCKED = ("tensorflow", "keras", "tf_keras")
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked import of {name}")
        return None
sys.meta_path.insert(0, Blocker())
from har.cli import cli
for args in (["adapt", BUNDLE, CAL, "--out", OUT], ["run", OUT, "--file", CAL, "--speed", "0"], ["replay", OUT, CAL]):
    try:
        cli.main(args=args, prog_name="har", standalone_mode=False)
    except SystemExit as e:
        assert not e.code, e.code
bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not bad, bad
print("NO-TF-OK", file=sys.stderr)
"""


@pytest.mark.slow
def test_adapt_and_adapted_run_never_import_tensorflow(tmp_path: Path, fp32_bundle: Path) -> None:  # noqa: F811
    cal = _other_person(tmp_path / "cal.csv")
    code = (_NO_TF.replace("BUNDLE", repr(str(fp32_bundle))).replace("CAL", repr(str(cal)))
            .replace("OUT", repr(str(tmp_path / "out"))))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "NO-TF-OK" in p.stderr and "adapted for alice" in p.stderr


@pytest.mark.slow
def test_full_fine_tunes_and_reexports(tmp_path: Path, tiny_model_dir: Path, fp32_bundle: Path) -> None:  # noqa: F811
    cal = _other_person(tmp_path / "cal.csv")
    out = tmp_path / "full"
    r = _runner().invoke(cli, ["adapt", str(fp32_bundle), str(cal), "--out", str(out), "--full"])
    assert r.exit_code == 1 and "--full needs --model" in r.stderr
    r = _runner().invoke(cli, ["adapt", str(fp32_bundle), str(cal), "--out", str(out), "--full", "--model",
                               str(tiny_model_dir), "--epochs", "3"])
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "held-out accuracy" in r.stdout and "Adapted bundle written" in r.stdout
    a = json.loads((out / "metadata.json").read_text())["adaptation"]
    assert a["mode"] == "full" and len(a["base_bundle"]["sha256"]) == 64
    assert not (out / "head_adapted.npz").exists() and not list(tmp_path.glob(".har-adapt-*"))
    rr = _runner().invoke(cli, ["replay", str(out), str(cal), "--json"])
    assert rr.exit_code == 0, rr.stderr
    if a["kept"]:  # adapting a fine-tuned bundle again would not start from the base model: refused
        r2 = _runner().invoke(cli, ["adapt", str(out), str(cal), "--out", str(tmp_path / "again")])
        assert r2.exit_code == 1 and "adapt its base bundle" in r2.stderr
