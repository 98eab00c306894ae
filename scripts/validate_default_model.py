"""Score a bundle on the VALIDATION seeds of models/default (inference only, real TFLite runtime).

    python scripts/validate_default_model.py [BUNDLE] [--smooth SPEC ...] [--model replay]

The recipe in scripts/rebuild_default_model.sh is chosen on these numbers. The seeds here are
neither training seeds (the rebuild script's) nor the test seeds of tests/test_default_accuracy.py
(17 and 18), which are only looked at once the recipe is fixed. Same measures as the test:

* fresh wearers: `har simulate --seed S --subjects 10 --seconds 40` for each seed in FRESH_SEEDS,
  scored by `har evaluate` (the int8 live model): mean window accuracy and the worst wearer;
* live streams: for each seed in LIVE_SEEDS, 4 wearers x 12 activities of 10 s through the live
  window grid (`har replay --exact`) and the bundle's stored smoothing (or each --smooth SPEC):
  how many activity changes are shown within 3 s of their start.

``--model replay`` scores the fresh wearers with the bundle's float replay model instead (is the
int8 export or the float model the limit?) and skips the live streams.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from har.artifacts.metadata import load_metadata  # noqa: E402
from har.recording.format import write_recording  # noqa: E402
from har.recording.simulate import ACTIVITIES, generate_dataset, simulate_recording  # noqa: E402
from har.runtime.replay import replay  # noqa: E402
from har.runtime.smoothing import parse_spec  # noqa: E402
from har.scoring.evaluate import evaluate  # noqa: E402

FRESH_SEEDS = (5, 6, 7, 41, 97)
LIVE_SEEDS = (42, 98)
TEST_SEEDS = (17, 18)  # tests/test_default_accuracy.py: never used here
LATENCY_S = 3.0


def fresh_scores(bundle: Path, seed: int, work: Path, which: str = "live") -> tuple[float, float, str]:
    """(mean window accuracy, worst wearer's accuracy, worst wearer) on 10 fresh wearers."""
    d = work / f"fresh{seed}"
    if not d.exists():
        generate_dataset(d, subjects=10, seconds_per_activity=40.0, seed=seed)
    res = evaluate(bundle, [d], echo=lambda s: None, progress=False, which=which)
    sp = res["subject_spread"]
    per = {k: (v["accuracy"] if isinstance(v, dict) else v) for k, v in res["per_subject"].items()}
    worst = min(per, key=lambda k: per[k])
    return float(sp["mean_accuracy"]), float(sp["worst_accuracy"]), worst


def live_checks(bundle: Path, seed: int, specs: list[str], work: Path) -> dict[str, tuple[int, list[str]]]:
    """{spec: (activity changes checked, those not shown within LATENCY_S)} on 4 live streams."""
    meta = load_metadata(bundle)
    rng = np.random.default_rng(seed)
    streams = []
    for i in range(4):
        order = [str(a) for a in rng.permutation(ACTIVITIES)] + [str(a) for a in rng.permutation(ACTIVITIES)]
        schedule = [(a, 10.0) for a in order]
        s = 1000 * seed + i + 1
        rec = simulate_recording(schedule, subject=f"live{i}", subject_seed=s, seed=s, rate_hz=meta.window.rate_hz)
        path = write_recording(work / f"live{seed}_{i}.csv", rec, overwrite=True)
        streams.append((schedule, replay(bundle, path, exact=True)))
    out = {}
    for spec in specs:
        late: list[str] = []
        n = 0
        for i, (schedule, res) in enumerate(streams):
            if spec != "stored":
                res = res.with_smoothing(parse_spec(spec))
            ends = np.array([e for _, e in res.spans])
            t0 = 0.0
            for k, (act, secs) in enumerate(schedule):
                start, t0 = t0, t0 + secs
                if k == 0 or schedule[k - 1][0] == act:
                    continue
                n += 1
                j = int(np.searchsorted(ends, start + LATENCY_S + 1e-9, side="right")) - 1
                shown = res.smoothed[j] if j >= 0 else None
                if shown != act:
                    late.append(f"live{i} {schedule[k - 1][0]}->{act} at {start:g} s: {shown}")
        out[spec] = (n, late)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", nargs="?", default=str(ROOT / "models" / "default"))
    ap.add_argument("--smooth", action="append", default=[], help="also score this live smoothing spec")
    ap.add_argument(
        "--model", choices=("live", "replay"), default="live", help="score the int8 live or the float replay model"
    )
    args = ap.parse_args()
    assert not set(TEST_SEEDS) & (set(FRESH_SEEDS) | set(LIVE_SEEDS))
    bundle = Path(args.bundle)
    specs = ["stored", *args.smooth]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        means, worsts = [], []
        for seed in FRESH_SEEDS:
            mean, worst, who = fresh_scores(bundle, seed, work, args.model)
            means.append(mean)
            worsts.append(worst)
            print(f"validation seed {seed:3d}: mean {mean:.1%}  worst wearer {worst:.1%} ({who})", flush=True)
        print(f"validation, all fresh seeds [{args.model} model]: mean {np.mean(means):.1%}  "
              f"worst wearer {min(worsts):.1%}")
        if args.model != "live":
            return
        totals = {s: [0, []] for s in specs}
        for seed in LIVE_SEEDS:
            for spec, (n, late) in live_checks(bundle, seed, specs, work).items():
                totals[spec][0] += n
                totals[spec][1] += late
                print(f"live seed {seed:3d} [{spec}]: {n - len(late)}/{n} shown within {LATENCY_S:g} s", flush=True)
        for spec, (n, late) in totals.items():
            print(f"live, all seeds [{spec}]: {n - len(late)}/{n} within {LATENCY_S:g} s" + "".join(
                f"\n  late: {x}" for x in late))


if __name__ == "__main__":
    main()
