"""Writers of small input files in each ORIGINAL format `har import` reads (made at test time).

Values are synthetic (seeded) and printed with fixed decimals, so tests can compare exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

G = 9.80665


def signal(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """(n, 3) rounded values (6 decimals), around (0, 0, scale)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.3 * scale, (n, 3)) + np.array([0.0, 0.0, scale])
    return np.round(a, 6)


# --- generic CSV -------------------------------------------------------------------------------
def write_generic_csv(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], delimiter: str = ","
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [delimiter.join(header)] + [delimiter.join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- WISDM v1.1 ------------------------------------------------------------------------------
def write_wisdm_v11(path: Path) -> dict[str, np.ndarray]:
    """User 7: Walking 100 rows (row 30 has a trailing ',;', row 60 lacks z: dropped), Jogging 80
    rows after a 10 s time jump (two records share one line), then user 3 Sitting 60 rows, then
    user 7 Upstairs 40 rows (contiguous timestamps, but after another user's rows). Blank lines
    between blocks. Returns the m/s^2 values written, per block."""
    blocks = {
        "walk": signal(100, 1, G),
        "jog": signal(80, 2, G),
        "sit": signal(60, 3, G),
        "up": signal(40, 4, G),
    }
    blocks["walk"][0] = [G, -G, 0.5 * G]
    step = 50_000_000  # ns (20 Hz)
    lines: list[str] = []

    def rec(user: int, act: str, ts: int, v: np.ndarray) -> str:
        return f"{user},{act},{ts},{v[0]:.6f},{v[1]:.6f},{v[2]:.6f};"

    t = 1_000_000_000_000
    for i, v in enumerate(blocks["walk"]):
        line = rec(7, "Walking", t + i * step, v)
        if i == 30:
            line = line[:-1] + ",;"
        if i == 60:
            line = f"7,Walking,{t + i * step},{v[0]:.6f},{v[1]:.6f};"
        lines.append(line)
    lines.append("")
    t = t + 100 * step + 10_000_000_000
    jog = [rec(7, "Jogging", t + i * step, v) for i, v in enumerate(blocks["jog"])]
    jog[10:12] = [jog[10] + jog[11]]  # two records on one line
    lines += jog
    t_up = t + 80 * step
    lines.append("")
    lines += [rec(3, "Sitting", 5_000_000_000 + i * step, v) for i, v in enumerate(blocks["sit"])]
    lines += [rec(7, "Upstairs", t_up + i * step, v) for i, v in enumerate(blocks["up"])]
    lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return blocks


# --- WISDM 2019 ------------------------------------------------------------------------------
def write_wisdm2019(
    folder: Path, subject: int = 1600, codes: str = "ABDM", rows: int = 50, duplicate: bool = False, seed: int = 0
) -> tuple[Path, np.ndarray]:
    """``data_<subject>_accel_watch.txt``: one block of ``rows`` per activity code (m/s^2);
    ``duplicate`` writes all rows twice (the data_1629 quirk). Returns (path, values written once)."""
    folder.mkdir(parents=True, exist_ok=True)
    vals = signal(rows * len(codes), seed, G)
    lines = [f"{subject},{codes[i // rows]},{v[0]:.6f},{v[1]:.6f},{v[2]:.6f};" for i, v in enumerate(vals)]
    if duplicate:
        lines = lines + lines
    path = folder / f"data_{subject}_accel_watch.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, vals


# --- UCI HAR ---------------------------------------------------------------------------------
UCI_ACTIVITIES = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING")


def write_uci_har(root: Path, width: int = 128) -> dict[int, list[np.ndarray]]:
    """A tiny "UCI HAR Dataset": train has subject 1 with stream A (5 windows label 1, then 4
    windows label 2, overlapping throughout) and stream B (3 windows label 2); test has subject 2
    with one stream (4 windows label 3). Windows overlap by 50%. Returns {subject: [streams]}."""
    hop = width // 2
    (root / "activity_labels.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "activity_labels.txt").write_text(
        "".join(f"{i} {n}\n" for i, n in enumerate(UCI_ACTIVITIES, 1)), encoding="utf-8"
    )
    plan = {"train": [(1, [(1, 5), (2, 4)]), (1, [(2, 3)])], "test": [(2, [(3, 4)])]}
    streams: dict[int, list[np.ndarray]] = {}
    seed = 10
    for split, items in plan.items():
        wins, ys, subs = [], [], []
        for subj, runs in items:
            nwin = sum(k for _, k in runs)
            seed += 1
            s = signal(hop * (nwin + 1), seed)
            streams.setdefault(subj, []).append(s)
            labels = [lab for lab, k in runs for _ in range(k)]
            for i in range(nwin):
                wins.append(s[i * hop : i * hop + width])
                ys.append(labels[i])
                subs.append(subj)
        d = root / split / "Inertial Signals"
        d.mkdir(parents=True, exist_ok=True)
        for ax in range(3):
            text = "".join(" " + " ".join(f"{v: .7e}" for v in w[:, ax]) + "\n" for w in wins)
            (d / f"total_acc_{'xyz'[ax]}_{split}.txt").write_text(text, encoding="utf-8")
        (root / split / f"y_{split}.txt").write_text("".join(f"{y}\n" for y in ys), encoding="utf-8")
        (root / split / f"subject_{split}.txt").write_text("".join(f"{s}\n" for s in subs), encoding="utf-8")
    return streams


# --- UCI HAPT --------------------------------------------------------------------------------
HAPT_ACTIVITIES = (
    "WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
    "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND",
)  # fmt: skip
HAPT_SPANS = [(1, 1, 5, 21, 120), (1, 1, 7, 121, 150), (1, 1, 4, 200, 290), (2, 1, 1, 1, 200)]


def write_uci_hapt(root: Path, spans: Sequence[tuple[int, int, int, int, int]] = HAPT_SPANS) -> dict[int, np.ndarray]:
    """RawData/acc_exp01_user01.txt (300 rows), acc_exp02_user01.txt (200 rows), labels.txt with
    ``spans`` (exp user activity start end, 1-based) and activity_labels.txt (with trailing blanks)."""
    raw = root / "RawData"
    raw.mkdir(parents=True, exist_ok=True)
    (root / "activity_labels.txt").write_text(
        "".join(f"{i} {n}           \n" for i, n in enumerate(HAPT_ACTIVITIES, 1)), encoding="utf-8"
    )
    data = {1: signal(300, 21), 2: signal(200, 22)}
    for exp, a in data.items():
        text = "".join(f"{v[0]:.10f} {v[1]:.10f} {v[2]:.10f}\n" for v in a)
        (raw / f"acc_exp{exp:02d}_user01.txt").write_text(text, encoding="utf-8")
    (raw / "labels.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in spans), encoding="utf-8")
    return data


# --- UEA/UCR .ts -----------------------------------------------------------------------------
def write_ts(path: Path, cases: Sequence[tuple[np.ndarray, str]], missing: bool = False) -> Path:
    """A ``.ts`` file with 3 dimensions; ``missing`` puts a ``?`` in the second case."""
    labels = sorted({lab for _, lab in cases})
    head = [
        "# synthetic test file",
        "@problemName TinyMotions",
        "@timeStamps false",
        "@missing " + ("true" if missing else "false"),
        "@univariate false",
        "@dimensions 3",
        "@equalLength true",
        f"@seriesLength {cases[0][0].shape[0]}",
        "@classLabel true " + " ".join(labels),
        "@data",
    ]
    body = []
    for k, (a, lab) in enumerate(cases):
        dims = [",".join(f"{v:.6f}" for v in a[:, d]) for d in range(3)]
        if missing and k == 1:
            dims[1] = "?," + dims[1].split(",", 1)[1]
        body.append(":".join(dims) + ":" + lab)
    path.write_text("\n".join(head + body) + "\n", encoding="utf-8")
    return path


# --- Edge Impulse ----------------------------------------------------------------------------
def write_edge_impulse(path: Path, values: np.ndarray, interval_ms: float = 20.0, units: str = "m/s2") -> Path:
    """A data acquisition JSON with sensors accX/accY/accZ in ``units`` plus a gyro column."""
    v = np.asarray(values, dtype=np.float64)
    rows = [[round(float(a), 6), round(float(b), 6), 0.5, round(float(c), 6)] for a, b, c in v]
    doc = {
        "protected": {"ver": "v1", "alg": "HS256", "iat": 1700000000},
        "signature": "ab" * 32,
        "payload": {
            "device_name": "aa:bb:cc",
            "device_type": "TEST_BOARD",
            "interval_ms": interval_ms,
            "sensors": [
                {"name": "accX", "units": units},
                {"name": "accY", "units": units},
                {"name": "gyrX", "units": "dps"},
                {"name": "accZ", "units": units},
            ],
            "values": rows,
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path
