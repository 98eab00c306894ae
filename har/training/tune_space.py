"""The search space of `har tune`: one function, :func:`suggest_config`, turns an Optuna trial into
a :class:`~har.config.TrainConfig`. No TensorFlow here (Optuna only).

The choices live in :class:`SearchSpace` (a frozen dataclass; ``har tune --space FILE`` narrows or
widens them with a JSON object of the same keys). A parameter is only suggested when the config
field it sets exists (``dataclasses.fields``): ``ModelConfig.representation``, ``conv_dilation``,
``pooling`` and ``TrainConfig.label_smoothing`` are searched as soon as the model code has them.
To search something new: add a tuple of choices to SearchSpace and one ``_suggest`` line below.

Augmentation is searched as a policy, not knob by knob: ``none``; ``light`` (scale, jitter, time
warp); ``tilt`` (light + a small random 3-D tilt); ``orientation`` (tilt + any rotation about the
device z axis: strap twist, other wrist); ``auto`` (`har train`'s default: tilt + a z rotation of 0 or
180 degrees chosen by a quick validation inside each fit). Orientation augmentation is therefore used
only where the cross-validation folds score it above the others.

A new study's first trial is `har train`'s own default configuration (:func:`default_params`, enqueued
by har.training.tune.open_study), the way Edge Impulse's EON Tuner starts from a known-good
baseline: the space therefore holds every default value (hop_fraction 0.2 = the default 1 s hop of
5 s windows, augment ``auto``, window_features ``none``). Where ``--space`` leaves a default value
out, the first trial takes the allowed value nearest to it (numbers) or the first one the space lists
(names)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from har.config import AUTO, AugmentConfig, ModelConfig, TrainConfig, config_from_dict

AUGMENT_POLICIES: dict[str, dict[str, Any]] = {
    "none": {"enabled": False},
    "light": {"rotation_deg": 0.0, "rotation_z_deg": 0.0, "scale": 0.1, "jitter_g": 0.01, "time_warp": 0.1},
    "tilt": {"rotation_deg": 15.0, "rotation_z_deg": 0.0, "scale": 0.1, "jitter_g": 0.01, "time_warp": 0.1},
    "orientation": {"rotation_deg": 15.0, "rotation_z_deg": 180.0, "scale": 0.1, "jitter_g": 0.01, "time_warp": 0.1},
    # `har train`'s default (AugmentConfig()): the z rotation (0 or 180) chosen by validation in each fit
    "auto": {"rotation_deg": 15.0, "rotation_z_deg": AUTO, "scale": 0.1, "jitter_g": 0.01, "time_warp": 0.1},
}


@dataclass(frozen=True)
class SearchSpace:
    """The choices searched by :func:`suggest_config` (each a tuple; one element = fixed)."""

    window_s: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 5.0)
    hop_fraction: tuple[float, ...] = (0.2, 0.25, 0.5)  # hop = window x this (0.2: the default 1 s of 5 s)
    representation: tuple[str, ...] = ("raw", "gravity_body", "raw_magnitude", "gravity_body_magnitude")
    augment: tuple[str, ...] = ("none", "light", "tilt", "orientation", "auto")
    conv_layers: tuple[int, ...] = (0, 1, 2)  # 0 = no Conv1D front end
    conv_filters: tuple[int, ...] = (16, 32, 64)
    conv_kernel: tuple[int, ...] = (3, 5, 7)
    conv_stride: tuple[int, ...] = (1, 2)
    conv_dilation: tuple[int, ...] = (1, 2, 4)  # layer i >= 1 dilated by this ** i; searched with 2+ layers
    lstm_layers: tuple[int, ...] = (1, 2)
    lstm_units: tuple[int, ...] = (16, 32, 64, 96)
    pooling: tuple[str, ...] = ("last", "mean", "attention")
    dropout: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)
    learning_rate: tuple[float, ...] = (5e-4, 1e-3, 2e-3, 5e-3)
    lr_schedule: tuple[str, ...] = ("constant", "plateau", "cosine")
    label_smoothing: tuple[float, ...] = (0.0, 0.05, 0.1)
    ensemble: tuple[int, ...] = (1, 2, 4)  # members exported as one model (costs that many trainings)
    # teachers (in-sample, cross-fitted by subject) need aeon and the windows in memory: dropped
    # without aeon or with --cache (:func:`available`)
    distill: tuple[str, ...] = ("none", "minirocket", "minirocket_oof")
    # MiniRocket features inside the model (ModelConfig.rocket_features, har.training.rocket; 0 = off):
    # needs aeon and the windows in memory, dropped as the teachers are (:func:`available`); not
    # searched for windows under 9 samples
    rocket_features: tuple[int, ...] = (0, 10000)
    # the window-features branch (ModelConfig.window_features, har.training.window_features): "none"
    # (off, the default) or the MLP's hidden units separated by commas; not searched for windows
    # under har.signal_features.MIN_SAMPLES samples
    window_features: tuple[str, ...] = ("none", "64", "128,64")

    def __post_init__(self) -> None:
        from har.errors import ConfigError

        for f in dataclasses.fields(self):
            if not getattr(self, f.name):
                raise ConfigError(f"search space: {f.name} has no choices")
        from har.config import DISTILL

        bad = sorted(set(self.distill) - set(DISTILL))
        if bad:
            raise ConfigError(f"search space: unknown distill choice {bad[0]!r} ({', '.join(DISTILL)})")
        if any(n < 0 or 0 < n < 84 for n in self.rocket_features):
            raise ConfigError(
                f"search space: rocket_features must be 0 (off) or at least 84, got {list(self.rocket_features)}"
            )
        for choice in self.window_features:
            window_features_of(choice)  # ConfigError when it is not "none" or valid hidden units
        unknown = sorted(set(self.augment) - set(AUGMENT_POLICIES))
        if unknown:
            raise ConfigError(f"search space: unknown augment policy {unknown[0]!r} ({', '.join(AUGMENT_POLICIES)})")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        """From JSON (lists for tuples; a single value means that value only); unknown keys rejected."""
        if isinstance(data, dict):
            data = {k: (v if isinstance(v, list) else [v]) for k, v in data.items()}
            if "window_features" in data:  # 64 or [128, 64] mean "64" and "128,64"; [] and 0 mean "none"
                data["window_features"] = [_window_features_text(v) for v in data["window_features"]]
        return config_from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}


def window_features_of(choice: str) -> tuple[int, ...]:
    """The ``ModelConfig.window_features`` of a search choice: "none" (or "0", "") = (), else hidden
    units separated by commas ("128,64"); ConfigError naming the search space otherwise."""
    from har.errors import ConfigError

    text = str(choice).strip().lower()
    if text in ("", "none", "0"):
        return ()
    try:
        units = tuple(int(u) for u in text.split(","))
        ModelConfig(window_features=units)  # the model's own limits
    except (ValueError, ConfigError):
        raise ConfigError(
            f"search space: window_features choices must be none or hidden units separated by commas "
            f"(e.g. 128,64), got {choice!r}"
        ) from None
    return units


def _window_features_text(value: Any) -> Any:
    """A ``--space`` file's window_features choice as its text ("128,64" / "none"); other values as given
    (rejected by the type check)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "none" if value == 0 else str(value)
    if isinstance(value, list) and all(isinstance(u, int) and not isinstance(u, bool) for u in value):
        return ",".join(str(u) for u in value) or "none"
    return value


def _window_features_name(units: tuple[int, ...]) -> str:
    return ",".join(str(u) for u in units) or "none"


# user attribute of the trial that runs `har train`'s default configuration: {"moved": {param: [default,
# used]}} for each default value the search space does not allow ({} = exactly the default)
DEFAULT_ATTR = "har_default"

TEACHERS = ("minirocket", "minirocket_oof")  # distill choices that fit a MiniRocket teacher


def available(space: SearchSpace, cache: bool = False) -> tuple[SearchSpace, str]:
    """``space`` without choices this machine cannot train (the MiniRocket teachers and the
    MiniRocket branch without aeon, or with ``cache``: `har tune --cache` streams windows, MiniRocket
    needs them in memory), and a one-line note saying what was dropped ("" when nothing).
    ConfigError when nothing is left."""
    space, note_t = _available_teachers(space, cache)
    space, note_r = _available_rocket(space, cache)
    return space, "; ".join(n for n in (note_t, note_r) if n)


def _why_not_searchable(what: str, cache: bool) -> str:
    """Why ``what`` (the MiniRocket branch or teacher: aeon, fitted on windows in memory) cannot be
    searched here ("" when it can)."""
    if cache:
        return f"the window cache (--cache) streams the windows, {what} needs them in memory"
    from har.training.rocket import aeon_available

    return "" if aeon_available() else "aeon is not installed"


def _available_rocket(space: SearchSpace, cache: bool) -> tuple[SearchSpace, str]:
    with_rocket = [n for n in space.rocket_features if n > 0]
    if not with_rocket:
        return space, ""
    why = _why_not_searchable("MiniRocket", cache)
    if not why:
        return space, ""
    names = ", ".join(str(n) for n in with_rocket)
    if 0 not in space.rocket_features:
        from har.errors import ConfigError
        from har.training.rocket import INSTALL_HINT

        hint = f": {INSTALL_HINT}" if not cache else " (search it without --cache)"
        raise ConfigError(f"search space: rocket_features {names} cannot be searched here: {why}{hint}")
    return dataclasses.replace(space, rocket_features=(0,)), f"rocket_features {names} not searched: {why}"


def _available_teachers(space: SearchSpace, cache: bool) -> tuple[SearchSpace, str]:
    teachers = [d for d in space.distill if d in TEACHERS]
    if not teachers:
        return space, ""
    why = _why_not_searchable("the teacher", cache)
    if not why:
        return space, ""
    rest = tuple(d for d in space.distill if d not in TEACHERS)
    names = " and ".join(teachers)
    if not rest:
        from har.errors import ConfigError
        from har.training.distill import INSTALL_HINT

        hint = f": {INSTALL_HINT}" if not cache else " (search them without --cache)"
        raise ConfigError(f"search space: distill {names} cannot be searched here: {why}{hint}") from None
    return dataclasses.replace(space, distill=rest), f"distill {names} not searched: {why}"


def has_field(cls: type, name: str) -> bool:
    """True when dataclass ``cls`` has a field ``name`` (so it can be searched)."""
    return name in {f.name for f in dataclasses.fields(cls)}


def searched_fields() -> list[str]:
    """The optional config fields this har version can search (see the module docstring)."""
    opt = [("ModelConfig", ModelConfig, n) for n in ("representation", "conv_dilation", "pooling")]
    opt += [("ModelConfig", ModelConfig, n) for n in ("ensemble", "rocket_features", "window_features")]
    opt += [("TrainConfig", TrainConfig, n) for n in ("label_smoothing", "distill")]
    return [f"{cn}.{n}" for cn, c, n in opt if has_field(c, n)]


def suggest_config(trial: Any, base: TrainConfig, space: SearchSpace) -> TrainConfig:
    """One point of ``space`` drawn through ``trial`` (an ``optuna.Trial``), on top of ``base``
    (rate, purity, epochs, batch size, seed ... come from ``base``)."""

    def pick(name: str, choices: tuple[Any, ...]) -> Any:
        return trial.suggest_categorical(name, list(choices))

    window_s = float(pick("window_s", space.window_s))
    hop_s = round(window_s * float(pick("hop_fraction", space.hop_fraction)), 6)
    window = dataclasses.replace(base.window, window_s=window_s, hop_s=hop_s)

    model: dict[str, Any] = {}
    conv_layers = int(pick("conv_layers", space.conv_layers))
    if conv_layers == 0:
        model.update(conv_filters=0, conv_layers=1, conv_stride=1)
    else:
        model.update(
            conv_layers=conv_layers,
            conv_filters=int(pick("conv_filters", space.conv_filters)),
            conv_kernel=int(pick("conv_kernel", space.conv_kernel)),
            conv_stride=int(pick("conv_stride", space.conv_stride)),
        )
        if has_field(ModelConfig, "conv_dilation"):  # dilates layers 2.. (layer 1 carries the stride)
            model["conv_dilation"] = int(pick("conv_dilation", space.conv_dilation)) if conv_layers > 1 else 1
    n_lstm = int(pick("lstm_layers", space.lstm_layers))
    model["lstm_units"] = tuple(int(pick(f"lstm_units_{i}", space.lstm_units)) for i in range(n_lstm))
    model["dropout"] = float(pick("dropout", space.dropout))
    if has_field(ModelConfig, "representation"):
        model["representation"] = str(pick("representation", space.representation))
    if has_field(ModelConfig, "pooling"):
        model["pooling"] = str(pick("pooling", space.pooling))
    if has_field(ModelConfig, "ensemble"):
        model["ensemble"] = int(pick("ensemble", space.ensemble))
    if has_field(ModelConfig, "rocket_features"):  # MiniRocket needs windows of 9 samples or more
        from har.training.rocket import KERNEL_LENGTH

        long_enough = window.window_samples >= KERNEL_LENGTH
        model["rocket_features"] = int(pick("rocket_features", space.rocket_features)) if long_enough else 0
    if has_field(ModelConfig, "window_features"):  # the features need MIN_SAMPLES samples per window
        from har.signal_features import MIN_SAMPLES

        wf = pick("window_features", space.window_features) if window.window_samples >= MIN_SAMPLES else "none"
        model["window_features"] = window_features_of(wf)

    policy = str(pick("augment", space.augment))
    augment = dataclasses.replace(AugmentConfig(), **AUGMENT_POLICIES[policy])

    train: dict[str, Any] = {
        "learning_rate": float(pick("learning_rate", space.learning_rate)),
        "lr_schedule": str(pick("lr_schedule", space.lr_schedule)),
    }
    if has_field(TrainConfig, "label_smoothing"):
        train["label_smoothing"] = float(pick("label_smoothing", space.label_smoothing))
    if has_field(TrainConfig, "distill"):
        train["distill"] = str(pick("distill", space.distill))
    return dataclasses.replace(
        base,
        window=window,
        model=dataclasses.replace(base.model, **model),
        augment=augment,
        **train,
    )


def _policy_of(augment: AugmentConfig) -> str | None:
    """The name of the augmentation policy that is exactly ``augment`` (None: no policy is)."""
    return next(
        (name for name, kw in AUGMENT_POLICIES.items() if dataclasses.replace(AugmentConfig(), **kw) == augment), None
    )


def _wanted(cfg: TrainConfig) -> dict[str, Any]:
    """The searched settings of ``cfg`` under the search's parameter names (``lstm_units_i`` apart)."""
    w, m = cfg.window, cfg.model
    return {
        "window_s": w.window_s,
        "hop_fraction": round(w.hop_s / w.window_s, 6),
        "conv_layers": m.conv_layers if m.conv_filters > 0 else 0,
        "conv_filters": m.conv_filters,
        "conv_kernel": m.conv_kernel,
        "conv_stride": m.conv_stride,
        "conv_dilation": getattr(m, "conv_dilation", 1),
        "lstm_layers": len(m.lstm_units),
        "dropout": m.dropout,
        "representation": getattr(m, "representation", "raw"),
        "pooling": getattr(m, "pooling", "last"),
        "ensemble": getattr(m, "ensemble", 1),
        "rocket_features": getattr(m, "rocket_features", 0),
        "window_features": _window_features_name(tuple(getattr(m, "window_features", ()))),
        "augment": _policy_of(cfg.augment),
        "learning_rate": cfg.learning_rate,
        "lr_schedule": cfg.lr_schedule,
        "label_smoothing": getattr(cfg, "label_smoothing", 0.0),
        "distill": getattr(cfg, "distill", "none"),
    }


def _nearest(want: Any, choices: list[Any]) -> Any:
    """``want`` if allowed; else the nearest allowed number (the first listed on a tie), or the first
    choice listed (names, and a number wanted among names)."""
    if want in choices:
        return want
    number = (int, float)
    if isinstance(want, number) and all(isinstance(c, number) and not isinstance(c, bool) for c in choices):
        return min(choices, key=lambda c: abs(c - want))
    return choices[0]


class _DefaultTrial:
    """Answers :func:`suggest_config`'s choices with ``cfg``'s values, or the nearest ones the space
    allows, and records them (``params``) and where the space moved them (``moved``). Driving
    suggest_config itself keeps the conditional structure (no conv, 1 conv layer, short windows ...)
    in one place."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.wanted = _wanted(cfg)
        self.params: dict[str, Any] = {}
        self.moved: dict[str, list[Any]] = {}

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        if name.startswith("lstm_units_"):
            units = self.cfg.model.lstm_units
            want: Any = units[min(int(name.rsplit("_", 1)[1]), len(units) - 1)]
        else:
            want = self.wanted.get(name)
        got = _nearest(want, choices)
        self.params[name] = got
        if got != want:
            self.moved[name] = [want, got]
        return got


def default_params(base: TrainConfig, space: SearchSpace) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The parameters (search names) that make :func:`suggest_config` give ``base``'s own settings
    (`har tune` passes its base config, i.e. ``TrainConfig()`` at the data's rate), and
    ``{name: [default, used]}`` for each one ``space`` does not allow, replaced by the allowed value
    nearest to the default (numbers; the first listed on a tie) or the first listed (names). With the
    full :class:`SearchSpace`, ``suggest_config`` of these parameters is ``base`` itself."""
    trial = _DefaultTrial(base)
    suggest_config(trial, base, space)
    return trial.params, trial.moved


# One-knob moves away from `har train`'s default, tried right after it (``har tune --neighbours N``
# takes the first N that the search space allows and that differ from the default): a search of a
# few trials (an hour on a few thousand windows) then refines the known-good baseline instead of
# drawing random configurations far from it. Twice the ensemble members comes first: it changes no
# model choice, only averages more independently trained LSTMs (less variance, the same bias), so it
# is the move most likely to carry from the folds to new people; it costs twice the training and
# adds only the LSTM branches to the int8 model (the MiniRocket branch is shared). The window-features
# branch follows (+0.8 points in 3-fold CV on the watch set's training subjects, docs/training.md
# "Window features beside the LSTM"; +1.0 +- 1.3 and -0.2 +- 0.2 as har tune neighbours on the watch
# and WISDM training subjects, README); the order of the others (head, augmentation, width, input,
# regularisation, teacher) is a judgement, not a measurement.
NEIGHBOUR_MOVES: tuple[tuple[str, Any], ...] = (
    ("ensemble", 4),
    ("window_features", "128,64"),
    ("pooling", "attention"),
    ("augment", "none"),
    ("lstm_units_0", 96),
    ("representation", "raw_magnitude"),
    ("dropout", 0.3),
    ("label_smoothing", 0.1),
    ("distill", "minirocket_oof"),
)
# user attribute of a neighbour trial: {"move": "param value"}
NEIGHBOUR_ATTR = "har_default_neighbour"


def neighbour_params(base: TrainConfig, space: SearchSpace, limit: int) -> list[tuple[dict[str, Any], str]]:
    """Up to ``limit`` parameter sets, each :func:`default_params` with one :data:`NEIGHBOUR_MOVES`
    move applied, and the move as text ("window_features 128,64"). A move is skipped when the space
    does not allow its value, when the default already has it, or when the default's configuration
    does not use that parameter (no window features for windows too short, say)."""
    params, _ = default_params(base, space)
    out: list[tuple[dict[str, Any], str]] = []
    for name, value in NEIGHBOUR_MOVES:
        if len(out) >= limit:
            break
        field_name = "lstm_units" if name.startswith("lstm_units_") else name
        if name not in params or params[name] == value or value not in getattr(space, field_name, ()):
            continue
        moved = dict(params)
        moved[name] = value
        out.append((moved, f"{name} {value}"))
    return out


def moved_text(moved: dict[str, list[Any]]) -> str:
    """:func:`default_params`' ``moved`` as "hop_fraction 0.25 for 0.2, augment none for auto"."""
    return ", ".join(f"{k} {used} for {want}" for k, (want, used) in moved.items())


def describe(cfg: TrainConfig) -> str:
    """A one-line summary of the searched settings of ``cfg`` (leaderboard, progress)."""
    m, w, a = cfg.model, cfg.window, cfg.augment
    policy = _policy_of(a) or "custom"
    if m.conv_filters > 0:
        dil = getattr(m, "conv_dilation", 1)
        conv = f"conv {m.conv_layers}x{m.conv_filters} k{m.conv_kernel} s{m.conv_stride}"
        conv += f" d{dil}" if dil > 1 else ""
    else:
        conv = "no conv"
    parts = [
        f"win {w.window_s:g}s hop {w.hop_s:g}s",
        str(getattr(m, "representation", "raw")),
        f"aug {policy}",
        conv,
        "lstm " + ",".join(str(u) for u in m.lstm_units),
    ]
    if hasattr(m, "pooling"):
        parts.append(f"pool {m.pooling}")
    parts.append(f"drop {m.dropout:g}")
    parts.append(f"lr {cfg.learning_rate:g} {cfg.lr_schedule}")
    if hasattr(cfg, "label_smoothing"):
        parts.append(f"ls {cfg.label_smoothing:g}")
    if getattr(m, "ensemble", 1) > 1:
        parts.append(f"ensemble {m.ensemble}")
    if getattr(cfg, "distill", "none") != "none":
        parts.append(f"distill {cfg.distill}")
    if getattr(m, "rocket_features", 0) > 0:
        beta = getattr(m, "rocket_beta", None)
        default_beta = ModelConfig().rocket_beta
        parts.append(f"rocket {m.rocket_features}" + (f" beta {beta:g}" if beta != default_beta and
                                                        not isinstance(beta, str) else ""))
    if getattr(m, "window_features", ()):
        parts.append(f"wf {_window_features_name(tuple(m.window_features))}")
    return " | ".join(parts)
