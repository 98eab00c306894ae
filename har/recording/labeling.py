"""Live labelling for ``har record``: single key presses switch the label, exact to the sample.

Keys (no Enter needed): ``1``-``9`` select the Nth label of ``--labels`` (or of the repeated
``--label``), ``0`` or space = unlabeled, ``q`` = stop the recording cleanly. Ctrl-C still
sends SIGINT (the terminal keeps ISIG), which also stops cleanly.

The timing rule (deterministic, exact to the sample)
----------------------------------------------------
* A key press is timestamped with the host monotonic clock at the moment :class:`KeyReader`
  reads it from the terminal (the reader waits in ``select``, so this is within about a
  millisecond of the press on an idle host).
* A label change at time ``T`` applies to **the first sample whose host timestamp is >= T** and
  to every later sample until the next change. Samples with a timestamp < ``T`` keep the label
  they had, even if they are written to disk after the key press.
* ``q`` at time ``T`` ends the recording: samples with timestamp >= ``T`` are not written.

To make this hold no matter how late a block of samples or a key byte is processed, labels are
assigned only to samples whose timestamp is <= the key reader's *watermark*: the latest time at
which the reader is known to have seen every key pressed before it (it advances at least every
``poll_s`` = 50 ms). Later samples wait (at most ``poll_s``) until the watermark passes them. So the
label of a sample is a pure function of its timestamp and the key-event timestamps
(:func:`apply_label_events`). The recording sidecar lists every change (``extra.label_changes``:
``[row, time_s, label]``, ``time_s`` on the CSV time axis) and the per-label sample counts
(``extra.label_counts``; ``""`` = unlabeled).
"""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from har.errors import CaptureError
from har.recording.format import check_label

STOP = object()  # the action of the stop key


@dataclass(frozen=True)
class KeyPress:
    """One key byte read at ``time`` (s, the reader's clock: ``time.monotonic`` by default)."""

    time: float
    key: str


def key_action(key: str, labels: Sequence[str]) -> str | object | None:
    """What ``key`` does: a label (``""`` = unlabeled), :data:`STOP`, or None (ignored key)."""
    if key in ("q", "Q"):
        return STOP
    if key in ("0", " "):
        return ""
    if len(key) == 1 and "1" <= key <= "9":
        i = ord(key) - ord("1")
        return labels[i] if i < len(labels) else None
    return None


def apply_label_events(
    times: np.ndarray, events: Sequence[tuple[float, str]], initial: str = ""
) -> np.ndarray:
    """Labels for samples at ``times`` (s, ascending): each event ``(t, label)`` applies from the
    first sample with time >= t (events sorted by t; a later event at the same t wins)."""
    t = np.asarray(times, dtype=np.float64)
    names = [initial] + [lab for _, lab in events]
    ev_t = np.asarray([et for et, _ in events], dtype=np.float64)
    idx = np.searchsorted(ev_t, t, side="right")  # number of events with time <= sample time
    return np.asarray(names, dtype=object)[idx].astype(str) if t.size else np.zeros(0, dtype="<U1")


class KeyReader:
    """Reads single key presses from a terminal file descriptor in a background thread.

    On :meth:`start` a TTY is put into cbreak mode (no line buffering, no echo; Ctrl-C still
    raises SIGINT); :meth:`close` restores the saved mode and is safe to call more than once and
    from ``finally`` blocks. ``on_key`` is called in the reader thread for each :class:`KeyPress`
    (after it is queued). :attr:`watermark` is the latest clock time up to which every key byte
    that arrived has been queued.
    """

    def __init__(
        self,
        fd: int,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = 0.05,
        on_key: Callable[[KeyPress], None] | None = None,
    ) -> None:
        self.fd = fd
        self.clock = clock
        self.poll_s = poll_s
        self.on_key = on_key
        self._lock = threading.Lock()
        self._keys: list[KeyPress] = []
        self._watermark = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: list | None = None  # termios attributes to restore
        self.eof = False

    def start(self) -> KeyReader:
        if os.isatty(self.fd):
            try:
                self._saved = termios.tcgetattr(self.fd)
                tty.setcbreak(self.fd, termios.TCSANOW)
            except termios.error as e:
                raise CaptureError(f"cannot switch the terminal to single-key mode: {e}") from None
        self._watermark = self.clock()
        self._thread = threading.Thread(target=self._run, name="har-keys", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and restore the terminal mode (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self.restore()

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent; also fine from a signal handler)."""
        saved, self._saved = self._saved, None
        if saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass

    def __enter__(self) -> KeyReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def watermark(self) -> float:
        with self._lock:
            return self._watermark

    def take(self) -> tuple[list[KeyPress], float]:
        """Remove and return the queued key presses and the watermark (atomically)."""
        with self._lock:
            keys, self._keys = self._keys, []
            return keys, self._watermark

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], self.poll_s)
            except (OSError, ValueError):
                break
            if not ready:
                with self._lock:
                    self._watermark = self.clock()
                continue
            try:
                data = os.read(self.fd, 64)
            except OSError:
                data = b""
            now = self.clock()
            if not data:  # EOF (stdin closed): no more keys, so every time is final
                self.eof = True
                break
            presses = [KeyPress(now, chr(b)) for b in data]
            with self._lock:
                self._keys.extend(presses)
                self._watermark = now
            if self.on_key is not None:
                for p in presses:
                    self.on_key(p)
        with self._lock:
            self._watermark = float("inf")  # nothing more can arrive


class LiveLabels:
    """The label timeline of one capture, fed by a :class:`KeyReader`.

    ``labels``: the names keys ``1``-``9`` select; ``initial``: the label before the first key.
    ``offset``: subtract from reader-clock times to get the source's time axis (for a serial
    source, the monotonic time at which its time axis is 0). :meth:`split` hands back the
    samples that can be labelled now with their labels; :meth:`finish` labels the rest.
    """

    def __init__(self, reader: KeyReader, labels: Sequence[str], initial: str = "", offset: float = 0.0) -> None:
        if len(labels) > 9:
            raise CaptureError(f"at most 9 labels can be selected with keys 1-9 (got {len(labels)})")
        self.reader = reader
        self.labels = [check_label(lab) for lab in labels]
        self.current = check_label(initial)
        self.offset = offset
        self.stop_time: float | None = None  # source time of 'q'
        self.changes: list[tuple[int, float, str]] = []  # (row, time on the CSV axis (s), new label)
        self.counts: dict[str, int] = {}
        self._events: list[tuple[float, str]] = []

    def poll(self) -> float:
        """Take key presses from the reader; return the watermark on the source's time axis."""
        keys, mark = self.reader.take()
        for k in keys:
            t = k.time - self.offset
            if self.stop_time is not None:
                break
            act = key_action(k.key, self.labels)
            if act is STOP:
                self.stop_time = t
            elif isinstance(act, str):
                self._events.append((t, act))
        return mark - self.offset

    def assign(self, times: np.ndarray, first_row: int = 0, origin: float = 0.0) -> np.ndarray:
        """Labels for samples at ``times`` (source time axis, ascending, all <= the last watermark,
        after every sample labelled before); ``first_row`` is the row index of ``times[0]`` and
        ``origin`` the source time of row 0 (for :attr:`changes`). Settles the events now past."""
        t = np.asarray(times, dtype=np.float64)
        labs = apply_label_events(t, self._events, self.current)
        last = float(t[-1]) if t.size else -np.inf
        keep = []
        for et, lab in self._events:
            if et > last:
                keep.append((et, lab))
                continue
            if lab != self.current:
                row = first_row + int(np.searchsorted(t, et, side="left"))
                if self.changes and self.changes[-1][0] == row:  # two keys before the same sample
                    self.changes.pop()
                if not self.changes or self.changes[-1][2] != lab:
                    self.changes.append((row, et - origin, lab))
            self.current = lab
        self._events = keep
        if t.size:
            vals, cnt = np.unique(labs, return_counts=True)
            for v, c in zip(vals.tolist(), cnt.tolist(), strict=True):
                self.counts[v] = self.counts.get(v, 0) + int(c)
        return labs

    def pending_label(self) -> str:
        """The label the next sample will get as far as keys are known (for the status line)."""
        return self._events[-1][1] if self._events else self.current

    def status(self) -> str:
        """``label=walking  1:walking=120  2:sitting=0  -=30``: current label and counts per label."""
        parts = [f"label={self.pending_label() or '-'}"]
        for i, lab in enumerate(self.labels):
            parts.append(f"{i + 1}:{lab}={self.counts.get(lab, 0)}")
        parts.append(f"0:-={self.counts.get('', 0)}")
        return "  ".join(parts)


__all__ = ["STOP", "KeyPress", "KeyReader", "LiveLabels", "apply_label_events", "key_action"]
