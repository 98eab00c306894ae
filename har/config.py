"""Frozen configuration dataclasses, saved into every artifact and read back from it.

``to_dict`` gives plain JSON types; ``from_dict`` rejects unknown keys and wrong types so a
model directory or bundle written by a different version fails loudly instead of silently."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from har.errors import ConfigError

T = TypeVar("T")

AXES = ("x", "y", "z")
UNITS = "g"


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as a JSON-ready dict (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            v = config_to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def _coerce(name: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(name, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name}: {value!r} does not fit {tp}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        elem = args[0] if args else Any
        return tuple(_coerce(name, elem, v) for v in value)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected an object, got {value!r}")
        return config_from_dict(tp, value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    return value


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    legacy = getattr(cls, "LEGACY_DEFAULTS", None)
    if legacy:  # keys written before a field existed keep their old meaning, not today's default
        data = {**legacy, **data}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)}")
    kwargs = {k: _coerce(f"{cls.__name__}.{k}", hints[k], v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


@dataclass(frozen=True)
class WindowConfig:
    """How streams are cut into windows. Window and hop are in seconds at ``rate_hz``."""

    rate_hz: float = 50.0
    window_s: float = 5.0  # chosen by experiment (docs/training.md, "Training defaults")
    hop_s: float = 1.0
    purity: float = 0.9  # fraction of a window's samples that must carry its label

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ConfigError(f"rate must be positive, got {self.rate_hz}")
        if self.window_samples < 4:
            raise ConfigError(f"window of {self.window_s}s at {self.rate_hz} Hz is under 4 samples")
        if self.hop_samples < 1:
            raise ConfigError(f"hop of {self.hop_s}s at {self.rate_hz} Hz is under 1 sample")
        if not 0.0 < self.purity <= 1.0:
            raise ConfigError(f"purity must be in (0, 1], got {self.purity}")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.rate_hz))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.rate_hz))


# raw: normalised x, y, z. gravity_body: a fixed low-pass (moving average over GRAVITY_WINDOW_S)
# splits each axis into gravity and body acceleration (6 channels). *_magnitude adds |a| - 1 g
# (the norm of the de-normalised sample: orientation-free). All inside the Keras graph.
REPRESENTATIONS = ("raw", "gravity_body", "raw_magnitude", "gravity_body_magnitude")
POOLINGS = ("last", "mean", "attention")  # last LSTM state | mean over time | learned attention weights
AUTO = "auto"
MAX_WINDOW_FEATURE_LAYERS = 4  # ModelConfig.window_features: hidden layers of the feature MLP
MAX_WINDOW_FEATURE_UNITS = 1024


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the many-to-one LSTM classifier."""

    # A stored config without these keys predates the conv front end: it had none.
    LEGACY_DEFAULTS: typing.ClassVar[dict[str, Any]] = {
        "conv_filters": 0,
        "conv_stride": 1,
        "representation": "raw",
        "conv_dilation": 1,
        "pooling": "last",
        "ensemble": 1,
        "equalize_channels": False,
        "rocket_features": 0,
    }

    lstm_units: tuple[int, ...] = (64,)
    dropout: float = 0.2
    dense_units: int = 0  # 0: no hidden dense layer before the softmax
    conv_filters: int = 32  # Conv1D front end before the LSTM: filters per layer; 0 = off
    conv_kernel: int = 5  # Conv1D kernel length, samples
    conv_stride: int = 2  # Conv1D stride, samples (2 halves the LSTM's sequence length)
    conv_layers: int = 1  # number of Conv1D layers when conv_filters > 0
    conv_dilation: int = 1  # Conv1D layer i >= 1 has dilation conv_dilation**i (layer 0 carries the stride)
    # model input channels, computed inside the graph (REPRESENTATIONS); chosen by subject-wise CV on
    # the training data of four sets (docs/training.md, "Training defaults")
    representation: str = "gravity_body_magnitude"
    pooling: str = "last"  # many-to-one head over the last LSTM's outputs (POOLINGS)
    # members of an ensemble in ONE model: each a conv + LSTM branch trained alone (seed + i), their
    # embeddings concatenated into one softmax head = the average of the members' logits
    # (har.training.ensemble); 1 = a single model. A bare ModelConfig is one model; `har train`'s
    # default (TrainConfig.model) is DEFAULT_ENSEMBLE members, chosen by CV (docs/training.md)
    ensemble: int = 1
    # multi-scale block after the conv front end: one Conv1D (conv_filters, conv_kernel, relu) per
    # dilation given here, in parallel on the front end's output, summed with it (a residual Add);
    # () = off
    conv_multiscale: tuple[int, ...] = ()
    # the TFLite export scales every representation channel (gravity, body, magnitude) before their
    # concatenation and divides the first Conv1D's kernel rows by the same factors (cross-layer
    # equalization, har.training.model.equalization_scales): the same function, but an int8
    # CONCATENATION (one scale for all inputs) no longer leaves the small body channels a few int8
    # steps. Training and the saved weights use the unscaled graph
    equalize_channels: bool = True
    # the int8 export keeps the representation (har.training.model.REPRESENTATION_LAYERS) float32 on
    # the float input and quantises it where it enters the first Conv1D, on its own int8 grid (not
    # the input's): the simulated wearers' postural sway survives it (models/README.md); off by
    # default (seglearn watch: agreement up, accuracy not; docs/training.md)
    float_representation: bool = False
    # MiniRocket's features (aeon; this many, rounded down to a multiple of 84) computed by fixed layers
    # beside the LSTM, its ridge classifier added to the head's logits with a weight chosen on the
    # validation windows (har.training.rocket); 0 = off. A bare ModelConfig has none; `har train`'s
    # default (TrainConfig.model) has DEFAULT_ROCKET_FEATURES (10000)
    rocket_features: int = 0
    # the ridge's weight in the head: logits = LSTM logits + rocket_beta * ridge scores, the ridge
    # fitted on ALL training windows (16: chosen by CV inside the training data of four sets,
    # docs/training.md stage 7); "auto": chosen on the validation windows, the ridge fitted without
    # them (the LSTM's validation accuracy is optimistic after early stopping: it trusted the LSTM too much)
    rocket_beta: float | str = 16.0
    # hidden units of a small MLP (Dense relu layers) on 63 fixed hand-made window features
    # (har.signal_features: band energies along and across gravity, quiet-part statistics, tilt),
    # computed inside the graph by fixed float32 layers (har.training.window_features) and
    # concatenated to the LSTM embedding that the softmax head reads; () = off
    window_features: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.window_features) > MAX_WINDOW_FEATURE_LAYERS or any(
            isinstance(u, bool) or not isinstance(u, int) or not 1 <= u <= MAX_WINDOW_FEATURE_UNITS
            for u in self.window_features
        ):
            raise ConfigError(
                f"window_features must be up to {MAX_WINDOW_FEATURE_LAYERS} layer sizes of 1 to "
                f"{MAX_WINDOW_FEATURE_UNITS} units (e.g. 128,64), or empty (off), got {self.window_features}"
            )
        if self.rocket_features < 0 or 0 < self.rocket_features < 84:
            raise ConfigError(f"rocket_features must be 0 (off) or at least 84, got {self.rocket_features}")
        if isinstance(self.rocket_beta, str) and self.rocket_beta != AUTO:
            raise ConfigError(f"rocket_beta must be a number >= 0 or {AUTO!r}, got {self.rocket_beta!r}")
        if not isinstance(self.rocket_beta, str) and not 0.0 <= self.rocket_beta <= 1000.0:
            raise ConfigError(f"rocket_beta must be in [0, 1000] or {AUTO!r}, got {self.rocket_beta}")
        if self.conv_multiscale and (self.conv_filters < 1 or any(d < 1 for d in self.conv_multiscale)):
            raise ConfigError(
                f"conv_multiscale needs a conv front end and dilations >= 1, got {self.conv_multiscale}"
            )
        if self.representation not in REPRESENTATIONS:
            raise ConfigError(
                f"representation must be one of {', '.join(REPRESENTATIONS)}, got {self.representation!r}"
            )
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.conv_dilation < 1:
            raise ConfigError(f"conv_dilation must be at least 1, got {self.conv_dilation}")
        if not 1 <= self.ensemble <= 8:
            raise ConfigError(f"ensemble must be 1 (a single model) to 8 members, got {self.ensemble}")
        if not self.lstm_units or any(u < 1 for u in self.lstm_units):
            raise ConfigError(f"lstm_units must be positive integers, got {self.lstm_units}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.conv_filters < 0 or self.conv_kernel < 1 or self.conv_stride < 1 or self.conv_layers < 1:
            raise ConfigError(
                f"conv front end: filters >= 0, kernel, stride and layers >= 1 "
                f"(got {self.conv_filters}, {self.conv_kernel}, {self.conv_stride}, {self.conv_layers})"
            )


DEFAULT_ENSEMBLE = 2  # members of `har train`'s default model (TrainConfig.model)
# MiniRocket features of `har train`'s default model (TrainConfig.model; a bare ModelConfig has none):
# where the branch cannot be trained (window cache, several workers, short windows) the default's is
# dropped with a note, a number the user gave is refused (har.training.rocket.settle)
# 10000 (aeon's default): LSTM + 16 x ridge beat MiniRocket alone on the mean of four data sets in
# subject-wise CV inside the training data (docs/training.md, stage 7)
DEFAULT_ROCKET_FEATURES = 10000
LR_SCHEDULES = ("constant", "plateau", "cosine")
# training-time-only teacher (har.training.distill): fitted in-sample, or cross-fitted by subject
DISTILL = ("none", "minirocket", "minirocket_oof", AUTO)  # auto: none or minirocket_oof by validation
MIXES = ("none", "mixup", "cutmix")  # batch mixing of training windows (har.training.augment.mix_batch)


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training batches (har.training.augment). Each transform applies to a
    window with probability ``p``; 0 disables a transform, ``enabled=False`` disables all."""

    # a stored config without the key predates the z rotation: it had none
    LEGACY_DEFAULTS: typing.ClassVar[dict[str, Any]] = {"rotation_z_deg": 0.0}

    enabled: bool = True
    p: float = 0.5  # probability that each enabled transform is applied to a window
    rotation_deg: float = 15.0  # random 3-D rotation about a random axis, at most this angle, degrees
    scale: float = 0.1  # per-window magnitude scaling factor drawn from [1 - scale, 1 + scale]
    jitter_g: float = 0.01  # Gaussian noise standard deviation, g
    time_warp: float = 0.1  # max relative speed change of a smooth time warp (0.1 = +-10 %)
    # random rotation about the device z axis (strap twist, other wrist), degrees; "auto": `har train`
    # chooses 0 or 180 by a quick validation on the training data (har.training.fit.choose_rotation_z)
    rotation_z_deg: float | str = AUTO
    # batch mixing (har.training.augment.mix_batch): "mixup" blends each window with another of the
    # batch, "cutmix" pastes a contiguous time segment of another; the targets are mixed in the same
    # proportion. The proportion of the partner is min(l, 1 - l), l ~ Beta(mix_alpha, mix_alpha)
    mix: str = "none"
    mix_alpha: float = 0.2

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise ConfigError(f"mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if self.mix_alpha <= 0:
            raise ConfigError(f"mix_alpha must be positive, got {self.mix_alpha}")
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"augment p must be in [0, 1], got {self.p}")
        if not 0.0 <= self.rotation_deg <= 180.0:
            raise ConfigError(f"rotation must be in [0, 180] degrees, got {self.rotation_deg}")
        if not 0.0 <= self.scale < 1.0:
            raise ConfigError(f"scale must be in [0, 1), got {self.scale}")
        if self.jitter_g < 0:
            raise ConfigError(f"jitter must be >= 0 g, got {self.jitter_g}")
        if isinstance(self.rotation_z_deg, str):
            if self.rotation_z_deg != AUTO:
                raise ConfigError(f"z rotation must be a number of degrees or 'auto', got {self.rotation_z_deg!r}")
        elif not 0.0 <= self.rotation_z_deg <= 180.0:
            raise ConfigError(f"z rotation must be in [0, 180] degrees, got {self.rotation_z_deg}")
        if not 0.0 <= self.time_warp < 0.5:
            raise ConfigError(f"time warp must be in [0, 0.5), got {self.time_warp}")

    @property
    def mixing(self) -> bool:
        """True when training batches are mixed (``mix`` on and augmentation enabled)."""
        return self.enabled and self.mix != "none"

    @property
    def active(self) -> bool:
        """True when at least one transform would change a window."""
        return self.enabled and (
            self.mix != "none"
            or (
                self.p > 0
                and (
                    self.rotation_deg > 0
                    or self.rotation_z_deg == AUTO
                    or self.rotation_z_deg > 0  # type: ignore[operator]
                    or self.scale > 0
                    or self.jitter_g > 0
                    or self.time_warp > 0
                )
            )
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything `har train` used, stored in the model directory."""

    # a stored config without the key predates distillation: it had none
    LEGACY_DEFAULTS: typing.ClassVar[dict[str, Any]] = {"distill": "none"}

    window: WindowConfig = field(default_factory=WindowConfig)
    # the default model: DEFAULT_ENSEMBLE members of the default ModelConfig (chosen by subject-wise CV
    # on the training data of four sets, docs/training.md "Training defaults", stage 3)
    model: ModelConfig = field(
        default_factory=lambda: ModelConfig(ensemble=DEFAULT_ENSEMBLE, rocket_features=DEFAULT_ROCKET_FEATURES)
    )
    # "auto": from the number of optimizer steps (har.training.fit.resolve_schedule): hundreds of
    # cheap epochs for a few hundred windows, tens for tens of thousands
    epochs: int | str = AUTO
    batch_size: int = 64
    learning_rate: float = 2e-3
    patience: int | str = AUTO  # early-stopping epochs without validation-loss improvement; "auto": scaled with epochs
    seed: int = 0
    test_fraction: float = 0.25
    val_fraction: float = 0.2
    test_subjects: tuple[str, ...] = ()
    class_weights: bool = True
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig())
    lr_schedule: str = "plateau"  # constant | plateau (ReduceLROnPlateau) | cosine (per epoch)
    lr_factor: float = 0.5  # plateau: multiply the learning rate by this ...
    lr_patience: int | str = AUTO  # ... after this many epochs without improvement; "auto": half the patience
    min_lr: float = 1e-5  # plateau / cosine floor
    cv_folds: int = 0  # leave-subjects-out cross-validation folds before the final fit; 0 = off
    clipnorm: float = 1.0  # gradient-norm clipping (0 = off); keeps LSTM training from blowing up
    label_smoothing: float = 0.0  # cross-entropy label smoothing in [0, 1)
    # "minirocket": soft targets from MiniRocket fitted on the training windows only (needs aeon at
    # training time only; har.training.distill); loss = alpha * CE(label) + (1 - alpha) * CE(soft);
    # "minirocket_oof": each window's soft target from a MiniRocket that never saw its subject
    distill: str = "none"
    distill_alpha: float = 0.5
    # teacher soft targets: softmax(ridge decision / temperature); "auto": the temperature with the
    # smallest log-loss of the teacher's targets on the training labels (har.training.distill)
    distill_temperature: float | str = 0.5
    weight_decay: float = 0.0  # > 0: AdamW with this decoupled weight decay (0 = Adam)

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "lr_patience"):
            v = getattr(self, name)
            if isinstance(v, str) and v != AUTO:
                raise ConfigError(f"{name} must be an integer or 'auto', got {v!r}")
            if not isinstance(v, str) and v < (1 if name == "epochs" else 0):
                raise ConfigError(f"{name} must be {'at least 1' if name == 'epochs' else '>= 0'} or 'auto', got {v}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.distill not in DISTILL:
            raise ConfigError(f"distill must be one of {', '.join(DISTILL)}, got {self.distill!r}")
        if not 0.0 <= self.distill_alpha <= 1.0:
            raise ConfigError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if isinstance(self.distill_temperature, str):
            if self.distill_temperature != AUTO:
                raise ConfigError(f"distill_temperature must be a number or 'auto', got {self.distill_temperature!r}")
        elif self.distill_temperature <= 0:
            raise ConfigError(f"distill_temperature must be positive, got {self.distill_temperature}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ConfigError(f"weight_decay must be in [0, 1), got {self.weight_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not 0.0 < self.lr_factor < 1.0:
            raise ConfigError(f"lr_factor must be in (0, 1), got {self.lr_factor}")
        if self.cv_folds < 0 or self.cv_folds == 1:
            raise ConfigError(f"cv_folds must be 0 (off) or at least 2, got {self.cv_folds}")


@dataclass(frozen=True)
class ExportConfig:
    """How a bundle was exported."""

    quantize: str = "fp32"  # fp32 | fp16 | int8
    calibration_windows: int = 300

    def __post_init__(self) -> None:
        if self.quantize not in ("fp32", "fp16", "int8"):
            raise ConfigError(f"quantize must be fp32, fp16 or int8, got {self.quantize!r}")
