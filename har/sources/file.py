"""Recording files as sample sources: :class:`FileSource` (as fast as possible) and
:class:`ReplaySource` (paced to the recording's clock, optionally sped up)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from har.errors import CaptureError
from har.recording.format import Recording, read_recording
from har.sources.base import SampleBlock, SampleSource


class FileSource(SampleSource):
    """Yield a recording's samples in blocks of at most ``block`` samples, as fast as possible.

    Blocks carry the recording's labels and never span a segment boundary (gap or break); the
    first block of every segment but the first has ``break_before=True``. ``info.rate_hz`` and
    ``info.subject`` come from the sidecar. Times are the recording's ``time_s`` (seconds).
    ``allow_nonfinite``: NaN/inf/empty acceleration values are yielded as NaN/inf (else an error)."""

    def __init__(self, path: str | os.PathLike[str], block: int = 256, allow_nonfinite: bool = False) -> None:
        super().__init__()
        if block < 1:
            raise CaptureError(f"block size must be >= 1 (got {block})")
        self.rec: Recording = read_recording(path, allow_nonfinite=allow_nonfinite)
        self.block = int(block)
        meta = self.rec.meta
        self.info.rate_hz = float(meta.rate_hz)
        self.info.subject = meta.subject
        self.info.device = meta.device
        self.info.description = f"file {self.rec.path}"
        n = len(self.rec)
        self._seq = self.rec.seq if self.rec.seq is not None else np.arange(n, dtype=np.int64)

    def _chunks(self, block: int) -> Iterator[tuple[slice, bool]]:
        for k, seg in enumerate(self.rec.segments()):
            for start in range(seg.start, seg.stop, block):
                yield slice(start, min(start + block, seg.stop)), (k > 0 and start == seg.start)

    def _make(self, sl: slice, brk: bool) -> SampleBlock:
        rec = self.rec
        seq = np.asarray(self._seq[sl], dtype=np.int64)
        if sl.start > 0:
            jump = int(seq[0] - self._seq[sl.start - 1])
            if jump > 1:
                self.stats.dropped += jump - 1
                self.stats.gaps.append([sl.start, jump - 1])
            elif jump < 1:
                self.stats.resets += 1
        self.stats.samples += sl.stop - sl.start
        return SampleBlock(
            time=np.asarray(rec.time[sl], dtype=np.float64),
            xyz=np.asarray(rec.xyz[sl], dtype=np.float32),
            seq=seq,
            labels=rec.labels[sl],
            break_before=brk,
        )

    def blocks(self) -> Iterator[SampleBlock]:
        for sl, brk in self._chunks(self.block):
            if self.stopped:
                return
            yield self._make(sl, brk)


class ReplaySource(FileSource):
    """A recording paced to its own clock: ``speed`` = N plays N times faster than real time;
    ``speed=None`` as fast as possible. Blocks hold about 50 ms of samples so live consumers see a
    steady stream. Pauses in the recording (breaks) are replayed as pauses (scaled by speed)."""

    def __init__(
        self, path: str | os.PathLike[str], speed: float | None = 1.0, block_s: float = 0.05,
        allow_nonfinite: bool = False,
    ) -> None:
        if speed is not None and not speed > 0:
            raise CaptureError(f"--speed must be positive (got {speed})")
        super().__init__(path, block=1, allow_nonfinite=allow_nonfinite)
        self.speed = speed
        self.block = max(1, int(round(block_s * self.info.rate_hz)))
        self.info.description = f"replay {self.rec.path}" + (f" x{speed:g}" if speed else " (fast)")

    def blocks(self) -> Iterator[SampleBlock]:
        t = self.rec.time
        if len(t) == 0:
            return
        # virtual clock: the recording's time, never running backwards across breaks
        virt = np.concatenate([[0.0], np.cumsum(np.maximum(np.diff(t), 0.0))])
        start = time.monotonic()
        for sl, brk in self._chunks(self.block):
            if self.speed is not None:
                due = start + float(virt[sl.stop - 1]) / self.speed
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if self.stopped:
                return
            yield self._make(sl, brk)
