"""Data larger than memory: one training epoch through the window cache (har.training.cache) at
10, 100 and 400 hours of simulated 50 Hz data, against today's in-memory path at the smallest size.

For each size, in a fresh child process (so peak RSS is its own): build the cache (time, size on
disk), then train one epoch of the default model from the cache's tf.data pipeline (windows per
second after the first 5 batches, peak RSS = VmHWM). Baseline, at the smallest size only: the same
epoch from windows held in memory (har.signal.make_windows + the in-memory batch Sequence), as `har train` does today.

Data: 10 h of distinct simulated recordings (`har simulate`, 20 subjects x 6 activities x 300 s);
larger sizes add hard-linked copies of those CSVs under other names and subjects (distinct
recordings to the cache, no extra disk for the CSVs). The windows use --hop (default 5 s, one
window per 5 s) to keep an epoch at 400 h within minutes on 2 cores; the cache holds every sample
once whatever the hop.

    python bench/bench_scale.py [--hours 10 100 400] [--hop 5] [--steps N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import numpy as np
args = json.loads(sys.argv[1])
from har.config import ModelConfig, WindowConfig, AugmentConfig
win = WindowConfig(rate_hz=50.0, window_s=args["window_s"], hop_s=args["hop_s"])

def vmhwm_mb():
    for ln in open("/proc/self/status"):
        if ln.startswith("VmHWM:"):
            return int(ln.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from har.training._tf import import_tf
from har.training.model import build_model
tf, keras = import_tf()
tf.config.threading.set_inter_op_parallelism_threads(2)
out = {}
if args["mode"] == "cache":
    from har.training.cache import build_cache
    t0 = time.monotonic()
    cache = build_cache([args["data"]], args["cache"], win, verify=False)
    out["build_s"] = time.monotonic() - t0
    out["converted"] = len(cache.converted)
    out["cache_mb"] = cache.nbytes_on_disk() / 1e6
    idx = np.arange(len(cache))
    mean, std = cache.normalization_stats(idx)
    n_cls = len(cache.classes)
    ds = cache.tf_dataset(idx, 64, seed=0, augment=AugmentConfig(rotation_z_deg=180.0), mean=mean, std=std)
    n = len(cache)
else:
    from har.recording.format import find_recordings, read_recording
    from har.signal import concat_windows, make_windows
    from har.training.augment import make_batches
    t0 = time.monotonic()
    ws = concat_windows([make_windows(read_recording(p), win) for p in find_recordings([args["data"]])],
                        win.window_samples)
    out["build_s"] = time.monotonic() - t0
    classes = sorted(set(ws.y.tolist()))
    y = np.array([classes.index(v) for v in ws.y.tolist()], dtype=np.int32)
    flat = ws.x.reshape(-1, 3).astype(np.float64)
    mean, std = flat.mean(axis=0).astype(np.float32), flat.std(axis=0).astype(np.float32)
    n_cls = len(classes)
    ds = make_batches(ws.x, y, 64, AugmentConfig(rotation_z_deg=180.0), 0, mean, std)
    n = len(ws)
    out["windows_mb"] = ws.x.nbytes / 1e6
model = build_model(ModelConfig(), win.window_samples, 3, n_cls)
model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
WARM = 5  # batches before timing starts (graph tracing, pipeline start-up)
marks = {}
class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == WARM - 1:
            marks["t"] = time.monotonic()
        marks["last"] = batch
t0 = time.monotonic()
steps = args.get("steps") or None
model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[Clock()])
t1 = time.monotonic()
out["epoch_s"] = t1 - t0
out["windows"] = n
timed = (marks["last"] + 1 - WARM) * 64 if steps else n - WARM * 64
out["windows_per_s"] = timed / (t1 - marks["t"]) if "t" in marks and timed > 0 else n / out["epoch_s"]
out["peak_rss_mb"] = vmhwm_mb()
print(json.dumps(out))
"""


def make_base(base: Path, hours: float) -> None:
    from har.recording.simulate import generate_dataset

    subjects = 20
    secs = hours * 3600 / subjects / 6
    if not (base / "sim01.csv").exists():
        print(f"simulating {hours:g} h ({subjects} subjects x 6 activities x {secs:g} s, 50 Hz)...", flush=True)
        generate_dataset(base, subjects=subjects, seconds_per_activity=secs, rate_hz=50.0, seed=4242)


def make_size(base: Path, dest: Path, copies: int) -> None:
    """``copies`` x the base set: hard-linked CSVs, sidecars with another subject."""
    if dest.exists():
        return
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for c in range(copies):
        d = tmp / f"copy{c:03d}"
        d.mkdir(parents=True)
        for csv in sorted(base.glob("*.csv")):
            os.link(csv, d / csv.name)
            meta = json.loads(csv.with_suffix(".json").read_text())
            meta["subject"] = f"{meta['subject']}-c{c:03d}"
            (d / csv.with_suffix(".json").name).write_text(json.dumps(meta))
    tmp.rename(dest)


def run_child(args: dict) -> dict:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({args['mode']}, {args['data']}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[10.0, 100.0, 400.0])
    ap.add_argument("--window", type=float, default=5.0, help="window length, s")
    ap.add_argument("--hop", type=float, default=5.0, help="window hop, s")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data and caches here (default: a temp dir)")
    ap.add_argument("--steps", type=int, default=0,
                    help="train this many batches of 64 instead of a whole epoch (0: the whole epoch)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="har-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    hours = sorted(args.hours)
    base_h = hours[0]
    base = work / f"base{base_h:g}h"
    make_base(base, base_h)
    rows = []
    common = {"window_s": args.window, "hop_s": args.hop, "steps": args.steps}
    mem = run_child({**common, "mode": "memory", "data": str(base)})
    print(f"in-memory {base_h:g} h: {mem['windows']} windows ({mem['windows_mb']:.0f} MB of windows), "
          f"epoch {mem['epoch_s']:.1f} s = {mem['windows_per_s']:.0f} windows/s, peak RSS {mem['peak_rss_mb']:.0f} MB",
          flush=True)
    for h in hours:
        copies = max(1, round(h / base_h))
        data = base if copies == 1 else work / f"data{h:g}h"
        if copies > 1:
            make_size(base, data, copies)
        r = run_child({**common, "mode": "cache", "data": str(data), "cache": str(work / f"cache{h:g}h")})
        r["hours"] = base_h * copies
        rows.append(r)
        print(f"cache {r['hours']:g} h: build {r['build_s']:.1f} s ({r['converted']} recordings converted), "
              f"{r['cache_mb']:.0f} MB on disk, {r['windows']} windows, epoch {r['epoch_s']:.1f} s = "
              f"{r['windows_per_s']:.0f} windows/s, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    print()
    print("| data | cache build (s) | cache size (MB) | windows | windows/s | vs in-memory | peak RSS (MB) "
          "| RSS vs smallest |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {base_h:g} h, in memory (today's path) | {mem['build_s']:.1f} (cut windows) | - | {mem['windows']} | "
          f"{mem['windows_per_s']:.0f} | x1.00 | {mem['peak_rss_mb']:.0f} | - |")
    for r in rows:
        print(f"| {r['hours']:g} h, cache | {r['build_s']:.1f} | {r['cache_mb']:.0f} | {r['windows']} | "
              f"{r['windows_per_s']:.0f} | x{r['windows_per_s'] / mem['windows_per_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | x{r['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f} |")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
