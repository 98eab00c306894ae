"""`har replay`: a whole recording as fast as possible, with a timeline and accuracy.

Like `har run`, this module must never import TensorFlow / Keras."""

from __future__ import annotations

import json

import click

from .cmd_run import _fmt_time


@click.command("replay")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=str))
@click.argument("recording", type=click.Path(dir_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True, help="Interpreter threads.")
def replay_cmd(bundle: str, recording: str, as_json: bool, threads: int) -> None:
    """Classify RECORDING as fast as possible: timeline of predicted vs recorded labels, accuracy.

    Windows whose recorded label is unlabeled or mixed are shown but not scored.
    """
    from ..runtime.classifier import WindowClassifier
    from ..runtime.replay import replay

    clf = WindowClassifier.from_bundle(bundle, verify=True, num_threads=threads)
    res = replay(clf, recording)
    if as_json:
        click.echo(json.dumps(res.to_dict()))
        return
    click.echo(f"{'start':>9} {'end':>9}  {'predicted':<16} {'recorded':<16} windows")
    for s in res.segments:
        mark = "" if not s.true or s.true == s.predicted else "  <- differs"
        click.echo(
            f"{_fmt_time(s.start):>9} {_fmt_time(s.end):>9}  {s.predicted:<16} {s.true or '-':<16} {s.windows:>7}{mark}"
        )
    acc = "n/a (no labelled windows)" if res.accuracy is None else f"{100 * res.accuracy:.1f}%"
    click.echo(
        f"accuracy {acc} on {res.scored} of {res.windows} windows; {res.elapsed_s:.2f} s "
        f"({res.runtime}{', batched' if res.batched else ''})"
    )


COMMANDS = [replay_cmd]
