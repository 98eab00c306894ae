"""A serial port that vanishes and comes back, over real ptys (no mocks), for reconnect tests.

A symlink (like ``/dev/serial/by-id/...``) points at an emulator's pty. :meth:`VanishingPort.vanish`
closes that emulator (a reader sees the port go, like an unplugged USB device) and, by default,
removes the link; :meth:`VanishingPort.come_back` starts a new emulator (next seed) and points the
link at it atomically. Drive it step by step from a test (waiting on conditions) or with the timed
:meth:`VanishingPort.script` in a thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from har.wire.emulator import Emulator


class VanishingPort:
    """``port`` is the symlink's path; ``emulators`` every emulator so far (the last is live)."""

    def __init__(self, directory: Path, rate_hz: float = 50.0, seeds: tuple[int, ...] = (6, 7), name: str = "ttyHAR",
                 **emu_kw: Any) -> None:
        self.link = Path(directory) / name
        self.rate_hz = rate_hz
        self.seeds = seeds
        self.emu_kw = emu_kw
        self.emulators: list[Emulator] = [self._emulator(0)]
        os.symlink(self.emulators[0].port, self.link)

    def _emulator(self, i: int) -> Emulator:
        return Emulator(simulate=True, rate_hz=self.rate_hz, seed=self.seeds[i % len(self.seeds)], **self.emu_kw)

    @property
    def port(self) -> str:
        return str(self.link)

    def start(self) -> None:
        """Start streaming from the first emulator."""
        self.emulators[0].start()

    def vanish(self, unlink: bool = True) -> None:
        """Close the live emulator's pty; remove the link too unless ``unlink=False`` (it dangles)."""
        self.emulators[-1].close()
        if unlink and self.link.is_symlink():
            os.unlink(self.link)

    def come_back(self) -> Emulator:
        """A new emulator on a new pty; the link points at it (atomic replace); it streams."""
        e = self._emulator(len(self.emulators))
        tmp = self.link.with_name(self.link.name + ".new")
        os.symlink(e.port, tmp)
        os.replace(tmp, self.link)
        e.start()
        self.emulators.append(e)
        return e

    def script(self, before_s: float, outage_s: float, after_s: float, then: Callable[[], Any] | None = None,
               unlink: bool = True) -> threading.Thread:
        """In a daemon thread: stream ``before_s``, vanish for ``outage_s``, come back for
        ``after_s``, then call ``then`` (e.g. ``source.stop``)."""

        def run() -> None:
            time.sleep(before_s)
            self.vanish(unlink=unlink)
            time.sleep(outage_s)
            self.come_back()
            time.sleep(after_s)
            if then is not None:
                then()

        th = threading.Thread(target=run, name="vanishing-port", daemon=True)
        th.start()
        return th

    def close(self) -> None:
        for e in self.emulators:
            e.close()
        if self.link.is_symlink():
            os.unlink(self.link)

    def __enter__(self) -> VanishingPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
