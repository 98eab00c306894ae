"""MiniRocket inside the model (``--rocket-features``): int8 vs float, size and latency.

For each data set, `har train`'s defaults (rate set to the data's) are trained twice on the same
training recordings, without and with the MiniRocket branch (har.training.rocket), each exported
like `har deploy --quantize int8` and scored on the same test windows through the TFLite runtime:
int8 live-model accuracy, float accuracy of the same graph (the bundle's float32 replay model),
their agreement, the export's own verification (agreement with Keras on its held-out windows),
model size, ms per window (live model, 1 thread), and the beta the validation windows chose.
aeon's MiniRocket alone is the reference row. Data sets: ``basic`` (aeon's BasicMotions, archive
split), ``sim`` (`har simulate`: training subjects from seeds 1-6, test subjects from seeds
101-104, never used elsewhere), ``watch`` (seglearn's exercises, subjects w01-w07 / w08-w10),
``wisdm`` (WISDM 2019 watch accelerometer from ../shared/data or $HAR_WISDM_DIR, bench_accuracy's
split).

    nice -n 10 python bench/bench_rocket.py [--data basic,sim] [--features 10000] [--skip-baseline] [--work DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_accuracy as ba  # noqa: E402

from har.config import TrainConfig  # noqa: E402

SIM_TRAIN, SIM_TEST, SIM_SECONDS = range(1, 7), range(101, 105), 30.0


def load_sim(work: Path, quick: bool) -> ba.DataSet:
    from har.recording.simulate import ACTIVITIES, simulate_recording

    def recs(seeds: range, split: str) -> list[Any]:
        out = []
        for s in seeds:
            order = [ACTIVITIES[(i + s) % len(ACTIVITIES)] for i in range(len(ACTIVITIES))]
            out.append(simulate_recording([(a, SIM_SECONDS) for a in order], f"sim{s:03d}", s, 50.0, seed=0))
        return out

    return ba.DataSet("simulator", 50.0, ba._write(recs(SIM_TRAIN, "train"), work / "sim" / "train"),
                      ba._write(recs(SIM_TEST, "test"), work / "sim" / "test"),
                      f"subjects seeded {SIM_TRAIN.start}-{SIM_TRAIN.stop - 1} train, "
                      f"{SIM_TEST.start}-{SIM_TEST.stop - 1} test, {SIM_SECONDS:g} s per activity")


LOADERS = {"basic": ba.load_basic, "watch": ba.load_watch, "sim": load_sim, "wisdm": ba.load_wisdm_set}


def har_row(ds: ba.DataSet, work: Path, te: Any, y: np.ndarray, classes: list[str], features: int) -> dict[str, Any]:
    from har.artifacts.metadata import load_metadata
    from har.training.train import train

    d = TrainConfig()
    cfg = dataclasses.replace(d, window=dataclasses.replace(d.window, rate_hz=ds.rate_hz),
                              model=dataclasses.replace(d.model, rocket_features=features))
    name = f"rocket{features}" if features else "default"
    model_dir, bundle = work / f"{name}_model", work / f"{name}_bundle"
    t0 = time.monotonic()
    res = train([ds.train_dir], model_dir, cfg, test_data=[ds.test_dir], progress=False, echo=lambda s: None,
                force=ds.force)
    t_train = time.monotonic() - t0
    refused = ba._export_int8(model_dir, bundle)
    row = ba._bundle_row(f"har defaults{' + rocket ' + str(features) if features else ''} (int8)", bundle, te, y,
                         classes, t_train, f"{res.metrics['epochs_run']} epochs{refused}")
    v = load_metadata(bundle).verification
    row["export_agreement"] = v.get("agreement")
    row["export_keras_accuracy"] = v.get("keras_accuracy")
    row["export_int8_accuracy"] = v.get("accuracy")
    hist = json.loads((model_dir / "report.json").read_text()).get("history", {})
    for k in ("rocket_beta", "rocket_lstm", "rocket_val_accuracy"):
        if k in hist:
            row[k] = hist[k]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="basic,sim")
    ap.add_argument("--features", type=int, default=10_000)
    ap.add_argument("--skip-baseline", action="store_true", help="no row for the default without the branch")
    ap.add_argument("--skip-minirocket", action="store_true", help="no row for aeon's MiniRocket alone")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, help="keep the data, models and bundles here (default: a temporary directory)")
    a = ap.parse_args()
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="har-bench-rocket-") as tmp:
        if a.work is not None:
            a.work.mkdir(parents=True, exist_ok=True)
            tmp = str(a.work)
        for key in a.data.split(","):
            work = Path(tmp) / key
            ds = LOADERS[key](work, False)
            if isinstance(ds, str):
                print(f"{key}: {ds}", flush=True)
                continue
            wc = dataclasses.replace(TrainConfig().window, rate_hz=ds.rate_hz)
            tr, te, classes, ytr, y = ba.split_windows(ds, wc)
            print(f"\n{ds.name}: {ds.note}; {len(tr)} train / {len(te)} test windows", flush=True)
            rows = []
            for feats in ([] if a.skip_baseline else [0]) + [a.features]:
                t0 = time.monotonic()
                r = har_row(ds, work, te, y, classes, feats)
                rows.append(r)
                print(f"  {json.dumps(r)}  ({time.monotonic() - t0:.0f} s)", flush=True)
            mr = "skipped" if a.skip_minirocket else ba.minirocket(tr, ytr, te, y, classes)
            if isinstance(mr, dict):
                rows.append(mr)
                print(f"  {json.dumps(mr)}", flush=True)
            base = rows[0] if not a.skip_baseline else None
            print(f"\n| {ds.name} | int8 acc | float acc | int8=float | export agreement | kB | ms/window | beta |")
            print("|---|---|---|---|---|---|---|---|")
            for r in rows:
                ratio = ""
                if base is not None and r is not base and r.get("size_kb") and "float_accuracy" in r:
                    kb, ms = r["size_kb"] / base["size_kb"], r["ms_per_window"] / base["ms_per_window"]
                    ratio = f" ({kb:.1f}x kB, {ms:.1f}x ms)"
                print(f"| {r['model']} | {r['accuracy']:.4f} | {r.get('float_accuracy', float('nan')):.4f} | "
                      f"{r.get('int8_float_agreement', float('nan')):.4f} | {r.get('export_agreement')} | "
                      f"{r['size_kb']} | {r['ms_per_window']}{ratio} | {r.get('rocket_beta', '')} |", flush=True)
            out.append({"data": key, "rows": rows})
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
