"""`har replay` / `har evaluate` of an ADAPTED bundle: speed and agreement with the device.

A personal head (`har adapt`, ``head_adapted.npz``) is fitted on the live model's embeddings
(``model.tflite``, batch 1, what `har run` applies it to). Since 2026-12-02 replay and evaluate of an
adapted bundle run that live model too (before: the head on the float batched replay model's
embeddings, which an int8 live model's differ from). This measures, per wearer recording:

- replay speed, windows/s: the base bundle (its batched float model) vs the adapted bundle (the live
  model + head), in-process `har.runtime.replay.replay` (median of --runs after a warm-up);
- on the wearer's test part (bench_adapt.split_subject: all but the first 30 s of each activity, the
  calibration), accuracy of the adapted bundle: the device's (`predict_one` per window, as `har run`),
  `har replay`'s (now), `har evaluate`'s (now), and what `har replay` gave before (the head applied
  to the batched float model's embeddings and own probabilities).

    python bench/replay_adapted.py BASE_BUNDLE ADAPTED_BUNDLE WEARER.csv [ADAPTED_BUNDLE WEARER.csv ...]

Results of 2026-12-02: bench/results/replay_adapted_2026-12-02.txt.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_adapt  # noqa: E402


def speed(bundle: str, rec: str, runs: int) -> tuple[float, float, int, str]:
    """(median windows/s wall, median windows/CPU-s, windows, model) of in-process replay, after one
    warm-up run."""
    from har.runtime.classifier import WindowClassifier
    from har.runtime.replay import replay

    clf = WindowClassifier.from_bundle(bundle)
    res = replay(clf, rec)  # warm-up
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        res = replay(clf, rec)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return res.windows / float(np.median(times)), res.windows / float(np.median(cpu)), res.windows, res.model


def windows_of(rec_path: Path, meta: object) -> list[np.ndarray]:
    """The windows `har replay` / `har run --file` cut (each contiguous run, every hop)."""
    from har.recording.format import read_recording
    from har.signal import runs, window_starts

    w = meta.window  # type: ignore[attr-defined]
    return [r.xyz[s : s + w.window_samples] for r in runs(read_recording(rec_path), w.rate_hz)
            for s in window_starts(r.xyz.shape[0], w).tolist()]


def accuracy(base: str, adapted: str, rec: str, tmp: Path) -> str:
    from har.recording.format import read_recording, write_recording
    from har.runtime.classifier import WindowClassifier
    from har.runtime.replay import replay
    from har.scoring.evaluate import evaluate

    _, t = bench_adapt.split_subject(read_recording(rec))
    test = write_recording(tmp / f"test_{Path(rec).stem}.csv", t, overwrite=True)
    ad = WindowClassifier.from_bundle(adapted)
    res = replay(ad, test)
    wins = np.stack(windows_of(test, ad.metadata))
    device = np.stack([ad.predict_one(v) for v in wins])
    scored = np.array([bool(v) for v in res.true])
    y = np.array([ad.classes.index(v) if v else -1 for v in res.true])

    def acc(p: np.ndarray) -> float:
        return float(np.mean(p.argmax(1)[scored] == y[scored]))

    ev = evaluate(adapted, [str(test)], echo=lambda s: None, progress=False)
    bclf = WindowClassifier.from_bundle(base)  # the base bundle's batched model: what replay applied the head to
    pb, emb = bclf.predict_with_embedding(wins, batched=True)
    assert ad.head is not None
    before = ad.head(emb, pb)
    same = np.array_equal(res.probs, device)
    return (f"  test part {int(scored.sum())} scored windows: device (predict_one, `har run`) {acc(device):.4f}; "
            f"`har replay` now {res.accuracy:.4f} ({res.model}; probabilities equal to the device's: {same}); "
            f"`har evaluate` now {ev['accuracy']:.4f} on {ev['n_windows']} windows; `har replay` before "
            f"(head on the batched float embeddings) {acc(before):.4f}, argmax agreement with the device "
            f"{np.mean(before.argmax(1)[scored] == device.argmax(1)[scored]):.4f} (scored windows)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("pairs", nargs="+", help="ADAPTED_BUNDLE WEARER.csv, repeated")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("pairs: ADAPTED_BUNDLE WEARER.csv, repeated")
    with tempfile.TemporaryDirectory() as d:
        for adapted, rec in zip(args.pairs[::2], args.pairs[1::2], strict=True):
            print(f"\n## {rec} (whole recording for speed), adapted bundle {adapted}")
            for name, b in (("base", args.base), ("adapted", adapted)):
                ws, wc, n, model = speed(b, rec, args.runs)
                print(f"  replay {name:<7} {n} windows: {ws:8.1f} windows/s wall, {wc:8.1f} per CPU second ({model})",
                      flush=True)
            print(accuracy(args.base, adapted, rec, Path(d)), flush=True)


if __name__ == "__main__":
    main()
