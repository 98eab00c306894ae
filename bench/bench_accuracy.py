"""Accuracy benchmark: har against peers on real data sets, identical windows for every model.

One run, for each data set: the windows are cut once with har's default WindowConfig (at the data
set's rate) and every model is trained on the training part and scored on the same test windows.

Data sets (nothing is copied into the repository; recordings go to a temporary directory):

* ``wisdm``: WISDM 2019 smartwatch accelerometer (../shared/data/wisdm2019-watch-accel, 20 Hz,
  6 activities), subjects 1600-1635 train, 1636-1650 test (skipped when ../shared is absent).
* ``watch``: seglearn's watch exercises (``seglearn==1.2.5``, a benchmark-only dependency:
  ``pip install -e '.[bench]'``; 50 Hz, 7 exercises, 10 subjects), subjects w01-w07 train, w08-w10 test.
* ``basic``: aeon's BasicMotions (10 Hz; accelerometer channels only; 4 activities), the
  archive's train/test split; no subject ids are published, so each case is its own subject.

Models (rows):

* ``har defaults (int8)``: ``har.training.train.train`` with the default TrainConfig (only the
  rate set to the data's), exported with ``export_bundle`` to an int8 bundle and scored on its live
  model (``model.tflite``, what `har run` uses) through the TFLite runtime.
* ``har tune winner (int8)``: ``har tune`` on the training recordings under the stated budget
  (``--tune-minutes``, ``--max-kb``, ``--max-ms``), window and hop pinned to the same windows,
  exported to int8 and scored like the defaults. Skipped with a clear line when `har tune` is not
  available. ``--tune-finalists N`` is passed on as ``har tune --finalists N``. With ``--keep DIR``
  a later run resumes the same study (finished trials and measured finalists are kept in
  ``DIR/SET/tune/study.db``): ``--reuse --tune-trials N`` with N the trials the study already holds
  (``har tune --trials N``) then starts no new trial and only picks, exports and scores the winner.
* ``Keras 2xLSTM(32)``: plain tf-keras LSTM(32) -> LSTM(32) -> softmax on per-axis standardised
  windows, Adam 1e-3, batch 64, 30 epochs, float.
* ``MiniRocket``: aeon's MiniRocketClassifier (10,000 kernels, ridge) on the same windows.

Columns: accuracy, float accuracy (har rows: the same bundle's float32 replay model,
``model_batch.tflite``, on the same windows: what int8 costs), macro-F1, worst test subject's
accuracy, train time (s, wall clock on this machine), model size (KB: int8 model.tflite; Keras
float32 weights; MiniRocket's fitted arrays) and ms per window (har: live model, one window per
invoke, 1 thread; Keras and MiniRocket: batched prediction over the test windows, per window).
``--json`` also records the date, commit, command and the load average at start and end: the
machine may be shared, so timings are ranges.

``--quick``: at most ``--quick-windows`` (default 3000) training windows per data set for the
peers (stratified subset) and at most 8 training subjects for har / tune on WISDM, Keras 10
epochs, tune 3 minutes: a smoke run, not the numbers to quote.

    python bench/bench_accuracy.py [--datasets basic,watch,wisdm] [--skip-har] [--skip-tune]
        [--skip-keras] [--skip-minirocket] [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from har.config import ExportConfig, TrainConfig, WindowConfig  # noqa: E402
from har.dataset import load_recordings, windows_for  # noqa: E402
from har.recording.format import Recording, RecordingMeta, write_recording  # noqa: E402
from har.scoring.metrics import compute_metrics, group_accuracy, subject_spread  # noqa: E402

KERAS_EPOCHS = 30
DATASETS = ("basic", "watch", "wisdm")
MODELS = ("har", "tune", "keras", "minirocket")


@dataclass
class DataSet:
    name: str
    rate_hz: float
    train_dir: Path
    test_dir: Path
    note: str
    force: bool = False  # train on data that fails har's plausibility checks (BasicMotions is not in g)


# -- data sets -------------------------------------------------------------------------------------
# --reuse: keep the recordings an earlier --keep run wrote (a recording's header holds the time it was
# written, so rewriting them would change the data fingerprint and the kept tune study would refuse them)
KEEP_WRITTEN = False


def _write(recs: list[Recording], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for r in recs:
        path = out / f"{r.meta.session_id}.csv"
        if not (KEEP_WRITTEN and path.is_file()):
            write_recording(path, r, overwrite=True)
    return out


def _rec(xyz: np.ndarray, label: str, subject: str, session: str, rate: float, device: str) -> Recording:
    n = xyz.shape[0]
    meta = RecordingMeta(session_id=session, subject=subject, device=device, rate_hz=rate, complete=True)
    return Recording(np.arange(n) / rate, np.ascontiguousarray(xyz, dtype=np.float32), np.full(n, label),
                     np.arange(n), meta)


def load_basic(work: Path, quick: bool) -> DataSet | str:
    try:
        from aeon.datasets import load_basic_motions
    except ImportError:
        return f"skipped: aeon not installed ({sys.executable} -m pip install aeon, or pip install -e '.[bench]')"
    out = []
    for split in ("train", "test"):
        x, y = load_basic_motions(split=split)
        recs = [_rec(x[i, :3].T, str(y[i]), f"{split}{i:02d}", f"{split}{i:02d}", 10.0, "basicmotions")
                for i in range(x.shape[0])]
        out.append(_write(recs, work / "basic" / split))
    # The UEA copy is scaled per series (not g): har's checks refuse it without force.
    return DataSet("BasicMotions", 10.0, out[0], out[1], "archive split, 40 / 40 cases, each its own subject",
                   force=True)


def load_watch(work: Path, quick: bool) -> DataSet | str:
    try:
        from seglearn.datasets import load_watch as seglearn_watch
    except ImportError:
        return (f"skipped: seglearn not installed (a benchmark-only dependency: {sys.executable} -m pip install "
                "seglearn==1.2.5, or pip install -e '.[bench]')")
    d = seglearn_watch()
    names = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    tr, te = [], []
    for i, (x, y, s) in enumerate(zip(d["X"], d["y"], d["subject"], strict=True)):
        subj = f"w{int(s):02d}"
        r = _rec(np.asarray(x)[:, :3], names[int(y)], subj, f"watch{i:03d}", 50.0, "seglearn-watch")
        (te if subj in ("w08", "w09", "w10") else tr).append(r)
    return DataSet("seglearn watch", 50.0, _write(tr, work / "watch" / "train"), _write(te, work / "watch" / "test"),
                   "subjects w01-w07 train, w08-w10 test")


def load_wisdm_set(work: Path, quick: bool) -> DataSet | str:
    from wisdm import RATE_HZ, TEST_SUBJECTS, TRAIN_SUBJECTS, WISDM_DIR, load_wisdm

    if not WISDM_DIR.is_dir():
        return f"skipped: WISDM not found at {WISDM_DIR} (../shared/data; set HAR_WISDM_DIR)"
    train_s = TRAIN_SUBJECTS[:8] if quick else TRAIN_SUBJECTS
    recs = load_wisdm(train_s + TEST_SUBJECTS)
    tr = [r for r in recs if r.subject in train_s]
    te = [r for r in recs if r.subject in TEST_SUBJECTS]
    note = f"subjects {train_s[0]}-{train_s[-1]} train, {TEST_SUBJECTS[0]}-{TEST_SUBJECTS[-1]} test"
    return DataSet("WISDM 2019 watch", RATE_HZ, _write(tr, work / "wisdm" / "train"),
                   _write(te, work / "wisdm" / "test"), note)


LOADERS: dict[str, Callable[[Path, bool], DataSet | str]] = {
    "basic": load_basic, "watch": load_watch, "wisdm": load_wisdm_set,
}


# -- models ------------------------------------------------------------------------------------------
def _row(model: str, y: np.ndarray, pred: np.ndarray, subjects: np.ndarray, classes: list[str], train_s: float,
         size_kb: float | None, ms: float | None, note: str = "") -> dict[str, Any]:
    m = compute_metrics(y, pred, classes)
    sp = subject_spread(group_accuracy(y, pred, subjects))
    return {"model": model, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "worst_subject": sp["worst_subject"], "worst_accuracy": sp["worst_accuracy"],
            "train_s": round(train_s, 1), "size_kb": size_kb, "ms_per_window": ms, "note": note}


def _bundle_row(model: str, bundle: Path, te: Any, y: np.ndarray, classes: list[str], train_s: float,
                note: str) -> dict[str, Any]:
    """Score a bundle's live model (batch 1, what `har run` computes) on the shared test windows."""
    from har.runtime.classifier import WindowClassifier
    from har.scoring.evaluate import bundle_predictor

    meta_classes = list(WindowClassifier.from_bundle(bundle, use_batch_model=False).classes)
    if meta_classes != classes:
        raise SystemExit(f"{model}: classes {meta_classes} differ from the windows' {classes}")
    fn, _ = bundle_predictor(bundle, "live")
    t0 = time.perf_counter()
    pred = np.asarray(fn(te.x)).argmax(1)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(te))
    size = (bundle / "model.tflite").stat().st_size / 1024
    row = _row(model, y, pred, te.subject, classes, train_s, round(size, 1), round(ms, 3), note)
    # The same graph in float32 (the bundle's replay model, model_batch.tflite): what int8 costs.
    if (bundle / "model_batch.tflite").is_file():
        ffn, _ = bundle_predictor(bundle, "replay")
        fpred = np.asarray(ffn(te.x)).argmax(1)
        row["float_accuracy"] = float(np.mean(fpred == y))
        row["int8_float_agreement"] = float(np.mean(fpred == pred))
    return row


def _export_int8(model_dir: Path, bundle: Path) -> str:
    """Export like `har deploy --quantize int8`; when its agreement check refuses the int8 model, export
    it anyway (check off) so the row still shows what int8 scores, and say so in the note."""
    from har.errors import ExportError
    from har.training.convert import export_bundle

    try:
        export_bundle(model_dir, bundle, ExportConfig(quantize="int8"), echo=lambda s: None)
        return ""
    except ExportError as e:
        shutil.rmtree(bundle, ignore_errors=True)
        export_bundle(model_dir, bundle, ExportConfig(quantize="int8"), echo=lambda s: None, min_agreement=0.0)
        return f"; har deploy refuses it: {e}".split(": try")[0]


def har_default(ds: DataSet, work: Path, te: Any, y: np.ndarray, classes: list[str],
                reuse: bool = False) -> dict[str, Any]:
    from har.training.train import train

    d = TrainConfig()
    cfg = dataclasses.replace(d, window=dataclasses.replace(d.window, rate_hz=ds.rate_hz))
    model_dir = work / "har_model"
    report = model_dir / "report.json"
    if reuse and report.is_file():  # --reuse: the model an earlier --keep run trained with the same code
        rep = json.loads(report.read_text())
        t_train, epochs, how = float(rep["train_seconds"]), rep["epochs_run"], " (model reused from an earlier run)"
    else:
        t0 = time.monotonic()
        res = train([ds.train_dir], model_dir, cfg, test_data=[ds.test_dir], progress=False,
                    echo=lambda s: None, force=ds.force)
        t_train, epochs, how = time.monotonic() - t0, res.metrics["epochs_run"], ""
    shutil.rmtree(work / "har_bundle", ignore_errors=True)
    refused = _export_int8(model_dir, work / "har_bundle")
    return _bundle_row("har defaults (int8)", work / "har_bundle", te, y, classes, t_train,
                       f"{epochs} epochs{how}{refused}")


def har_tuned(ds: DataSet, work: Path, te: Any, y: np.ndarray, classes: list[str], wc: WindowConfig,
              minutes: float, max_kb: float, max_ms: float, finalists: int = 3,
              trials: int | None = None) -> dict[str, Any] | str:
    exe = Path(sys.executable).with_name("har")
    har = [str(exe)] if exe.is_file() else [shutil.which("har") or "har"]
    probe = subprocess.run([*har, "tune", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "skipped: har tune not available"
    space = work / "space.json"
    space.write_text(json.dumps({"window_s": [wc.window_s], "hop_fraction": [wc.hop_s / wc.window_s]}))
    out = work / "tune"
    cmd = [*har, "tune", str(ds.train_dir), "--out", str(out), "--time-budget", f"{minutes:g}",
           "--max-kb", f"{max_kb:g}", "--max-ms", f"{max_ms:g}", "--rate", f"{ds.rate_hz:g}", "--space", str(space),
           "--finalists", str(finalists), *(["--trials", str(trials)] if trials else [])]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t_tune = time.monotonic() - t0
    if r.returncode != 0 or not (out / "best").is_dir():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"skipped: har tune failed ({last})"
    shutil.rmtree(work / "tune_bundle", ignore_errors=True)
    refused = _export_int8(out / "best", work / "tune_bundle")
    return _bundle_row("har tune winner (int8)", work / "tune_bundle", te, y, classes, t_tune,
                       f"budget {minutes:g} min, {max_kb:g} KB, {max_ms:g} ms{refused}")


def keras_baseline(tr: Any, ytr: np.ndarray, te: Any, y: np.ndarray, classes: list[str], epochs: int,
                   seed: int = 0) -> dict[str, Any]:
    from har.training._tf import import_tf

    tf, keras = import_tf()
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    mean = tr.x.reshape(-1, tr.x.shape[-1]).mean(0)
    std = tr.x.reshape(-1, tr.x.shape[-1]).std(0) + 1e-6
    xtr, xte = (tr.x - mean) / std, (te.x - mean) / std
    m = keras.Sequential([
        keras.Input(shape=xtr.shape[1:]),
        keras.layers.LSTM(32, return_sequences=True),
        keras.layers.LSTM(32),
        keras.layers.Dense(len(classes), activation="softmax"),
    ])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.monotonic()
    m.fit(xtr, ytr, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    t = time.monotonic() - t0
    t1 = time.perf_counter()
    pred = m.predict(xte, batch_size=256, verbose=0).argmax(1)
    ms = 1000 * (time.perf_counter() - t1) / max(1, len(te))
    return _row("Keras 2xLSTM(32) float", y, pred, te.subject, classes, t, round(m.count_params() * 4 / 1024, 1),
                round(ms, 3), f"{epochs} epochs")


def minirocket(tr: Any, ytr: np.ndarray, te: Any, y: np.ndarray, classes: list[str]) -> dict[str, Any] | str:
    try:
        from har.training.reference import minirocket_reference
        ref = minirocket_reference(tr.x, ytr, te.x, y, classes, te.subject, max_train=0)
    except Exception as e:  # aeon missing -> ConfigError with the pip line
        return f"skipped: {e}"
    return {"model": "MiniRocket (aeon)", "accuracy": ref["accuracy"], "macro_f1": ref["macro_f1"],
            "worst_subject": ref["subject_spread"]["worst_subject"],
            "worst_accuracy": ref["subject_spread"]["worst_accuracy"], "train_s": ref["fit_seconds"],
            "size_kb": ref["model_kb"], "ms_per_window": ref["ms_per_window"], "note": "10k kernels, ridge"}


# -- run -----------------------------------------------------------------------------------------------
def _fmt(v: Any, f: str) -> str:
    return "-" if v is None else format(v, f)


def table(name: str, rows: list[dict[str, Any]], skipped: list[str]) -> str:
    lines = [f"| {name} | accuracy | float acc. | macro-F1 | worst subject | train s | size KB | ms/window | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {_fmt(r['accuracy'], '.3f')} | {_fmt(r.get('float_accuracy'), '.3f')} | "
            f"{_fmt(r['macro_f1'], '.3f')} | {_fmt(r['worst_accuracy'], '.3f')} | {_fmt(r['train_s'], '.0f')} | "
            f"{_fmt(r['size_kb'], '.1f')} | {_fmt(r['ms_per_window'], '.3f')} | {r['note']} |"
        )
    lines += [f"| {s} | | | | | | | | |" for s in skipped]
    return "\n".join(lines)


def split_windows(ds: Any, wc: Any) -> tuple[Any, Any, list[str], np.ndarray, np.ndarray]:
    """The data set's train / test windows at window config ``wc``: (train, test restricted to the
    training classes, classes, train labels, test labels as class indices)."""
    tr_recs = load_recordings([ds.train_dir], progress=False)
    te_recs = load_recordings([ds.test_dir], progress=False)
    tr = windows_for(tr_recs, range(len(tr_recs)), wc)
    te = windows_for(te_recs, range(len(te_recs)), wc)
    classes = sorted(set(tr.y.tolist()))
    te = te.select(np.isin(te.y, classes))
    idx = {c: i for i, c in enumerate(classes)}
    ytr = np.array([idx[v] for v in tr.y.tolist()], dtype=np.int64)
    y = np.array([idx[v] for v in te.y.tolist()], dtype=np.int64)
    return tr, te, classes, ytr, y


def run_dataset(key: str, work: Path, a: argparse.Namespace) -> dict[str, Any]:
    ds = LOADERS[key](work, a.quick)
    if isinstance(ds, str):
        print(f"{key}: {ds}", flush=True)
        return {"dataset": key, "skipped": ds}
    d = TrainConfig()
    wc = dataclasses.replace(d.window, rate_hz=ds.rate_hz)
    tr, te, classes, ytr, y = split_windows(ds, wc)
    print(f"\n{ds.name}: {ds.note}; {wc.window_s:g} s windows, hop {wc.hop_s:g} s at {wc.rate_hz:g} Hz: "
          f"{len(tr)} train / {len(te)} test windows, {len(classes)} classes", flush=True)
    peer_tr, peer_ytr = tr, ytr
    if a.quick and len(tr) > a.quick_windows:
        from har.training.reference import stratified_subset

        sel = stratified_subset(ytr, a.quick_windows, 0)
        peer_tr, peer_ytr = tr.select(np.isin(np.arange(len(tr)), sel)), ytr[sel]
        print(f"  --quick: peers train on {len(sel)} of {len(tr)} windows", flush=True)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []

    def add(name: str, fn: Callable[[], dict[str, Any] | str]) -> None:
        print(f"  {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            r = fn()
        except Exception as e:  # one failing row must not lose the others
            if os.environ.get("HAR_DEBUG"):
                raise
            r = f"failed: {type(e).__name__}: {(str(e).strip().splitlines() or ['?'])[0]}"
        if isinstance(r, str):
            skipped.append(f"{name}: {r}")
            print(f"  {name}: {r}", flush=True)
        else:
            rows.append(r)
            print(f"  {json.dumps(r)}  ({time.monotonic() - t0:.0f} s)", flush=True)

    if "har" in a.models:
        add("har defaults (int8)", lambda: har_default(ds, work / key, te, y, classes, a.reuse))
    if "tune" in a.models:
        mins = 3.0 if a.quick else a.tune_minutes.get(key, a.tune_minutes.get("*", 20.0))
        add("har tune winner (int8)",
            lambda: har_tuned(ds, work / key, te, y, classes, wc, mins, a.max_kb, a.max_ms, a.tune_finalists,
                              a.tune_trials))
    if "keras" in a.models:
        ep = 10 if a.quick else KERAS_EPOCHS
        add("Keras 2xLSTM(32)", lambda: keras_baseline(peer_tr, peer_ytr, te, y, classes, ep))
    if "minirocket" in a.models:
        add("MiniRocket", lambda: minirocket(peer_tr, peer_ytr, te, y, classes))
    title = f"{ds.name} ({len(tr)} / {len(te)} windows{', --quick' if a.quick else ''})"
    print("\n" + table(title, rows, skipped), flush=True)
    return {"dataset": key, "name": ds.name, "note": ds.note, "window": dataclasses.asdict(wc),
            "train_windows": len(tr), "test_windows": len(te), "quick": a.quick, "rows": rows, "skipped": skipped,
            "table": table(title, rows, skipped)}


def _minutes(text: str) -> dict[str, float]:
    """``--tune-minutes``: "20" (every data set) or "basic=5,watch=20,wisdm=30" ("*" for the rest)."""
    out: dict[str, float] = {}
    try:
        for part in text.split(","):
            k, _, v = part.rpartition("=")
            out[k.strip() or "*"] = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN or SET=MIN,..., got {text!r}") from None
    bad = sorted(set(out) - {*DATASETS, "*"})
    if bad:
        raise argparse.ArgumentTypeError(f"unknown data set(s) {', '.join(bad)}")
    return out


def _run_meta() -> dict[str, Any]:
    """When, on what code and under what load the numbers were taken (timings are ranges on a shared machine)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = None, False
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "commit": commit, "dirty": dirty,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "cpus": os.cpu_count(),
            "load_average_start": [round(v, 2) for v in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma separated subset of {', '.join(DATASETS)}")
    for m in MODELS:
        ap.add_argument(f"--skip-{m}", action="store_true", help=f"do not run the {m} row")
    ap.add_argument("--quick", action="store_true", help="smoke run: subsampled, fewer epochs (see the docstring)")
    ap.add_argument("--quick-windows", type=int, default=3000)
    ap.add_argument("--tune-minutes", type=_minutes, default={"*": 20.0},
                    help="har tune time budget per data set: MIN for every set, or SET=MIN,... (e.g. basic=5,wisdm=30)")
    ap.add_argument("--max-kb", type=float, default=64.0, help="har tune budget: int8 model size, KB")
    ap.add_argument("--max-ms", type=float, default=5.0, help="har tune budget: ms per window")
    ap.add_argument("--tune-finalists", type=int, default=3,
                    help="har tune --finalists: best trials trained on all data, exported and measured (default 3)")
    ap.add_argument("--tune-trials", type=int, default=None,
                    help="har tune --trials: stop at this many trials in the study (with the time budget)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --keep: reuse the har defaults model and the recordings an earlier run left there "
                    "(same code only)")
    a = ap.parse_args()
    a.models = [m for m in MODELS if not getattr(a, f"skip_{m}")]
    global KEEP_WRITTEN
    KEEP_WRITTEN = a.reuse
    keys = [k.strip() for k in a.datasets.split(",") if k.strip()]
    bad = sorted(set(keys) - set(DATASETS))
    if bad:
        ap.error(f"unknown data set(s) {', '.join(bad)} (choose from {', '.join(DATASETS)})")
    t_all = time.monotonic()
    meta = _run_meta()
    results = []
    with tempfile.TemporaryDirectory(prefix="har-bench-acc-") as tmp:
        work = a.keep or Path(tmp)
        for k in keys:
            results.append(run_dataset(k, work, a))
            if a.json:  # after every data set: a later failure loses nothing
                a.json.write_text(json.dumps({"run": meta, "datasets": results}, indent=2) + "\n")
    print()
    for r in results:
        print(r.get("table") or f"{r['dataset']}: {r['skipped']}")
        print()
        by = {row["model"]: row for row in r.get("rows", [])}
        h, mr = by.get("har defaults (int8)"), by.get("MiniRocket (aeon)")
        if h and mr:
            print(f"har defaults (int8) - MiniRocket: {100 * (h['accuracy'] - mr['accuracy']):+.1f} accuracy points, "
                  f"{h['macro_f1'] - mr['macro_f1']:+.3f} macro-F1\n")
    meta["total_s"] = round(time.monotonic() - t_all)
    meta["load_average_end"] = list(os.getloadavg())
    print(f"total {meta['total_s']} s; load average {meta['load_average_start']} at start, "
          f"{[round(v, 2) for v in meta['load_average_end']]} at the end")
    if a.json:
        a.json.write_text(json.dumps({"run": meta, "datasets": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
