"""`har tune`: model search under a device budget (Optuna), see docs/training.md "Model search".

1. DATA is loaded and checked before anything slow (two classes or more; K subjects for
   leave-subjects-out folds, or, with a single subject, K recordings for stratified folds).
2. The Optuna study lives in an RDB (SQLite ``DIR/study.db`` by default, any SQLAlchemy URL with
   ``storage``): an interrupted search resumes with its finished trials, and several processes or
   machines can search one study. A study remembers the data fingerprint, folds, rate and epochs it
   was started with and refuses to mix in scores of other data.
   The process that creates a new study enqueues its first trial: `har train`'s own default
   configuration (tune_space.default_params, as close as ``--space`` allows), so the search starts
   from a known-good baseline, as Edge Impulse's EON Tuner does, and is scored, pruned and measured
   like any other trial; the leaderboard marks it. A resumed study gets it again only when every
   earlier run of it was interrupted. Then come ``neighbours`` trials that each move one setting of
   the default (tune_space.NEIGHBOUR_MOVES), so that a short search refines the baseline before the
   sampler explores further away.
3. Each trial draws a :class:`~har.config.TrainConfig` (har.training.tune_space, TPE sampler,
   seeded per trial number) and scores it by cross-validation inside DATA
   (:func:`har.training.cv.run_cv`); the running mean accuracy is reported after each fold so that
   a percentile pruner stops bad trials early (see PRUNER). ``n_trials`` counts every trial in the study, whichever
   process ran it.
4. Finalists (har.training.tune_final): the best trials by CV accuracy are trained on all of DATA,
   exported to int8 TFLite and their size and latency measured; the best one within the budget is
   the winner, copied to ``DIR/best`` (a model directory for `har deploy`).
5. ``DIR/leaderboard.txt`` / ``.json``, ``DIR/configs/trial-NNNN.json`` (for `har train --config`) and
   ``DIR/pareto.png`` (har.training.tune_report).

Nothing here imports TensorFlow at module level; Optuna is imported inside :func:`tune`."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from har.config import TrainConfig, WindowConfig, config_to_dict
from har.dataset import fingerprint, load_recordings, windows_for
from har.errors import ConfigError, HarError, TuneError
from har.recording.format import Recording, find_recordings
from har.training.tune_space import (
    DEFAULT_ATTR,
    NEIGHBOUR_ATTR,
    SearchSpace,
    available,
    default_params,
    describe,
    moved_text,
    neighbour_params,
    suggest_config,
)

STUDY_DB = "study.db"
DEFAULT_STUDY = "har-tune"
DEFAULT_TRIALS = 20
UNKNOWN_SUBJECT = "unknown"
# Prune a trial when its running mean accuracy after 2 or more folds is in the bottom quarter of the
# complete trials' at the same fold (once 5 are complete). One fold alone is too noisy: a search on 6
# simulated subjects pruned trials at 0.96 after fold 1 because fold 1 was the easy one for everybody.
PRUNER = {"percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 1}
HEARTBEAT_S = 60  # a trial whose process died is marked failed after GRACE_S without heartbeat
GRACE_S = 180


@dataclass(frozen=True)
class TuneOptions:
    """Settings of one `har tune` run (the search space is separate: :class:`SearchSpace`)."""

    trials: int | None = None  # trials in the study (all processes); None with no time budget = DEFAULT_TRIALS
    time_budget_min: float | None = None  # stop starting trials after this many minutes
    max_kb: float | None = None  # int8 model.tflite size budget, KB
    max_ms: float | None = None  # latency budget, ms per window (median, 1 thread, this machine)
    storage: str | None = None  # SQLAlchemy URL; None = sqlite:///DIR/study.db
    study: str = DEFAULT_STUDY
    folds: int = 3
    rate_hz: float = WindowConfig().rate_hz
    epochs: int | None = None  # max epochs per fit; None = TrainConfig's default (early stopping either way)
    seed: int = 0
    finalists: int = 3  # top trials measured (int8 export); more are tried while none fits
    search_only: bool = False  # run trials only (workers of a shared study)
    min_agreement: float = 0.98  # int8 export verification, as `har deploy`
    lock_timeout_s: float = 30.0  # SQLite: wait this long for a lock held by another process
    cache: str | None = None  # window cache root (`har tune --cache DIR`, har.training.stream); None = in memory
    neighbours: int = 4  # trials after the default that each move one of its settings (tune_space.NEIGHBOUR_MOVES)

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.time_budget_min is not None and not (self.time_budget_min > 0 and math.isfinite(self.time_budget_min)):
            raise ConfigError(f"--time-budget must be a positive number of minutes, got {self.time_budget_min}")
        for name, v in (("--max-kb", self.max_kb), ("--max-ms", self.max_ms)):
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be positive, got {v}")
        if self.folds < 2:
            raise ConfigError(f"--folds must be at least 2, got {self.folds}")
        if self.neighbours < 0:
            raise ConfigError(f"--neighbours must be 0 or more, got {self.neighbours}")
        if (self.epochs is not None and self.epochs < 1) or self.finalists < 1:
            raise ConfigError("--epochs and --finalists must be at least 1")
        if not self.study.strip():
            raise ConfigError("--study must not be empty")

    @property
    def n_trials(self) -> int | None:
        if self.trials is None and self.time_budget_min is None:
            return DEFAULT_TRIALS
        return self.trials


@dataclass
class TuneResult:
    out_dir: Path
    leaderboard: list[dict[str, Any]]
    winner: dict[str, Any] | None  # the leaderboard entry of the winner (None with search_only)
    best_dir: Path | None
    plot: Path | None
    trials_run_here: int = 0
    notes: list[str] = field(default_factory=list)


# --- data ----------------------------------------------------------------------------------------
@dataclass
class DataPlan:
    """The recordings and how they are folded: ``key(rec)`` names each recording's fold group."""

    recordings: list[Recording]
    labels: list[str]
    by: str  # "subject" | "recording"
    groups: dict[int, str]  # recording index -> group key (subject, or "foldN")
    fingerprint: str
    files: list[str]
    windows: Callable[..., Any] = windows_for  # windows of recordings (a window cache's, with --cache)

    def key(self, rec: Recording) -> str:
        return self.groups[id(rec)]


def _majority_label(rec: Recording) -> str:
    labs = rec.labels[rec.labels != ""]
    if labs.size == 0:
        return ""
    vals, counts = np.unique(labs.astype(str), return_counts=True)
    return str(vals[int(np.argmax(counts))])


def stratified_groups(recs: Sequence[Recording], k: int, seed: int) -> list[str]:
    """Fold key ``fold1..foldK`` per recording: recordings are dealt to folds class by class (by
    their majority label, seeded shuffle within a class), so every fold gets a share of each class."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        by_label.setdefault(_majority_label(r), []).append(i)
    out = [""] * len(recs)
    j = 0
    for lab in sorted(by_label):
        idx = by_label[lab]
        for i in (idx[p] for p in rng.permutation(len(idx))):
            out[i] = f"fold{j % k + 1}"
            j += 1
    return out


def plan_data(data: Sequence[str | os.PathLike[str]], folds: int, seed: int, cache: str | None = None,
              rate_hz: float = WindowConfig().rate_hz, echo: Callable[[str], None] | None = None) -> DataPlan:
    """Load DATA and decide the folds; every reason it cannot be cross-validated is a TuneError.
    ``cache``: the recordings are read through window caches under that directory (one per window
    configuration, har.training.stream), never all windows in memory."""
    if not data:
        raise TuneError("no data given")
    windows: Callable[..., Any] = windows_for
    if cache is not None:
        from har.training.stream import CachedWindowsFor, fingerprint_of, indexed_recordings

        sources = [str(p) for p in find_recordings(list(data))]
        windows = CachedWindowsFor(cache, sources, echo=echo)
        first = windows.cache(WindowConfig(rate_hz=rate_hz))[0]
        recs: list[Any] = indexed_recordings(first, sources)
    else:
        recs = load_recordings(list(data), progress=False)
    if not recs:
        raise TuneError(f"no recordings found in {', '.join(str(d) for d in data)}")
    if cache is None:
        labels = sorted({str(v) for r in recs for v in np.unique(r.labels.astype(str))} - {""})
    else:  # the labels of every recording's samples, from the index
        labels = sorted({v for e in first.entries for v in e.labels})
    if not labels:
        raise TuneError("the data has no labelled samples: label it first (har record --label / har import)")
    if len(labels) < 2:
        raise TuneError(f"the data has only one class ({labels[0]}): a classifier needs at least 2")
    subjects = sorted({r.subject for r in recs} - {UNKNOWN_SUBJECT, ""})
    if len(subjects) >= 2:
        if len(subjects) < folds:
            raise TuneError(
                f"--folds {folds} needs {folds} subjects for leave-subjects-out folds, the data has {len(subjects)} "
                f"({', '.join(subjects)}): use --folds {len(subjects)}"
            )
        groups = [r.subject for r in recs]
        by = "subject"
    else:
        if len(recs) < 2:
            raise TuneError(
                f"only one recording ({recs[0].path or recs[0].meta.session_id}): cross-validation needs at least "
                f"{folds} recordings or subjects"
            )
        if len(recs) < folds:
            raise TuneError(
                f"--folds {folds} needs {folds} recordings (the data has one subject and {len(recs)} recordings): "
                f"use --folds {len(recs)}"
            )
        groups = stratified_groups(recs, folds, seed)
        by = "recording"
    files = [str(r.path) for r in recs if r.path is not None]
    return DataPlan(
        recordings=recs,
        labels=labels,
        by=by,
        groups={id(r): g for r, g in zip(recs, groups, strict=True)},
        fingerprint=fingerprint(files) if cache is None else fingerprint_of(first, files),
        files=files,
        windows=windows,
    )


# --- the study -----------------------------------------------------------------------------------
def storage_url(out_dir: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(out_dir / STUDY_DB).resolve()}"


def _redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported as written
        return url


def _db_error(url: str, e: BaseException) -> TuneError:
    text = " ".join(str(getattr(e, "orig", None) or e).split())
    low = text.lower()
    where = _redact(url)
    if "locked" in low:
        return TuneError(f"study database {where} is locked by another program (waited for it; try again later)")
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return TuneError(
            f"study database {where} is corrupt or not a database ({text[:120]}): move it away to start over"
        )
    if isinstance(e, (ImportError, ModuleNotFoundError)):
        return TuneError(f"storage {where} needs a database driver that is not installed ({text[:120]})")
    return TuneError(f"cannot use study database {where}: {text[:200]}")


class _TrialSeededTPE:
    """Factory for a TPE sampler whose random draws for trial N depend only on (seed, N): a run is
    reproducible alone, and two processes on one study (different trial numbers) never draw the
    same random sequence, so they do not propose the same configurations."""

    @staticmethod
    def make(seed: int, n_startup: int) -> Any:
        import optuna

        class TrialSeededTPE(optuna.samplers.TPESampler):
            def before_trial(self, study: Any, trial: Any) -> None:
                super().before_trial(study, trial)
                s = int(np.random.SeedSequence([seed, trial.number]).generate_state(1)[0])
                try:  # optuna's own RNGs (no public per-trial seeding API)
                    self._rng.rng.seed(s)
                    self._random_sampler._rng.rng.seed(s)
                except AttributeError:
                    self.reseed_rng()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return TrialSeededTPE(seed=seed, n_startup_trials=n_startup, multivariate=True, group=True)


def open_study(
    url: str,
    name: str,
    seed: int,
    n_startup: int,
    lock_timeout_s: float,
    first: dict[str, Any] | None = None,
    then: Sequence[dict[str, Any]] = (),
) -> tuple[Any, bool]:
    """Create or load the study (maximising CV accuracy); True when this call created it. Database
    problems become one-line TuneErrors.

    The creator enqueues ``first`` (``{"params": ..., "user_attrs": ...}``, `har train`'s default
    configuration) as the new study's first trial. Creating is one INSERT under the unique study
    name, so of several processes starting one new study exactly one enqueues it, and a loaded
    (resumed) study never does here (see :func:`_retry_interrupted_default`). ``then``: trials of the
    same form enqueued after it (the default's neighbours)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # har prints its own line per trial
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": lock_timeout_s}}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeat is "experimental"
                storage = optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs
                )
                how = {"sampler": _TrialSeededTPE.make(seed, n_startup),
                       "pruner": optuna.pruners.PercentilePruner(**PRUNER)}
                try:
                    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", **how)
                except optuna.exceptions.DuplicatedStudyError:
                    return optuna.load_study(study_name=name, storage=storage, **how), False
            break
        except (SQLAlchemyError, RuntimeError, ImportError, ValueError, OSError) as e:
            text = str(e).lower()
            # two processes creating the same new database at once: the loser sees the winner's tables
            if attempt < 2 and ("already exists" in text or "unique constraint" in text):
                time.sleep(0.5 + attempt)
                continue
            raise _db_error(url, e) from None
    else:
        raise AssertionError("unreachable")
    if first is not None:
        try:
            for t in (first, *then):
                study.enqueue_trial(t["params"], user_attrs=t["user_attrs"])
        except SQLAlchemyError as e:
            raise _db_error(url, e) from None
    return study, True


def default_trial(base: TrainConfig, space: SearchSpace) -> dict[str, Any]:
    """The trial that runs `har train`'s default configuration (``base``: TrainConfig() at the data's
    rate, with --epochs and --seed) within ``space``: ``{"params", "user_attrs", "moved"}``."""
    params, moved = default_params(base, space)
    return {"params": params, "user_attrs": {DEFAULT_ATTR: {"moved": moved}}, "moved": moved}


def neighbour_trials(base: TrainConfig, space: SearchSpace, n: int) -> list[dict[str, Any]]:
    """The trials enqueued after the default: each moves one of its settings (``{"params", "user_attrs"}``)."""
    return [{"params": p, "user_attrs": {NEIGHBOUR_ATTR: {"move": move}}}
            for p, move in neighbour_params(base, space, n)]


def _retry_interrupted_default(study: Any, first: dict[str, Any]) -> bool:
    """Enqueue the default trial again when the study has one and every run of it was interrupted
    (Ctrl-C, or its process died: failed without a har error); not when it completed, was pruned,
    failed with an error, or is waiting or running. True when enqueued. Two processes resuming at
    the same moment may both enqueue it: the second copy is then skipped as a duplicate, untrained."""
    ours = [t for t in study.get_trials(deepcopy=False) if DEFAULT_ATTR in t.user_attrs]
    if not ours or any(t.state.name != "FAIL" or t.user_attrs.get("note", "interrupted") != "interrupted"
                       for t in ours):
        return False
    study.enqueue_trial(first["params"], user_attrs=first["user_attrs"])
    return True


def _check_space(study: Any, space: SearchSpace, name: str) -> None:
    """A resumed study keeps each parameter's choices (Optuna cannot change them within a study)."""
    seen: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for pname, dist in t.distributions.items():
            seen.setdefault(pname, dist)
    for pname, dist in sorted(seen.items()):
        fname = "lstm_units" if pname.startswith("lstm_units_") else pname
        now = getattr(space, fname, None)
        old = list(getattr(dist, "choices", ()))
        if now is not None and old != list(now):
            raise TuneError(
                f"study {name!r} was searched with {fname} {old} (now {list(now)}): a study keeps its search space "
                "(the same --space, or another --study or --out)"
            )


def _check_signature(study: Any, sig: dict[str, Any], name: str) -> None:
    old = study.user_attrs.get("har")
    if old is None:
        study.set_user_attr("har", sig)
        return
    for k, v in sig.items():
        if k in old and old[k] != v:
            what = "other data" if k == "data_fingerprint" else f"{k} {old[k]!r} (now {v!r})"
            raise TuneError(
                f"study {name!r} was started with {what}: its scores cannot be mixed with this run's "
                "(use another --study or --out)"
            )


def _state(t: Any) -> str:
    return t.state.name.lower()


def _counted(study: Any, below: int | None = None) -> int:
    """Trials that use the trial budget: complete, pruned or running (skipped and failed do not)."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states) if below is None or t.number < below)


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Objective:
    """One trial: draw a config, cross-validate it, report each fold to the pruner."""

    def __init__(
        self, plan: DataPlan, base: TrainConfig, space: SearchSpace, opts: TuneOptions, echo: Callable[[str], None]
    ) -> None:
        self.plan, self.base, self.space, self.opts, self.echo = plan, base, space, opts, echo
        self._classes: dict[tuple[float, float], list[str]] = {}
        self.url = ""

    def classes_for(self, wc: WindowConfig) -> list[str]:
        k = (wc.window_s, wc.hop_s)
        if k not in self._classes:
            recs = self.plan.recordings
            w = self.plan.windows(recs, range(len(recs)), wc)
            self._classes[k] = sorted(set(w.y.tolist()))
        classes = self._classes[k]
        if len(classes) < 2:
            raise TuneError(
                f"windows of {wc.window_s:g} s leave {len(classes)} class(es) with pure windows (shorter windows, "
                "or longer recordings per activity)"
            )
        return classes

    def __call__(self, trial: Any) -> float:
        import optuna

        from har.training.cv import run_cv

        n_trials = self.opts.n_trials
        if n_trials is not None and _counted(trial.study, below=trial.number) >= n_trials:
            trial.set_user_attr("skipped", "the trial budget was used up by other processes")
            raise TuneError("trial budget used up")
        try:
            cfg = suggest_config(trial, self.base, self.space)
        except ValueError as e:  # Optuna: a value outside a parameter's choices in this study
            if DEFAULT_ATTR not in trial.user_attrs:
                raise ConfigError(f"study {self.opts.study!r}: {e} (use the same --space as before)") from None
            msg = f"failed: har's default (enqueued by an earlier run) is outside this search space: {e}"
            trial.set_user_attr("note", msg)
            self.echo(f"[tune] trial {trial.number} {msg}")
            raise TuneError(msg) from None
        dup = _duplicate_of(trial)
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            self.echo(f"[tune] trial {trial.number}: same configuration as trial {dup}, skipped")
            raise optuna.TrialPruned(f"duplicate of trial {dup}")
        trial.set_user_attr("config", config_to_dict(cfg))
        trial.set_user_attr("summary", describe(cfg))
        if DEFAULT_ATTR in trial.user_attrs:
            moved = trial.user_attrs[DEFAULT_ATTR].get("moved") or {}
            within = f" (within the search space: {moved_text(moved)})" if moved else ""
            self.echo(f"[tune] trial {trial.number} is har's default configuration{within}")
        elif NEIGHBOUR_ATTR in trial.user_attrs:
            self.echo(f"[tune] trial {trial.number} is har's default with {trial.user_attrs[NEIGHBOUR_ATTR]['move']}")
        k = self.opts.folds
        accs: list[float] = []
        f1s: list[float] = []

        def on_fold(i: int, m: dict[str, Any]) -> None:
            accs.append(float(m["accuracy"]))
            f1s.append(float(m["macro_f1"]))
            trial.set_user_attr("fold_accuracy", accs)
            trial.set_user_attr("fold_macro_f1", f1s)
            trial.report(float(np.mean(accs)), i)
            self.echo(
                f"[tune]   trial {trial.number} fold {i + 1}/{k}: accuracy {m['accuracy']:.3f}  "
                f"macro-F1 {m['macro_f1']:.3f}  ({m.get('epochs_run', '?')} epochs)"
            )
            if i < k - 1 and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {i + 1}")

        try:
            # inside the try: a Ctrl-C that lands right after this line still marks the trial interrupted
            self.echo(f"[tune] trial {trial.number}: {describe(cfg)}")
            classes = self.classes_for(cfg.window)
            res = run_cv(
                self.plan.recordings,
                list(range(len(self.plan.recordings))),
                classes,
                dataclasses.replace(cfg, cv_folds=k),
                key=self.plan.key,
                echo=lambda _s: None,
                on_fold=on_fold,
                **({} if self.plan.windows is windows_for else {"windows": self.plan.windows}),
            )
        except optuna.TrialPruned:
            trial.set_user_attr("note", f"pruned after fold {len(accs)}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("note", "interrupted")
            raise
        except (HarError, ValueError) as e:
            msg = " ".join(str(e).split())[:300]
            trial.set_user_attr("note", f"failed: {msg}")
            self.echo(f"[tune] trial {trial.number} failed: {msg}")
            raise TuneError(msg) from None
        res = self._choose_beta(trial, cfg, res)
        trial.set_user_attr("accuracy_mean", res["accuracy_mean"])
        trial.set_user_attr("accuracy_std", res["accuracy_std"])
        trial.set_user_attr("macro_f1_mean", res["macro_f1_mean"])
        trial.set_user_attr("macro_f1_std", res["macro_f1_std"])
        trial.set_user_attr("epochs_run", [int(f.get("epochs_run", 0)) for f in res["folds"]])
        trial.set_user_attr("classes", classes)
        return float(res["accuracy_mean"])

    def _choose_beta(self, trial: Any, cfg: TrainConfig, res: dict[str, Any]) -> dict[str, Any]:
        """With the MiniRocket branch at a fixed beta: choose the head's beta by the folds
        (har.training.rocket.choose_cv_beta over each fold's ``beta_sweep``, no training). A changed
        beta becomes the trial's config and score (its fold accuracies too, so the comparison with
        the default is on the same footing); the configured beta's score stays in ``rocket_beta_cv``."""
        from har.scoring.metrics import mean_std
        from har.training.rocket import choose_cv_beta

        sweeps = [f.get("beta_sweep") for f in res["folds"]]
        beta = cfg.model.rocket_beta
        if cfg.model.rocket_features <= 0 or isinstance(beta, str) or not sweeps or not all(sweeps):
            return res
        choice = choose_cv_beta(sweeps, float(beta))
        choice["configured_accuracy_mean"] = res["accuracy_mean"]
        choice["configured_macro_f1_mean"] = res["macro_f1_mean"]
        trial.set_user_attr("rocket_beta_cv", choice)
        table = ", ".join(f"{k} {v:.3f}" for k, v in choice["table"].items())
        if choice["beta"] == float(beta):
            self.echo(f"[tune]   trial {trial.number}: head beta {float(beta):g} kept by the folds ({table})")
            return res
        self.echo(
            f"[tune]   trial {trial.number}: head beta {choice['beta']:g} instead of {float(beta):g} by the folds "
            f"({100 * choice['gain']:+.1f} +- {100 * choice['se']:.1f} pts; {table})"
        )
        new = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, rocket_beta=choice["beta"]))
        trial.set_user_attr("config", config_to_dict(new))
        trial.set_user_attr("summary", describe(new))
        trial.set_user_attr("fold_accuracy", choice["fold_accuracy"])
        trial.set_user_attr("fold_macro_f1", choice["fold_macro_f1"])
        acc_m, acc_s = mean_std(choice["fold_accuracy"])
        f1_m, f1_s = mean_std(choice["fold_macro_f1"])
        return {**res, "accuracy_mean": acc_m, "accuracy_std": acc_s, "macro_f1_mean": f1_m, "macro_f1_std": f1_s}


def _duplicate_of(trial: Any) -> int | None:
    """The number of an earlier complete, pruned or running trial with exactly these parameters."""
    import optuna

    params = trial.params
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.PRUNED)
    for t in trial.study.get_trials(deepcopy=False, states=states):
        if t.number < trial.number and t.params == params and "duplicate_of" not in t.user_attrs:
            return int(t.number)
    return None


def _progress_line(
    study: Any, trial: Any, dur: float, started: float, durations: list[float], opts: TuneOptions
) -> str:
    n = opts.n_trials
    done = _counted(study)
    ua = trial.user_attrs
    if _state(trial) == "complete":
        head = (
            f"accuracy {ua.get('accuracy_mean', float('nan')):.3f} +- {ua.get('accuracy_std', 0.0):.3f}  "
            f"macro-F1 {ua.get('macro_f1_mean', float('nan')):.3f}"
        )
    else:
        head = ua.get("note") or _state(trial)
    try:
        best = study.best_trial
        best_s = f"best #{best.number} {best.value:.3f}"
    except ValueError:
        best_s = "no complete trial yet"
    elapsed = time.monotonic() - started
    etas = []
    if n is not None and durations:
        etas.append(max(0, n - done) * float(np.mean(durations)))
    if opts.time_budget_min is not None:
        etas.append(max(0.0, opts.time_budget_min * 60 - elapsed))
    eta = _fmt_s(min(etas)) if etas else "?"
    count = f"{done}/{n}" if n is not None else f"{done}"
    return (
        f"[tune] trial {trial.number} {head} ({dur:.0f} s) | {best_s} | {count} trials in the study | "
        f"elapsed {_fmt_s(elapsed)}, ETA {eta}"
    )


def run_search(
    study: Any,
    objective: _Objective,
    opts: TuneOptions,
    echo: Callable[[str], None],
    after_trial: Callable[[], None] = lambda: None,
) -> int:
    """Run trials until the study holds ``opts.n_trials`` or the time budget is spent. Returns the
    number of trials this process ran; ``after_trial()`` runs after each (the leaderboard so far).
    Ctrl-C: the running trial is marked failed ("interrupted"), finished trials stay in the study,
    and TuneInterrupted is raised."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    started = time.monotonic()
    deadline = started + opts.time_budget_min * 60 if opts.time_budget_min is not None else None
    durations: list[float] = []
    finished: list[Any] = []
    ran = 0
    while True:
        n = opts.n_trials
        if n is not None and _counted(study) >= n:
            break
        if deadline is not None and time.monotonic() >= deadline:
            echo(f"[tune] time budget of {opts.time_budget_min:g} min spent")
            break
        t0 = time.monotonic()
        finished.clear()
        try:
            study.optimize(
                objective,
                n_trials=1,
                catch=(TuneError,),
                gc_after_trial=True,
                callbacks=[lambda _study, frozen: finished.append(frozen)],
            )
        except KeyboardInterrupt:
            kept = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            raise TuneInterrupted(
                f"interrupted: the running trial was discarded, {kept} finished trial(s) are kept in the study; "
                "run the same command again to resume"
            ) from None
        except SQLAlchemyError as e:
            raise _db_error(objective.url, e) from None
        if not finished or "skipped" in finished[0].user_attrs:
            break
        ran += 1
        dur = time.monotonic() - t0
        durations.append(dur)
        echo(_progress_line(study, finished[0], dur, started, durations, opts))
        after_trial()
    return ran


class TuneInterrupted(TuneError):
    exit_code = 130


# --- the whole run -------------------------------------------------------------------------------
def base_config(opts: TuneOptions) -> TrainConfig:
    """What every trial shares: rate, epochs, seed (the rest is drawn by the search)."""
    t = TrainConfig()
    t = dataclasses.replace(t, window=dataclasses.replace(t.window, rate_hz=opts.rate_hz), seed=opts.seed, cv_folds=0)
    return t if opts.epochs is None else dataclasses.replace(t, epochs=opts.epochs)


def tune(
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    opts: TuneOptions,
    space: SearchSpace | None = None,
    echo: Callable[[str], None] = print,
) -> TuneResult:
    """Search, measure finalists, write the leaderboard, plot and ``out_dir/best``.

    Raises TuneError (one line) for unusable data, study database problems, a budget no finalist
    meets (after the leaderboard is written), and TuneInterrupted on Ctrl-C."""
    from har.training import tune_final, tune_report

    space, dropped = available(space or SearchSpace(), cache=opts.cache is not None)
    if dropped:
        echo(f"[tune] {dropped}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out} exists and is not a directory")
    plan = plan_data(data, opts.folds, opts.seed, cache=opts.cache, rate_hz=opts.rate_hz, echo=echo)
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url(out, opts.storage)
    n = opts.n_trials
    n_startup = 10 if n is None else max(2, min(10, n // 3))
    base = base_config(opts)
    first = default_trial(base, space)
    study, created = open_study(url, opts.study, opts.seed, n_startup, opts.lock_timeout_s, first=first,
                                then=neighbour_trials(base, space, opts.neighbours))
    sig = {
        "data_fingerprint": plan.fingerprint,
        "folds": opts.folds,
        "folds_by": plan.by,
        "rate_hz": opts.rate_hz,
        "epochs": base.epochs,
        "seed": opts.seed,
    }
    from sqlalchemy.exc import SQLAlchemyError

    try:
        _check_signature(study, sig, opts.study)
        if not created:
            _check_space(study, space, opts.study)
            if _retry_interrupted_default(study, first):
                echo("[tune] har's default configuration was interrupted in every earlier run: it runs again")
    except SQLAlchemyError as e:
        raise _db_error(url, e) from None
    groups = sorted(set(plan.groups.values()))
    echo(
        f"[tune] {len(plan.recordings)} recording(s), classes {', '.join(plan.labels)}; {opts.folds} folds by "
        f"{plan.by} ({len(groups)} {'subjects' if plan.by == 'subject' else 'recording groups'}); study "
        f"{opts.study!r} in {_redact(url)} "
        + ("is new: its first trial is har's default configuration" if created
           else f"holds {len(study.trials)} trial(s)")
    )
    if plan.by == "recording":
        echo("[tune] warning: one subject only: folds over recordings, so scores are not subject-wise")
    objective = _Objective(plan, base, space, opts, echo)
    objective.url = url

    def leaderboard_so_far() -> list[dict[str, Any]]:
        measured = study.user_attrs.get(tune_final.MEASURED_ATTR, {})
        board = tune_report.build_leaderboard(study, measured, opts, winner=None)
        tune_report.write_leaderboard(board, out, opts)
        return board

    try:
        ran = run_search(study, objective, opts, echo, after_trial=leaderboard_so_far)
    except TuneInterrupted:
        leaderboard_so_far()
        raise
    if opts.search_only:
        return TuneResult(out, leaderboard_so_far(), None, None, None, ran, [])
    return tune_final.finalize(study, plan, opts, out, echo, ran)
