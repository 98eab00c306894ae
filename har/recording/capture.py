"""Record a sample source into the recording format (``har record``).

:func:`record` consumes :meth:`SampleSource.blocks` and writes every sample with
:class:`~har.recording.format.RecordingWriter` (flushed twice a second, so ``kill -9`` loses at most
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

from har.errors import CaptureError, DataError
from har.recording.format import RecordingMeta, RecordingWriter, check_label, sidecar_path
from har.recording.labeling import LiveLabels
from har.sources.base import SampleBlock, SampleSource

FLUSH_INTERVAL = 0.5  # s


@dataclass
class CaptureProgress:
    """A snapshot for progress displays: elapsed wall time (s), samples written, measured rate
    (Hz, None until known), current label, the source's error counters, ``status`` (e.g.
    ``"reconnecting to /dev/ttyACM0 (attempt 3)"``, empty while streaming) and ``labels`` (the
    live-labelling status line, empty without live labels)."""

    elapsed_s: float
    samples: int
    rate_hz: float | None
    label: str
    dropped: int
    corrupt: int
    resets: int
    reconnects: int
    status: str = ""
    labels: str = ""


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
    label_counts: dict[str, int] = field(default_factory=dict)  # rows per label ("" = unlabeled)


RATE_TOLERANCE = 0.02  # measured vs announced rate: warn beyond this fraction


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
    meta.dropped = sum(g[1] for g in st.gaps if g[0] < rows) if rows < st.samples else st.dropped
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


def rate_warning(nominal: float | None, measured: float | None, tolerance: float = RATE_TOLERANCE) -> str | None:
    """A warning when the measured rate (Hz) differs from the announced one by more than ``tolerance``."""
    if not nominal or not measured or abs(measured - nominal) <= tolerance * nominal:
        return None
    return (
        f"measured rate {measured:.2f} Hz differs from the announced {nominal:g} Hz by "
        f"{100 * (measured / nominal - 1):+.1f}%"
    )


class _State:
    """What the capture loop has written so far (read by the progress thread)."""

    def __init__(self, label: str) -> None:
        self.rows = 0
        self.first: float | None = None
        self.last = 0.0
        self.label = label


def record(
    source: SampleSource,
    out: Path,
    label: str = "",
    subject: str = "unknown",
    duration: float | None = None,
    overwrite: bool = False,
    progress: Callable[[CaptureProgress], None] | None = None,
    progress_interval: float = 0.5,
    live: LiveLabels | None = None,
) -> CaptureResult:
    """Write ``source`` to ``out`` (a .csv path or a directory) until ``duration`` seconds of
    samples, the end of the source, ``source.stop()`` or the stop key of ``live``.

    ``label`` applies to every row (empty: keep the source's labels, if any), unless ``live``
    labels are given: then each sample gets the label of the last key event at or before its
    host timestamp (see :mod:`har.recording.labeling`). ``progress`` is called about every
    ``progress_interval`` s from a helper thread, also while no samples arrive (reconnecting)."""
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
    st = _State(live.current if live is not None else label)
    done = threading.Event()
    ticker: threading.Thread | None = None
    if progress is not None:

        def tick() -> None:
            while not done.wait(progress_interval):
                progress(_progress(source, start, st, live))

        ticker = threading.Thread(target=tick, name="har-progress", daemon=True)
        ticker.start()

    held: list[SampleBlock] = []  # live labels: samples not yet known to precede every key press

    def write(blk: SampleBlock, labels: np.ndarray | str) -> None:
        if not len(blk):
            return
        assert st.first is not None
        _update_meta(writer.meta, source, st.rows + len(blk), st.first, float(blk.time[-1]))
        writer.write(blk.time - st.first, blk.xyz, labels, blk.seq)
        st.rows += len(blk)
        st.last = float(blk.time[-1])

    def write_live(mark: float) -> bool:
        """Label and write the held samples up to ``mark`` (source time); True at the stop key."""
        assert live is not None and st.first is not None
        blk = _concat(held)
        held.clear()
        stop_t = live.stop_time
        limit = mark if stop_t is None else min(mark, np.nextafter(stop_t, -np.inf))
        n = int(np.searchsorted(blk.time, limit, side="right"))
        if n:
            now_blk = _head(blk, n)
            labs = live.assign(now_blk.time, st.rows, st.first)
            st.label = str(labs[-1])
            write(now_blk, labs)
        if stop_t is not None and stop_t <= mark:
            return True
        if n < len(blk):
            held.append(_tail(blk, n))
        return False

    complete = False
    try:
        for block in source.blocks():
            if len(block) == 0:
                continue
            if st.first is None:
                st.first = float(block.time[0])
            blk = block
            if duration is not None:
                keep = int(np.searchsorted(block.time, st.first + duration, side="left"))
                blk = _head(block, keep)
            if live is not None:
                if len(blk):
                    held.append(blk)
                if held and write_live(live.poll()):
                    source.stop()  # the stop key: nothing after it is written
                    break
            elif len(blk):
                labels = blk.labels if (not label and blk.labels is not None) else label
                st.label = label if isinstance(labels, str) else str(labels[-1])
                write(blk, labels)
            if len(blk) < len(block):
                source.stop()  # duration reached; drain nothing more
                break
        complete = True
    finally:
        if timer is not None:
            timer.cancel()
        done.set()
        if live is not None:
            live.reader.close()  # restores the terminal; the watermark becomes final
            if held:
                try:
                    live.poll()
                    write_live(np.inf)
                except Exception:  # noqa: BLE001 - never lose the file because of a late label problem
                    pass
            writer.meta.extra["label_changes"] = [[r, round(t, 4), lab] for r, t, lab in live.changes]
            writer.meta.extra["label_counts"] = dict(live.counts)
            if live.stop_time is not None and st.first is not None:
                writer.meta.extra["stop_time_s"] = round(live.stop_time - st.first, 4)
        _update_meta(writer.meta, source, st.rows, st.first, st.last)
        live_clock = hasattr(source, "measured_rate_hz")  # a device on the host clock (not a file)
        w = rate_warning(writer.meta.rate_hz if source.info.rate_hz else None, writer.meta.measured_rate_hz)
        if live_clock and w is not None and not any("measured rate" in x for x in source.stats.warnings):
            source.stats.warnings.append(w)
            writer.meta.extra["warnings"] = list(source.stats.warnings)
        writer.close(complete=complete)
        source.close()
        if ticker is not None:
            ticker.join(timeout=2.0)
        if not complete and st.rows == 0:  # failed before any sample (wrong baud, ...): leave nothing behind
            for f in (path, sidecar_path(path)):
                f.unlink(missing_ok=True)
    m = writer.meta
    counts = dict(live.counts) if live is not None else {}
    return CaptureResult(
        path=path,
        samples=st.rows,
        duration_s=(st.last - st.first) if st.first is not None else 0.0,
        rate_hz=m.rate_hz,
        measured_rate_hz=m.measured_rate_hz,
        dropped=m.dropped,
        corrupt=m.corrupt,
        resets=m.resets,
        reconnects=m.reconnects,
        labels=list(m.labels),
        warnings=list(source.stats.warnings),
        label_counts=counts,
    )


def _concat(blocks: list[SampleBlock]) -> SampleBlock:
    if len(blocks) == 1:
        return blocks[0]
    return SampleBlock(
        time=np.concatenate([b.time for b in blocks]),
        xyz=np.concatenate([b.xyz for b in blocks]),
        seq=np.concatenate([b.seq for b in blocks]),
        break_before=blocks[0].break_before,
    )


def _tail(block: SampleBlock, n: int) -> SampleBlock:
    return SampleBlock(time=block.time[n:], xyz=block.xyz[n:], seq=block.seq[n:], labels=None)


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


def _progress(source: SampleSource, start: float, st: _State, live: LiveLabels | None) -> CaptureProgress:
    stats = source.stats
    rows, first, last = st.rows, st.first, st.last
    mr = getattr(source, "measured_rate_hz", None)
    if mr is None and first is not None and rows > 1 and last > first:
        mr = (rows - 1) / (last - first)
    return CaptureProgress(
        elapsed_s=time.monotonic() - start,
        samples=rows,
        rate_hz=mr,
        label=live.pending_label() if live is not None else st.label,
        dropped=stats.dropped,
        corrupt=stats.corrupt,
        resets=stats.resets,
        reconnects=stats.reconnects,
        status=str(getattr(source, "status", "") or ""),
        labels=live.status() if live is not None else "",
    )
