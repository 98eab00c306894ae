"""`har train`: recordings -> model directory. TensorFlow is imported inside the command only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from har.config import LR_SCHEDULES, AugmentConfig, ModelConfig, TrainConfig, WindowConfig
from har.errors import ConfigError, TrainingError

_W = WindowConfig()
_M = ModelConfig()
_T = TrainConfig()
_A = AugmentConfig()


def _parse_units(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(u) for u in text.split(",") if u.strip())
    except ValueError:
        raise ConfigError(
            f"--lstm-units must be integers separated by commas (e.g. 64 or 64,32), got {text!r}"
        ) from None
    if not units:
        raise ConfigError("--lstm-units is empty")
    return units


_CONFIG_COMPATIBLE = {"data", "out", "test", "test_subjects", "overwrite", "config_file", "force"}


def _config_from_file(path: Path, test_subjects: str) -> TrainConfig:
    """``--config FILE``: a TrainConfig JSON (or a leaderboard entry holding one under "config").
    Options that the file already sets may not be given as well."""
    import json

    from click.core import ParameterSource

    from har.config import config_from_dict

    ctx = click.get_current_context()
    flag = {p.name: max(p.opts, key=len) for p in ctx.command.params}
    clash = sorted(
        flag.get(name, name)
        for name in ctx.params
        if name not in _CONFIG_COMPATIBLE and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    )
    if clash:
        raise ConfigError(f"--config {path} sets the training options: drop {', '.join(clash)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: invalid JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and "trial" in data:
        data = data["config"]
    config = config_from_dict(TrainConfig, data)
    subjects = tuple(s.strip() for s in test_subjects.split(",") if s.strip())
    if subjects:
        config = dataclasses.replace(config, test_subjects=subjects)
    return config


@click.command("train")
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Model directory to write.")
@click.option(
    "--test",
    "test",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Test recordings (file or directory; repeatable). Default: hold out subjects of DATA.",
)
@click.option(
    "--test-subjects",
    default="",
    show_default=False,
    help="Comma-separated subjects to hold out for testing. Default: a seeded random "
    f"{_T.test_fraction:g} fraction of the subjects.",
)
@click.option(
    "--window", "window_s", type=float, default=_W.window_s, show_default=True, help="Window length, seconds."
)
@click.option("--hop", "hop_s", type=float, default=_W.hop_s, show_default=True, help="Hop between windows, seconds.")
@click.option(
    "--rate",
    "rate_hz",
    type=float,
    default=_W.rate_hz,
    show_default=True,
    help="Model sample rate, Hz (recordings at other rates are resampled).",
)
@click.option(
    "--purity",
    type=float,
    default=_W.purity,
    show_default=True,
    help="Minimum fraction (0-1] of a window's samples that must carry its label.",
)
@click.option("--epochs", type=int, default=_T.epochs, show_default=True, help="Maximum training epochs.")
@click.option("--batch-size", type=int, default=_T.batch_size, show_default=True, help="Windows per batch.")
@click.option(
    "--lstm-units",
    default=",".join(str(u) for u in _M.lstm_units),
    show_default=True,
    help="LSTM layer sizes, comma separated (e.g. 64 or 64,32).",
)
@click.option("--dropout", type=float, default=_M.dropout, show_default=True, help="Dropout fraction [0, 1).")
@click.option("--lr", "lr", type=float, default=_T.learning_rate, show_default=True, help="Adam learning rate.")
@click.option(
    "--patience",
    type=int,
    default=_T.patience,
    show_default=True,
    help="Early stopping: epochs without validation-loss improvement.",
)
@click.option(
    "--conv-filters",
    type=int,
    default=_M.conv_filters,
    show_default=True,
    help="Conv1D front end before the LSTM: filters per layer (0 = no front end).",
)
@click.option(
    "--conv-kernel", type=int, default=_M.conv_kernel, show_default=True, help="Conv1D kernel length, samples."
)
@click.option(
    "--conv-stride",
    type=int,
    default=_M.conv_stride,
    show_default=True,
    help="Conv1D stride, samples (2 halves the LSTM's sequence).",
)
@click.option("--conv-layers", type=int, default=_M.conv_layers, show_default=True, help="Number of Conv1D layers.")
@click.option(
    "--augment/--no-augment",
    default=_A.enabled,
    show_default=True,
    help="Augment training batches on the fly (rotation, scaling, jitter, time warp).",
)
@click.option(
    "--augment-p",
    type=float,
    default=_A.p,
    show_default=True,
    help="Probability [0, 1] that each augmentation is applied to a window.",
)
@click.option(
    "--rotation",
    "rotation_deg",
    type=float,
    default=_A.rotation_deg,
    show_default=True,
    help="Augmentation: max random 3-D rotation of the device, degrees (0 = off).",
)
@click.option(
    "--rotation-z",
    "rotation_z_deg",
    type=float,
    default=_A.rotation_z_deg,
    show_default=True,
    help="Augmentation: max random rotation about the device z axis (strap twist; 180 also covers "
    "the other wrist), degrees (0 = off).",
)
@click.option(
    "--scale",
    "scale",
    type=float,
    default=_A.scale,
    show_default=True,
    help="Augmentation: max relative amplitude scaling, fraction (0.1 = x0.9..1.1; 0 = off).",
)
@click.option(
    "--jitter",
    "jitter_g",
    type=float,
    default=_A.jitter_g,
    show_default=True,
    help="Augmentation: Gaussian noise standard deviation, g (0 = off).",
)
@click.option(
    "--time-warp",
    type=float,
    default=_A.time_warp,
    show_default=True,
    help="Augmentation: max relative local speed change, fraction (0.1 = +-10 %; 0 = off).",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(LR_SCHEDULES),
    default=_T.lr_schedule,
    show_default=True,
    help="plateau: halve (x lr-factor) the learning rate after --lr-patience epochs without validation "
    "improvement; cosine: decay to --min-lr over --epochs; constant.",
)
@click.option(
    "--lr-factor",
    type=float,
    default=_T.lr_factor,
    show_default=True,
    help="plateau: factor (0, 1) applied to the learning rate.",
)
@click.option(
    "--lr-patience",
    type=int,
    default=_T.lr_patience,
    show_default=True,
    help="plateau: epochs without validation-loss improvement before reducing.",
)
@click.option(
    "--min-lr", type=float, default=_T.min_lr, show_default=True, help="Lowest learning rate (plateau, cosine)."
)
@click.option(
    "--class-weights/--no-class-weights",
    default=_T.class_weights,
    show_default=True,
    help="Weight the loss by inverse class frequency (balanced).",
)
@click.option(
    "--val-fraction",
    type=float,
    default=_T.val_fraction,
    show_default=True,
    help="Fraction of the training subjects held out for validation (early stopping, LR schedule).",
)
@click.option(
    "--cv",
    "cv_folds",
    type=int,
    default=_T.cv_folds,
    show_default=True,
    help="Leave-subjects-out K-fold cross-validation over the non-test subjects before the final "
    "training (0 = off); per-fold and mean +- std accuracy / macro-F1 go into the report.",
)
@click.option(
    "--clipnorm",
    type=click.FloatRange(0.0),
    default=_T.clipnorm,
    show_default=True,
    help="Clip each gradient's norm to this (0 = off); keeps LSTM training from blowing up.",
)
@click.option("--seed", type=int, default=_T.seed, show_default=True, help="Random seed (split, init, shuffling).")
@click.option("--overwrite", is_flag=True, help="Allow writing into a non-empty --out directory.  [default: off]")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Train with the TrainConfig in this JSON file (e.g. OUT/configs/trial-NNNN.json or an entry of "
    "leaderboard.json from `har tune`); only --test and --test-subjects may be given with it.",
)
@click.option("--force", is_flag=True,
              help="Train on data that fails the plausibility checks (units, timestamps, sidecar vs CSV) or "
              "with classes that have no test windows, with warnings  [default: refuse before training].")
def train_cmd(
    data: tuple[Path, ...],
    out: Path,
    test: tuple[Path, ...],
    test_subjects: str,
    window_s: float,
    hop_s: float,
    rate_hz: float,
    purity: float,
    epochs: int,
    batch_size: int,
    lstm_units: str,
    dropout: float,
    lr: float,
    patience: int,
    conv_filters: int,
    conv_kernel: int,
    conv_stride: int,
    conv_layers: int,
    augment: bool,
    augment_p: float,
    rotation_deg: float,
    rotation_z_deg: float,
    scale: float,
    jitter_g: float,
    time_warp: float,
    lr_schedule: str,
    lr_factor: float,
    lr_patience: int,
    min_lr: float,
    class_weights: bool,
    val_fraction: float,
    cv_folds: int,
    clipnorm: float,
    seed: int,
    overwrite: bool,
    config_file: Path | None = None,
    force: bool = False,
) -> None:
    """Train an LSTM on recordings DATA (files, or directories searched recursively).

    Splits by subject, trains with early stopping on validation subjects, writes the model
    directory (metadata.json, model.weights.h5, reports, figures) to --out. With --cv K it first
    cross-validates over subjects and reports per-fold and mean +- std numbers; the saved model is
    still the one trained on all training subjects."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TrainingError(f"{out} is not empty (pass --overwrite to replace its model)")
    if epochs < 1 or batch_size < 1 or patience < 0:
        raise ConfigError("--epochs and --batch-size must be at least 1, --patience at least 0")
    if lr <= 0 or min_lr < 0:
        raise ConfigError(f"--lr must be positive and --min-lr non-negative, got {lr} and {min_lr}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    config = TrainConfig(
        window=WindowConfig(rate_hz=rate_hz, window_s=window_s, hop_s=hop_s, purity=purity),
        model=ModelConfig(
            lstm_units=_parse_units(lstm_units),
            dropout=dropout,
            conv_filters=conv_filters,
            conv_kernel=conv_kernel,
            conv_stride=conv_stride,
            conv_layers=conv_layers,
        ),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        patience=patience,
        seed=seed,
        val_fraction=val_fraction,
        class_weights=class_weights,
        augment=AugmentConfig(
            enabled=augment,
            p=augment_p,
            rotation_deg=rotation_deg,
            rotation_z_deg=rotation_z_deg,
            scale=scale,
            jitter_g=jitter_g,
            time_warp=time_warp,
        ),
        lr_schedule=lr_schedule,
        lr_factor=lr_factor,
        lr_patience=lr_patience,
        min_lr=min_lr,
        cv_folds=cv_folds,
        clipnorm=clipnorm,
        test_subjects=tuple(s.strip() for s in test_subjects.split(",") if s.strip()),
    )
    if config_file is not None:
        config = _config_from_file(config_file, test_subjects)
    from har.training.train import REPORT_TXT, train

    result = train(list(data), out, config, test_data=list(test) or None, progress=True, echo=click.echo,
                   force=force)
    m = result.metadata.metrics
    click.echo(f"accuracy: {m['accuracy']:.4f}")
    from har.scoring.metrics import macro_f1_note

    note = macro_f1_note(result.metrics.get("metrics", {}))
    click.echo(f"macro-F1: {m['macro_f1']:.4f}  ({m['n_test_windows']} test windows){note}")
    cv = result.metrics.get("cv")
    if cv:
        click.echo(
            f"cv {cv['k']}-fold: accuracy {cv['accuracy_mean']:.4f} +- {cv['accuracy_std']:.4f}  "
            f"macro-F1 {cv['macro_f1_mean']:.4f} +- {cv['macro_f1_std']:.4f}"
        )
    click.echo(f"report:   {result.out_dir / REPORT_TXT}")


COMMANDS = [train_cmd]
