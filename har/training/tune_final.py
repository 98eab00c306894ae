"""Finalists of `har tune`: train on all the data, export to int8 TFLite, measure, pick the winner.

A finalist is one of the best complete trials by cross-validated accuracy. It is trained on all of
DATA (no test split: its score is the cross-validation estimate) except the validation part early
stopping watches (:func:`validation_split`), written as a normal model directory
(``DIR/finalists/trial-NNNN``), exported with :func:`har.training.convert.export_bundle` (int8,
builtin ops, verified against Keras as `har deploy` does) to ``DIR/finalists/trial-NNNN-int8``, and
the bundle's ``model.tflite`` size and median single-thread latency per window in this machine's
TFLite runtime are compared with ``--max-kb`` / ``--max-ms``. Measurements are kept in the study
(user attribute ``measured``), so a resumed or repeated run does not export a finalist twice.

The ``finalists`` best trials are always measured (the Pareto plot); while none of them fits the
budget, the next ones are tried, up to three times as many. The winner (best CV accuracy within
the budget) is copied to ``DIR/best``.

Finalists are taken in the order of :func:`rank_trials`: by CV accuracy, except that a trial goes
ahead of `har train`'s default configuration only when it beats the default by more than one
standard error of the paired fold differences (the same folds score both; the one-standard-error
rule). Three folds of a few subjects are noisy, and the best of many noisy scores is optimistic: a
short search should not trade the known-good default for a configuration that was merely lucky."""

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
from har.errors import HarError, TuneError
from har.recording.format import utc_now_iso
from har.scoring.metrics import paired_gain

MEASURED_ATTR = "measured"
FINALISTS_DIR = "finalists"
BEST_DIR = "best"
TUNE_INFO = "tune.json"
MAX_VERIFY_WINDOWS = 300


def _fitting() -> tuple[Any, Any, Any]:
    """``(fit, encode, fit_normalization)``: har.training.fit where it exists (shared by train and cv),
    else the same functions from har.training.train, where they lived before."""
    try:
        from har.training.fit import encode, fit_model, fit_normalization

        return fit_model, encode, fit_normalization
    except ImportError:
        from har.training.train import _encode, _fit, fit_normalization

        return _fit, _encode, fit_normalization


def validation_split(plan: Any, seed: int, fraction: float) -> tuple[list[int], list[int]]:
    """Recording indices ``(train, validation)`` for the final fit: validation subjects carved as
    `har train` does, or, with folds over recordings, a label-stratified fraction of the recordings
    (at least one of every label that has two or more). Early stopping watches the validation part."""
    from har.dataset import carve_validation

    recs = plan.recordings
    fraction = fraction or 0.2
    if plan.by == "subject":
        _, va_keys = carve_validation([r.subject for r in recs], fraction, seed + 1)
        vs = set(va_keys)
        val_idx = [i for i, r in enumerate(recs) if r.subject in vs]
        return [i for i in range(len(recs)) if i not in set(val_idx)], val_idx
    from har.training.tune import _majority_label

    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        by_label.setdefault(_majority_label(r), []).append(i)
    rng = np.random.default_rng(seed + 1)
    val: set[int] = set()
    for label in sorted(by_label):
        group = by_label[label]
        if len(group) >= 2:
            k = min(len(group) - 1, max(1, int(round(fraction * len(group)))))
            val |= {group[j] for j in rng.permutation(len(group))[:k]}
    return [i for i in range(len(recs)) if i not in val], sorted(val)


def gain_over_default(t: Any, default: Any) -> tuple[float, float]:
    """``(gain, standard error)`` of trial ``t``'s CV accuracy over ``default``'s, from the paired
    fold accuracies (both scored on the same folds). Standard error 0 with fewer than 2 folds."""
    a = np.asarray(t.user_attrs.get("fold_accuracy") or [t.user_attrs["accuracy_mean"]], dtype=float)
    b = np.asarray(default.user_attrs.get("fold_accuracy") or [default.user_attrs["accuracy_mean"]], dtype=float)
    if a.shape != b.shape or a.size < 2:
        return float(t.user_attrs["accuracy_mean"] - default.user_attrs["accuracy_mean"]), 0.0
    return paired_gain(a, b)


def beats_default(t: Any, default: Any) -> bool:
    """True when ``t`` beats ``default`` by more than one standard error (:func:`gain_over_default`)."""
    gain, se = gain_over_default(t, default)
    return gain > se  # se >= 0, so a tie (gain 0, se 0) does not beat it


def default_of(trials: list[Any]) -> Any | None:
    """The complete trial that ran `har train`'s default configuration (the first, if several did)."""
    from har.training.tune_space import DEFAULT_ATTR

    ours = [t for t in trials if DEFAULT_ATTR in t.user_attrs]
    return min(ours, key=lambda t: t.number) if ours else None


def rank_trials(complete: list[Any]) -> list[Any]:
    """Complete trials in the order finalists are taken (see the module docstring)."""
    by_acc = sorted(complete, key=lambda t: (-t.user_attrs["accuracy_mean"], -t.user_attrs["macro_f1_mean"], t.number))
    default = default_of(complete)
    if default is None:
        return by_acc
    ahead = [t for t in by_acc if t is not default and beats_default(t, default)]
    return ahead + [default] + [t for t in by_acc if t is not default and t not in ahead]


def fit_all(study: Any, plan: Any, trial: Any, out: Path, echo: Callable[[str], None]) -> Path:
    """Train ``trial`` (a finished trial of ``study``) on all recordings of ``plan`` (minus the
    validation part early stopping watches, see :func:`validation_split`); write a model directory
    at ``out``."""
    from har.training.train import DEPLOY_WINDOWS_FILE, MAX_CALIB_WINDOWS, WEIGHTS_FILE

    fit, encode, fit_normalization = _fitting()
    ua = trial.user_attrs
    cfg = dataclasses.replace(config_from_dict(TrainConfig, ua["config"]), cv_folds=0)
    classes = list(ua["classes"])
    recs = plan.recordings
    tr_idx, va_idx = validation_split(plan, cfg.seed, cfg.val_fraction)
    w = plan.windows(recs, tr_idx, cfg.window)  # windows_for, or a window cache's (har tune --cache)
    w = w.select(np.isin(w.y, classes))
    va = plan.windows(recs, va_idx, cfg.window)
    va = va.select(np.isin(va.y, classes))
    if len(w) == 0:
        raise TuneError(f"trial {trial.number}: no labelled windows to train on")
    from har.training.train import _subset

    norm = fit_normalization(w.x)
    echo(f"[tune] finalist trial {trial.number}: training on all data ({len(w)} windows, {len(va)} for validation)")
    from har.training.distill import teacher_groups
    from har.training.fit import validation_groups

    model, hist = fit(
        cfg, norm, w.x, encode(w.y, classes), va.x, encode(va.y, classes), len(classes), False, lambda _s: None,
        groups=teacher_groups(cfg.distill, w), val_groups=validation_groups(va),
    )
    hist = {k: v for k, v in hist.items() if isinstance(v, list)}
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_weights(str(tmp / WEIGHTS_FILE))
    rng = np.random.default_rng(cfg.seed)
    ci = _subset(len(w), MAX_CALIB_WINDOWS, rng)
    # Export verification (TFLite against Keras) runs on the validation windows, which were never
    # trained on; without any, on training windows with their labels withheld (-1), so that no one
    # reads a training accuracy as a score. The model's score is the CV estimate.
    if len(va):
        hi = _subset(len(va), MAX_VERIFY_WINDOWS, rng)
        hx, hy = va.x[hi], encode(va.y[hi], classes).astype(np.int32)
    else:
        hi = _subset(len(w), MAX_VERIFY_WINDOWS, rng)
        hx, hy = w.x[hi], np.full(hi.shape[0], -1, dtype=np.int32)
    np.savez(
        tmp / DEPLOY_WINDOWS_FILE,
        calib_x=w.x[ci].astype(np.float32),
        heldout_x=hx.astype(np.float32),
        heldout_y=hy,
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
            "split_by": "none: trained on all data (validation part for early stopping), scored by cross-validation",
            "train_subjects": sorted({recs[i].subject for i in tr_idx}),
            "val_subjects": sorted({recs[i].subject for i in va_idx}),
            "test_subjects": [],
            "windows": {"train": len(w), "val": len(va), "test": 0},
            "windows_per_class": {"train": per_class},
            "files": {
                "train": [str(recs[i].path) for i in tr_idx if recs[i].path],
                "val": [str(recs[i].path) for i in va_idx if recs[i].path],
            },
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
        f"trained on all data: {len(w)} windows of {', '.join(classes)}, {len(va)} validation windows "
        f"(early stopping); {len(hist.get('loss', []))} epochs\n"
        "no test split: the cross-validation numbers above are this model's estimate on new data\n"
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
    ranked = rank_trials(complete)
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
                fit_all(study, plan, t, model_dir, echo)
                echo(f"[tune] finalist trial {t.number}: exporting to int8 TFLite and measuring ...")
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
        fit_all(study, plan, winner, src, echo)
    entry = next(e for e in board if e["trial"] == winner.number)
    best = _install_best(src, out, {"study": study.study_name, "budget": _budget_text(opts), **entry})
    return TuneResult(out, board, entry, best, plot, ran, [])
