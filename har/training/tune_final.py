"""Finalists of `har tune`: train on all the data, export to int8 TFLite, measure, pick the winner.

A finalist is one of the best complete trials by cross-validated accuracy. It is trained on every
recording of DATA (no test split: its score is the cross-validation estimate) for the number of
epochs the folds' early stopping chose, written as a normal model directory
(``DIR/finalists/trial-NNNN``), exported with :func:`har.training.convert.export_bundle` (int8,
builtin ops, verified against Keras as `har deploy` does) to ``DIR/finalists/trial-NNNN-int8``, and
the bundle's ``model.tflite`` size and median single-thread latency per window in this machine's
TFLite runtime are compared with ``--max-kb`` / ``--max-ms``. Measurements are kept in the study
(user attribute ``measured``), so a resumed or repeated run does not export a finalist twice.

The ``finalists`` best trials are always measured (the Pareto plot); while none of them fits the
budget, the next ones are tried, up to three times as many. The winner (best CV accuracy within
the budget) is copied to ``DIR/best``."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.metadata import ModelMetadata, save_metadata
from har.config import ExportConfig, TrainConfig, config_from_dict
from har.dataset import windows_for
from har.errors import HarError, TuneError
from har.recording.format import utc_now_iso

MEASURED_ATTR = "measured"
FINALISTS_DIR = "finalists"
BEST_DIR = "best"
TUNE_INFO = "tune.json"
MAX_VERIFY_WINDOWS = 300


def final_epochs(cfg: TrainConfig, epochs_run: list[int]) -> int:
    """Epochs for the fit on all data: the median over folds of the epoch early stopping kept
    (a fold that stopped early ran ``patience`` epochs past its best)."""
    best = [max(1, e - cfg.patience) if e < cfg.epochs else e for e in epochs_run if e > 0]
    return int(np.median(best)) if best else cfg.epochs


def fit_all(study: Any, plan: Any, trial: Any, out: Path, echo: Callable[[str], None]) -> Path:
    """Train ``trial`` (a finished trial of ``study``) on all recordings of ``plan``; write a model
    directory at ``out``."""
    from har.training.train import (
        DEPLOY_WINDOWS_FILE,
        MAX_CALIB_WINDOWS,
        WEIGHTS_FILE,
        _encode,
        _fit,
        _subset,
        fit_normalization,
    )

    ua = trial.user_attrs
    cfg = config_from_dict(TrainConfig, ua["config"])
    classes = list(ua["classes"])
    epochs = final_epochs(cfg, list(ua.get("epochs_run", [])))
    cfg = dataclasses.replace(cfg, epochs=epochs, cv_folds=0)
    recs = plan.recordings
    w = windows_for(recs, range(len(recs)), cfg.window)
    w = w.select(np.isin(w.y, classes))
    if len(w) == 0:
        raise TuneError(f"trial {trial.number}: no labelled windows to train on")
    norm = fit_normalization(w.x)
    y = _encode(w.y, classes)
    empty_x = np.zeros((0, *w.x.shape[1:]), dtype=np.float32)
    echo(f"[tune] finalist trial {trial.number}: training on all data ({len(w)} windows, {epochs} epochs)")
    model, hist = _fit(cfg, norm, w.x, y, empty_x, np.zeros(0, dtype=np.int64), len(classes), False, echo)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_weights(str(tmp / WEIGHTS_FILE))
    rng = np.random.default_rng(cfg.seed)
    ci = _subset(len(w), MAX_CALIB_WINDOWS, rng)
    hi = _subset(len(w), MAX_VERIFY_WINDOWS, rng)
    # No window is held out (the score is the CV estimate): export verification compares TFLite with
    # Keras on training windows, and their labels are withheld (-1) so no one reads a training accuracy.
    np.savez(
        tmp / DEPLOY_WINDOWS_FILE,
        calib_x=w.x[ci].astype(np.float32),
        heldout_x=w.x[hi].astype(np.float32),
        heldout_y=np.full(hi.shape[0], -1, dtype=np.int32),
    )
    cv = {k: ua.get(k) for k in ("accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std")}
    sig = study.user_attrs.get("har", {})
    per_class = {c: int(np.sum(w.y == c)) for c in classes}
    meta = ModelMetadata(
        classes=tuple(classes),
        window=cfg.window,
        normalization=norm,
        train_config=cfg,
        data_fingerprint=plan.fingerprint,
        metrics={
            "accuracy": cv["accuracy_mean"],
            "macro_f1": cv["macro_f1_mean"],
            "n_test_windows": 0,
            "estimate": f"{sig.get('folds', '?')}-fold cross-validation by {plan.by} (har tune)",
            "accuracy_std": cv["accuracy_std"],
            "macro_f1_std": cv["macro_f1_std"],
        },
        data_summary={
            "split_by": "none: trained on all data, scored by cross-validation",
            "train_subjects": sorted({r.subject for r in recs}),
            "val_subjects": [],
            "test_subjects": [],
            "windows": {"train": len(w), "val": 0, "test": 0},
            "windows_per_class": {"train": per_class},
            "files": {"train": plan.files},
            "tune": {"study": study.study_name, "trial": trial.number, "cv": cv},
        },
        created=utc_now_iso(),
    )
    save_metadata(tmp, meta)
    text = (
        f"har tune finalist: trial {trial.number} of study {study.study_name!r}\n"
        f"{ua.get('summary', '')}\n"
        f"cross-validation ({sig.get('folds', '?')} folds by {plan.by}): accuracy {cv['accuracy_mean']:.4f} "
        f"+- {cv['accuracy_std']:.4f}  macro-F1 {cv['macro_f1_mean']:.4f} +- {cv['macro_f1_std']:.4f}\n"
        f"trained on all data: {len(w)} windows of {', '.join(classes)}; {len(hist.get('loss', []))} epochs\n"
        "no test split: the cross-validation numbers above are this model's estimate on new people\n"
    )
    (tmp / "report.txt").write_text(text, encoding="utf-8")
    report = {"cv": cv, "history": hist, "trial": trial.number, "params": trial.params}
    (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def measure(model_dir: Path, bundle_dir: Path, min_agreement: float, echo: Callable[[str], None]) -> dict[str, Any]:
    """Export ``model_dir`` to int8 (builtin ops, verified) and return size and latency."""
    from har.training.convert import export_bundle

    try:
        r = export_bundle(
            model_dir, bundle_dir, ExportConfig(quantize="int8"), echo=lambda _s: None, overwrite=True,
            min_agreement=min_agreement, batch_size=1,
        )
    except HarError as e:
        return {"error": " ".join(str(e).split())[:300]}
    return {
        "size_kb": round(r.model.size_kb, 2),
        "latency_ms": round(float(r.model.latency_ms or 0.0), 4),
        "latency_p95_ms": round(float(r.model.latency_p95_ms or 0.0), 4),
        "agreement": r.model.agreement,
        "runtime": r.runtime_name,
        "bundle": str(bundle_dir),
    }


def fits(m: dict[str, Any] | None, max_kb: float | None, max_ms: float | None) -> bool:
    if not m or "error" in m:
        return False
    return (max_kb is None or m["size_kb"] <= max_kb) and (max_ms is None or m["latency_ms"] <= max_ms)


def _finalist_dir(out: Path, number: int) -> Path:
    return out / FINALISTS_DIR / f"trial-{number:04d}"


def _install_best(src: Path, out: Path, info: dict[str, Any]) -> Path:
    best = out / BEST_DIR
    tmp = out / f".{BEST_DIR}.tmp"
    old = out / f".{BEST_DIR}.old"
    for p in (tmp, old):
        if p.exists():
            shutil.rmtree(p)
    shutil.copytree(src, tmp)
    (tmp / TUNE_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if best.exists():
        os.replace(best, old)
    os.replace(tmp, best)
    if old.exists():
        shutil.rmtree(old)
    return best


def _budget_text(opts: Any) -> str:
    parts = []
    if opts.max_kb is not None:
        parts.append(f"--max-kb {opts.max_kb:g}")
    if opts.max_ms is not None:
        parts.append(f"--max-ms {opts.max_ms:g}")
    return " ".join(parts) or "no budget"


def finalize(study: Any, plan: Any, opts: Any, out: Path, echo: Callable[[str], None], ran: int) -> Any:
    """Measure finalists, choose the winner, write leaderboard, plot and ``out/best``."""
    import optuna

    from har.training import tune_report
    from har.training.tune import TuneResult

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        board = tune_report.build_leaderboard(study, {}, opts, winner=None)
        tune_report.write_leaderboard(board, out, opts)
        raise TuneError(f"no trial completed (see {out / tune_report.LEADERBOARD_TXT}): nothing to choose from")
    ranked = sorted(complete, key=lambda t: (-t.user_attrs["accuracy_mean"], -t.user_attrs["macro_f1_mean"], t.number))
    running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    if running:
        echo(f"[tune] note: {running} trial(s) still running in other processes are not considered")
    measured: dict[str, Any] = dict(study.user_attrs.get(MEASURED_ATTR, {}))
    winner = None
    limit = 3 * opts.finalists
    for rank, t in enumerate(ranked[:limit]):
        if rank >= opts.finalists and winner is not None:
            break
        key = str(t.number)
        if key not in measured:
            model_dir = _finalist_dir(out, t.number)
            try:
                fit_all(study, plan, t, model_dir, lambda _s: None)
                m = measure(model_dir, model_dir.with_name(model_dir.name + "-int8"), opts.min_agreement, echo)
            except (HarError, ValueError) as e:
                m = {"error": " ".join(str(e).split())[:300]}
            measured[key] = m
            study.set_user_attr(MEASURED_ATTR, measured)
        m = measured[key]
        ok = fits(m, opts.max_kb, opts.max_ms)
        if "error" in m:
            echo(f"[tune] finalist trial {t.number}: export failed: {m['error']}")
        else:
            echo(
                f"[tune] finalist trial {t.number}: CV accuracy {t.user_attrs['accuracy_mean']:.3f}, int8 "
                f"{m['size_kb']:.1f} KB, {m['latency_ms']:.3f} ms/window ({m['runtime']}): "
                + ("within budget" if ok else f"over budget ({_budget_text(opts)})")
            )
        if ok and winner is None:
            winner = t
    board = tune_report.build_leaderboard(study, measured, opts, winner=winner.number if winner else None)
    tune_report.write_leaderboard(board, out, opts)
    plot = tune_report.plot_pareto(board, out / tune_report.PARETO_PNG, opts)
    if winner is None:
        done = [m for m in measured.values() if "error" not in m]
        if done:
            small = min(m["size_kb"] for m in done)
            fast = min(m["latency_ms"] for m in done)
            detail = f"smallest measured {small:.1f} KB, fastest {fast:.3f} ms/window"
        else:
            detail = "no finalist exported"
        raise TuneError(
            f"no model meets the budget ({_budget_text(opts)}; {detail}; {len(measured)} finalist(s) measured): "
            f"loosen the budget or narrow the search (see {out / tune_report.LEADERBOARD_TXT})"
        )
    src = _finalist_dir(out, winner.number)
    if not (src / "metadata.json").is_file():  # measured elsewhere (another machine) or removed
        fit_all(study, plan, winner, src, lambda _s: None)
    entry = next(e for e in board if e["trial"] == winner.number)
    best = _install_best(src, out, {"study": study.study_name, "budget": _budget_text(opts), **entry})
    return TuneResult(out, board, entry, best, plot, ran, [])
