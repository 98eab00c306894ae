"""The resampler (har.signal.Resampler): its cost in the live loop, and its accuracy effect on real
data: a device faster than the model (WISDM 2019 watch, 20 Hz, read from ../shared/data; no real
100 Hz set exists here) feeding a 10 Hz model.

    .venv/bin/python bench/bench_resampler.py [--epochs 15] [--keep DIR] [--skip-accuracy]

1. Cost: Python per source sample of LiveClassifier (models/default, 50 Hz; the interpreter's
   time subtracted) for a 50 Hz source (no resampling: the common case), 50.4 Hz and 100 Hz, in
   blocks of 1, 5 and 50 samples; the ratio is to the 50 Hz source with the same blocks.

2. Accuracy (needs TensorFlow and ../shared/data):

One model is trained at 10 Hz on the training subjects (1600-1635; windows from har.signal, i.e.
the polyphase filter, as training always resampled with scipy's polyphase filter). The same model
then classifies the test subjects (1636-1650, never used for any choice) through three resamplers:

* ``polyphase (har.signal)``: the windows training, evaluate, replay and `har run` now all cut
  (bitwise the same, tests/test_signal_contract.py);
* ``linear (old har run / replay)``: what the live path did before: linear interpolation on the
  nominal timeline, no anti-alias filter (20 -> 10 Hz: every other sample);
* ``scipy resample_poly (old training / evaluate)``: what the offline path did before
  (``padtype="line"``), i.e. the number `har evaluate` used to report.

Printed: windows, accuracy and macro-F1 per path, and the ratio to the polyphase path."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wisdm import TEST_SUBJECTS, load_wisdm, write_wisdm  # noqa: E402

from har.config import TrainConfig, WindowConfig  # noqa: E402
from har.signal import Windows, concat_windows, make_windows, window_labels, window_starts  # noqa: E402

MODEL_RATE_HZ = 10.0


def _cut(t: np.ndarray, xyz: np.ndarray, labels: np.ndarray, cfg: WindowConfig, subject: str) -> Windows:
    starts = window_starts(xyz.shape[0], cfg)
    _, _, y = window_labels(labels, starts, cfg.window_samples, cfg.purity)
    keep = y != ""
    starts = starts[keep]
    x = xyz[starts[:, None] + np.arange(cfg.window_samples)[None, :]].astype(np.float32)
    n = starts.shape[0]
    return Windows(x, y[keep], np.full(n, subject), t[starts] if n else np.zeros(0), np.zeros(n, dtype=np.int64))


def linear_windows(rec, cfg: WindowConfig) -> Windows:  # noqa: ANN001
    """The old live path: per run, linear interpolation at source index k * src/dst (no filter)."""
    parts = []
    step = rec.rate_hz / cfg.rate_hz
    for seg in rec.segments():
        t, xyz, labels = rec.time[seg], rec.xyz[seg].astype(np.float64), rec.labels[seg]
        pos = np.arange(0.0, xyz.shape[0] - 1 + 1e-9, step)
        idx = np.arange(xyz.shape[0], dtype=np.float64)
        out = np.stack([np.interp(pos, idx, xyz[:, j]) for j in range(3)], axis=1)
        near = np.clip(np.rint(pos).astype(np.int64), 0, xyz.shape[0] - 1)
        parts.append(_cut(np.interp(pos, idx, t), out, labels[near], cfg, rec.subject))
    return concat_windows(parts, cfg.window_samples)


def scipy_windows(rec, cfg: WindowConfig) -> Windows:  # noqa: ANN001
    """The old offline path: scipy.signal.resample_poly(padtype="line") per run."""
    from scipy.signal import resample_poly

    from har.signal import resample_ratio

    up, down = resample_ratio(rec.rate_hz, cfg.rate_hz)
    parts = []
    for seg in rec.segments():
        t, xyz, labels = rec.time[seg], rec.xyz[seg].astype(np.float64), rec.labels[seg]
        out = resample_poly(xyz, up, down, axis=0, padtype="line")
        near = np.clip(np.rint(np.arange(out.shape[0]) * down / up).astype(np.int64), 0, xyz.shape[0] - 1)
        parts.append(_cut(t[0] + np.arange(out.shape[0]) * down / (up * rec.rate_hz), out, labels[near], cfg,
                          rec.subject))
    return concat_windows(parts, cfg.window_samples)


def live_cost(bundle: Path, source_hz: float, block: int, seconds: float = 300.0) -> tuple[float, int]:
    """(us of Python per source sample, windows) of LiveClassifier fed ``block``-sample blocks."""
    from har.recording.simulate import ACTIVITIES, simulate_recording
    from har.runtime.classifier import WindowClassifier
    from har.runtime.live import LiveClassifier
    from har.sources.base import SampleBlock

    class Timed(WindowClassifier):
        spent = 0.0

        def predict_one(self, window: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = super().predict_one(window)
            self.spent += time.perf_counter() - t
            return out

    per = seconds / len(ACTIVITIES)
    rec = simulate_recording([(a, per) for a in ACTIVITIES], subject="bench", subject_seed=5, rate_hz=source_hz,
                             seed=5)
    n = len(rec)
    seq = np.arange(n, dtype=np.int64)
    blocks = [SampleBlock(rec.time[i : i + block], rec.xyz[i : i + block], seq[i : i + block])
              for i in range(0, n, block)]
    base = WindowClassifier.from_bundle(bundle, use_batch_model=False)
    best = float("inf")
    for _ in range(3):  # the best of 3 runs (a shared machine adds noise, never removes it)
        clf = Timed(bundle / "model.tflite", base.metadata)
        live = LiveClassifier(clf, source_rate_hz=source_hz)
        t = time.perf_counter()
        for b in blocks:
            live.feed(b)
        best = min(best, time.perf_counter() - t - clf.spent)
    return best / n * 1e6, live.windows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    ap.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "default")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()

    if not args.skip_cost:
        print(f"1. Python per source sample in LiveClassifier ({args.bundle.name}: 50 Hz model), interpreter excluded")
        for block in (1, 5, 50):
            ref, _ = live_cost(args.bundle, 50.0, block)
            for hz in (50.0, 50.4, 100.0):
                us, windows = (ref, None) if hz == 50.0 else live_cost(args.bundle, hz, block)
                what = "no resampling" if hz == 50.0 else f"x{us / ref:.2f} vs 50 Hz"
                print(f"   {hz:5.1f} Hz source, {block:2d}-sample blocks: {us:6.2f} us/sample  ({what})")
    if args.skip_accuracy:
        return 0

    from har.scoring.evaluate import predict_proba
    from har.scoring.metrics import compute_metrics
    from har.training.train import train

    recs = load_wisdm()
    work = args.keep or Path(tempfile.mkdtemp(prefix="har-resampler-"))
    data = write_wisdm(work / "data", recs)
    d = TrainConfig()
    cfg = TrainConfig(window=WindowConfig(rate_hz=MODEL_RATE_HZ, window_s=d.window.window_s, hop_s=d.window.hop_s,
                                          purity=d.window.purity),
                      test_subjects=tuple(TEST_SUBJECTS), epochs=args.epochs, seed=args.seed)
    model = work / "model"
    if not (model / "metadata.json").is_file():
        t0 = time.monotonic()
        train([data], model, cfg, progress=True, echo=lambda s: print("  " + s, flush=True))
        print(f"trained a {MODEL_RATE_HZ:g} Hz model in {time.monotonic() - t0:.0f} s ({model})")
    test = [r for r in recs if r.subject in TEST_SUBJECTS]
    wc = cfg.window
    paths = {
        "polyphase (har.signal: training, evaluate, replay, run)": lambda r: make_windows(r, wc),
        "linear (old har run / replay)": lambda r: linear_windows(r, wc),
        "scipy resample_poly (old training / evaluate)": lambda r: scipy_windows(r, wc),
    }
    print(f"\n{len(test)} test subjects at {test[0].rate_hz:g} Hz -> {MODEL_RATE_HZ:g} Hz model, same weights")
    cuts = {name: concat_windows([cut(r) for r in test], wc.window_samples) for name, cut in paths.items()}

    def key(w: Windows) -> np.ndarray:
        return np.char.add(w.subject.astype(str), np.char.mod("@%.3f", w.start_s))

    common = set.intersection(*(set(key(w).tolist()) for w in cuts.values()))
    for scope in ("all windows of each path", f"the {len(common)} windows all three share (same subject and start)"):
        print(f" {scope}:")
        base = None
        for name, w in cuts.items():
            if scope.startswith("the"):
                w = w.select(np.isin(key(w), list(common)))  # noqa: PLW2901
            meta, probs = predict_proba(model, w.x)
            classes = list(meta.classes)
            known = np.isin(w.y, classes)
            y = np.array([classes.index(v) for v in w.y[known]])
            m = compute_metrics(y, probs[known].argmax(axis=1), classes)
            if base is None:
                base = m
            print(f"  {name:<58} {int(known.sum()):>6} windows  accuracy {m['accuracy']:.4f}  macro-F1 "
                  f"{m['macro_f1']:.4f}  (accuracy {m['accuracy'] - base['accuracy']:+.4f} vs polyphase)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
