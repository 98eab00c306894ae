"""The guided calibration session of `har adapt --port`: one labelled recording per activity.

For each activity in turn the wearer is asked to start it (``ask`` returns the answer: Enter starts,
``s`` skips); the device is then recorded for ``seconds`` with the normal capture path
(:func:`har.recording.capture.record` on a :class:`~har.sources.serial.SerialSource`: gaps, bad lines,
resets and reconnects are handled and counted as in `har record`). Each activity is a normal
recording ``<person>_<activity>_<time>.csv`` (+ sidecar) in ``out_dir``. The port is opened afresh
for each activity, so nothing sent while the wearer reads the prompt is recorded.

A stream that stalls or drops out (less than ``MIN_COVERAGE`` of the asked seconds arrive), a
failing port, or a stop request (Ctrl-C) ends the session with :class:`CalibrationError` /
:class:`CalibrationInterrupted`; the recordings made so far stay on disk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from har.errors import AdaptError, CaptureError

MIN_COVERAGE = 0.95  # fraction of the asked seconds that must arrive as samples


class CalibrationError(AdaptError):
    """The calibration session could not record an activity."""


class CalibrationInterrupted(AdaptError):
    """The wearer stopped the session (Ctrl-C); the recordings so far are kept."""

    exit_code = 130


@dataclass
class CalibrationSession:
    out_dir: Path
    recordings: list[Path] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def prompt_text(activity: str, seconds: float, i: int, n: int) -> str:
    return f"[{i}/{n}] {activity}: do it normally for {seconds:g} s, press Enter to start ('s' + Enter skips)"


def run_session(
    port: str,
    activities: Sequence[str],
    out_dir: Path,
    person: str,
    seconds: float = 30.0,
    baud: int = 115200,
    ask: Callable[[str], str] = input,
    echo: Callable[[str], Any] = print,
    progress: Callable[[Any], None] | None = None,
    stop_signals: Callable[[Callable[[], None]], Any] | None = None,
    no_data_timeout: float = 5.0,
    rate_hz: float | None = None,
) -> CalibrationSession:
    """Record each of ``activities`` for ``seconds`` from ``port`` into ``out_dir``.

    ``ask(prompt)`` returns the wearer's answer (EOF: raise EOFError); ``stop_signals(stop)`` is a
    context manager that calls ``stop`` on Ctrl-C (the CLI passes `har record`'s). ``rate_hz``: the
    rate (Hz) to assume until the device's header arrives (the model's)."""
    from contextlib import nullcontext

    from har.recording.capture import record
    from har.recording.checks import recorded_warnings
    from har.sources.serial import SerialSource

    if seconds <= 0:
        raise CalibrationError(f"--seconds must be positive, got {seconds}")
    out_dir.mkdir(parents=True, exist_ok=True)
    session = CalibrationSession(out_dir)
    n = len(activities)
    for i, act in enumerate(activities, 1):
        try:
            answer = ask(prompt_text(act, seconds, i, n))
        except EOFError:
            raise CalibrationError(
                f"no answer on stdin at {act}: session ended; {len(session.recordings)} recording(s) kept in {out_dir}"
            ) from None
        if answer.strip().lower() in ("s", "skip"):
            session.skipped.append(act)
            echo(f"  skipped {act} (it keeps the base model's behaviour)")
            continue
        source = SerialSource(port, baud=baud, no_data_timeout=no_data_timeout, rate_hz=rate_hz)
        stopped = {"by_user": False}

        def stop(src: SerialSource = source, flag: dict[str, bool] = stopped) -> None:
            flag["by_user"] = True
            src.stop()

        guard = stop_signals(stop) if stop_signals is not None else nullcontext()
        try:
            with guard:
                res = record(source, out_dir, label=act, subject=person, duration=seconds, progress=progress)
        except CaptureError as e:
            kept = [p for p in out_dir.glob(f"*_{act}_*.csv")]
            raise CalibrationError(
                f"recording {act} failed ({e}); {len(session.recordings) + len(kept)} recording(s) kept in {out_dir}"
            ) from None
        if res.samples:
            session.recordings.append(res.path)
        if stopped["by_user"]:
            raise CalibrationInterrupted(
                f"interrupted during {act}: {len(session.recordings)} recording(s) kept in {out_dir}; no bundle written"
            )
        rate = res.rate_hz or 0.0
        got = res.samples / rate if rate else 0.0
        if got < MIN_COVERAGE * seconds:
            raise CalibrationError(
                f"the stream stalled or dropped out during {act}: {got:.1f} s of {seconds:g} s arrived "
                f"(dropped {res.dropped}, reconnects {res.reconnects}); recordings kept in {out_dir}: run again"
            )
        session.recorded.append(act)
        echo(f"  {act}: {res.samples} samples ({got:.1f} s), dropped {res.dropped}, corrupt {res.corrupt} -> "
             f"{res.path.name}")
        for w in [*res.warnings, *recorded_warnings(res.path)]:  # as `har record` names them
            echo(f"  Warning: {w}")
    return session
