"""`har train`: recordings -> model directory. TensorFlow is imported inside the command only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from har.config import (
    AUTO,
    DISTILL,
    LR_SCHEDULES,
    MIXES,
    POOLINGS,
    REPRESENTATIONS,
    AugmentConfig,
    ModelConfig,
    TrainConfig,
    WindowConfig,
    config_from_dict,
)
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


def _parse_int_list(text: str, option: str, what: str, off: tuple[str, ...] = ("", "none")) -> tuple[int, ...]:
    """An option of integers separated by commas (``what``, e.g. "dilations ... (e.g. 1,2,4)");
    one of ``off`` = ()."""
    if text.strip().lower() in off:
        return ()
    try:
        return tuple(int(u) for u in text.split(",") if u.strip())
    except ValueError:
        raise ConfigError(f"{option} must be {what} or none, got {text!r}") from None


def _parse_dilations(text: str) -> tuple[int, ...]:
    """--conv-multiscale: "" or "none" = off, else dilations separated by commas."""
    return _parse_int_list(text, "--conv-multiscale", "dilations separated by commas (e.g. 1,2,4)")


def _parse_window_features(text: str) -> tuple[int, ...]:
    """--window-features: "", "none" or "0" = off, else hidden units separated by commas."""
    return _parse_int_list(text, "--window-features", "hidden units separated by commas (e.g. 128,64)",
                           off=("", "none", "0"))


class _OrAuto(click.ParamType):
    """A number (int or float) or the word "auto"."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = f"{kind.__name__}|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        try:
            return self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not {'an integer' if self.kind is int else 'a number'} or 'auto'", param, ctx)


_INT_OR_AUTO = _OrAuto(int)
_FLOAT_OR_AUTO = _OrAuto(float)

# command-line parameter -> (config section, field); section "" = TrainConfig itself
_FIELDS: dict[str, tuple[str, str]] = {
    "window_s": ("window", "window_s"),
    "hop_s": ("window", "hop_s"),
    "rate_hz": ("window", "rate_hz"),
    "purity": ("window", "purity"),
    "dropout": ("model", "dropout"),
    "conv_filters": ("model", "conv_filters"),
    "conv_kernel": ("model", "conv_kernel"),
    "conv_stride": ("model", "conv_stride"),
    "conv_layers": ("model", "conv_layers"),
    "conv_dilation": ("model", "conv_dilation"),
    "representation": ("model", "representation"),
    "pooling": ("model", "pooling"),
    "ensemble": ("model", "ensemble"),
    "equalize_channels": ("model", "equalize_channels"),
    "float_representation": ("model", "float_representation"),
    "rocket_features": ("model", "rocket_features"),
    "rocket_beta": ("model", "rocket_beta"),
    "distill": ("", "distill"),
    "distill_alpha": ("", "distill_alpha"),
    "distill_temperature": ("", "distill_temperature"),
    "augment": ("augment", "enabled"),
    "augment_p": ("augment", "p"),
    "rotation_deg": ("augment", "rotation_deg"),
    "rotation_z_deg": ("augment", "rotation_z_deg"),
    "scale": ("augment", "scale"),
    "jitter_g": ("augment", "jitter_g"),
    "time_warp": ("augment", "time_warp"),
    "mix": ("augment", "mix"),
    "mix_alpha": ("augment", "mix_alpha"),
    "weight_decay": ("", "weight_decay"),
    "epochs": ("", "epochs"),
    "batch_size": ("", "batch_size"),
    "lr": ("", "learning_rate"),
    "patience": ("", "patience"),
    "lr_schedule": ("", "lr_schedule"),
    "lr_factor": ("", "lr_factor"),
    "lr_patience": ("", "lr_patience"),
    "min_lr": ("", "min_lr"),
    "class_weights": ("", "class_weights"),
    "val_fraction": ("", "val_fraction"),
    "cv_folds": ("", "cv_folds"),
    "clipnorm": ("", "clipnorm"),
    "label_smoothing": ("", "label_smoothing"),
    "seed": ("", "seed"),
}


def load_config_file(path: Path) -> TrainConfig:
    """A TrainConfig from JSON: the config itself, ``{"config": {...}}`` (a leaderboard entry) or
    ``{"train_config": {...}}`` (a model directory's metadata.json)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"--config {path}: not valid JSON ({e})") from None
    for k in ("train_config", "config"):
        if isinstance(data, dict) and isinstance(data.get(k), dict):
            data = data[k]
            break
    return config_from_dict(TrainConfig, data)


def build_config(ctx: click.Context, params: dict[str, Any], base: TrainConfig | None) -> TrainConfig:
    """The TrainConfig of a `har train` call: ``base`` (from --config) or the defaults, with the
    options given on the command line (every option when there is no --config) applied."""
    given = {n for n in params if ctx.get_parameter_source(n) not in (click.core.ParameterSource.DEFAULT, None)}
    cfg = base or TrainConfig()
    use = (lambda n: n in given) if base is not None else (lambda n: True)  # noqa: E731
    sections: dict[str, dict[str, Any]] = {"": {}, "window": {}, "model": {}, "augment": {}}
    for name, (section, fld) in _FIELDS.items():
        if use(name):
            sections[section][fld] = params[name]
    if use("lstm_units"):
        sections["model"]["lstm_units"] = _parse_units(params["lstm_units"])
    if use("conv_multiscale"):
        sections["model"]["conv_multiscale"] = _parse_dilations(params["conv_multiscale"])
    if use("window_features"):
        sections["model"]["window_features"] = _parse_window_features(params["window_features"])
    if use("test_subjects"):
        sections[""]["test_subjects"] = tuple(s.strip() for s in params["test_subjects"].split(",") if s.strip())
    try:
        return dataclasses.replace(
            cfg,
            window=dataclasses.replace(cfg.window, **sections["window"]),
            model=dataclasses.replace(cfg.model, **sections["model"]),
            augment=dataclasses.replace(cfg.augment, **sections["augment"]),
            **sections[""],
        )
    except TypeError as e:
        raise ConfigError(str(e)) from None


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
@click.option(
    "--epochs",
    type=_INT_OR_AUTO,
    default=str(_T.epochs),
    show_default=True,
    help="Maximum training epochs, or auto (from the number of optimizer steps: hundreds of short epochs for "
    "a few hundred windows, tens for tens of thousands).",
)
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
    type=_INT_OR_AUTO,
    default=str(_T.patience),
    show_default=True,
    help="Early stopping: epochs without validation-loss improvement, or auto (a fifth of the epochs, 5-30).",
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
    "--conv-dilation",
    type=click.IntRange(1),
    default=_M.conv_dilation,
    show_default=True,
    help="Dilation base: Conv1D layer i >= 1 has dilation (base ** i) samples (the first layer carries the stride).",
)
@click.option(
    "--conv-multiscale",
    default=",".join(str(d) for d in _M.conv_multiscale) or "none",
    show_default=True,
    help="Multi-scale block after the conv front end: parallel Conv1D layers with these dilations "
    "(e.g. 1,2,4), summed with the front end's output; none = off.",
)
@click.option(
    "--representation",
    type=click.Choice(REPRESENTATIONS),
    default=_M.representation,
    show_default=True,
    help="Model input: raw g; gravity_body (a fixed 1/5-window moving average splits gravity and body "
    "acceleration); *_magnitude adds |a|^2 - 1 g^2. Computed inside the model.",
)
@click.option(
    "--pooling",
    type=click.Choice(POOLINGS),
    default=_M.pooling,
    show_default=True,
    help="Many-to-one head over the LSTM outputs: last state, mean over time, or attention.",
)
@click.option(
    "--ensemble",
    type=click.IntRange(1, 8),
    default=_T.model.ensemble,
    show_default=True,
    help="Train this many models (seeds seed, seed+1, ...) and export them as ONE model whose output "
    "averages their logits (1 = a single model; each member is one more training run).",
)
@click.option(
    "--rocket-features",
    type=click.IntRange(0),
    default=_T.model.rocket_features,
    show_default=True,
    help="MiniRocket inside the model: this many MiniRocket features (aeon, needed to train only) "
    "computed by fixed layers beside the LSTM, its ridge classifier added to the head with the "
    "weight --rocket-beta (0 = off: the LSTMs alone, a model of tens of kB instead of hundreds). Where it "
    "cannot be trained (--cache, --distributed, windows under 9 samples) the default's branch is dropped "
    "with a note; a number given here is refused there.",
)
@click.option(
    "--rocket-beta",
    "rocket_beta",
    type=_FLOAT_OR_AUTO,
    default=str(_M.rocket_beta),
    show_default=True,
    help="With --rocket-features: logits = LSTM logits + this x ridge scores, the ridge fitted on all "
    "training windows (16: chosen by CV on four data sets); auto: chosen on the validation windows "
    "(the ridge fitted without them).",
)
@click.option(
    "--window-features",
    default=",".join(str(u) for u in _T.model.window_features) or "none",
    show_default=True,
    help="Window features beside the LSTM: 63 fixed hand-made features of each window (band energies "
    "along and across gravity, quiet-part statistics, tilt; float32 also in an int8 export) into Dense "
    "relu layers of these sizes (e.g. 128,64), concatenated to the LSTM embedding; none = off.",
)
@click.option(
    "--equalize-channels/--no-equalize-channels",
    default=_M.equalize_channels,
    show_default=True,
    help="int8 export: scale each input-representation channel (and the first Conv1D's weights to "
    "match) so that every channel keeps its own int8 resolution; the same function.",
)
@click.option(
    "--float-representation/--int8-representation",
    default=_M.float_representation,
    show_default=True,
    help="int8 export: compute the input representation in float32 from the float input and quantise "
    "it where it enters the first Conv1D (fine input detail such as postural sway survives).",
)
@click.option(
    "--distill",
    type=click.Choice(DISTILL),
    default=_T.distill,
    show_default=True,
    help="Knowledge distillation: minirocket fits MiniRocket (aeon, training time only) on the training "
    "windows and trains the LSTM on its soft targets as well as the labels; minirocket_oof cross-fits it "
    "(each window's target from a MiniRocket fitted on the other subjects' windows, 3 fits).",
)
@click.option(
    "--distill-alpha",
    type=click.FloatRange(0.0, 1.0),
    default=_T.distill_alpha,
    show_default=True,
    help="Distillation: weight of the label loss; 1 - this weighs the teacher's soft targets.",
)
@click.option(
    "--distill-temperature",
    type=_FLOAT_OR_AUTO,
    default=_T.distill_temperature,
    show_default=True,
    help="Distillation: teacher soft targets are softmax(ridge decision / this); lower is sharper; auto: "
    "the temperature whose targets have the smallest log-loss on the training labels.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=_T.label_smoothing,
    show_default=True,
    help="Cross-entropy label smoothing [0, 1).",
)
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
    type=_FLOAT_OR_AUTO,
    default=str(_A.rotation_z_deg),
    show_default=True,
    help="Augmentation: max random rotation about the device z axis (strap twist; 180 also covers "
    "the other wrist), degrees (0 = off), or auto (0 or 180, whichever validates better on the training data).",
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
    "--mix",
    default=_A.mix,
    show_default=True,
    help=f"Batch mixing ({', '.join(MIXES)}): mixup blends each training window with another, cutmix "
    "pastes a time segment of another; targets are mixed in the same proportion (in-memory training only).",
)
@click.option(
    "--mix-alpha",
    type=float,
    default=_A.mix_alpha,
    show_default=True,
    help="Batch mixing: the partner's share is min(l, 1 - l), l ~ Beta(alpha, alpha).",
)
@click.option(
    "--weight-decay",
    type=float,
    default=_T.weight_decay,
    show_default=True,
    help="AdamW decoupled weight decay [0, 1) (0 = Adam).",
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
    type=_INT_OR_AUTO,
    default=str(_T.lr_patience),
    show_default=True,
    help="plateau: epochs without validation-loss improvement before reducing, or auto (half the patience).",
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
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Train this configuration (JSON: a TrainConfig, a `har tune` leaderboard entry with a 'config' "
    "key, or a model's metadata.json). Options given on the command line override it.",
)
@click.option(
    "--reference",
    is_flag=True,
    help="Also fit MiniRocket (aeon, in the train extra) on the same windows and report its "
    "test score beside har's.  [default: off]",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Read windows through a window cache in this directory (data larger than memory): recordings are "
    "converted once into arrays on disk (again only when one changes) and training, validation, --cv and "
    "test stream from it; never all windows in memory; the same split, seeds and model directory. Not with "
    "--reference.  [default: in memory; a warning suggests it when the windows would not fit]",
)
@click.option("--overwrite", is_flag=True, help="Allow writing into a non-empty --out directory.  [default: off]")
@click.option(
    "--force",
    is_flag=True,
    help="Train on data that fails the plausibility checks (units, timestamps, sidecar vs CSV) or "
    "with classes that have no test windows, with warnings  [default: refuse before training].",
)
@click.option(
    "--distributed",
    is_flag=True,
    help="Train on several machines (tf.distribute.MultiWorkerMirroredStrategy): run this same command on "
    "every worker, each with its TF_CONFIG; --batch-size is the global batch; only the chief writes --out. "
    "See README, 'Training on several machines'.  [default: off]",
)
def train_cmd(**params: Any) -> None:
    """Train an LSTM on recordings DATA (files, or directories searched recursively).

    Splits by subject, trains with early stopping on validation subjects (or, without subject ids,
    held-out training recordings), writes the model directory (metadata.json, model.weights.h5,
    reports, figures) to --out. With --cv K it first cross-validates over subjects and reports
    per-fold and mean +- std numbers; the saved model is still the one trained on all training
    subjects. --config FILE trains a stored configuration (e.g. a `har tune` leaderboard entry)."""
    out: Path = params["out"]
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not params["overwrite"]:
        raise TrainingError(f"{out} is not empty (pass --overwrite to replace its model)")
    if params["batch_size"] < 1:
        raise ConfigError("--batch-size must be at least 1")
    if params["lr"] <= 0 or params["min_lr"] < 0:
        raise ConfigError(f"--lr must be positive and --min-lr non-negative, got {params['lr']} and {params['min_lr']}")
    if not 0.0 <= params["val_fraction"] < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {params['val_fraction']}")
    base = load_config_file(params["config_file"]) if params["config_file"] else None
    config = build_config(click.get_current_context(), params, base)
    from har.training.train import REPORT_TXT, train

    test = list(params["test"]) or None
    if params["cache_dir"] is None:
        from har.training.stream import memory_warning

        warning = memory_warning(list(params["data"]) + (test or []), config.window)
        if warning:
            click.echo(f"warning: {warning}", err=True)
    named = click.get_current_context().get_parameter_source("rocket_features") not in (
        click.core.ParameterSource.DEFAULT, None)
    kwargs: dict[str, Any] = {"test_data": test, "progress": True, "echo": click.echo, "force": params["force"],
                              "reference": params["reference"], "cache_dir": params["cache_dir"],
                              "rocket_named": named}
    if params["distributed"]:
        from har.training.distributed import train_distributed

        result = train_distributed(list(params["data"]), out, config, **kwargs)
    else:
        result = train(list(params["data"]), out, config, **kwargs)
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
    ref = result.metrics.get("reference")
    if ref:
        click.echo(
            f"MiniRocket (reference, same windows): accuracy {ref['accuracy']:.4f}  macro-F1 {ref['macro_f1']:.4f}  "
            f"(har {m['accuracy'] - ref['accuracy']:+.4f})"
        )
    click.echo(f"report:   {result.out_dir / REPORT_TXT}")


COMMANDS = [train_cmd]
