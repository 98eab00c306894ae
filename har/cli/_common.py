"""Helpers shared by command modules (formatting only: no pipeline logic, no TensorFlow)."""

from __future__ import annotations


def fmt_time(t: float) -> str:
    """Seconds as ``MM:SS.mmm`` (negative times as 0)."""
    m, s = divmod(max(t, 0.0), 60.0)
    return f"{int(m):02d}:{s:06.3f}"
