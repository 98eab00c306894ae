"""Accuracy benchmark on real data: har's default recipe vs two peers, subject-wise.

Data: WISDM 2019 smartwatch accelerometer (../shared/data/wisdm2019-watch-accel; 20 Hz; 6
activities), subjects 1600-1635 train (har carves its validation subjects from them), 1636-1650
test. Nothing is copied into the repository: the recordings are written to a temporary directory.

* har: ``har.training.train.train`` with the default TrainConfig (only the rate set to the data's 20 Hz,
  as ``har train --rate 20`` would), then ``har.training.convert.export_bundle`` to fp32 and int8 bundles,
  each evaluated through the TFLite runtime with ``har.scoring.evaluate.evaluate``.
* baseline: a plain tf-keras 2 x LSTM(32) -> softmax on the same windows (per-axis standardised),
  Adam 1e-3, batch 64, 30 epochs, trained on all training subjects' windows.
* MiniRocket (aeon's MiniRocketClassifier, default 10,000 kernels, ridge) on the same windows.
  aeon is not a har dependency: without it the script prints the pip command and skips the peer.

Prints accuracy, macro-F1 and training time for each, and har's ratios to each peer.

    python bench/bench_accuracy.py [--json results.json] [--skip-baseline] [--skip-minirocket]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from wisdm import RATE_HZ, TEST_SUBJECTS, TRAIN_SUBJECTS, load_wisdm, write_wisdm  # noqa: E402

from har.config import ExportConfig, TrainConfig, WindowConfig  # noqa: E402
from har.dataset import windows_for  # noqa: E402
from har.scoring.metrics import compute_metrics  # noqa: E402

BASELINE_EPOCHS = 30


def _row(name: str, acc: float, f1: float, seconds: float, note: str = "") -> dict[str, Any]:
    return {"name": name, "accuracy": acc, "macro_f1": f1, "train_s": seconds, "note": note}


def har_default(data: Path, work: Path) -> tuple[list[dict[str, Any]], TrainConfig, dict[str, Any]]:
    """Train with the defaults, export fp32 + int8, evaluate all three on the test subjects."""
    from har.scoring.evaluate import evaluate
    from har.training.convert import export_bundle
    from har.training.train import train

    d = TrainConfig()
    cfg = TrainConfig(
        window=WindowConfig(rate_hz=RATE_HZ, window_s=d.window.window_s, hop_s=d.window.hop_s, purity=d.window.purity),
        test_subjects=tuple(TEST_SUBJECTS),
    )
    t0 = time.monotonic()
    res = train([data], work / "model", cfg, progress=True, echo=lambda s: print("  " + s, flush=True))
    t_train = time.monotonic() - t0
    test_files = sorted(data / f"wisdm_{s}.csv" for s in TEST_SUBJECTS)
    rows = []
    ev = evaluate(work / "model", test_files, echo=print, progress=False)
    rows.append(
        _row("har float (Keras)", ev["accuracy"], ev["macro_f1"], t_train, f"{res.metrics['epochs_run']} epochs")
    )
    extra: dict[str, Any] = {"per_subject": ev["per_subject"], "cv": None}
    for q in ("fp32", "int8"):
        t1 = time.monotonic()
        export_bundle(work / "model", work / f"bundle_{q}", ExportConfig(quantize=q), echo=lambda s: None)
        t_exp = time.monotonic() - t1
        evb = evaluate(work / f"bundle_{q}", test_files, echo=print, progress=False)
        size = (work / f"bundle_{q}" / "model.tflite").stat().st_size / 1024
        rows.append(
            _row(
                f"har {q} bundle (TFLite)",
                evb["accuracy"],
                evb["macro_f1"],
                t_train,
                f"export {t_exp:.0f} s, {size:.0f} KB",
            )
        )
    return rows, cfg, extra


def _windows(recs: list[Any], cfg: WindowConfig) -> tuple[Any, Any, list[str]]:
    train_idx = [i for i, r in enumerate(recs) if r.subject in TRAIN_SUBJECTS]
    test_idx = [i for i, r in enumerate(recs) if r.subject in TEST_SUBJECTS]
    tr = windows_for(recs, train_idx, cfg)
    te = windows_for(recs, test_idx, cfg)
    classes = sorted(set(tr.y.tolist()))
    te = te.select(np.isin(te.y, classes))
    return tr, te, classes


def baseline(tr: Any, te: Any, classes: list[str], seed: int = 0) -> dict[str, Any]:
    """Plain tf-keras 2 x LSTM(32) on standardised windows, 30 epochs."""
    from har.training._tf import import_tf

    tf, keras = import_tf()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    idx = {c: i for i, c in enumerate(classes)}
    ytr = np.array([idx[v] for v in tr.y.tolist()])
    yte = np.array([idx[v] for v in te.y.tolist()])
    mean = tr.x.reshape(-1, 3).mean(0)
    std = tr.x.reshape(-1, 3).std(0)
    xtr, xte = (tr.x - mean) / std, (te.x - mean) / std
    m = keras.Sequential(
        [
            keras.Input(shape=xtr.shape[1:]),
            keras.layers.LSTM(32, return_sequences=True),
            keras.layers.LSTM(32),
            keras.layers.Dense(len(classes), activation="softmax"),
        ]
    )
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.monotonic()
    m.fit(xtr, ytr, epochs=BASELINE_EPOCHS, batch_size=64, shuffle=True, verbose=0)
    t = time.monotonic() - t0
    pred = m.predict(xte, batch_size=256, verbose=0).argmax(1)
    met = compute_metrics(yte, pred, classes)
    return _row("baseline Keras 2xLSTM(32)", met["accuracy"], met["macro_f1"], t, f"{BASELINE_EPOCHS} epochs")


def minirocket(tr: Any, te: Any, classes: list[str], seed: int = 0) -> dict[str, Any] | None:
    """aeon MiniRocketClassifier on the same windows (channels first)."""
    try:
        from aeon.classification.convolution_based import MiniRocketClassifier
    except ImportError:
        print(f"aeon is not installed: skipping MiniRocket (install with: {sys.executable} -m pip install aeon)")
        return None
    idx = {c: i for i, c in enumerate(classes)}
    ytr = np.array([idx[v] for v in tr.y.tolist()])
    yte = np.array([idx[v] for v in te.y.tolist()])
    xtr = np.transpose(tr.x, (0, 2, 1)).astype(np.float64)
    xte = np.transpose(te.x, (0, 2, 1)).astype(np.float64)
    clf = MiniRocketClassifier(random_state=seed)
    t0 = time.monotonic()
    clf.fit(xtr, ytr)
    t = time.monotonic() - t0
    pred = np.asarray(clf.predict(xte)).astype(np.int64)
    met = compute_metrics(yte, pred, classes)
    return _row("MiniRocket (aeon)", met["accuracy"], met["macro_f1"], t, "10k kernels, ridge")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-minirocket", action="store_true")
    ap.add_argument("--peers-only", action="store_true", help="skip har (run the peers on har's default windows)")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    a = ap.parse_args()
    t_all = time.monotonic()
    recs = load_wisdm()
    with tempfile.TemporaryDirectory(prefix="har-bench-") as tmp:
        work = a.keep or Path(tmp)
        data = write_wisdm(work / "data", recs)
        tr_s, te_s = f"{TRAIN_SUBJECTS[0]}-{TRAIN_SUBJECTS[-1]}", f"{TEST_SUBJECTS[0]}-{TEST_SUBJECTS[-1]}"
        print(f"WISDM: {len(recs)} subjects; train {tr_s}, test {te_s}")
        print("har (default TrainConfig, rate 20 Hz) ...", flush=True)
        if a.peers_only:
            d = TrainConfig()
            rows, extra = [], {"per_subject": {}}
            cfg = TrainConfig(window=WindowConfig(rate_hz=RATE_HZ, window_s=d.window.window_s, hop_s=d.window.hop_s))
        else:
            rows, cfg, extra = har_default(data, work)
        tr, te, classes = _windows(recs, cfg.window)
        print(f"peers: {len(tr)} train windows, {len(te)} test windows of {cfg.window.window_s:g} s", flush=True)
        if not a.skip_baseline:
            print("baseline ...", flush=True)
            rows.append(baseline(tr, te, classes))
            print(json.dumps(rows[-1]), flush=True)
        if not a.skip_minirocket:
            print("MiniRocket ...", flush=True)
            mr = minirocket(tr, te, classes)
            if mr:
                rows.append(mr)
                print(json.dumps(mr), flush=True)
    print()
    print(f"{'model':<28} {'accuracy':>8} {'macro-F1':>8} {'train s':>8}  note")
    for r in rows:
        print(f"{r['name']:<28} {r['accuracy']:8.4f} {r['macro_f1']:8.4f} {r['train_s']:8.0f}  {r['note']}")
    if a.peers_only or len(rows) < 3:
        return
    har_int8 = rows[2]
    print()
    for peer in rows[3:]:
        print(
            f"har int8 / {peer['name']}: accuracy x{har_int8['accuracy'] / peer['accuracy']:.3f}, "
            f"macro-F1 x{har_int8['macro_f1'] / peer['macro_f1']:.3f}, "
            f"train time x{har_int8['train_s'] / peer['train_s']:.2f}"
        )
    gap = 100 * (rows[0]["accuracy"] - har_int8["accuracy"])
    print(f"har int8 vs har float: {gap:+.2f} accuracy points lower (target <= 0.3)")
    peers = rows[3:]
    beats = bool(peers) and all(
        har_int8["accuracy"] > p["accuracy"] and har_int8["macro_f1"] > p["macro_f1"] for p in peers
    )
    verdict = (beats and gap <= 0.3) if peers else "not decided (no peer was run)"
    print(f"target (int8 beats every peer on accuracy and macro-F1, within 0.3 points of float): {verdict}")
    print(f"total {time.monotonic() - t_all:.0f} s")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "per_subject": extra["per_subject"]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
