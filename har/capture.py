"""Record a sample source into the recording format (``har record``).

:func:`record` consumes :meth:`SampleSource.blocks` and writes every sample with
:class:`~har.recording.RecordingWriter` (flushed twice a second, so ``kill -9`` loses at most
about half a second). It ends at ``duration``, at the end of the source, or when
``source.stop()`` is called (the CLI does so from SIGINT/SIGTERM); everything received is
written and the writer is closed with ``complete=True``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from .errors import CaptureError, DataError
from .recording import RecordingMeta, RecordingWriter, check_label, sidecar_path
from .sources.base import SampleBlock, SampleSource

FLUSH_INTERVAL = 0.5  # s


@dataclass
class CaptureProgress:
    """A snapshot for progress displays: elapsed wall time (s), samples written, measured rate
    (Hz, None until known), current label, and the source's error counters."""

    elapsed_s: float
    samples: int
    rate_hz: float | None
    label: str
    dropped: int
    corrupt: int
    resets: int
    reconnects: int


@dataclass
class CaptureResult:
    path: Path
    samples: int
    duration_s: float  # span of the sample times, s
    rate_hz: float | None  # nominal
    measured_rate_hz: float | None
    dropped: int
    corrupt: int
    resets: int
    reconnects: int
    labels: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()) or "x"


def output_path(out: Path, subject: str, label: str) -> Path:
    """``out`` itself, or ``<subject>_<label>_<YYYYmmdd-HHMMSS>.csv`` inside it if it is a directory."""
    out = Path(out)
    if out.is_dir():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return out / f"{_safe(subject)}_{_safe(label or 'unlabeled')}_{stamp}.csv"
    if out.suffix.lower() != ".csv":
        raise DataError(f"--out must be a .csv file or an existing directory: {out}")
    return out


def _update_meta(meta: RecordingMeta, source: SampleSource, rows: int, first: float | None, last: float) -> None:
    st, info = source.stats, source.info
    if info.rate_hz:
        meta.rate_hz = float(info.rate_hz)
    meta.device = info.device
    meta.dropped = st.dropped
    meta.corrupt = st.corrupt
    meta.resets = st.resets
    meta.reconnects = st.reconnects
    meta.gaps = [list(g) for g in st.gaps if g[0] < rows]
    mr = getattr(source, "measured_rate_hz", None)
    if mr is None and first is not None and rows > 1 and last > first:
        mr = (rows - 1) / (last - first)
    meta.measured_rate_hz = round(float(mr), 4) if mr else None
    if st.warnings:
        meta.extra["warnings"] = list(st.warnings)


def record(
    source: SampleSource,
    out: Path,
    label: str = "",
    subject: str = "unknown",
    duration: float | None = None,
    overwrite: bool = False,
    progress: Callable[[CaptureProgress], None] | None = None,
    progress_interval: float = 0.5,
) -> CaptureResult:
    """Write ``source`` to ``out`` (a .csv path or a directory) until ``duration`` seconds of
    samples, the end of the source, or ``source.stop()``. ``label`` applies to every row (empty:
    keep the source's labels, if any). ``progress`` is called about every ``progress_interval`` s."""
    label = check_label(label)
    if duration is not None and not duration > 0:
        raise CaptureError(f"--duration must be positive seconds (got {duration})")
    if subject == "unknown" and source.info.subject:
        subject = source.info.subject
    path = output_path(Path(out), subject, label)
    meta = RecordingMeta(
        subject=subject,
        device=source.info.device,
        rate_hz=float(source.info.rate_hz or 50.0),
        source=source.info.description,
    )
    writer = RecordingWriter(path, meta, flush_interval=FLUSH_INTERVAL, overwrite=overwrite)
    timer = threading.Timer(duration + 2.0, source.stop) if duration is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    start = time.monotonic()
    rows = 0
    first: float | None = None
    last = 0.0
    cur_label = label
    next_progress = start
    complete = False
    try:
        for block in source.blocks():
            if len(block) == 0:
                continue
            if first is None:
                first = float(block.time[0])
            blk = block
            if duration is not None:
                keep = int(np.searchsorted(block.time, first + duration, side="left"))
                blk = _head(block, keep)
            if len(blk):
                labels = blk.labels if (not label and blk.labels is not None) else label
                cur_label = label if isinstance(labels, str) else str(labels[-1])
                time_rel = blk.time - first
                _update_meta(writer.meta, source, rows + len(blk), first, float(blk.time[-1]))
                writer.write(time_rel, blk.xyz, labels, blk.seq)
                rows += len(blk)
                last = float(blk.time[-1])
            if progress is not None and time.monotonic() >= next_progress:
                next_progress = time.monotonic() + progress_interval
                progress(_progress(source, start, rows, first, last, cur_label))
            if len(blk) < len(block):
                source.stop()  # duration reached; drain nothing more
                break
        complete = True
    finally:
        if timer is not None:
            timer.cancel()
        _update_meta(writer.meta, source, rows, first, last)
        writer.close(complete=complete)
        source.close()
        if not complete and rows == 0:  # failed before any sample (wrong baud, ...): leave nothing behind
            for f in (path, sidecar_path(path)):
                f.unlink(missing_ok=True)
    m = writer.meta
    return CaptureResult(
        path=path,
        samples=rows,
        duration_s=(last - first) if first is not None else 0.0,
        rate_hz=m.rate_hz,
        measured_rate_hz=m.measured_rate_hz,
        dropped=m.dropped,
        corrupt=m.corrupt,
        resets=m.resets,
        reconnects=m.reconnects,
        labels=list(m.labels),
        warnings=list(source.stats.warnings),
    )


def _head(block: SampleBlock, n: int) -> SampleBlock:
    if n >= len(block):
        return block
    return SampleBlock(
        time=block.time[:n],
        xyz=block.xyz[:n],
        seq=block.seq[:n],
        labels=None if block.labels is None else block.labels[:n],
        break_before=block.break_before,
    )


def _progress(
    source: SampleSource, start: float, rows: int, first: float | None, last: float, label: str
) -> CaptureProgress:
    st = source.stats
    mr = getattr(source, "measured_rate_hz", None)
    if mr is None and first is not None and rows > 1 and last > first:
        mr = (rows - 1) / (last - first)
    return CaptureProgress(
        elapsed_s=time.monotonic() - start,
        samples=rows,
        rate_hz=mr,
        label=label,
        dropped=st.dropped,
        corrupt=st.corrupt,
        resets=st.resets,
        reconnects=st.reconnects,
    )
