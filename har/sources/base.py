"""One interface for every sample stream: serial port, recording file, replay, emulator.

A source yields :class:`SampleBlock` s until it is exhausted or :meth:`SampleSource.stop` is
called (from a signal handler or another thread). Capture, live inference and replay all consume
this interface, so tests exercise the same code path that hardware uses."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples. ``seq`` is the index on the session's nominal timeline: a jump of
    k+1 between blocks (or inside one) means k samples were lost; a break (device reset,
    reconnect) shows as ``break_before=True`` on the first block after it."""

    time: np.ndarray  # float64 (n,), seconds since the source started (host clock for devices)
    xyz: np.ndarray  # float32 (n, 3), g
    seq: np.ndarray  # int64 (n,)
    labels: np.ndarray | None = None  # str (n,), only for sources that carry labels (files)
    break_before: bool = False

    def __len__(self) -> int:
        return int(self.time.shape[0])


@dataclass
class SourceInfo:
    rate_hz: float | None = None  # nominal rate announced by the device or declared by the file
    device: str = "unknown"
    units: str = "g"
    description: str = ""
    range_g: float | None = None
    subject: str | None = None  # files know their subject


@dataclass
class SourceStats:
    samples: int = 0
    dropped: int = 0  # missing sequence numbers
    corrupt: int = 0  # rejected lines/frames
    resets: int = 0  # device resets (new header, sequence restarted)
    reconnects: int = 0
    gaps: list[list[int]] = field(default_factory=list)  # [sample index before which, missing]
    warnings: list[str] = field(default_factory=list)


class SampleSource(ABC):
    """Base class of every stream of samples."""

    def __init__(self) -> None:
        self.info = SourceInfo()
        self.stats = SourceStats()
        self._stop = threading.Event()

    @abstractmethod
    def blocks(self) -> Iterator[SampleBlock]:
        """Yield blocks until the source ends or :meth:`stop` is called."""

    def stop(self) -> None:
        """Ask the source to end; safe from signal handlers and other threads."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def want(self, seq: int) -> None:  # noqa: B027 - optional hook
        """Hint from the consumer: its next prediction needs the sample with session ``seq``. A
        source that batches its reads (SerialSource) reads as soon as that sample is due; others
        ignore it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the port or file."""

    def __enter__(self) -> SampleSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
