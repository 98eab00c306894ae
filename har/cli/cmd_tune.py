"""`har tune`: model search under a device budget. Progress goes to stderr, the result to stdout."""

from __future__ import annotations

import json
from pathlib import Path

import click

from har.config import TrainConfig, WindowConfig
from har.errors import ConfigError

_DEFAULT_TRIALS = 20


@click.command("tune")
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Directory for study.db, leaderboard, plot, finalists and best/ (re-run to resume).")
@click.option("--trials", type=int, default=None,
              help=f"Trials in the study, counted over every process searching it [default: {_DEFAULT_TRIALS} "
              "unless --time-budget].")
@click.option("--time-budget", "time_budget", type=float, default=None, metavar="MIN",
              help="Stop starting new trials after this many minutes (finalists are measured afterwards).")
@click.option("--max-kb", type=float, default=None, help="Budget: int8 model.tflite size, KB.")
@click.option("--max-ms", type=float, default=None,
              help="Budget: latency per window, ms (median, 1 thread, this machine's TFLite runtime).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna RDB storage URL shared by several processes or machines, e.g. "
              "postgresql://user:pw@host/db  [default: sqlite:///OUT/study.db].")
@click.option("--study", default="har-tune", show_default=True, help="Study name in the storage.")
@click.option("--folds", type=int, default=3, show_default=True,
              help="Cross-validation folds (leave-subjects-out; over recordings when there is one subject).")
@click.option("--rate", "rate_hz", type=float, default=WindowConfig().rate_hz, show_default=True,
              help="Model sample rate, Hz.")
@click.option("--epochs", type=int, default=None,
              help=f"Maximum epochs per fit, early stopping either way [default: har train's, {TrainConfig().epochs}].")
@click.option("--finalists", type=int, default=3, show_default=True,
              help="Best trials exported to int8 and measured (more while none fits the budget).")
@click.option("--space", "space_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="JSON object narrowing the search space, e.g. {\"lstm_layers\": [1], \"window_s\": [2, 3]}.")
@click.option("--search-only", is_flag=True,
              help="Only run trials (a worker on a shared --storage); leave finalists and best/ to one final run.")
@click.option("--min-agreement", type=click.FloatRange(0.0, 1.0), default=0.98, show_default=True,
              help="int8 export verification: minimum argmax agreement with Keras.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of folds, sampler and training.")
@click.option("--neighbours", type=click.IntRange(min=0), default=4, show_default=True,
              help="Trials right after the default that each move one of its settings (0: none).")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Read windows through window caches in this directory (data larger than memory; one cache per "
              "window length tried, each recording converted once per window). [default: in memory]")
def tune_cmd(
    data: tuple[Path, ...], out: Path, trials: int | None, time_budget: float | None, max_kb: float | None,
    max_ms: float | None, storage: str | None, study: str, folds: int, rate_hz: float, epochs: int | None,
    finalists: int, space_file: Path | None, search_only: bool, min_agreement: float, seed: int,
    cache_dir: Path | None, neighbours: int,
) -> None:
    """Search model and training settings for recordings DATA, scored by cross-validation inside DATA.

    The first trial of a new study is har train's own default configuration (as close as --space
    allows), scored like any other and marked "[har default]" in the leaderboard, so the search
    starts from a known-good baseline; the next --neighbours trials each move one of its settings.
    Each further trial draws a configuration (window, input
    representation, augmentation, conv front end, LSTM, pooling, dropout, learning-rate schedule,
    label smoothing) with Optuna's TPE sampler and scores it by leave-subjects-out folds; bad
    trials are pruned after a fold. The best trials (a trial ahead of the default only when it beats
    it by more than one standard error over the folds) are
    trained on all of DATA, exported to int8 TFLite and measured against --max-kb / --max-ms. Writes
    OUT/leaderboard.txt + .json, OUT/pareto.png and OUT/best (deploy it with `har deploy`).
    Interrupted? Run the same command again: finished trials are kept in OUT/study.db."""
    from har.training.tune import TuneOptions, tune
    from har.training.tune_report import default_line
    from har.training.tune_space import SearchSpace

    space = SearchSpace()
    if space_file is not None:
        try:
            space = SearchSpace.from_dict(json.loads(space_file.read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise ConfigError(f"--space {space_file}: invalid JSON ({e})") from None
    opts = TuneOptions(
        trials=trials, time_budget_min=time_budget, max_kb=max_kb, max_ms=max_ms, storage=storage, study=study,
        folds=folds, rate_hz=rate_hz, epochs=epochs, seed=seed, finalists=finalists, search_only=search_only,
        min_agreement=min_agreement, cache=None if cache_dir is None else str(cache_dir), neighbours=neighbours,
    )
    result = tune(list(data), out, opts, space=space, echo=lambda s: click.echo(s, err=True))
    click.echo(f"leaderboard: {out / 'leaderboard.txt'}")
    default = default_line(result.leaderboard)
    if default:
        click.echo(default)
    if result.plot is not None:
        click.echo(f"pareto plot: {result.plot}")
    w = result.winner
    if w is not None and result.best_dir is not None:
        click.echo(
            f"winner: trial {w['trial']}  CV accuracy {w['accuracy_mean']:.4f} +- {w['accuracy_std']:.4f}  "
            f"macro-F1 {w['macro_f1_mean']:.4f} +- {w['macro_f1_std']:.4f}  int8 {w['size_kb']:.1f} KB  "
            f"{w['latency_ms']:.3f} ms/window"
        )
        click.echo(f"model:  {result.best_dir}  (har deploy {result.best_dir} --out BUNDLE --quantize int8)")


COMMANDS = [tune_cmd]
