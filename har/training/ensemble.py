"""An ensemble of a few small LSTMs exported as ONE model (``ModelConfig.ensemble = K``).

Each member is the single model of the same config, trained alone by har.training.fit with seed
``seed + j`` (its own initialisation, batch order and augmentation stream) and the same early
stopping on the same validation windows. A ``rotation_z_deg="auto"`` choice is made once, by the
first member, and reused by the others. The members are then copied into one Keras graph
(har.training.model.build_model with ``ensemble=K``: the fixed representation layers shared, one
branch per member) whose single softmax head ``probs`` reads the concatenated embeddings with the
members' head weights stacked and divided by K: its logits are the average of the members'
logits. One head keeps everything downstream unchanged (the int8 export, the embedding output and
personal heads of `har adapt`, the runtime). TensorFlow is imported lazily."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from har.artifacts.metadata import Normalization
from har.config import TrainConfig

FitOne = Callable[..., tuple[Any, dict[str, list[float]]]]


def assemble(config: TrainConfig, members: list[Any], window_samples: int, n_channels: int, n_classes: int) -> Any:
    """One Keras model (``config.model`` with ``ensemble=len(members)``) from trained single models."""
    from har.training.model import build_model, member_prefix

    cfg = dataclasses.replace(config.model, ensemble=len(members))
    ens = build_model(cfg, window_samples, n_channels, n_classes, rate_hz=config.window.rate_hz)
    heads_w, heads_b = [], []
    for j, m in enumerate(members):
        for layer in m.layers:
            w = layer.get_weights()
            if not w:
                continue
            if layer.name == "probs":
                heads_w.append(w[0])
                heads_b.append(w[1])
            elif ens_has(ens, member_prefix(j) + layer.name):
                ens.get_layer(member_prefix(j) + layer.name).set_weights(w)
            else:  # a shared fixed layer (the representation's de-normalisation): same in every member
                ens.get_layer(layer.name).set_weights(w)
    k = float(len(members))
    ens.get_layer("probs").set_weights([np.concatenate(heads_w, axis=0) / k, np.sum(heads_b, axis=0) / k])
    return ens


def ens_has(model: Any, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def fit_ensemble(
    config: TrainConfig,
    norm: Normalization,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    progress: bool,
    echo: Callable[[str], None],
    fit_one: FitOne,
    first: tuple[Any, dict[str, list[float]]] | None = None,
    **kwargs: Any,
) -> tuple[Any, dict[str, list[float]]]:
    """Train ``config.model.ensemble`` members with ``fit_one`` (har.training.fit.fit_model's
    signature; ``kwargs`` pass through, e.g. distillation targets) and assemble them. ``first``:
    the first member already fitted (``(model, history)``, e.g. by distill="auto"'s choice).

    Returns ``(model, history)``: the first member's history plus ``"ensemble_epochs"`` (epochs
    run per member) and ``"ensemble_val_accuracy"`` (each member's best validation accuracy)."""
    k = config.model.ensemble
    single = dataclasses.replace(config, model=dataclasses.replace(config.model, ensemble=1))
    members, hists = [], []
    for j in range(k):
        cfg = dataclasses.replace(single, seed=config.seed + j)
        if j > 0 and "rotation_z_deg" in hists[0]:  # "auto" was resolved by the first member
            cfg = dataclasses.replace(
                cfg, augment=dataclasses.replace(cfg.augment, rotation_z_deg=hists[0]["rotation_z_deg"][0])
            )
        if progress:
            echo(f"ensemble: member {j + 1}/{k} (seed {cfg.seed})")
        if j == 0 and first is not None:
            model, hist = first
        else:
            model, hist = fit_one(cfg, norm, x_train, y_train, x_val, y_val, n_classes, progress, echo, **kwargs)
        members.append(model)
        hists.append(hist)
    ens = assemble(config, members, x_train.shape[1], x_train.shape[2], n_classes)
    history = dict(hists[0])
    history["ensemble_epochs"] = [float(len(h.get("loss", []))) for h in hists]
    history["ensemble_val_accuracy"] = [_best_val_acc(h) for h in hists]
    return ens, history


def _best_val_acc(hist: dict[str, list[float]]) -> float:
    if hist.get("val_loss"):
        return float(hist.get("val_accuracy", [0.0])[int(np.argmin(hist["val_loss"]))])
    return 0.0
