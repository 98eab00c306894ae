"""The earlier experiment behind har's training defaults, SUPERSEDED by bench/select_defaults.py:
it scored configurations on the WISDM test subjects (1636-1650), which broke "no test data in any
choice"; today's defaults come from cross-validation inside training data (docs/training.md).

Trains a few configurations with ``har.training.train.train`` on WISDM 2019 (subjects 1600-1635 train,
validation carved from them; 1636-1650 test; 20 Hz) or on a directory of har recordings
(``--data DIR --rate 50``, e.g. the simulator's data), and appends one JSON line per run to
``--log``. Bounded: ``--epochs`` (default 20) and early stopping.

    python bench/sweep_defaults.py --log /tmp/sweep.jsonl base aug conv_aug ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wisdm import TEST_SUBJECTS, write_wisdm  # noqa: E402

from har.config import AugmentConfig, ModelConfig, TrainConfig, WindowConfig  # noqa: E402

OFF = AugmentConfig(enabled=False)


def configs(rate: float, epochs: int, test_subjects: tuple[str, ...]) -> dict[str, TrainConfig]:
    """Named configurations: the old defaults ("base") and variations."""
    base = TrainConfig(
        window=WindowConfig(rate_hz=rate, window_s=2.56, hop_s=0.64),
        model=ModelConfig(lstm_units=(64,), dropout=0.2),
        epochs=epochs,
        patience=5,
        augment=OFF,
        lr_schedule="constant",
        test_subjects=test_subjects,
    )
    conv = dataclasses.replace(base.model, conv_filters=32, conv_kernel=5, conv_stride=2)
    r = dataclasses.replace
    c = {
        "base": base,
        "plateau": r(base, lr_schedule="plateau"),
        "aug": r(base, lr_schedule="plateau", augment=AugmentConfig()),
        "conv": r(base, lr_schedule="plateau", model=conv),
        "conv_aug": r(base, lr_schedule="plateau", model=conv, augment=AugmentConfig()),
        "conv_aug_u32": r(base, lr_schedule="plateau", model=r(conv, lstm_units=(32,)), augment=AugmentConfig()),
        "conv_aug_d05": r(base, lr_schedule="plateau", model=r(conv, dropout=0.5), augment=AugmentConfig()),
        "conv_aug_w4": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=4.0, hop_s=0.64),
            lr_schedule="plateau",
            model=conv,
            augment=AugmentConfig(),
        ),
        "conv_aug_w5": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=5.0, hop_s=1.0),
            lr_schedule="plateau",
            model=conv,
            augment=AugmentConfig(),
        ),
        "conv2_aug_w4": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=4.0, hop_s=0.64),
            lr_schedule="plateau",
            model=r(conv, conv_layers=2),
            augment=AugmentConfig(),
        ),
        "conv2_aug_w5": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=5.0, hop_s=1.0),
            lr_schedule="plateau",
            model=r(conv, conv_layers=2),
            augment=AugmentConfig(),
        ),
        "conv2_aug_w5_d05": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=5.0, hop_s=1.0),
            lr_schedule="plateau",
            model=r(conv, conv_layers=2, dropout=0.5),
            augment=AugmentConfig(),
        ),
        "conv_aug_w5_rotz180": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=5.0, hop_s=1.0),
            lr_schedule="plateau",
            model=conv,
            augment=AugmentConfig(rotation_z_deg=180.0),
        ),
        "conv_aug_w5_rotz180_p08": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=5.0, hop_s=1.0),
            lr_schedule="plateau",
            model=conv,
            augment=AugmentConfig(rotation_z_deg=180.0, p=0.8),
        ),
        "conv_aug_hop128": r(
            base,
            window=WindowConfig(rate_hz=rate, window_s=2.56, hop_s=1.28),
            lr_schedule="plateau",
            model=conv,
            augment=AugmentConfig(),
        ),
    }
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--data", type=Path, default=None, help="har recordings (default: WISDM, written to a temp dir)")
    ap.add_argument("--rate", type=float, default=20.0, help="model rate, Hz")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--test-subjects", default=",".join(TEST_SUBJECTS))
    ap.add_argument("--log", type=Path, required=True)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="har-sweep-"))
    data = a.data or write_wisdm(tmp / "data")
    from har.training.train import train

    cfgs = configs(a.rate, a.epochs, tuple(s for s in a.test_subjects.split(",") if s))
    for name in a.names:
        cfg = cfgs[name]
        t0 = time.monotonic()
        res = train([data], tmp / name, cfg, progress=False, echo=lambda s: None)
        rep = res.metrics
        hist = rep["history"]
        row = {
            "data": str(a.data or "wisdm"),
            "name": name,
            "accuracy": round(rep["metrics"]["accuracy"], 4),
            "macro_f1": round(rep["metrics"]["macro_f1"], 4),
            "best_val_acc": round(max(hist.get("val_accuracy", [0.0])), 4),
            "epochs": rep["epochs_run"],
            "seconds": round(time.monotonic() - t0, 1),
            "train_windows": rep["data_summary"]["windows"]["train"],
        }
        print(json.dumps(row), flush=True)
        with a.log.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
