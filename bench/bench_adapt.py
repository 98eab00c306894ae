"""`har adapt` on real people: WISDM 2019, each test subject adapts on 30 s per activity.

Data: WISDM 2019 smartwatch accelerometer (../shared/data/wisdm2019-watch-accel, or the directory in
$HAR_SHARED_DATA; 20 Hz; 6 activities, 2 min each per subject). Nothing is copied into the repo:
recordings go to a temporary directory. Skips with a clear reason when the data is absent.

1. Base model: `har.training.train.train` on subjects 1600-1635 (har carves its validation subjects
   from them), the default TrainConfig with the rate set to 20 Hz and ``--epochs`` (default 12: a
   short run), deployed int8 with the embedding output (`har.training.convert.export_bundle`).
   Trained under ``nice -n 10`` and cached in /tmp/har-bench-adapt/<config hash>/ so reruns are cheap.
2. `har adapt`'s settings (candidate strengths and blends, folds, keep margin) are the library's
   defaults, chosen on development subjects by bench/select_adapt.py, never on these test subjects.
3. For each test subject 1636-1650: the first 30 s of each activity are the calibration (written as
   a har recording and adapted with `har.runtime.adapt.adapt_bundle`, the code `har adapt` runs,
   never-worse rule included); the rest of that subject's data (90 s per activity) is scored with
   the base bundle and the adapted bundle (`WindowClassifier.from_bundle`, personal head applied),
   both by their live model (batch 1, `har run`'s; before 2026-12-02 by the float batched model).
   Baselines trained from scratch on the same 30 s: (a) logistic regression on the base model's
   embedding (no pull towards the base head: L2 towards 0), (b) logistic regression on 24
   hand-made features of the raw windows (no base model at all).
4. Skipped activity: each subject also adapts with one activity left out (a different one per
   subject); the accuracy on that activity before/after says whether skipping keeps the base
   behaviour.
5. Cost: head refit time (embeddings + fit) on one core, and the per-window cost of the personal
   head in the live path (predict_one with and without the head, same process).

    nice -n 10 python bench/bench_adapt.py [--epochs 12] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # "one core": numpy's BLAS single-threaded
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wisdm  # noqa: E402

if os.environ.get("HAR_SHARED_DATA"):
    wisdm.WISDM_DIR = Path(os.environ["HAR_SHARED_DATA"]) / "wisdm2019-watch-accel"

CALIB_S = 30.0
CACHE = Path(tempfile.gettempdir()) / "har-bench-adapt"


# --- base model ---------------------------------------------------------------------------------
def base_bundle(epochs: int, test_subjects: list[str] | None = None, data_subjects: list[str] | None = None,
                what: str = "subjects 1600-1635") -> tuple[Path, list[str]]:
    """Train (niced) and deploy int8 once per config; return (bundle, validation subjects).
    ``data_subjects`` (default all) are written, ``test_subjects`` (default 1636-1650) are held out."""
    from har.config import ExportConfig, TrainConfig, WindowConfig

    d = TrainConfig()
    cfg = TrainConfig(
        window=WindowConfig(rate_hz=wisdm.RATE_HZ, window_s=d.window.window_s, hop_s=d.window.hop_s,
                            purity=d.window.purity),
        test_subjects=tuple(test_subjects or wisdm.TEST_SUBJECTS),
        epochs=epochs,
    )
    key = hashlib.sha256(json.dumps(cfg.__repr__() + repr(data_subjects or "")).encode()).hexdigest()[:12]
    if data_subjects is None:
        key = hashlib.sha256(json.dumps(cfg.__repr__()).encode()).hexdigest()[:12]  # as before: reuse caches
    root = CACHE / key
    model, bundle = root / "model", root / "bundle_int8"
    if not (bundle / "manifest.json").is_file() or not (bundle / "head.npz").is_file():
        from har.training.convert import export_bundle
        from har.training.train import train

        try:
            os.nice(10)
        except OSError:
            pass
        if not (model / "model.weights.h5").is_file():
            recs = wisdm.load_wisdm(data_subjects) if data_subjects else None
            data = wisdm.write_wisdm(root / "data", recs)
            print(f"training the base model (epochs {epochs}, {what}) -> {model} ...", flush=True)
            t0 = time.monotonic()
            train([data], model, cfg, progress=False, echo=lambda s: print("  " + s[:160], flush=True))
            print(f"  trained in {time.monotonic() - t0:.0f} s", flush=True)
        export_bundle(model, bundle, ExportConfig(quantize="int8"), echo=lambda s: print("  " + s, flush=True),
                      overwrite=True)
    meta = json.loads((model / "metadata.json").read_text())
    print(f"base model: {model} (cached; config {key}: default TrainConfig, 20 Hz, epochs {epochs}, {what})")
    return bundle, list(meta["data_summary"]["val_subjects"])


# --- per subject data ---------------------------------------------------------------------------
def split_subject(rec: Any) -> tuple[Any, Any]:
    """(calibration recording: the first 30 s of each activity, test recording: the rest)."""
    import dataclasses

    labels = rec.labels.astype(str)
    calib = np.zeros(len(labels), dtype=bool)
    n = int(CALIB_S * rec.rate_hz)
    for lab in sorted(set(labels.tolist()) - {""}):
        idx = np.flatnonzero(labels == lab)
        calib[idx[:n]] = True
    c = dataclasses.replace(rec, labels=np.where(calib, labels, ""))
    t = dataclasses.replace(rec, labels=np.where(calib, "", labels))
    return c, t


def test_windows(rec: Any, meta: Any) -> tuple[np.ndarray, np.ndarray]:
    from har.signal import make_windows

    w = make_windows(rec, meta.window)
    lookup = {c: i for i, c in enumerate(meta.classes)}
    return w.x, np.array([lookup[v] for v in w.y.tolist()], dtype=np.int64)


FEATURE_NAMES = 24


def features(x: np.ndarray) -> np.ndarray:
    """24 hand-made features per raw window: per axis and magnitude mean, std, min, max, and the
    energy of the detrended magnitude in two frequency bands."""
    mag = np.linalg.norm(x, axis=2, keepdims=True)
    a = np.concatenate([x, mag], axis=2)  # (n, w, 4)
    f = [a.mean(1), a.std(1), a.min(1), a.max(1)]
    spec = np.abs(np.fft.rfft(mag[:, :, 0] - mag[:, :, 0].mean(1, keepdims=True), axis=1)) ** 2
    k = spec.shape[1]
    f.append(np.stack([spec[:, 1 : k // 4].sum(1), spec[:, k // 4 :].sum(1)], axis=1))
    f.append(np.stack([np.log1p(spec[:, 1 : k // 4].sum(1)), np.log1p(spec[:, k // 4 :].sum(1))], axis=1))
    return np.concatenate(f, axis=1).astype(np.float32)


def scratch_lr(xf: np.ndarray, yf: np.ndarray, xt: np.ndarray, k: int, strength: float = 0.01) -> np.ndarray:
    """Multinomial logistic regression from zero (standardised inputs), predictions on ``xt``."""
    from har.runtime.adapt import LinearHead, fit_head

    mu, sd = xf.mean(0), xf.std(0) + 1e-6
    zero = LinearHead(np.zeros((xf.shape[1], k), np.float32), np.zeros(k, np.float32))
    h = fit_head((xf - mu) / sd, yf, zero, strength=strength, classes=range(k))
    return np.argmax(h((xt - mu) / sd), axis=1)


# --- the protocol -------------------------------------------------------------------------------
def bundle_dir(clf: Any) -> Path:
    return Path(clf._single.path).parent


def per_window_cost(clf: Any, x: np.ndarray, head: Any, n: int = 300, rounds: int = 5) -> tuple[float, float, float]:
    """Median us per predict_one without and with the personal head (same process, alternating
    blocks of ``n`` windows, ``rounds`` each), and the head alone (us per window)."""
    a, b = [], []
    for _ in range(rounds):
        for h, acc in ((None, a), (head, b)):
            clf.set_head(h)
            for i in range(n):
                w = x[i % len(x)]
                t0 = time.perf_counter()
                clf.predict_one(w)
                acc.append(time.perf_counter() - t0)
    clf.set_head(None)
    e = np.random.default_rng(0).random((1, head.w.shape[0]), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(10000):
        head(e)
    alone = (time.perf_counter() - t0) / 10000
    return float(np.median(a) * 1e6), float(np.median(b) * 1e6), alone * 1e6


def start_up(base: Path, adapted: Path, k: int = 15) -> tuple[float, float]:
    """Median seconds of WindowClassifier.from_bundle (checksums verified, as `har run` does) for the
    base and the adapted bundle, interleaved."""
    from har.runtime.classifier import WindowClassifier

    ts: dict[Path, list[float]] = {base: [], adapted: []}
    for _ in range(k):
        for p in (base, adapted):
            t0 = time.perf_counter()
            WindowClassifier.from_bundle(p, use_batch_model=False)
            ts[p].append(time.perf_counter() - t0)
    return float(np.median(ts[base])), float(np.median(ts[adapted]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not wisdm.WISDM_DIR.is_dir():
        print(f"SKIP: WISDM 2019 not found at {wisdm.WISDM_DIR} (../shared/data absent; set HAR_SHARED_DATA)")
        return 0
    from har.recording.format import write_recording
    from har.runtime.adapt import (
        BLENDS,
        DEFAULT_FOLDS,
        DEFAULT_MARGIN,
        STRENGTHS,
        adapt_bundle,
        calibration_windows,
        head_rows,
        load_head,
    )
    from har.runtime.classifier import WindowClassifier

    bundle, _ = base_bundle(args.epochs)
    clf = WindowClassifier.from_bundle(bundle)
    meta = clf.metadata
    k = len(meta.classes)
    print(f"har adapt settings (chosen on development subjects, bench/select_adapt.py): strengths "
          f"{', '.join(f'{x:g}' for x in STRENGTHS)}, blends {', '.join(f'{x:g}' for x in BLENDS)}, "
          f"{DEFAULT_FOLDS}-fold CV, margin {DEFAULT_MARGIN:g}")

    rows = []
    skip_rows = []
    fit_times = []
    with tempfile.TemporaryDirectory(prefix="har-bench-adapt-") as tmp:
        work = Path(tmp)
        for si, rec in enumerate(wisdm.load_wisdm(wisdm.TEST_SUBJECTS)):
            s = rec.subject
            c, t = split_subject(rec)
            cal = write_recording(work / f"{s}_calibration.csv", c, overwrite=True)
            out = work / f"adapted_{s}"
            res = adapt_bundle(bundle, [cal], out, person=s, overwrite=True, echo=lambda _: None)
            fit_times.append(res.fit_seconds)
            tx, ty = test_windows(t, meta)
            # scored by the LIVE model (`har run`'s, batch 1), whose embeddings the personal head is fitted on
            pbase = clf.predict_proba(tx, batched=False)
            base_acc = float(np.mean(pbase.argmax(1) == ty))
            ad = WindowClassifier.from_bundle(out)
            ad_acc = float(np.mean(ad.predict_proba(tx, batched=False).argmax(1) == ty))
            # from-scratch baselines on the same calibration windows (all 30 s)
            cw = calibration_windows([c], meta)
            _, ce = clf.predict_with_embedding(cw.x, batched=False)
            _, te = clf.predict_with_embedding(tx, batched=False)
            # the embedding rows `har adapt` refits (a MiniRocket model: the LSTM embedding's only)
            n_rows = head_rows(meta, ce.shape[1], k, clf.rocket_width) or ce.shape[1]
            ce, te = ce[:, :n_rows], te[:, :n_rows]
            emb_acc = float(np.mean(scratch_lr(ce, cw.y, te, k) == ty))
            feat_acc = float(np.mean(scratch_lr(features(cw.x), cw.y, features(tx), k) == ty))
            rows.append({"subject": s, "base": base_acc, "adapted": ad_acc, "kept": res.kept,
                         "strength": res.strength, "blend": res.blend,
                         "cv_base": res.base_accuracy, "cv_adapted": res.adapted_accuracy,
                         "scratch_embedding_lr": emb_acc, "scratch_features_lr": feat_acc,
                         "test_windows": int(ty.size), "fit_s": res.fit_seconds})
            print(f"  {s}: base {100 * base_acc:5.1f}%  adapted {100 * ad_acc:5.1f}% "
                  f"({100 * (ad_acc - base_acc):+5.1f})"
                  f"  {'kept' if res.kept else 'base kept'} (CV {100 * res.base_accuracy:.0f}% -> "
                  f"{100 * res.adapted_accuracy:.0f}%, strength {res.strength:g}, blend {res.blend:g})  scratch: "
                  f"embedding-LR {100 * emb_acc:5.1f}%, features-LR {100 * feat_acc:5.1f}%  "
                  f"fit {res.fit_seconds:.2f} s",
                  flush=True)
            # one activity skipped: does it keep the base behaviour?
            present = [a for a in meta.classes if a in set(c.labels.tolist())]
            skip = present[si % len(present)]
            c2 = type(c)(time=c.time, xyz=c.xyz, labels=np.where(c.labels == skip, "", c.labels), seq=c.seq,
                         meta=c.meta)
            cal2 = write_recording(work / f"{s}_calibration_skip.csv", c2, overwrite=True)
            out2 = work / f"adapted_skip_{s}"
            res2 = adapt_bundle(bundle, [cal2], out2, person=s, overwrite=True, echo=lambda _: None)
            ad2 = WindowClassifier.from_bundle(out2)
            p2 = ad2.predict_proba(tx, batched=False)
            si_ = meta.classes.index(skip)
            m = ty == si_
            gate = pbase.argmax(1) == si_
            if m.any():
                skip_rows.append({"subject": s, "skipped": skip, "kept": res2.kept,
                                  "base": float(np.mean(pbase[m].argmax(1) == ty[m])),
                                  "adapted": float(np.mean(p2[m].argmax(1) == ty[m])),
                                  "all_base": base_acc,
                                  "all_adapted": float(np.mean(p2.argmax(1) == ty)),
                                  "same_prob": bool(np.array_equal(p2[:, si_], pbase[:, si_])),
                                  "max_prob_diff": float(np.max(np.abs(p2[:, si_] - pbase[:, si_]))),
                                  "same_when_base_says_skipped": bool(np.all(p2[gate].argmax(1) == si_))})
        kept_rows = [r for r in rows if r["kept"]]
        head = load_head(work / f"adapted_{kept_rows[0]['subject']}" / "head_adapted.npz") if kept_rows else \
            load_head(bundle / "head.npz")
        x_live, _ = test_windows(split_subject(wisdm.load_wisdm([wisdm.TEST_SUBJECTS[0]])[0])[1], meta)
        live = WindowClassifier.from_bundle(bundle, use_batch_model=False)
        us_base, us_head, us_alone = per_window_cost(live, x_live, head)
        kept_dir = next((work / f"adapted_{r['subject']}" for r in rows if r["kept"]), None)
        t_base, t_adapted = start_up(bundle, kept_dir) if kept_dir is not None else (float("nan"),) * 2

    d = np.array([r["adapted"] - r["base"] for r in rows])
    base = np.array([r["base"] for r in rows])
    worst = int(np.argmin(base))
    print()
    print("| subject | base | adapted | change | CV on the 30 s: base -> personal (strength, blend) "
          "| scratch: LR on embedding | scratch: LR on features |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['subject']} | {100 * r['base']:.1f} | {100 * r['adapted']:.1f} | "
              f"{100 * (r['adapted'] - r['base']):+.1f}{'' if r['kept'] else ' (base kept)'} | "
              f"{100 * r['cv_base']:.0f} -> {100 * r['cv_adapted']:.0f} ({r['strength']:g}, {r['blend']:g}) | "
              f"{100 * r['scratch_embedding_lr']:.1f} | {100 * r['scratch_features_lr']:.1f} |")
    mean = {key: 100 * float(np.mean([r[key] for r in rows]))
            for key in ("base", "adapted", "scratch_embedding_lr", "scratch_features_lr")}
    print(f"| **mean** | {mean['base']:.1f} | {mean['adapted']:.1f} | {100 * d.mean():+.1f} | | "
          f"{mean['scratch_embedding_lr']:.1f} | {mean['scratch_features_lr']:.1f} |")
    wr = rows[worst]
    print(f"| **worst subject ({wr['subject']})** | {100 * wr['base']:.1f} | {100 * wr['adapted']:.1f} | "
          f"{100 * d[worst]:+.1f} | | {100 * wr['scratch_embedding_lr']:.1f} | "
          f"{100 * wr['scratch_features_lr']:.1f} |")
    print()
    print(f"mean change {100 * d.mean():+.1f} points (target +5); worst subject {wr['subject']} "
          f"{100 * d[worst]:+.1f} (target +15); largest loss {100 * d.min():+.1f} (target >= -1); "
          f"{sum(r['kept'] for r in rows)}/{len(rows)} personal heads kept")
    if skip_rows:
        sb = np.mean([r["base"] for r in skip_rows])
        sa = np.mean([r["adapted"] for r in skip_rows])
        print(f"skipped activity (one per subject, not calibrated): accuracy on it {100 * sb:.1f}% base -> "
              f"{100 * sa:.1f}% adapted; all activities {100 * np.mean([r['all_base'] for r in skip_rows]):.1f}% -> "
              f"{100 * np.mean([r['all_adapted'] for r in skip_rows]):.1f}%; per subject "
              + ", ".join(f"{r['subject']} {r['skipped']} {100 * r['base']:.0f}->{100 * r['adapted']:.0f}"
                          for r in skip_rows))
        print(f"  skipped activity's probability equal (bit for bit) to the base model's on every test window: "
              f"{sum(r['same_prob'] for r in skip_rows)}/{len(skip_rows)} subjects (max |difference| "
              f"{max(r['max_prob_diff'] for r in skip_rows):.2g}); windows the base model gives "
              f"to it keep it: {sum(r['same_when_base_says_skipped'] for r in skip_rows)}/{len(skip_rows)}")
    print(f"refit (embeddings of 6 x 30 s + cross-validation + Newton fit), one core: median "
          f"{np.median(fit_times):.2f} s, max {np.max(fit_times):.2f} s (target <= 5 s)")
    print(f"live path per window (predict_one, median of 5 x 300 alternating, same process): {us_base:.1f} us base "
          f"model, {us_head:.1f} us with the personal head ({us_head - us_base:+.1f} us, "
          f"ratio {us_head / us_base:.3f}); the head alone {us_alone:.1f} us")
    print(f"start-up (from_bundle with checksums, median of 15 interleaved): base {1e3 * t_base:.1f} ms, adapted "
          f"{1e3 * t_adapted:.1f} ms (ratio {t_adapted / t_base:.3f})")
    if args.json:
        args.json.write_text(json.dumps({"strengths": STRENGTHS, "blends": BLENDS, "folds": DEFAULT_FOLDS,
                                         "margin": DEFAULT_MARGIN, "rows": rows, "skip": skip_rows, "fit_s": fit_times,
                                         "us_base": us_base, "us_head": us_head, "us_head_alone": us_alone,
                                         "startup_base_s": t_base, "startup_adapted_s": t_adapted}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
