"""Cross-validation (inside training data only) of today's default with MiniRocket inside the model.

The same procedure, data loaders, folds and seeds as bench/select_defaults.py (``run``): the
candidate is ``TrainConfig()`` (ensemble 2) with ``model.rocket_features`` set. Rows are appended
to bench/results/rocket_cv.jsonl (an interrupted run resumes); compare them with
select_defaults.jsonl's rows for the same data: the default ("... + ensemble 2", stage 3; the
fields added since keep their old meaning by default) and "MiniRocket (aeon; reference, ...)".

    nice -n 10 python bench/cv_rocket.py [--data basic,watch] [--features 10000] [--folds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import select_defaults as sd  # noqa: E402

from har.config import TrainConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rocket_cv.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="basic,watch")
    ap.add_argument("--features", type=int, default=10_000)
    ap.add_argument("--folds", type=int, default=2)
    a = ap.parse_args()
    d = TrainConfig()
    cfg = dataclasses.replace(d, model=dataclasses.replace(d.model, rocket_features=a.features))
    name = f"default (ensemble 2) + rocket {a.features}"
    import har.training.cv as cv

    orig = cv.run_cv

    def run_cv(*args: object, **kwargs: object) -> dict:  # the head's combination chosen in each fold
        res = orig(*args, **kwargs)
        print("  rocket choice per fold (beta, LSTM kept):",
              [(f.get("rocket_beta"), f.get("rocket_lstm")) for f in res["folds"]], flush=True)
        return res

    cv.run_cv = run_cv  # type: ignore[assignment]
    sd.run({name: cfg}, a.data.split(","), a.folds, RESULTS, stage=7)
    rows = {(r["data"], r["candidate"]): r for r in sd._done(sd.RESULTS)}
    for r in sd._done(RESULTS):
        base = [v for (dn, c), v in rows.items() if dn == r["data"] and c.endswith("+ ensemble 2") and v["stage"] == 3]
        ref = rows.get((r["data"], sd.REFERENCE))
        print(json.dumps({"data": r["data"], "candidate": r["candidate"], "rocket": r["accuracy_mean"],
                          "default": base[0]["accuracy_mean"] if base else None,
                          "minirocket": ref["accuracy_mean"] if ref else None, "folds": r["fold_accuracy"]}))


if __name__ == "__main__":
    main()
