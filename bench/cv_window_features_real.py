"""Subject-wise CV of one har configuration on a real data set's TRAINING subjects only (never the
test subjects of bench/bench_accuracy.py): `har train`'s defaults at the data's rate, with the
window-features branch set by the second argument (none, 64, 128,64 ...).

    python bench/cv_window_features_real.py watch|wisdm none|64|128,64 OUT.json

watch: seglearn's watch exercises (seglearn==1.2.5, the bench extra), subjects w01-w07 (w08-w10 are
bench_accuracy's test subjects and are not loaded); wisdm: WISDM 2019 watch, bench/wisdm.py's
TRAIN_SUBJECTS (HAR_WISDM_DIR). 3 leave-subjects-out folds of har.training.cv.run_cv (seed 0: the
folds of `har train --cv 3`); prints and writes mean +- std accuracy / macro-F1, per fold and per
subject."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from har.config import TrainConfig  # noqa: E402
from har.training.cv import run_cv  # noqa: E402

TEST_SUBJECTS_WATCH = ("w08", "w09", "w10")  # bench_accuracy.load_watch's test subjects


def load(dataset: str) -> tuple[list, float]:
    if dataset == "watch":
        from bench_accuracy import _rec
        from seglearn.datasets import load_watch

        d = load_watch()
        names = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
        recs = []
        for i, (x, y, s) in enumerate(zip(d["X"], d["y"], d["subject"], strict=True)):
            subj = f"w{int(s):02d}"
            if subj not in TEST_SUBJECTS_WATCH:
                recs.append(_rec(np.asarray(x)[:, :3], names[int(y)], subj, f"watch{i:03d}", 50.0, "seglearn-watch"))
        return recs, 50.0
    from wisdm import RATE_HZ, TRAIN_SUBJECTS, load_wisdm

    return load_wisdm(TRAIN_SUBJECTS), RATE_HZ


def main() -> None:
    dataset, wf, out = sys.argv[1], sys.argv[2], sys.argv[3]
    recs, rate = load(dataset)
    base = TrainConfig()
    feats = () if wf == "none" else tuple(int(v) for v in wf.split(","))
    cfg = dataclasses.replace(base, window=dataclasses.replace(base.window, rate_hz=rate),
                              model=dataclasses.replace(base.model, window_features=feats))
    classes = sorted({str(lab) for r in recs for lab in np.unique(r.labels)})
    print(dataset, "subjects", sorted({r.subject for r in recs}), "classes", classes, "window_features", feats)
    t0 = time.time()
    res = run_cv(recs, list(range(len(recs))), classes, cfg, folds=3)
    res["wall_s"] = time.time() - t0
    res["window_features"] = list(feats)
    print("per_subject", {s: round(v["accuracy"], 4) for s, v in res["per_subject"].items()})
    Path(out).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
