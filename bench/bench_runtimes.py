"""Runtime agreement: the same bundle in ai-edge-litert and in tflite-runtime, and int8 against float.

Issue 10 asks that every model run in both device runtimes (ai-edge-litert, and the fallback
tflite-runtime 2.14, which needs numpy < 2) and that its int8 live model lose at most 0.3 points to
the float model. This benchmark runs, for each BUNDLE and its recordings:

* a worker in each runtime's Python (``HAR_RUNTIME`` pins the runtime; the worker checks which
  interpreter module it really loaded): the bundle's live model (``model.tflite``, int8, batch 1,
  what `har run` computes) and its float32 replay model (``model_batch.tflite``) on every labelled
  window, cut exactly as `har evaluate` cuts them (the model's window, hop, rate and purity);
* `har replay --exact --json` on the first recording in each runtime (the CLI path end to end;
  its per-window labels are rebuilt from the timeline's segments).

Printed per bundle: argmax agreement of the live model between the runtimes (and the largest
probability difference), accuracy of int8 and float in each runtime, int8 - float in points
(target: at least -0.3), and the replay CLI's agreement.

tflite-runtime cannot share a venv with ai-edge-litert's numpy 2, so it needs a throwaway venv
(benchmark only; never part of the test suite):

    python3.11 -m venv .venv-tflr
    .venv-tflr/bin/pip install tflite-runtime==2.14.0 "numpy<2" click pyserial
    .venv-tflr/bin/pip install --no-deps -e .

    python bench/bench_runtimes.py [BUNDLE[=DATA[,DATA...]] ...] [--tflr-python .venv-tflr/bin/python] [--json F]

Without arguments: ``models/default`` on fresh simulated subjects (``har simulate``, seed 4242,
never used in training). ``BUNDLE=DATA`` scores a bundle on its own recordings (files or
directories), e.g. the default int8 bundles bench/bench_accuracy.py --keep DIR trains:
``DIR/wisdm/har_bundle=DIR/wisdm/test``. Without the tflite-runtime venv the benchmark says so and
exits 0 (skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TFLR = REPO / ".venv-tflr" / "bin" / "python"
SIM_SEED = 4242
MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}


# -- worker: runs inside one runtime's Python ---------------------------------------------------------
def worker(bundle: str, data: list[str], out: str) -> None:
    """Live (int8) and replay (float32) probabilities of ``bundle`` on ``data``'s labelled windows."""
    from har.artifacts.metadata import load_metadata
    from har.dataset import load_recordings, windows_for
    from har.scoring.evaluate import bundle_predictor

    meta = load_metadata(Path(bundle))
    recs = load_recordings(data, progress=False)
    w = windows_for(recs, range(len(recs)), meta.window)
    classes = list(meta.classes)
    w = w.select(np.isin(w.y, classes))
    y = np.array([classes.index(v) for v in w.y.tolist()], dtype=np.int64)
    res: dict[str, Any] = {"y": y}
    for which in ("live", "replay"):
        try:
            fn, _ = bundle_predictor(bundle, which)
        except Exception as e:  # a bundle without a replay model: say so, score the live one
            sys.stderr.write(f"{which}: {e}\n")
            continue
        t0 = time.perf_counter()
        res[which] = np.asarray(fn(w.x), dtype=np.float32)
        res[f"{which}_ms"] = np.float64(1000 * (time.perf_counter() - t0) / max(1, len(w)))
    loaded = [name for name, mod in MODULES.items() if mod in sys.modules or f"{mod}.interpreter" in sys.modules]
    np.savez(out, **res)
    Path(out + ".json").write_text(json.dumps({"runtime_loaded": loaded, "numpy": np.__version__}))


# -- driver ---------------------------------------------------------------------------------------------
def _run_worker(python: str, runtime: str, bundle: Path, data: list[str], out: Path) -> dict[str, Any]:
    env = {**os.environ, "HAR_RUNTIME": runtime, "PYTHONPATH": str(REPO)}
    cmd = [python, str(Path(__file__).resolve()), "--worker", str(bundle), str(out), *data]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{runtime} worker failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    info = json.loads(Path(str(out) + ".json").read_text())
    if info["runtime_loaded"] != [runtime]:
        raise SystemExit(f"{runtime} worker loaded {info['runtime_loaded']} instead")
    with np.load(out, allow_pickle=False) as z:
        res = {k: z[k] for k in z.files}
    res["numpy"] = info["numpy"]
    return res


def _replay_labels(python: str, runtime: str, bundle: Path, rec: str) -> tuple[list[str], float]:
    """Per-window predicted labels and accuracy from `har replay --exact --json` in ``runtime``."""
    env = {**os.environ, "HAR_RUNTIME": runtime, "PYTHONPATH": str(REPO)}
    cmd = [python, "-m", "har.cli", "replay", str(bundle), rec, "--exact", "--json", "--force"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"har replay in {runtime} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    d = json.loads(r.stdout)
    if d.get("runtime") != runtime:
        raise SystemExit(f"har replay ran {d.get('runtime')} instead of {runtime}")
    labels = [s["predicted"] for s in d["segments"] for _ in range(int(s["windows"]))]
    return labels, float(d["accuracy"])


def _simulate(out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "har.cli", "simulate", "--out", str(out), "--subjects", "3", "--seconds", "60",
           "--seed", str(SIM_SEED), "--overwrite"]
    r = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"har simulate failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return [str(out)]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def compare(bundle: Path, data: list[str], tflr: str, work: Path) -> dict[str, Any]:
    runs = {
        "ai-edge-litert": _run_worker(sys.executable, "ai-edge-litert", bundle, data, work / "litert.npz"),
        "tflite-runtime": _run_worker(tflr, "tflite-runtime", bundle, data, work / "tflr.npz"),
    }
    a, b = runs["ai-edge-litert"], runs["tflite-runtime"]
    y = a["y"]
    if not np.array_equal(y, b["y"]):
        raise SystemExit("the two runtimes' workers cut different windows")
    res: dict[str, Any] = {"bundle": str(bundle), "data": data, "windows": len(y),
                           "live_agreement": float(np.mean(a["live"].argmax(1) == b["live"].argmax(1))),
                           "live_max_prob_diff": float(np.abs(a["live"] - b["live"]).max()),
                           "runtimes": {}}
    if "replay" in a and "replay" in b:
        res["replay_agreement"] = float(np.mean(a["replay"].argmax(1) == b["replay"].argmax(1)))
    for name, r in runs.items():
        acc = float(np.mean(r["live"].argmax(1) == y))
        facc = float(np.mean(r["replay"].argmax(1) == y)) if "replay" in r else None
        res["runtimes"][name] = {
            "numpy": r["numpy"], "int8_accuracy": acc, "float_accuracy": facc,
            "int8_minus_float_points": None if facc is None else round(100 * (acc - facc), 2),
            "int8_float_agreement": float(np.mean(r["live"].argmax(1) == r["replay"].argmax(1)))
            if "replay" in r else None,
            "ms_per_window_live": round(float(r["live_ms"]), 3),
        }
    first = sorted(Path(data[0]).rglob("*.csv"))[0] if Path(data[0]).is_dir() else Path(data[0])
    la, acc_a = _replay_labels(sys.executable, "ai-edge-litert", bundle, str(first))
    lb, acc_b = _replay_labels(tflr, "tflite-runtime", bundle, str(first))
    same = len(la) == len(lb) and len(la) > 0
    res["har_replay"] = {"recording": str(first), "windows": len(la),
                         "agreement": float(np.mean(np.array(la) == np.array(lb))) if same else None,
                         "accuracy": {"ai-edge-litert": acc_a, "tflite-runtime": acc_b}}
    return res


def report(r: dict[str, Any]) -> str:
    lines = [f"{r['bundle']} on {', '.join(r['data'])}: {r['windows']} labelled windows",
             f"  live model (int8) argmax agreement ai-edge-litert vs tflite-runtime: {_pct(r['live_agreement'])}"
             f" (largest probability difference {r['live_max_prob_diff']:.2g})"]
    if "replay_agreement" in r:
        lines.append(f"  replay model (float32) agreement between the runtimes: {_pct(r['replay_agreement'])}")
    for name, v in r["runtimes"].items():
        d = v["int8_minus_float_points"]
        verdict = "" if d is None else ("  ok (>= -0.3)" if d >= -0.3 else "  OVER the 0.3-point budget")
        lines.append(f"  {name:15s} numpy {v['numpy']:7s} int8 {_pct(v['int8_accuracy'])}  float "
                     f"{_pct(v['float_accuracy'])}  int8-float {'-' if d is None else f'{d:+.2f}'} points{verdict}"
                     f"  ({v['ms_per_window_live']:.3f} ms/window live)")
    h = r["har_replay"]
    lines.append(f"  har replay --exact on {Path(h['recording']).name}: {h['windows']} windows, agreement "
                 f"{_pct(h['agreement'])}, accuracy {_pct(h['accuracy']['ai-edge-litert'])} (ai-edge-litert) / "
                 f"{_pct(h['accuracy']['tflite-runtime'])} (tflite-runtime)")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[4:], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="*", help="BUNDLE or BUNDLE=DATA[,DATA...] (default: models/default on "
                                                "fresh simulated subjects)")
    ap.add_argument("--tflr-python", default=str(DEFAULT_TFLR), help="Python of a venv with tflite-runtime")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args()
    if not Path(a.tflr_python).is_file():
        print(f"skipped: no tflite-runtime venv at {a.tflr_python} (create it as the docstring says: "
              "python3.11 -m venv .venv-tflr; .venv-tflr/bin/pip install tflite-runtime==2.14.0 'numpy<2' click "
              "pyserial; .venv-tflr/bin/pip install --no-deps -e .)")
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="har-bench-rt-") as tmp:
        t = Path(tmp)
        specs = a.bundles or [str(REPO / "models" / "default")]
        for i, spec in enumerate(specs):
            bundle, _, data = spec.partition("=")
            paths = [d for d in data.split(",") if d] or _simulate(t / f"sim{i}")
            work = t / f"b{i}"
            work.mkdir()
            r = compare(Path(bundle), paths, a.tflr_python, work)
            if not data:
                r["data"] = [f"har simulate --subjects 3 --seconds 60 --seed {SIM_SEED} (fresh subjects)"]
            print(report(r) + "\n", flush=True)
            results.append(r)
    if a.json:
        a.json.write_text(json.dumps({"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                      "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
