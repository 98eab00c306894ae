"""Data larger than memory: one epoch of `har train` through the window cache (`har train --cache`,
har.training.stream) at 10, 100 and 400 hours of simulated 50 Hz data, against today's in-memory
`har train` at the smallest size, in the same run.

For each size, in a fresh child process (so peak RSS is its own): `har train`'s library call
(har.training.train.train) with one epoch of the default model, z rotation 180 degrees (one fit;
"auto" would fit twice), the default subject split (test 25 %, validation 20 % of the rest),
validation, test prediction and the whole model directory written. Reported: cache build time and
size (from the run's own "window cache" line, first build), training windows per second over the
epoch (its own "epoch 1/1 ... Ns" line, validation included, the same measure for both paths),
training windows per CPU-second of the process over the same epoch (less sensitive to the other
jobs on the machine), the whole train() wall time and peak RSS (VmHWM), with the load average of
the machine beside them (it is shared).

Data: 10 h of distinct simulated recordings (`har simulate`, 20 subjects x 6 activities x 300 s);
larger sizes add hard-linked copies of those CSVs under other names and subjects (distinct
recordings to the cache, no extra disk for the CSVs). The windows use --hop (default 5 s, one
window per 5 s) to keep an epoch at 400 h within minutes on 2 cores; the cache holds every sample
once whatever the hop.

    nice -n 10 python bench/bench_scale.py [--hours 10 100 400] [--hop 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, os, re, resource, sys, time
args = json.loads(sys.argv[1])
from har.config import AugmentConfig, TrainConfig, WindowConfig
from har.training.train import train

def vmhwm_mb():
    for ln in open("/proc/self/status"):
        if ln.startswith("VmHWM:"):
            return int(ln.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

cfg = TrainConfig(window=WindowConfig(rate_hz=50.0, window_s=args["window_s"], hop_s=args["hop_s"]), epochs=1,
                  augment=AugmentConfig(rotation_z_deg=180.0), seed=0)
lines, cpu = [], []  # echoed lines and the process CPU time (all threads) when each came
t0 = time.monotonic()
res = train([args["data"]], args["out"], cfg, progress=True,
            echo=lambda ln: (lines.append(ln), cpu.append(time.process_time())), cache_dir=args.get("cache"))
out = {"train_s": time.monotonic() - t0, "peak_rss_mb": vmhwm_mb(), "load": os.getloadavg()[0]}
s = res.metadata.data_summary
out["windows"] = sum(s["windows"].values())
out["train_windows"] = s["windows"]["train"]
out["accuracy"] = res.metadata.metrics["accuracy"]
for i, ln in enumerate(lines):
    if ln.startswith("schedule:"):  # echoed right before model.fit
        cpu0 = cpu[i]
    m = re.match(r"epoch 1/1 .* ([0-9.]+)s$", ln)
    if m:
        out["epoch_s"] = float(m.group(1))
        out["epoch_cpu_s"] = cpu[i] - cpu0
    m = re.match(r"window cache .*: (\d+) recording\(s\), (\d+) windows, (\d+) MB, (\d+) converted in ([0-9.]+) s", ln)
    if m:
        out["cache_mb"], out["converted"], out["build_s"] = float(m.group(3)), int(m.group(4)), float(m.group(5))
out["windows_per_s"] = out["train_windows"] / out["epoch_s"]
out["windows_per_cpu_s"] = out["train_windows"] / out["epoch_cpu_s"]
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
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    shutil.rmtree(args["out"], ignore_errors=True)
    load0 = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({args['data']}):\n{p.stderr[-3000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["load"] = (load0 + r["load"]) / 2  # 1-min load average before and after
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[10.0, 100.0, 400.0])
    ap.add_argument("--window", type=float, default=5.0, help="window length, s")
    ap.add_argument("--hop", type=float, default=5.0, help="window hop, s")
    ap.add_argument("--workdir", type=Path, default=None, help="keep data and caches here (default: a temp dir)")
    ap.add_argument("--rebuild", action="store_true", help="delete existing caches first (build time of a first build)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the smallest size in memory and through the cache this many times, alternately; "
                    "the throughput ratio is the median of the pairs (the machine's load varies)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="har-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    hours = sorted(args.hours)
    base_h = hours[0]
    base = work / f"base{base_h:g}h"
    make_base(base, base_h)
    rows = []
    common = {"window_s": args.window, "hop_s": args.hop}
    pairs, cpu_pairs = [], []
    for k in range(max(1, args.repeat) - 1):  # extra pairs at the smallest size (cache built on the first)
        m = run_child({**common, "data": str(base), "out": str(work / "model-memory")})
        c = run_child({**common, "data": str(base), "cache": str(work / f"cache{base_h:g}h"),
                       "out": str(work / f"model-cache{base_h:g}h")})
        pairs.append(c["windows_per_s"] / m["windows_per_s"])
        cpu_pairs.append(c["windows_per_cpu_s"] / m["windows_per_cpu_s"])
        print(f"pair {k + 1}: in-memory {m['windows_per_s']:.0f} windows/s, {m['windows_per_cpu_s']:.0f} per CPU-s "
              f"(load {m['load']:.1f}); cache {c['windows_per_s']:.0f} windows/s, {c['windows_per_cpu_s']:.0f} per "
              f"CPU-s (load {c['load']:.1f}): x{pairs[-1]:.2f} wall, x{cpu_pairs[-1]:.2f} CPU", flush=True)
    mem = run_child({**common, "data": str(base), "out": str(work / "model-memory")})
    print(f"in-memory {base_h:g} h: {mem['windows']} windows ({mem['train_windows']} training), epoch "
          f"{mem['epoch_s']:.1f} s = {mem['windows_per_s']:.0f} windows/s, {mem['windows_per_cpu_s']:.0f} per CPU-s, "
          f"train() {mem['train_s']:.1f} s, peak RSS {mem['peak_rss_mb']:.0f} MB, accuracy {mem['accuracy']:.3f}, "
          f"load {mem['load']:.1f}", flush=True)
    for h in hours:
        copies = max(1, round(h / base_h))
        data = base if copies == 1 else work / f"data{h:g}h"
        if copies > 1:
            make_size(base, data, copies)
        cache = work / f"cache{h:g}h"
        if args.rebuild:
            shutil.rmtree(cache, ignore_errors=True)
        r = run_child({**common, "data": str(data), "cache": str(cache), "out": str(work / f"model-cache{h:g}h")})
        r["hours"] = base_h * copies
        rows.append(r)
        if h == base_h:
            pairs.append(r["windows_per_s"] / mem["windows_per_s"])
            cpu_pairs.append(r["windows_per_cpu_s"] / mem["windows_per_cpu_s"])
        print(f"cache {r['hours']:g} h: build {r['build_s']:.1f} s ({r['converted']} recordings converted), "
              f"{r['cache_mb']:.0f} MB on disk, {r['windows']} windows ({r['train_windows']} training), epoch "
              f"{r['epoch_s']:.1f} s = {r['windows_per_s']:.0f} windows/s, train() {r['train_s']:.1f} s, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, accuracy {r['accuracy']:.3f}, load {r['load']:.1f}", flush=True)
    print()
    print("| data | cache build (s) | cache size (MB) | windows (train) | epoch windows/s | vs in-memory "
          "| windows per CPU-s | train() (s) | peak RSS (MB) | RSS vs smallest | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {base_h:g} h, in memory (`har train`) | - | - | {mem['windows']} ({mem['train_windows']}) | "
          f"{mem['windows_per_s']:.0f} | x1.00 | {mem['windows_per_cpu_s']:.0f} | "
          f"{mem['train_s']:.0f} | {mem['peak_rss_mb']:.0f} | - | "
          f"{mem['load']:.1f} |")
    for r in rows:
        print(f"| {r['hours']:g} h, `har train --cache` | {r['build_s']:.1f} | {r['cache_mb']:.0f} | {r['windows']} "
              f"({r['train_windows']}) | {r['windows_per_s']:.0f} | x{r['windows_per_s'] / mem['windows_per_s']:.2f} "
              f"| {r['windows_per_cpu_s']:.0f} | {r['train_s']:.0f} | {r['peak_rss_mb']:.0f} | "
              f"x{r['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f} | "
              f"{r['load']:.1f} |")
    if pairs:
        print(f"\nthroughput cache / in-memory at {base_h:g} h: median x{statistics.median(pairs):.2f} over "
              f"{len(pairs)} pair(s) ({', '.join(f'x{p:.2f}' for p in pairs)}); per CPU-second (less sensitive "
              f"to the load): median x{statistics.median(cpu_pairs):.2f} "
              f"({', '.join(f'x{p:.2f}' for p in cpu_pairs)})")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
