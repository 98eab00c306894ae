"""A window cache for data larger than memory: recordings converted once into .npy arrays, windows
read through an index (pread, no memory map), fed to Keras by tf.data. TensorFlow is imported only by
:meth:`WindowCache.tf_dataset`.

Layout of a cache directory (one per window configuration)::

    manifest.json          format, version, har version, window config, one entry per recording
    <key>.x.npy            float32 (n, 3): the recording's contiguous segments at the window rate
                           (resampled exactly as the in-memory path does), concatenated
    <key>.win.npy          int64 (k,): start of each labelled window in <key>.x.npy
    <key>.lab.npy          int16 (k,): label of each window (index into the entry's labels)

``<key>`` is made of the recording's path and the sha256 of its CSV bytes, so a recording that
changes gets a new key and is converted again; unchanged recordings (same size and mtime, or
the same bytes) are reused. Why .npy and not Arrow/Parquet: windows overlap (a 5 s window with a
1 s hop holds each sample five times), so the cache stores samples once and cuts windows at read
time, which needs random access to rows by offset: a .npy gives that with numpy alone (a window is
one ``pread`` at a computed offset); Parquet would decode whole row groups per access. The samples
are read with pread, not memory-mapped: pages of a memory map that were touched count in the
process's RSS until unmapped (peak RSS grew with the data, 1.1-1.6 GB at 400 h), pages read with
pread stay in the OS page cache, outside RSS, so RSS does not grow with the data.

A cache written by another har version or cache format is rebuilt; every array file carries its
sha256 in the manifest and is verified when the cache is opened (a flipped bit or a truncated file
is rebuilt, never read wrong). Files are written under temporary names and renamed; the manifest
is written last; one process builds at a time (an flock on ``.lock``; a second one waits, then
finds the recordings converted). A disk that fills up while building is one clear
:class:`CacheError`, and no partial file is left behind.

The index (recording, window start, label, subject per window) is small (~15 bytes per window:
1.4 M windows for 400 h at a 1 s hop is ~22 MB) and lives in memory; the samples stay on disk.
:meth:`WindowCache.windows` gathers any set of windows; :meth:`tf_dataset` streams shuffled (and
augmented, normalised) batches; subject splits, purity and class weights come from the index alone.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from har import __version__
from har.atomic import write_json_atomic
from har.config import AugmentConfig, WindowConfig, config_to_dict
from har.errors import CacheError
from har.recording.format import Recording, find_recordings, read_recording
from har.signal import runs, window_labels, window_starts

CACHE_FORMAT = "har-window-cache"
CACHE_VERSION = 2  # 2: entries carry the session and the majority label (splits from the index)
MANIFEST = "manifest.json"
LOCK = ".lock"  # flock'ed while a process builds the cache
KEY_HEX = 24
HASH_CHUNK = 1 << 22
SPAN_FACTOR = 4  # windows() reads a recording's whole span in one call when it is at most this x their bytes


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def entry_key(source: str, sha256: str) -> str:
    """The cache key of a recording: its path and its bytes (two identical files at two paths are
    two recordings, e.g. of two subjects named by their folders)."""
    return hashlib.sha256(f"{source}\0{sha256}".encode()).hexdigest()[:KEY_HEX]


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [int(st.st_size), int(st.st_mtime_ns)]


@dataclass(frozen=True)
class CacheEntry:
    """One recording in the cache."""

    source: str  # the recording's CSV path when it was converted
    stat: tuple[int, int]  # (size, mtime_ns) of the CSV then
    sha256: str  # of the CSV bytes
    subject: str
    labels: tuple[str, ...]  # window label codes index this
    samples: int
    windows: int
    files: dict[str, str]  # array file name -> sha256
    session: str = ""  # the sidecar's session id, else the file stem (session splits)
    majority: str = ""  # the most frequent non-empty sample label (stratified recording hold-outs)
    info: dict[str, Any] = field(default_factory=dict)  # what build_cache's ``inspect`` returned (JSON)

    @property
    def key(self) -> str:
        return entry_key(self.source, self.sha256)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "stat": list(self.stat), "sha256": self.sha256, "subject": self.subject,
                "labels": list(self.labels), "samples": self.samples, "windows": self.windows,
                "files": dict(self.files), "session": self.session, "majority": self.majority,
                "info": self.info}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CacheEntry:
        return cls(str(d["source"]), (int(d["stat"][0]), int(d["stat"][1])), str(d["sha256"]), str(d["subject"]),
                   tuple(str(v) for v in d["labels"]), int(d["samples"]), int(d["windows"]),
                   {str(k): str(v) for k, v in d["files"].items()}, str(d["session"]), str(d["majority"]),
                   dict(d.get("info") or {}))


def _save_npy(path: Path, arr: np.ndarray) -> str:
    """Write ``arr`` to ``path`` via a temporary name; returns its sha256. ENOSPC -> CacheError."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            np.save(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        digest = _sha256_file(tmp)
        os.replace(tmp, path)
        return digest
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = shutil.disk_usage(path.parent).free
            raise CacheError(f"window cache {path.parent}: no space left on the device while writing {path.name} "
                             f"({arr.nbytes / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free); "
                             "free some space or choose another --cache directory") from e
        raise CacheError(f"window cache {path.parent}: cannot write {path.name}: {e.strerror or e}") from e


def _majority(labels: np.ndarray) -> str:
    """The most frequent non-empty label; ties: the one seen first (as har.training.fit._majority_label)."""
    names, first, counts = np.unique(np.asarray(labels).astype(str), return_index=True, return_counts=True)
    keep = names != ""
    if not keep.any():
        return ""
    names, first, counts = names[keep], first[keep], counts[keep]
    top = np.flatnonzero(counts == counts.max())
    return str(names[top[np.argmin(first[top])]])


def _convert(csv_path: Path, sha: str, cache_dir: Path, window: WindowConfig,
             inspect: Callable[[Recording], dict[str, Any]] | None = None) -> CacheEntry:
    rec = read_recording(csv_path)
    info = inspect(rec) if inspect is not None else {}
    names = sorted({str(v) for v in np.unique(rec.labels.astype(str))} - {""})
    code_of = {n: i for i, n in enumerate(names)}
    xs, starts, labs = [], [], []
    offset = 0
    w = window.window_samples
    for run in runs(rec, window.rate_hz):  # the same runs, resampling and grid as make_windows
        st = window_starts(run.xyz.shape[0], window)
        _, _, y = window_labels(run.labels, st, w, window.purity)
        keep = y != ""
        xs.append(run.xyz)
        starts.append(st[keep] + offset)
        labs.append(np.array([code_of[v] for v in y[keep].tolist()], dtype=np.int16))
        offset += run.xyz.shape[0]
    x = np.concatenate(xs) if xs else np.zeros((0, 3), np.float32)
    win = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    lab = np.concatenate(labs) if labs else np.zeros(0, np.int16)
    key = entry_key(str(csv_path), sha)
    files = {}
    written: list[Path] = []
    try:
        for suffix, arr in (("x", x), ("win", win.astype(np.int64)), ("lab", lab)):
            p = cache_dir / f"{key}.{suffix}.npy"
            files[p.name] = _save_npy(p, arr)
            written.append(p)
    except CacheError:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    return CacheEntry(str(csv_path), tuple(_stat_key(csv_path)), sha, rec.subject, tuple(names), int(x.shape[0]),
                      int(win.shape[0]), files, rec.meta.session_id or csv_path.stem, _majority(rec.labels), info)


def _read_manifest(cache_dir: Path, window: WindowConfig) -> dict[str, CacheEntry]:
    """Entries of a usable manifest (same format, version, har version and window), else {}."""
    try:
        m = json.loads((cache_dir / MANIFEST).read_text(encoding="utf-8"))
        if (m.get("format"), m.get("version"), m.get("har_version")) != (CACHE_FORMAT, CACHE_VERSION, __version__):
            return {}
        if m.get("window") != config_to_dict(window):
            return {}
        return {k: CacheEntry.from_dict(v) for k, v in m["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return {}


def _entry_ok(cache_dir: Path, e: CacheEntry, verify: bool) -> bool:
    for name, digest in e.files.items():
        p = cache_dir / name
        if not p.is_file():
            return False
        if verify and _sha256_file(p) != digest:
            return False
    return True


def build_cache(
    paths: Sequence[str | os.PathLike[str]],
    cache_dir: str | os.PathLike[str],
    window: WindowConfig,
    *,
    verify: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    inspect: Callable[[Recording], dict[str, Any]] | None = None,
) -> WindowCache:
    """Convert the recordings found in ``paths`` into the cache at ``cache_dir`` (created), reusing
    what is already there and unchanged, and open it. ``progress(done, total, name)`` is called per
    recording. ``verify`` checks every reused array file against its sha256. ``inspect(recording)``
    is called on every recording read for conversion; what it returns (a JSON-able dict, e.g.
    plausibility findings) is kept in the entry's ``info`` and reused with the entry."""
    recs = find_recordings(paths)
    if not recs:
        raise CacheError("no recordings (*.csv) found in " + ", ".join(str(p) for p in paths))
    cdir = Path(cache_dir)
    try:
        cdir.mkdir(parents=True, exist_ok=True)
        lock = (cdir / LOCK).open("a")  # also the test that the directory is writable
    except OSError as e:
        raise CacheError(f"window cache {cdir}: not a writable directory ({e.strerror or e})") from e
    with lock:  # one builder at a time (e.g. workers of a distributed run on one machine); closing unlocks
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        return _build_locked(recs, cdir, window, verify, progress, inspect)


def _build_locked(
    recs: list[Path], cdir: Path, window: WindowConfig, verify: bool,
    progress: Callable[[int, int, str], None] | None, inspect: Callable[[Recording], dict[str, Any]] | None,
) -> WindowCache:
    old = _read_manifest(cdir, window)
    if not old:  # another har version, format or window: start afresh
        for p in cdir.glob("*.npy"):
            p.unlink()
    by_source = {e.source: e for e in old.values()}
    entries: dict[str, CacheEntry] = {}
    converted: list[str] = []
    for i, csv_path in enumerate(recs):
        if progress is not None:
            progress(i, len(recs), csv_path.name)
        prev = by_source.get(str(csv_path))
        stat = tuple(_stat_key(csv_path))
        if prev is not None and prev.stat == stat and _entry_ok(cdir, prev, verify):
            entries[prev.key] = prev
            continue
        sha = _sha256_file(csv_path)
        key = entry_key(str(csv_path), sha)
        same = old.get(key)
        if same is not None and _entry_ok(cdir, same, verify):  # touched, same bytes
            entries[key] = CacheEntry(str(csv_path), stat, sha, same.subject, same.labels, same.samples,
                                      same.windows, same.files, same.session, same.majority, same.info)
            continue
        entries[key] = _convert(csv_path, sha, cdir, window, inspect)
        converted.append(csv_path.name)
    if progress is not None:
        progress(len(recs), len(recs), "")
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "har_version": __version__,
                "window": config_to_dict(window), "entries": {k: e.to_dict() for k, e in entries.items()}}
    try:
        write_json_atomic(cdir / MANIFEST, manifest)
    except OSError as e:
        raise CacheError(f"window cache {cdir}: cannot write {MANIFEST}: {e.strerror or e}") from e
    keep = {n for e in entries.values() for n in e.files}
    for p in list(cdir.glob("*.npy")) + list(cdir.glob("*.npy.tmp")):  # changed, removed or half-written
        if p.name not in keep:
            p.unlink(missing_ok=True)
    cache = WindowCache(cdir, window, [entries[k] for k in sorted(entries, key=lambda k: entries[k].source)])
    cache.converted = converted
    return cache


def _data_offset(path: Path) -> tuple[int, int]:
    """``(byte offset of the data, rows)`` of a float32 (n, 3) C-order .npy file written by :func:`_save_npy`."""
    with path.open("rb") as f:
        fmt = np.lib.format
        version = fmt.read_magic(f)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype != np.dtype("<f4") or fortran or len(shape) != 2 or shape[1] != 3:
            raise CacheError(f"window cache {path.parent}: {path.name} is not float32 (n, 3)")
        return f.tell(), int(shape[0])


class WindowCache:
    """An opened cache: the window index in memory, the samples on disk, read with pread."""

    def __init__(self, cache_dir: Path, window: WindowConfig, entries: Sequence[CacheEntry]) -> None:
        self.dir = cache_dir
        self.window = window
        self.converted: list[str] = []  # recordings (file names) converted when it was built
        self.entries = list(entries)
        self.classes = tuple(sorted({lab for e in self.entries for lab in e.labels}))
        self.subjects = tuple(sorted({e.subject for e in self.entries}))
        cls_code = {c: i for i, c in enumerate(self.classes)}
        sub_code = {s: i for i, s in enumerate(self.subjects)}
        self._x: list[tuple[Path, int]] = []  # per recording: sample file, byte offset of its data
        rec, start, label, subject = [], [], [], []
        for r, e in enumerate(self.entries):
            key = e.key
            self._x.append((cache_dir / f"{key}.x.npy", _data_offset(cache_dir / f"{key}.x.npy")[0]))
            win = np.load(cache_dir / f"{key}.win.npy", allow_pickle=False)
            lab = np.load(cache_dir / f"{key}.lab.npy", allow_pickle=False)
            remap = np.array([cls_code[v] for v in e.labels] or [0], dtype=np.int16)
            rec.append(np.full(win.shape[0], r, dtype=np.int32))
            start.append(win)
            label.append(remap[lab.astype(np.int64)] if lab.size else lab)
            subject.append(np.full(win.shape[0], sub_code[e.subject], dtype=np.int32))
        self.rec = np.concatenate(rec) if rec else np.zeros(0, np.int32)
        self.start = np.concatenate(start) if start else np.zeros(0, np.int64)
        self.label = (np.concatenate(label) if label else np.zeros(0, np.int16)).astype(np.int16)
        self.subject = np.concatenate(subject) if subject else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return int(self.rec.shape[0])

    def remap(self) -> None:
        """Nothing to do: samples are read with pread into fresh buffers (kept for callers of the
        memory-mapped version: mapped pages counted in RSS until unmapped; read pages do not)."""

    @property
    def window_samples(self) -> int:
        return self.window.window_samples

    def nbytes_on_disk(self) -> int:
        return sum((self.dir / n).stat().st_size for e in self.entries for n in e.files)

    def subject_names(self, idx: np.ndarray | None = None) -> np.ndarray:
        s = np.asarray(self.subjects, dtype=str)
        return s[self.subject if idx is None else self.subject[idx]]

    def label_names(self, idx: np.ndarray | None = None) -> np.ndarray:
        c = np.asarray(self.classes, dtype=str)
        return c[self.label if idx is None else self.label[idx]]

    def class_counts(self, idx: np.ndarray | None = None) -> np.ndarray:
        lab = self.label if idx is None else self.label[idx]
        return np.bincount(lab.astype(np.int64), minlength=len(self.classes))

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """float32 (len(idx), window_samples, 3) raw g, in the order of ``idx``, read from disk.

        Samples are read with ``os.pread`` (one call per window, or one per recording when its
        windows here are close together, as in index order), never memory-mapped: what was read
        is garbage once the batch is, and the process's RSS does not grow with the data (the OS
        keeps the pages in its page cache, outside RSS)."""
        idx = np.asarray(idx, dtype=np.int64)
        w = self.window_samples
        row = 3 * 4
        out = np.empty((idx.shape[0], w, 3), dtype=np.float32)
        recs = self.rec[idx]
        for r in np.unique(recs):
            sel = np.flatnonzero(recs == r)
            st = self.start[idx[sel]]
            path, off = self._x[int(r)]
            fd = os.open(path, os.O_RDONLY)
            try:
                lo, hi = int(st.min()), int(st.max()) + w
                if hi - lo <= SPAN_FACTOR * w * sel.size:
                    span = self._pread(fd, (hi - lo) * row, off + lo * row, path).reshape(hi - lo, 3)
                    out[sel] = span[(st - lo)[:, None] + np.arange(w)[None, :]]
                else:
                    for j, s0 in zip(sel.tolist(), st.tolist(), strict=True):
                        out[j] = self._pread(fd, w * row, off + s0 * row, path).reshape(w, 3)
            finally:
                os.close(fd)
        return out

    @staticmethod
    def _pread(fd: int, n: int, offset: int, path: Path) -> np.ndarray:
        buf = os.pread(fd, n, offset)
        if len(buf) != n:
            raise CacheError(f"window cache {path.parent}: {path.name} is shorter than its index (rebuild the cache)")
        return np.frombuffer(buf, dtype="<f4")

    def iter_chunks(self, idx: np.ndarray, chunk: int = 4096) -> Iterator[np.ndarray]:
        """The windows of ``idx`` in chunks of ``chunk`` (bounded memory)."""
        for i in range(0, len(idx), chunk):
            yield self.windows(idx[i:i + chunk])

    def normalization_stats(self, idx: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Per-axis mean and standard deviation over the samples of the windows ``idx`` (as the
        in-memory path computes them over its window array), streamed in chunks (float64 sums)."""
        n, s1, s2 = 0, np.zeros(3), np.zeros(3)
        for xb in self.iter_chunks(np.asarray(idx), chunk):
            flat = xb.reshape(-1, 3).astype(np.float64)
            n += flat.shape[0]
            s1 += flat.sum(axis=0)
            s2 += (flat * flat).sum(axis=0)
        if n == 0:
            return np.zeros(3), np.ones(3)
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        return mean, np.sqrt(var)

    def batches(
        self, idx: np.ndarray, batch_size: int, *, seed: int, epoch: int, shuffle: bool = True,
        augment: AugmentConfig | None = None, mean: np.ndarray | None = None, std: np.ndarray | None = None,
        class_weight: np.ndarray | None = None, shard: tuple[int, int] = (1, 0), y: np.ndarray | None = None,
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """One epoch of batches ``(x, y[, sample_weight])`` over the windows ``idx``: a permutation
        seeded by ``(seed, epoch)`` (the whole index is shuffled: it is small), each batch augmented
        (seeded by ``(seed, epoch, batch)``, raw g, as the in-memory path) and normalised.
        ``shard=(n, i)``: only every n-th batch starting at i (one worker's share). ``y``: the label
        (int) of each window of ``idx`` (default: the cache's class index, ``self.label[idx]``)."""
        from har.training.augment import augment as do_augment

        idx = np.asarray(idx, dtype=np.int64)
        labels = (self.label[idx] if y is None else np.asarray(y)).astype(np.int32)
        order = np.random.default_rng([seed, epoch]).permutation(idx.shape[0]) if shuffle else np.arange(idx.shape[0])
        n_batches = -(-idx.shape[0] // batch_size)
        n_shards, shard_i = shard
        for b in range(shard_i, n_batches, n_shards):
            pos = order[b * batch_size:(b + 1) * batch_size]
            sel = idx[pos]
            xb = self.windows(sel)
            if augment is not None and augment.active:
                xb = do_augment(xb, augment, np.random.default_rng([seed, epoch, b]))
            if mean is not None and std is not None:
                xb = ((xb - mean) / std).astype(np.float32)
            yb = labels[pos]
            if class_weight is None:
                yield xb, yb
            else:
                yield xb, yb, class_weight[yb].astype(np.float32)

    def tf_dataset(
        self, idx: np.ndarray, batch_size: int, *, seed: int, augment: AugmentConfig | None = None,
        mean: np.ndarray | None = None, std: np.ndarray | None = None, class_weight: np.ndarray | None = None,
        shuffle: bool = True, shard: tuple[int, int] = (1, 0), prefetch: int = 2, y: np.ndarray | None = None,
    ) -> Any:
        """A ``tf.data.Dataset`` of :meth:`batches`, a new permutation every epoch (every time it is
        iterated), prefetched; never holds more than ``prefetch + 1`` batches of windows."""
        from har.training._tf import import_tf

        tf, _ = import_tf()
        w = self.window_samples
        counter = {"epoch": 0}

        def gen() -> Iterator[tuple[np.ndarray, ...]]:
            epoch = counter["epoch"]
            counter["epoch"] += 1
            yield from self.batches(idx, batch_size, seed=seed, epoch=epoch, shuffle=shuffle, augment=augment,
                                    mean=mean, std=std, class_weight=class_weight, shard=shard, y=y)

        sig: tuple[Any, ...] = (tf.TensorSpec((None, w, 3), tf.float32), tf.TensorSpec((None,), tf.int32))
        if class_weight is not None:
            sig = (*sig, tf.TensorSpec((None,), tf.float32))
        ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
        n_batches = -(-len(idx) // batch_size)
        n_shards, shard_i = shard
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(range(shard_i, n_batches, n_shards))))
        opts = tf.data.Options()
        opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return ds.with_options(opts).prefetch(prefetch)
