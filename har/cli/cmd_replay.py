"""`har replay`: a whole recording as fast as possible, with a timeline and accuracy.

Like `har run`, this module must never import TensorFlow / Keras."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from har.cli._common import fmt_time

if TYPE_CHECKING:
    from har.runtime.replay import ReplayResult


@contextlib.contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A tqdm bar of windows on stderr, only on a terminal (logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        yield None
        return
    try:
        from tqdm import tqdm
    except ImportError:  # a device install (the edge extra) has no tqdm: no bar
        yield None
        return

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="replaying", unit="window", leave=False, file=sys.stderr)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


@click.command("replay")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=str))
@click.argument("recording", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Interpreter threads.")
@click.option("--exact", is_flag=True,
              help="Run the bundle's live model on every window (the numbers `har run` prints; several times "
              "slower) instead of its float32 batched replay model. An adapted bundle (a personal head) always "
              "runs its live model, which the head was fitted on.")
@click.option("--smooth", "smooth", metavar="SPEC", default=None,
              help="Smoothing instead of the bundle's: none, vote:K/N, avg:N[,enter=P][,margin=M], ema:ALPHA "
              "(,min=S for a minimum duration).")
@click.option("--min-duration", "min_duration", type=click.FloatRange(0.0), default=None, metavar="SECONDS",
              help="Report a new activity only after it persisted this long (overrides the bundle's / --smooth's).")
@click.option("--force", is_flag=True,
              help="Replay a recording that fails the plausibility checks (units, timestamps, sidecar vs CSV) "
              "as it is [default: refuse].")
def replay_cmd(
    bundle: str, recording: str, as_json: bool, threads: int, smooth: str | None, min_duration: float | None,
    exact: bool = False, force: bool = False,
) -> None:
    """Classify RECORDING as fast as possible: timeline of predicted vs recorded labels, accuracy.

    Windows whose recorded label is unlabeled or mixed are shown but not scored. Also scores the
    smoothed labels `har run` would emit (the bundle's smoothing, or --smooth / --min-duration):
    window accuracy and event-level agreement (segment F1 at IoU 0.5, edit score, label changes)
    against the recorded labels, raw and smoothed.
    """
    from har.artifacts.layout import open_replay_classifier
    from har.errors import DataError
    from har.recording.checks import check_for_model, no_window_message
    from har.runtime.replay import replay
    from har.runtime.smoothing import parse_spec, resolve_smoothing

    if smooth is not None:
        parse_spec(smooth)  # a bad spec fails before the bundle is loaded
    clf = open_replay_classifier(bundle, num_threads=threads, exact=exact)
    rec = check_for_model(recording, clf.metadata, force=force, warn=_warn)
    if clf.runtime_choice is not None:  # after the input checks: a bad input stays a one-line error
        click.echo(clf.runtime_choice.line, err=True)
    with _progress_bar() as progress:
        res = replay(clf, recording, exact=exact, progress=progress)
    if res.windows == 0:
        raise DataError(no_window_message(rec, clf.metadata.window.window_s))
    if smooth is not None or min_duration is not None:
        res = res.with_smoothing(resolve_smoothing(clf.metadata.smoothing, smooth, min_duration))
    if as_json:
        click.echo(json.dumps(res.to_dict()))
        return
    click.echo(f"{'start':>9} {'end':>9}  {'predicted':<16} {'recorded':<16} windows")
    for s in res.segments:
        mark = "" if not s.true or s.true == s.predicted else "  <- differs"
        click.echo(
            f"{fmt_time(s.start):>9} {fmt_time(s.end):>9}  {s.predicted:<16} {s.true or '-':<16} {s.windows:>7}{mark}"
        )
    for line in _smoothing_lines(res):
        click.echo(line)
    acc = "n/a (no labelled windows)" if res.accuracy is None else f"{100 * res.accuracy:.1f}%"
    click.echo(
        f"accuracy {acc} on {res.scored} of {res.windows} windows; {res.elapsed_s:.2f} s "
        f"({res.runtime}{', batched' if res.batched else ''}{_personal(res)})"
    )


def _personal(res: ReplayResult) -> str:
    """Says when the live model ran because the bundle is adapted (not for --exact)."""
    if "+" not in res.model:
        return ""
    return f", {res.model}: the live model, which the personal head was fitted on"


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


def _smoothing_lines(res: ReplayResult) -> list[str]:
    """Event scores (raw -> smoothed) and the smoothed window accuracy, for the text output."""
    raw, sm = res.events.get("raw"), res.events.get("smoothed")
    if not raw or not sm or not raw["true_segments"]:
        return []
    on = res.smoothing.active

    def both(key: str, fmt: str) -> str:
        return f"{raw[key]:{fmt}} -> {sm[key]:{fmt}}" if on else f"{raw[key]:{fmt}}"

    acc = "n/a" if res.smoothed_accuracy is None else f"{100 * res.smoothed_accuracy:.1f}%"
    head = f"smoothing {res.smoothing.spec}: accuracy {acc}" if on else "smoothing none"
    return [
        f"{head}; events (raw{' -> smoothed' if on else ''}): segment F1@{raw['iou']:g} {both('segment_f1', '.2f')}, "
        f"edit score {both('edit_score', '.2f')}, activity changes {both('pred_changes', 'd')} "
        f"(recorded {raw['true_changes']})"
    ]


COMMANDS = [replay_cmd]
