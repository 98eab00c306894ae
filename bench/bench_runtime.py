"""Runtime benchmark: bundle size and single-thread latency per window for fp32 / fp16 / int8,
against Keras (tf_keras inside tf.function, batch 1) in the same process, plus the time from
`har run` process start to its first prediction.

    .venv/bin/python bench/bench_runtime.py [MODEL_DIR] [--work DIR] [--windows N]

Without MODEL_DIR a demo-size model is built (128-sample windows at 50 Hz, LSTM(64), 6 classes,
trained for 2 epochs on synthetic signals). Times in ms, sizes in KB."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEMO_CLASSES = ("still", "walk", "run", "stairs", "shake", "wave")


def _signal(ci: int, n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / rate
    x = np.tile(np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.05, 3), (n, 1))
    if ci:
        f = 0.6 * ci + rng.normal(0, 0.05)
        x[:, ci % 3] += (0.2 + 0.15 * ci) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
    return (x + rng.normal(0, 0.04, x.shape)).astype(np.float32)


def build_demo_model_dir(out: Path, epochs: int = 2) -> Path:
    """A demo-size model directory (layout of docs/architecture.md)."""
    from har.artifacts.metadata import ModelMetadata, Normalization, save_metadata
    from har.config import ModelConfig, TrainConfig, WindowConfig
    from har.training._tf import import_tf
    from har.training.model import build_model

    tf, keras = import_tf()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    win = WindowConfig(rate_hz=50.0, window_s=2.56, hop_s=0.64)
    w = win.window_samples
    x = np.stack([_signal(i % len(DEMO_CLASSES), w, 50.0, rng) for i in range(900)])
    y = np.arange(900) % len(DEMO_CLASSES)
    xt, yt, xh, yh = x[:700], y[:700], x[700:], y[700:]
    mean, std = xt.reshape(-1, 3).mean(0), xt.reshape(-1, 3).std(0) + 1e-6
    mcfg = ModelConfig(lstm_units=(64,), dropout=0.2)
    model = build_model(mcfg, w, 3, len(DEMO_CLASSES))
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy")
    model.fit((xt - mean) / std, yt, epochs=epochs, batch_size=64, verbose=0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out / "model.weights.h5"))
    save_metadata(
        out,
        ModelMetadata(
            classes=DEMO_CLASSES,
            window=win,
            normalization=Normalization(tuple(map(float, mean)), tuple(map(float, std))),
            train_config=TrainConfig(window=win, model=mcfg, epochs=epochs),
            data_fingerprint="bench-demo",
        ),
    )
    np.savez(out / "deploy_windows.npz", calib_x=xt[:300], heldout_x=xh, heldout_y=yh)
    return out


def _stats(times_s: list[float]) -> tuple[float, float]:
    a = np.asarray(times_s) * 1e3
    return float(np.median(a)), float(np.percentile(a, 95))


def keras_latency(model_dir: Path, x: np.ndarray) -> tuple[float, float]:
    """Median / p95 ms per window of tf_keras at batch 1 inside a tf.function (normalised input)."""
    from har.artifacts.metadata import load_metadata
    from har.training._tf import import_tf
    from har.training.model import build_model

    tf, _ = import_tf()
    meta = load_metadata(model_dir)
    m = build_model(meta.train_config.model, meta.window.window_samples, meta.n_channels, len(meta.classes), 1)
    m.load_weights(str(model_dir / "model.weights.h5"))
    mean = np.asarray(meta.normalization.mean, np.float32)
    std = np.asarray(meta.normalization.std, np.float32)
    f = tf.function(lambda v: m(v, training=False))
    xs = [tf.constant(((w - mean) / std)[None].astype(np.float32)) for w in x]
    for v in xs[:5]:
        f(v).numpy()
    times = []
    for v in xs:
        t0 = time.perf_counter()
        f(v).numpy()
        times.append(time.perf_counter() - t0)
    return _stats(times)


def tflite_latency(bundle: Path, x: np.ndarray) -> tuple[float, float]:
    from har.runtime.classifier import WindowClassifier

    clf = WindowClassifier.from_bundle(bundle, num_threads=1)
    for w in x[:5]:
        clf.predict_one(w)
    times = []
    for w in x:
        t0 = time.perf_counter()
        clf.predict_one(w)
        times.append(time.perf_counter() - t0)
    return _stats(times)


def time_to_first_prediction(bundle: Path, recording: Path, repeats: int = 3) -> float:
    """Seconds from `har run --file REC --speed 0` process start to its first output line (median)."""
    har = Path(sys.executable).with_name("har")
    cmd = [str(har)] if har.exists() else [sys.executable, "-c", "from har.cli import main; main()"]
    cmd += ["run", str(bundle), "--file", str(recording), "--speed", "0"]
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert p.stdout is not None
        p.stdout.readline()
        out.append(time.perf_counter() - t0)
        p.kill()
        p.wait()
    return float(np.median(out))


def write_recording_for(model_dir: Path, path: Path, seconds: float = 20.0) -> Path:
    from har.artifacts.metadata import load_metadata
    from har.recording.format import Recording, RecordingMeta, write_recording

    meta = load_metadata(model_dir)
    rate = meta.window.rate_hz
    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    xyz = np.concatenate([_signal(i, n // 2, rate, rng) for i in range(2)])
    labels = np.repeat(np.array(list(meta.classes[:2])), n // 2)
    rec = Recording(
        np.arange(len(xyz)) / rate,
        xyz,
        labels,
        np.arange(len(xyz), dtype=np.int64),
        RecordingMeta(subject="bench", rate_hz=rate, complete=True),
    )
    return write_recording(path, rec, overwrite=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir", nargs="?", help="model directory from `har train` (default: build a demo one)")
    ap.add_argument("--work", help="directory for bundles (default: a temporary one)")
    ap.add_argument("--windows", type=int, default=300, help="windows timed per model")
    ap.add_argument("--quantize", default="fp32,fp16,int8")
    args = ap.parse_args()

    from har.config import ExportConfig
    from har.training.convert import export_bundle

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="har-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model_dir:
        model_dir = Path(args.model_dir)
    else:
        t0 = time.perf_counter()
        model_dir = build_demo_model_dir(work / "demo-model")
        print(f"built demo model (LSTM(64), 128x3 windows, 6 classes) in {time.perf_counter() - t0:.1f} s")
    with np.load(model_dir / "deploy_windows.npz", allow_pickle=False) as z:
        hx = np.asarray(z["heldout_x"], np.float32)
    x = hx[np.arange(args.windows) % hx.shape[0]]
    rec = write_recording_for(model_dir, work / "bench.csv")

    rows = []
    for q in args.quantize.split(","):
        b = work / f"bundle-{q}"
        t0 = time.perf_counter()
        res = export_bundle(
            model_dir, b, ExportConfig(quantize=q), echo=lambda s: None, overwrite=True, min_agreement=0.0
        )
        conv_s = time.perf_counter() - t0
        med, p95 = tflite_latency(b, x)
        ttfp = time_to_first_prediction(b, rec)
        rows.append(
            (
                q,
                res.model.size_kb,
                med,
                p95,
                res.model.agreement,
                res.model.max_prob_diff,
                res.batch_model.ms_per_window_batched if res.batch_model else float("nan"),
                ttfp,
                conv_s,
            )
        )
    k_med, k_p95 = keras_latency(model_dir, x)

    print(f"\nruntime: ai-edge-litert, 1 thread; {args.windows} windows; model {model_dir}")
    print(
        f"{'model':<8} {'KB':>7} {'median ms':>10} {'p95 ms':>8} {'vs Keras':>9} {'agree':>7} {'max|dp|':>9} "
        f"{'batched ms/w':>13} {'run->1st s':>10} {'export s':>9}"
    )
    for q, kb, med, p95, agree, dp, bms, ttfp, cs in rows:
        print(
            f"{q:<8} {kb:>7.1f} {med:>10.3f} {p95:>8.3f} {k_med / med:>8.1f}x {100 * agree:>6.1f}% {dp:>9.2e} "
            f"{bms:>13.4f} {ttfp:>10.2f} {cs:>9.1f}"
        )
    print(f"{'keras':<8} {'':>7} {k_med:>10.3f} {k_p95:>8.3f} {'1.0x':>9}   (tf_keras in tf.function, batch 1)")
    fp32 = {r[0]: r for r in rows}.get("fp32")
    if fp32:
        for r in rows:
            print(f"{r[0]}: size {r[1] / fp32[1]:.2f}x fp32, latency {r[2] / fp32[2]:.2f}x fp32")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
