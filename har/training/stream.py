"""Training through the window cache (`har train --cache DIR`): data larger than memory.

The recordings are converted once into the window cache (har.training.cache: memory-mapped
samples + a window index); everything `har train` decides is decided from the index, and only
batches of windows are ever in memory:

* split: :func:`har.dataset.split_recordings` over :class:`IndexedRecording` (subject, session,
  path and majority label of each cached recording), so the split is the in-memory path's;
* purity and labels: the cache's windows are cut with the same grid and purity as make_windows;
  class weights come from the index's label counts;
* normalisation: per-axis mean / std streamed over the training windows in chunks (float64 sums;
  equal to ``Normalization.fit`` on the same windows up to float rounding);
* training: a ``tf.data.Dataset`` per epoch (:func:`training_dataset`): a permutation seeded by
  ``(seed, epoch)``, augmentation seeded by ``(seed, epoch, batch)`` and normalisation, exactly as
  the in-memory batch Sequence (har.training.augment.make_batches), so the same windows in the same
  order give the same batches; ``rotation_z_deg="auto"`` works unchanged (fit_model subsamples a
  :class:`CachedWindows` by index);
* validation and test prediction stream in chunks; the model directory is written by the same
  function as the in-memory path (har.training.train.write_model_dir), so `har deploy` takes it.

:func:`prepare_streaming` is everything before the fit (cache, split, classes, validation,
normalisation); a distributed worker takes its share of the training batches with
``training_dataset(d.train, d.y_train, batch, seed=..., norm=d.norm, shard=(n_workers, worker))``.
Several processes building one cache directory at once is not supported (build it first, or give
each machine its own --cache).
``--cv K`` cross-validates from the same cache. Not with ``--cache`` (one clear error):
``--reference`` and ``--distill minirocket|minirocket_oof`` (MiniRocket needs the windows in
memory) and ``--rocket-features N`` (the MiniRocket branch, likewise); ``--distill auto`` trains
without a teacher and the default's MiniRocket branch is dropped, each with a note.
The plausibility checks (har.training.preflight.check_data) run on every run from what each
cache entry keeps of its recording (findings, gravity per static activity, longest stretch)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.metadata import MIN_STD, Normalization
from har.config import AugmentConfig, TrainConfig, WindowConfig
from har.dataset import PROGRESS_MIN_FILES, Split
from har.errors import DataError, TrainingError
from har.recording.format import Recording, find_recordings
from har.signal import Windows
from har.training.cache import WindowCache, build_cache

CHUNK = 4096  # windows gathered at once outside training batches (normalisation, prediction)
EVAL_BATCH = 256


def cache_dir_for(root: str | os.PathLike[str], window: WindowConfig) -> Path:
    """The cache directory for ``window`` under ``root`` (one per window configuration, so runs with
    several windows, e.g. `har tune`, share one --cache root without rebuilding each other's)."""
    return Path(root) / f"{window.rate_hz:g}hz-{window.window_s:g}s-hop{window.hop_s:g}s-purity{window.purity:g}"


@dataclass(frozen=True)
class _Meta:
    session_id: str


@dataclass(frozen=True)
class IndexedRecording:
    """What the split functions read of a recording (subject, session, path, labels), from the cache
    index: ``labels`` holds only the majority label (enough for the stratified hold-outs)."""

    subject: str
    meta: _Meta
    path: Path
    labels: np.ndarray

    @classmethod
    def of(cls, cache: WindowCache, r: int) -> IndexedRecording:
        e = cache.entries[r]
        return cls(e.subject, _Meta(e.session), Path(e.source), np.array([e.majority], dtype=str))


class CachedWindows:
    """The windows ``idx`` of a cache, array-like where fit_model needs it (``shape``, ``len``,
    indexing by an index array gives another CachedWindows); samples are read only in batches."""

    def __init__(self, cache: WindowCache, idx: np.ndarray) -> None:
        self.cache = cache
        self.idx = np.asarray(idx, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (int(self.idx.shape[0]), self.cache.window_samples, 3)

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def __getitem__(self, sel: Any) -> CachedWindows:
        return CachedWindows(self.cache, self.idx[sel])

    def normalization(self) -> Normalization:
        """Per-axis mean / std over these windows' samples, streamed (as Normalization.fit)."""
        mean, std = self.cache.normalization_stats(self.idx, CHUNK)
        std = np.where(std < MIN_STD, 1.0, std)
        return Normalization(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))

    def materialize(self) -> np.ndarray:
        """The windows as an array (only for small selections: deploy calibration, held-out)."""
        return self.cache.windows(self.idx)

    def astype(self, dtype: Any) -> np.ndarray:
        """``materialize()`` as ``dtype`` (so small selections read like numpy windows)."""
        return self.materialize().astype(dtype)

    def predict(self, model: Any, norm: Normalization, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Class probabilities, predicted chunk by chunk."""
        out = [np.asarray(model.predict(norm.apply(xb), batch_size=batch_size, verbose=0))
               for xb in self.cache.iter_chunks(self.idx, CHUNK)]
        return np.concatenate(out) if out else np.zeros((0, int(model.output_shape[-1])), np.float32)


class CachedWindowSet:
    """har.signal.Windows for windows of a cache: ``x`` is a :class:`CachedWindows`, ``y`` and
    ``subject`` are the index's names; what har.training.cv and har.training.tune_final read."""

    def __init__(self, cache: WindowCache, idx: np.ndarray) -> None:
        self.cache = cache
        self.idx = np.asarray(idx, dtype=np.int64)
        self.x = CachedWindows(cache, self.idx)
        self.y = cache.label_names(self.idx)
        self.subject = cache.subject_names(self.idx)
        self.file_index = cache.rec[self.idx]  # the cached recording of each window

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    def select(self, mask: np.ndarray) -> CachedWindowSet:
        return CachedWindowSet(self.cache, self.idx[mask])


class CachedWindowsFor:
    """A drop-in for har.dataset.windows_for over :class:`IndexedRecording` (or any recording with a
    ``path``): the windows come from the cache of the asked window configuration under ``root``
    (built on first use: a run over several windows, `har tune`, converts the data once per window)."""

    def __init__(self, root: str | os.PathLike[str], sources: Sequence[str],
                 echo: Callable[[str], None] | None = None, inspect: Callable[[Recording], None] | None = None,
                 first: WindowCache | None = None) -> None:
        self.root = Path(root)
        self.sources = list(sources)
        self.echo = echo
        self.inspect = inspect
        self._caches: dict[WindowConfig, tuple[WindowCache, dict[str, int], _Index]] = {}
        if first is not None:
            self._add(first)

    def _add(self, cache: WindowCache) -> tuple[WindowCache, dict[str, int], _Index]:
        got = (cache, {e.source: r for r, e in enumerate(cache.entries)}, _Index(cache))
        self._caches[cache.window] = got
        return got

    def cache(self, window: WindowConfig) -> tuple[WindowCache, dict[str, int], _Index]:
        if window not in self._caches:
            t0 = time.monotonic()
            c = build_cache(self.sources, cache_dir_for(self.root, window), window, inspect=self.inspect)
            if self.echo is not None and c.converted:
                self.echo(f"window cache {c.dir}: {len(c.converted)} recording(s) converted in "
                          f"{time.monotonic() - t0:.1f} s")
            self._add(c)
        return self._caches[window]

    def __call__(self, recordings: Sequence[Any], indices: Sequence[int], cfg: WindowConfig,
                 labelled_only: bool = True) -> CachedWindowSet:
        cache, rec_of, index = self.cache(cfg)
        return CachedWindowSet(cache, index.of([rec_of[str(recordings[i].path)] for i in indices]))


def indexed_recordings(cache: WindowCache, sources: Sequence[str]) -> list[IndexedRecording]:
    """The cache's recordings as :class:`IndexedRecording`, in the order of ``sources``."""
    rec_of = {e.source: r for r, e in enumerate(cache.entries)}
    return [IndexedRecording.of(cache, rec_of[s]) for s in sources]


def training_dataset(
    windows: CachedWindows,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    norm: Normalization,
    augment: AugmentConfig | None = None,
    class_weight: dict[int, float] | None = None,
    shard: tuple[int, int] | None = None,
) -> Any:
    """A ``tf.data.Dataset`` of shuffled training batches ``(x, y[, sample_weight])``: every
    iteration is a new epoch (permutation seeded by ``(seed, epoch)``, augmentation by ``(seed,
    epoch, batch)``, then ``norm``), as har.training.augment.make_batches serves in-memory windows.
    ``y``: class index per window; ``class_weight``: class -> weight (as sample weights);
    ``shard=(n, i)``: worker i of n takes every n-th batch."""
    mean, std = norm.arrays
    cw = None
    if class_weight is not None:
        cw = np.array([class_weight[k] for k in range(len(class_weight))], dtype=np.float32)
    aug = augment if augment is not None and augment.active else None
    return windows.cache.tf_dataset(windows.idx, batch_size, seed=seed, augment=aug, mean=mean, std=std,
                                    class_weight=cw, shard=shard or (1, 0), y=np.asarray(y))


def evaluation_dataset(windows: CachedWindows, y: np.ndarray, norm: Normalization,
                       batch_size: int = EVAL_BATCH) -> Any:
    """``(x, y)`` batches in index order, normalised, not augmented (validation)."""
    mean, std = norm.arrays
    return windows.cache.tf_dataset(windows.idx, batch_size, seed=0, shuffle=False, mean=mean, std=std,
                                    y=np.asarray(y))


def fit_datasets(config: TrainConfig, norm: Normalization, x_train: CachedWindows, y_train: np.ndarray,
                 x_val: CachedWindows | np.ndarray, y_val: np.ndarray,
                 weights: dict[int, float] | None) -> tuple[Any, Any]:
    """The training and validation datasets har.training.fit feeds Keras with cached windows."""
    train_ds = training_dataset(x_train, y_train, config.batch_size, seed=config.seed, norm=norm,
                                augment=config.augment, class_weight=weights)
    val_ds = None
    if len(x_val):
        if isinstance(x_val, np.ndarray):
            val_ds = (norm.apply(x_val), y_val)
        else:
            val_ds = evaluation_dataset(x_val, y_val, norm, config.batch_size)  # Keras' default for arrays
    return train_ds, val_ds


def fingerprint_of(cache: WindowCache, sources: Sequence[str]) -> str:
    """har.dataset.fingerprint of the recordings ``sources`` from the shas the cache already holds."""
    sha = {e.source: e.sha256 for e in cache.entries}
    h = hashlib.sha256()
    for name, digest in sorted((Path(s).name, sha[s]) for s in sources):
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


class _Index:
    """The cache's windows by recording (cache.rec is sorted: each recording's windows are one run)."""

    def __init__(self, cache: WindowCache) -> None:
        self.cache = cache
        counts = np.bincount(cache.rec.astype(np.int64), minlength=len(cache.entries))
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def of(self, recs: Sequence[int]) -> np.ndarray:
        """Window indices of recordings ``recs``, in that order (windows in time within each)."""
        parts = [np.arange(self.offsets[r], self.offsets[r + 1]) for r in recs]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _holdout_windows_from_index(cache: WindowCache, idx: np.ndarray, fraction: float,
                                window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """har.training.fit.holdout_windows on the index (start times = sample offsets / rate: windows
    of different contiguous runs never overlap there, as in time)."""
    from har.training.fit import holdout_windows

    w = Windows(np.zeros((idx.shape[0], 0, 3), np.float32), cache.label_names(idx), cache.subject_names(idx),
                cache.start[idx] / cache.window.rate_hz, cache.rec[idx].astype(np.int64))
    return holdout_windows(w, fraction, window_s)


def _counts(names: Sequence[str], codes: np.ndarray) -> dict[str, int]:
    c = np.bincount(codes.astype(np.int64), minlength=len(names))
    return {n: int(c[i]) for i, n in enumerate(names) if c[i]}


def train_streaming(
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    cache_root: str | os.PathLike[str],
    test_data: Sequence[str | os.PathLike[str]] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    force: bool = False,
    reference: bool = False,
    rocket_named: bool = False,
) -> Any:
    """har.training.train.train with the windows read through the cache under ``cache_root``
    (see the module docstring); returns its TrainResult and writes the same model directory.
    The MiniRocket branch needs the windows in memory: the default's is dropped with a note (the
    saved config says rocket_features 0), a named one (``rocket_named``) refused (har.training.rocket.settle)."""
    from har.scoring.metrics import compute_metrics, group_accuracy
    from har.training import preflight
    from har.training.fit import fit_model
    from har.training.train import MAX_CALIB_WINDOWS, MAX_HELDOUT_WINDOWS, _subset, write_model_dir

    t_start = time.monotonic()
    if reference:
        raise TrainingError("--reference fits MiniRocket on windows held in memory: it cannot run with --cache")
    if not list(data):
        raise TrainingError("no training data given")
    fit_config = _without_teacher(config, echo)
    from har.training.rocket import settle

    config = settle(config, rocket_named, echo, cache=True)
    fit_config = dataclasses.replace(fit_config, model=config.model)
    preflight.check_out_dir(out_dir)
    d = prepare_streaming(data, config, cache_root, test_data=test_data, progress=progress, echo=echo, force=force)
    cache, split, recs, classes, norm = d.cache, d.split, d.recordings, d.classes, d.norm
    x_tr, x_te, yte = d.train, d.test, d.y_test
    tr, va, te = d.train.idx, d.val.idx, d.test.idx
    names = cache.classes
    cv_result: dict[str, Any] | None = None
    if config.cv_folds:  # as har.training.train, the folds' windows from the same cache
        from har.training.cv import run_cv
        from har.training.train import cv_grouping

        dev = split.train + split.val
        key, grouped_by = cv_grouping(recs, dev, split.by, config.cv_folds, echo)
        provider = CachedWindowsFor(cache_root, d.sources, first=cache)
        cv_result = run_cv(recs, dev, classes, fit_config, key=key, echo=echo,  # type: ignore[arg-type]
                           grouped_by=grouped_by, windows=provider)
        echo("final model: training on all training subjects")
    model, hist = fit_model(fit_config, norm, x_tr, d.y_train, d.val, d.y_val, len(classes), progress,  # type: ignore[arg-type]
                            echo, val_groups=cache.rec[va].astype(str))
    pred = x_te.predict(model, norm).argmax(axis=1)
    metrics = compute_metrics(yte, pred, classes)
    per_subject = group_accuracy(yte, pred, cache.subject_names(te))
    rng = np.random.default_rng(config.seed)
    ci = _subset(len(tr), MAX_CALIB_WINDOWS, rng)
    hi = _subset(len(te), MAX_HELDOUT_WINDOWS, rng)
    summary = {
        "split_by": split.by,
        "train_subjects": list(split.train_subjects),
        "val_subjects": list(split.val_subjects),
        "test_subjects": list(split.test_subjects),
        "windows": {"train": len(tr), "val": len(va), "test": len(te)},
        "windows_per_class": {k: _counts(names, cache.label[i]) for k, i in (("train", tr), ("val", va), ("test", te))},
        "files": {k: [str(recs[i].path) for i in idx]
                  for k, idx in (("train", split.train), ("val", split.val), ("test", split.test))},
        "window_cache": str(cache.dir),
    }
    return write_model_dir(
        out_dir, model, hist, config, classes, norm, split,
        summary=summary,
        data_fingerprint=fingerprint_of(cache, d.sources),
        deploy_windows=(x_tr[ci].materialize(), x_te[hi].materialize(), yte[hi]),
        metrics=metrics, per_subject=per_subject, n_test=len(te), cv_result=cv_result, ref=None, t_start=t_start,
    )


def _without_teacher(config: TrainConfig, echo: Callable[[str], None]) -> TrainConfig:
    """``config`` as the cache can train it: the MiniRocket teacher (har.training.distill) needs all
    training windows in memory, which the cache exists to avoid, so a named teacher is refused
    (one line) and distill="auto" (none or a teacher) trains without one and says so. The stored
    config keeps what the user asked for."""
    from har.config import AUTO

    if config.distill == AUTO:
        echo("distillation auto: the MiniRocket teacher needs the training windows in memory, --cache streams "
             "them: training without a teacher")
        return dataclasses.replace(config, distill="none")
    if config.distill != "none":
        raise TrainingError(
            f"--distill {config.distill} fits MiniRocket on the training windows held in memory: it cannot run "
            "with --cache (train without --cache, or with --distill none)"
        )
    return config


@dataclass
class StreamData:
    """Everything training needs, decided from the cache's index (:func:`prepare_streaming`)."""

    cache: WindowCache
    sources: list[str]  # the recordings' CSV paths: DATA's, then --test's
    recordings: list[IndexedRecording]  # in the order of ``sources`` (what ``split`` indexes)
    split: Split
    classes: list[str]
    train: CachedWindows
    val: CachedWindows
    test: CachedWindows
    y_train: np.ndarray  # class index per window
    y_val: np.ndarray
    y_test: np.ndarray
    norm: Normalization  # fitted on the training windows


def prepare_streaming(
    data: Sequence[str | os.PathLike[str]],
    config: TrainConfig,
    cache_root: str | os.PathLike[str],
    test_data: Sequence[str | os.PathLike[str]] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    force: bool = False,
) -> StreamData:
    """Build (or reuse) the cache, split by subject, check the classes, choose validation and fit
    the normalisation, as har.training.train.train does before fitting, from the index alone.
    A distributed worker calls this and feeds ``training_dataset(d.train, d.y_train, ...,
    shard=(n, i))``."""
    from har.dataset import split_recordings
    from har.training import preflight
    from har.training.fit import holdout_recordings
    from har.training.train import _no_windows_message

    wc = config.window
    own = [str(p) for p in find_recordings(data)]
    test_files = [str(p) for p in find_recordings(list(test_data))] if test_data else []
    cdir = cache_dir_for(cache_root, wc)

    bars: list[Any] = []

    def tick(done: int, total: int, name: str) -> None:
        if progress and not bars and total >= PROGRESS_MIN_FILES:  # as loading recordings shows one; first
            # called once the cache directory is known to be writable
            from tqdm import tqdm

            bars.append(tqdm(total=total, desc="window cache", unit="recording", leave=False))
        if bars:
            bars[0].n = done
            bars[0].refresh()

    t0 = time.monotonic()
    try:
        cache = build_cache(own + test_files, cdir, wc, progress=tick, inspect=recording_info)
    finally:
        if bars:
            bars[0].close()
    echo(f"window cache {cdir}: {len(cache.entries)} recording(s), {len(cache)} windows, "
         f"{cache.nbytes_on_disk() / 1e6:.0f} MB, {len(cache.converted)} converted in {time.monotonic() - t0:.1f} s")
    rec_of = {e.source: r for r, e in enumerate(cache.entries)}
    order = [rec_of[s] for s in own] + [rec_of[s] for s in test_files]  # the in-memory path's recording order
    check_cached_data(cache, order, config, force=force, echo=echo)
    recs = [IndexedRecording.of(cache, r) for r in order]
    split = split_recordings(recs, config, n_test_recordings=len(test_files), echo=echo)  # type: ignore[arg-type]
    index = _Index(cache)

    def windows_of(pos: Sequence[int]) -> np.ndarray:
        return index.of([order[i] for i in pos])

    tr, va, te = windows_of(split.train), windows_of(split.val), windows_of(split.test)
    names = cache.classes
    preflight.check_classes(cache.label_names(tr), cache.label_names(te), split.test_subjects, force=force, echo=echo)
    if len(tr) == 0:
        raise TrainingError(_no_windows_message("training", config))
    present = np.flatnonzero(np.bincount(cache.label[tr].astype(np.int64), minlength=len(names)))
    classes = [names[i] for i in present]
    if len(classes) < 2:
        raise TrainingError(f"need at least 2 classes to train, the training windows have only {classes[0]!r}")
    code = np.full(len(names), -1, dtype=np.int64)
    code[present] = np.arange(len(present))
    missing = sorted({names[i] for i in np.unique(cache.label[te])} - set(classes))
    if missing:
        raise TrainingError(
            f"test class(es) {', '.join(missing)} have no training windows (choose other --test-subjects or --seed)"
        )
    if len(te) == 0:
        raise TrainingError(_no_windows_message("test", config))
    extra_val = sorted({names[i] for i in np.unique(cache.label[va])} - set(classes))
    if extra_val:
        echo(f"warning: validation class(es) {', '.join(extra_val)} not in training: those windows are ignored")
        va = va[code[cache.label[va]] >= 0]
    if len(va) == 0:  # as har.training.train._validation_without_subjects
        fraction = config.val_fraction if config.val_fraction > 0 else 0.2
        keep, val = holdout_recordings(recs, split.train, fraction, config.seed + 1)  # type: ignore[arg-type]
        if val:
            echo(f"validation: {len(val)} of {len(split.train)} training recordings held out (stratified by label)")
            split = dataclasses.replace(split, train=keep, val=val)
            tr, va = windows_of(keep), windows_of(val)
        else:
            mt, mv = _holdout_windows_from_index(cache, tr, fraction, wc.window_s)
            if mv.any() and mt.any():
                echo(f"validation: the last {fraction:g} of each label's windows "
                     "(overlapping training windows dropped)")
                tr, va = tr[mt], tr[mv]
        va = va[code[cache.label[va]] >= 0]
    ytr, yva, yte = (code[cache.label[i]] for i in (tr, va, te))
    x_tr, x_va, x_te = CachedWindows(cache, tr), CachedWindows(cache, va), CachedWindows(cache, te)
    norm = x_tr.normalization()
    echo(
        f"data: {len(recs)} recording(s) (window cache); split by {split.by}; windows train {len(tr)} "
        f"({', '.join(split.train_subjects)}), val {len(va)} ({', '.join(split.val_subjects) or '-'}), "
        f"test {len(te)} ({', '.join(split.test_subjects)}); classes: {', '.join(classes)}"
    )
    if len(va) == 0:
        echo("warning: no validation windows: training runs its full length without early stopping")
    return StreamData(cache, own + test_files, recs, split, classes, x_tr, x_va, x_te, ytr, yva, yte, norm)


def recording_info(rec: Recording) -> dict[str, Any]:
    """What the plausibility checks need of a recording, kept in its cache entry (JSON): the
    single-recording findings, gravity per static activity, the longest stretch without a gap."""
    from har.recording.checks import check_recording, longest_stretch_s, static_gravity

    return {"findings": [[f.level, f.check, f.message] for f in check_recording(rec)],
            "gravity": {k: [float(x) for x in v] for k, v in static_gravity(rec).items()},
            "stretch_s": float(longest_stretch_s(rec))}


def check_cached_data(cache: WindowCache, order: Sequence[int], config: TrainConfig, force: bool = False,
                      echo: Callable[[str], None] = print) -> None:
    """har.training.preflight.check_data from the cache entries (recordings ``order``): the same
    findings, gravity consensus and window-length check, without loading the recordings (an entry
    cached without its info is read once more)."""
    from har.recording.checks import Finding, axes_findings, enforce
    from har.recording.format import read_recording

    infos = []
    for r in order:
        e = cache.entries[r]
        info = e.info if {"findings", "gravity", "stretch_s"} <= set(e.info) else recording_info(
            read_recording(Path(e.source)))
        infos.append((e.source, info))
    findings = [Finding(str(a), str(b), str(c)) for _, i in infos for a, b, c in i["findings"]]
    per: dict[str, list[tuple[str, np.ndarray]]] = {}  # as har.recording.checks.gravity_consensus_findings
    for src, i in infos:
        for lab, v in i["gravity"].items():
            per.setdefault(lab, []).append((src, np.asarray(v, dtype=np.float64)))
    for lab, items in per.items():
        if len(items) < 3:
            continue
        dirs = np.array([v / max(float(np.linalg.norm(v)), 1e-9) for _, v in items])
        ref = np.median(dirs, axis=0)
        for src, v in items:
            findings += axes_findings(src, v, ref, f"in '{lab}'", f"the other {len(items) - 1} recordings")
    enforce(findings, force=force, warn=lambda m: echo(f"Warning: {m}"))
    window_s = config.window.window_s
    if not infos:
        return
    longest, src = max(((float(i["stretch_s"]), s) for s, i in infos), key=lambda t: t[0])
    if longest < window_s:
        raise TrainingError(
            f"--window {window_s:g} s is longer than the longest stretch without a gap or break in any recording "
            f"({longest:.1f} s in {src}): choose a --window of at most {longest:.1f} s"
        )
    short = [s for s, i in infos if float(i["stretch_s"]) < window_s]
    if short:
        echo(f"Warning: {len(short)} of {len(infos)} recording(s) have no stretch of {window_s:g} s without a gap "
             f"and give no windows (e.g. {short[0]})")


CSV_BYTES_PER_SAMPLE = 40  # a recording CSV row: time, x, y, z, label, seq
IN_MEMORY_BYTES_PER_SAMPLE = 60  # a loaded recording: float64 time, float32 xyz, int64 seq, label


def in_memory_bytes(paths: Sequence[str | os.PathLike[str]], window: WindowConfig) -> int:
    """Rough peak memory of the in-memory path for the recordings in ``paths``: the loaded
    recordings plus every window (a window of ``w`` s at a hop of ``h`` s holds each sample w/h
    times), estimated from the CSV sizes (no file is read)."""
    samples = sum(p.stat().st_size for p in find_recordings(paths)) / CSV_BYTES_PER_SAMPLE
    per_sample = IN_MEMORY_BYTES_PER_SAMPLE + 12.0 * window.window_s / max(window.hop_s, 1e-9)
    return int(samples * per_sample)


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, bytes (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_warning(paths: Sequence[str | os.PathLike[str]], window: WindowConfig, share: float = 0.5) -> str | None:
    """A one-line suggestion to use --cache when the in-memory path would need more than ``share``
    of the available memory, else None. The rule is a warning, not an automatic switch: the cache
    writes about 12 bytes per sample to a directory the user chooses."""
    avail = available_memory()
    try:
        need = in_memory_bytes(paths, window)
    except (OSError, DataError):  # reported by train() itself
        return None
    if avail is None or need <= share * avail:
        return None
    return (f"holding these windows in memory needs about {need / 1e9:.1f} GB ({avail / 1e9:.1f} GB available): "
            "pass --cache DIR to stream them from a window cache on disk")
