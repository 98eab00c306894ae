"""The stall watchdog of `har run` (:func:`har.runtime.live.run_live`): says once when a source
delivered no samples for a while, and when they come back. No TensorFlow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from har.sources.base import SampleSource


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall))


class Watchdog:
    """Reports (once) when a source delivered no samples for ``stall_s`` seconds and when samples
    come back; counts the stalls. :meth:`beat` is called for every block."""

    def __init__(self, source: SampleSource, stall_s: float, notify: Callable[[str], Any]) -> None:
        self.source, self.stall_s, self.notify = source, float(stall_s), notify
        self.stalls = 0
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._last_wall = time.time()
        self._started = False  # a block arrived
        self._stalled = False
        self._reconnects = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="har-run-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Sleep until the moment the stream would count as stalled, not on a fixed tick: while
        # samples flow, the thread wakes about once per ``stall_s`` (each wake costs CPU on a Pi).
        delay = self.stall_s
        while not self._done.wait(delay):
            with self._lock:
                idle = time.monotonic() - self._last
                if self._stalled or self.source.stopped:
                    delay = min(self.stall_s, 0.5)
                    continue
                if idle < self.stall_s:
                    delay = self.stall_s - idle + 0.005
                    continue
                delay = min(self.stall_s, 0.5)
                self._last_wall = time.time() - idle
                self._stalled = True
                self._reconnects = int(getattr(self.source.stats, "reconnects", 0))
                desc = self.source.info.description or "the source"
                if self._started:
                    self.stalls += 1
                    msg = (f"Warning: stream stalled: no samples from {desc} since {_clock(self._last_wall)} "
                           f"({idle:.1f} s); waiting")
                else:
                    msg = f"Warning: no samples from {desc} yet ({idle:.1f} s since {_clock(self._last_wall)}); waiting"
                status = str(getattr(self.source, "status", "") or "")
                if status:
                    msg += f" ({status})"
            self.notify(msg)

    def beat(self) -> None:
        now = time.monotonic()
        if not self._stalled:  # the common case, once per block: no lock, no wall clock
            self._last, self._started = now, True
            return
        wall = time.time()
        with self._lock:
            was, started, idle = self._stalled, self._started, now - self._last
            self._last, self._stalled, self._started = now, False, True
        if not was:
            return
        what = "stream resumed" if started else "samples arriving"
        more = int(getattr(self.source.stats, "reconnects", 0)) - self._reconnects
        self.notify(f"{what} at {_clock(wall)} after {idle:.1f} s without samples" + (" (reconnected)" if more else ""))

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=1.0)
