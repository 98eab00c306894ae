"""Choose `har adapt`'s settings (candidate strengths and blends, folds, keep margin) on DEVELOPMENT
subjects, never on the bench's test subjects (1636-1650).

Data: WISDM 2019 watch accelerometer (../shared/data, or $HAR_SHARED_DATA). Two development sets:

* ``dev``: a base model trained (default TrainConfig, 20 Hz, ``--epochs``) on subjects 1600-1617
  only (har carves its validation subjects from them); the development subjects are 1618-1635,
  people that model never saw. The test subjects are not even written to its data directory.
* ``dev2``: the halves swapped (a model on 1618-1635, development subjects 1600-1617).
* ``val``: the bench's base model (subjects 1600-1635, bench/bench_adapt.py) on its own validation
  subjects (used only for its early stopping).

For every development subject: calibration = the first 30 s of each activity, scored on the rest
(as in the bench). The cross-validated probabilities for a grid of strengths x blends and the test
accuracy of each final head are computed once per anchor weight (rehearsal of the base
model's training windows stored in head.npz); each policy (candidate subsets, fold count, margin,
anchor weight, one activity skipped or not) is then scored by the mean gain, the smallest gain and the number of
subjects more than 1 point worse, and for skipped activities the accuracy on the skipped one.

    nice -n 10 python bench/select_adapt.py [--epochs 12]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adapt  # noqa: E402
import wisdm  # noqa: E402

STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
BLENDS = (0.25, 0.5, 0.75, 1.0)
ANCHOR_WEIGHTS = (0.0, 1.0, 3.0, 10.0)
FOLDS = (5,)
MARGINS = (0.0, 0.02, 0.05)
DEV_TRAIN = [str(s) for s in range(1600, 1618)]
DEV_SUBJECTS = [str(s) for s in range(1618, 1636)]


def subject_grid(clf: Any, meta: Any, rec: Any, base: Any, skip: str | None, folds: int,
                 anchor_weight: float) -> dict[str, Any]:
    """Cross-validated and test scores of every (strength, blend) for one subject."""
    import dataclasses

    from har.runtime.adapt import (
        blend_probs,
        calibration_windows,
        cross_validate,
        fit_calibrated,
        head_rows,
    )

    c, t = bench_adapt.split_subject(rec)
    if skip is not None:
        c = dataclasses.replace(c, labels=np.where(c.labels == skip, "", c.labels))
    cal = calibration_windows([c], meta, folds=folds)
    # as `har adapt` and `har run`: the live model's embeddings and its own probabilities, which the
    # skipped activities keep (adapt_bundle passes them to cross_validate as base_probs)
    pb, emb = clf.predict_with_embedding(cal.x, batched=False)
    tx, ty = bench_adapt.test_windows(t, meta)
    tpb, temb = clf.predict_with_embedding(tx, batched=False)
    calibrated = np.isin(np.arange(len(meta.classes)), np.unique(cal.y))
    rows = head_rows(meta, emb.shape[1], int(calibrated.sum()), clf.rocket_width)  # as adapt_bundle (MiniRocket)
    t0 = time.process_time()
    oof = cross_validate(emb, cal, base, calibrated, STRENGTHS, BLENDS, anchor_weight=anchor_weight, free_rows=rows,
                         base_probs=pb)
    cv_s = time.process_time() - t0
    ztb = base.logits(temb).astype(np.float64)
    tpb = tpb.astype(np.float64)
    test = {}
    for s in STRENGTHS:
        h = fit_calibrated(emb, cal.y, base, calibrated, s, anchor_weight=anchor_weight, free_rows=rows)
        zp = h.logits(temb).astype(np.float64)
        for a in BLENDS:
            test[(s, a)] = blend_probs(tpb, ztb + a * (zp - ztb), calibrated).argmax(1) == ty
    sk = None if skip is None else meta.classes.index(skip)
    return {"subject": rec.subject, "oof": oof, "y": cal.y, "pb": pb, "test": test,
            "base_test": tpb.argmax(1) == ty, "ty": ty, "skip": sk, "cv_cpu_s": cv_s}


def policy(rows: list[dict[str, Any]], strengths: tuple[float, ...], blends: tuple[float, ...],
           margin: float) -> dict[str, Any]:
    from har.runtime.adapt import choose

    gains, kept, skip_b, skip_a = [], 0, [], []
    for r in rows:
        sub = {k: v for k, v in r["oof"].items() if k[0] in strengths and k[1] in blends}
        key, _, _, keep = choose(sub, r["y"], r["pb"], margin)
        pred = r["test"][key] if keep else r["base_test"]
        kept += keep
        gains.append(float(pred.mean() - r["base_test"].mean()))
        if r["skip"] is not None:
            m = r["ty"] == r["skip"]
            skip_b.append(float(r["base_test"][m].mean()))
            skip_a.append(float(pred[m].mean()))
    g = np.array(gains)
    out = {"mean": 100 * g.mean(), "min": 100 * g.min(), "worse1": int(np.sum(g < -0.01 + 1e-12)), "kept": kept,
           "n": len(rows)}
    if skip_b:
        out["skip_base"], out["skip_adapted"] = 100 * np.mean(skip_b), 100 * np.mean(skip_a)
        out["skip_worst"] = 100 * float(np.min(np.array(skip_a) - np.array(skip_b)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--sets", default="dev,dev2,val")
    args = ap.parse_args(argv)
    if not wisdm.WISDM_DIR.is_dir():
        print(f"SKIP: WISDM 2019 not found at {wisdm.WISDM_DIR} (../shared/data absent; set HAR_SHARED_DATA)")
        return 0
    from har.runtime.adapt import load_head
    from har.runtime.classifier import WindowClassifier

    sets = []
    for name in args.sets.split(","):
        if name == "dev":
            bundle, _ = bench_adapt.base_bundle(args.epochs, test_subjects=DEV_SUBJECTS,
                                                data_subjects=DEV_TRAIN + DEV_SUBJECTS,
                                                what="subjects 1600-1617 (development model)")
            sets.append(("dev (model on 1600-1617, subjects 1618-1635)", bundle, DEV_SUBJECTS))
        elif name == "dev2":  # the halves swapped
            bundle, _ = bench_adapt.base_bundle(args.epochs, test_subjects=DEV_TRAIN,
                                                data_subjects=DEV_TRAIN + DEV_SUBJECTS,
                                                what="subjects 1618-1635 (development model 2)")
            sets.append(("dev2 (model on 1618-1635, subjects 1600-1617)", bundle, DEV_TRAIN))
        else:
            bundle, val = bench_adapt.base_bundle(args.epochs)
            sets.append((f"val (bench model, its validation subjects {', '.join(val)})", bundle, val))
    cands_s = [(0.003,), (0.03,), (0.003, 0.03, 0.3), STRENGTHS[:-1]]
    cands_a = [(1.0,), (0.5, 1.0), (0.25, 0.5, 0.75, 1.0)]
    for name, bundle, subjects in sets:
        clf = WindowClassifier.from_bundle(bundle)
        meta = clf.metadata
        base = load_head(Path(bundle) / "head.npz")  # with its anchors
        recs = wisdm.load_wisdm(subjects)
        print(f"\n## {name}: {len(recs)} subjects")
        for folds, skipping in itertools.product(FOLDS, (False, True)):
            print(f"\n### folds {folds}, {'one activity skipped per subject' if skipping else 'all calibrated'}")
            print("| anchor weight | strengths | blends | margin | mean gain | smallest gain | subjects < -1 | kept |"
                  + (" skipped activity base -> adapted (worst change) |" if skipping else ""))
            for aw in ANCHOR_WEIGHTS:
                rows = []
                for i, rec in enumerate(recs):
                    skip = meta.classes[i % len(meta.classes)] if skipping else None
                    rows.append(subject_grid(clf, meta, rec, base, skip, folds, aw))
                for ss, aa, m in itertools.product(cands_s, cands_a, MARGINS):
                    p = policy(rows, ss, aa, m)
                    line = (f"| {aw:g} | {','.join(f'{x:g}' for x in ss)} | {','.join(f'{x:g}' for x in aa)} | {m:g} | "
                            f"{p['mean']:+.1f} | {p['min']:+.1f} | {p['worse1']} | {p['kept']}/{p['n']} |")
                    if skipping:
                        line += f" {p['skip_base']:.1f} -> {p['skip_adapted']:.1f} ({p['skip_worst']:+.1f}) |"
                    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
