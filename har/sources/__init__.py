"""Sample sources: serial devices, recording files, paced replays. Use :func:`open_source`."""

from __future__ import annotations

from har.errors import CaptureError
from har.sources.base import SampleBlock, SampleSource, SourceInfo, SourceStats

__all__ = ["SampleBlock", "SampleSource", "SourceInfo", "SourceStats", "open_source"]


def open_source(
    port: str | None = None,
    file: str | None = None,
    baud: int = 115200,
    speed: float | None = None,
    rate_hz: float | None = None,
    wait_on_stall: bool = False,
    allow_nonfinite: bool = False,
    read_interval_s: float | None = None,
) -> SampleSource:
    """Open a serial ``port`` (path or pyserial URL, ``baud`` bit/s, ``rate_hz`` = rate in Hz to
    assume before the device's header) or a recording ``file`` (``speed`` None = as fast as
    possible, N = paced at N times real time). Exactly one of ``port`` / ``file``.
    ``wait_on_stall``: a device that stops sending is waited for, not an error (live inference).
    ``allow_nonfinite``: a recording's NaN/inf/empty acceleration values are passed on as NaN/inf
    (for a consumer that handles them, like live inference) instead of being an error.
    ``read_interval_s``: seconds between serial reads (None = the source's default, 20 ms)."""
    if (port is None) == (file is None):
        raise CaptureError("give exactly one source: a serial port (--port) or a recording (--file)")
    if port is not None:
        from har.sources.serial import SerialSource

        return SerialSource(port, baud=baud, rate_hz=rate_hz, wait_on_stall=wait_on_stall,
                            read_interval_s=read_interval_s)
    from har.sources.file import FileSource, ReplaySource

    if speed is None:
        return FileSource(file, allow_nonfinite=allow_nonfinite)  # type: ignore[arg-type]
    return ReplaySource(file, speed=speed, allow_nonfinite=allow_nonfinite)  # type: ignore[arg-type]
