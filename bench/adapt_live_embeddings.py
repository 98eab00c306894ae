"""Does it matter which model's embeddings `har adapt` fits the personal head on? The float batched
replay model (``model_batch.tflite``) vs the LIVE model (``model.tflite``, e.g. int8, batch 1), which
is what `har run` applies the head to.

For each wearer recording: calibration = the first 30 s of each activity (bench_adapt.split_subject),
test = the rest. Prints how far the two models' embeddings are apart (LSTM columns, MiniRocket
columns, and their part of the logits), whether head.npz's anchors lie on the live model's int8
embedding grid (i.e. were computed by it), the time to embed the calibration with each model, and
the personal head chosen and fitted as adapt_bundle does on each model's embeddings, both APPLIED TO
THE LIVE MODEL (as on the device): cross-validated and test accuracy, probability differences.

    python bench/adapt_live_embeddings.py BUNDLE WEARER.csv [WEARER.csv ...] [--skip ACTIVITY]

Results of 2026-12-02: bench/results/adapt_live_embeddings_2026-12-02.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adapt  # noqa: E402


def int8_grid(clf: Any) -> tuple[float, float]:
    """(scale, zero) of the int8 tensor behind the live embedding output; (0, 0) for a float model."""
    m = clf._single
    scale, zero = (float(v) for v in m.emb["quantization"])
    if scale > 0:
        return scale, zero
    tensors = {t["index"]: t for t in m.interp.get_tensor_details()}
    for o in m.interp._get_ops_details():
        if o.get("op_name") == "DEQUANTIZE" and m._emb_index in list(o["outputs"]):
            s, z = tensors[int(o["inputs"][0])]["quantization"]
            return float(s), float(z)
    return 0.0, 0.0


def one(clf: Any, base: Any, rec_path: str, skip: str | None) -> None:
    from har.recording.format import read_recording
    from har.runtime.adapt import (
        ANCHOR_WEIGHT,
        BLENDS,
        DEFAULT_MARGIN,
        STRENGTHS,
        calibration_windows,
        choose,
        cross_validate,
        fit_calibrated,
        head_rows,
        one_blas_thread,
        personal_head,
    )

    meta = clf.metadata
    c, t = bench_adapt.split_subject(read_recording(rec_path))
    if skip:
        c = type(c)(time=c.time, xyz=c.xyz, labels=np.where(c.labels == skip, "", c.labels), seq=c.seq, meta=c.meta)
    cal = calibration_windows([c], meta)
    tx, ty = bench_adapt.test_windows(t, meta)
    print(f"\n## {rec_path}{f' (skipping {skip})' if skip else ''}: {cal.y.size} calibration windows (hop 0.5 s), "
          f"{ty.size} test windows")
    t0, c0 = time.perf_counter(), time.process_time()
    pf, ef = clf.predict_with_embedding(cal.x, batched=True)
    tf_, cf = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    pl, el = clf.predict_with_embedding(cal.x, batched=False)
    tl, cl = time.perf_counter() - t0, time.process_time() - c0
    print(f"embedding the calibration: batched float {tf_:.2f} s ({cf:.2f} s CPU), live {tl:.2f} s ({cl:.2f} s CPU)")
    lstm = clf.embedding_dim - clf.rocket_width
    for name, sl in (("LSTM embedding", slice(0, lstm)), ("MiniRocket", slice(lstm, None))):
        if ef[:, sl].size == 0:
            continue
        d = ef[:, sl] - el[:, sl]
        print(f"  {name} columns: max|float - live| {np.abs(d).max():.4f}, relative L2 "
              f"{np.linalg.norm(d) / np.linalg.norm(el[:, sl]):.4f}, their logits differ by up to "
              f"{np.abs(d @ base.w[sl]).max():.4f}")
    scale, zero = int8_grid(clf)
    if scale > 0 and base.anchors is not None:
        def off(e: np.ndarray) -> float:
            q = e / scale + zero
            return float(np.abs(q - np.round(q)).max())

        print(f"  distance from the live int8 embedding grid (scale {scale:.3g}): anchors {off(base.anchors):.1e}, "
              f"live {off(el):.1e}, batched float {off(ef):.1e}")
    print(f"  the two models' own probabilities: max|dp| {np.abs(pf - pl).max():.4f}, argmax agreement "
          f"{np.mean(pf.argmax(1) == pl.argmax(1)):.4f}")
    calibrated = np.isin(np.arange(len(meta.classes)), np.unique(cal.y))
    rows = head_rows(meta, clf.embedding_dim, int(calibrated.sum()), clf.rocket_width)
    tpl, tel = clf.predict_with_embedding(tx, batched=False)
    print(f"  base model live: test accuracy {np.mean(tpl.argmax(1) == ty):.4f}")
    heads = {}
    for name, emb, pb in (("batched float", ef, pf), ("live", el, pl)):
        with one_blas_thread():
            oof = cross_validate(emb, cal, base, calibrated, STRENGTHS, BLENDS, anchor_weight=ANCHOR_WEIGHT,
                                 free_rows=rows, base_probs=pb)
            (s, a), s_new, s_base, kept = choose(oof, cal.y, pb, DEFAULT_MARGIN)
            fitted = fit_calibrated(emb, cal.y, base, calibrated, s, anchor_weight=ANCHOR_WEIGHT, free_rows=rows)
        h = heads[name] = personal_head(base, fitted, calibrated, a)
        print(f"  fitted on {name:13s} embeddings: CV base {s_base[0]:.4f} -> {s_new[0]:.4f} "
              f"({'kept' if kept else 'not kept'}, strength {s:g}, blend {a:g}); applied to the LIVE model: "
              f"calibration {np.mean(h(el, pl).argmax(1) == cal.y):.4f}, "
              f"test {np.mean(h(tel, tpl).argmax(1) == ty):.4f}")
    hf = heads["batched float"]
    d_dev = np.abs(hf(ef, pf) - hf(el, pl))
    print(f"  float-fitted head on float vs on live embeddings (what it was fitted for vs what the device does): "
          f"max|dp| {d_dev.max():.4f}, argmax agreement {np.mean(hf(ef, pf).argmax(1) == hf(el, pl).argmax(1)):.4f}")
    pa, pb_ = hf(tel, tpl), heads["live"](tel, tpl)
    print(f"  the two heads on the live test embeddings: max|dp| {np.abs(pa - pb_).max():.4f}, argmax agreement "
          f"{np.mean(pa.argmax(1) == pb_.argmax(1)):.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("recordings", nargs="+")
    ap.add_argument("--skip", default=None, help="leave this activity out of the calibration")
    args = ap.parse_args(argv)
    from har.runtime.adapt import load_head
    from har.runtime.classifier import WindowClassifier

    clf = WindowClassifier.from_bundle(args.bundle)
    if not clf.has_batch_model:
        print(f"{args.bundle} has no batched model: nothing to compare")
        return 0
    base = load_head(Path(args.bundle) / "head.npz", clf.embedding_dim, len(clf.classes))
    print(f"{args.bundle}: embedding {clf.embedding_dim} wide ({clf.rocket_width} MiniRocket), batched model batch "
          f"{clf.batch_size}, live input {clf.input_dtype}")
    for r in args.recordings:
        one(clf, base, r, args.skip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
