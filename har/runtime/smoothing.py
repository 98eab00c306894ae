"""Smoothing of per-window predictions (`har run`, `har replay`). numpy only, no TensorFlow.

A :class:`Smoother` turns the stream of per-window probabilities into a steadier label stream in
two stages:

1. **Method** (``SmoothingConfig.method``) proposes a label for each window:

   * ``none``: the window's argmax.
   * ``vote`` (k-of-n): the last ``n`` argmax labels vote; a class with at least ``k`` votes
     becomes the decision (the current decision is kept while it still has ``k`` votes; otherwise
     the class with the most votes, ties to the most recent). Without any class at ``k`` votes
     the previous decision stays.
   * ``average``: the probabilities are averaged over the last ``n`` windows (or with an
     exponential moving average when ``alpha`` is set); with hysteresis: the decision switches to
     the top averaged class only when its averaged probability is at least ``enter`` and beats the
     current decision's by at least ``margin``; otherwise it stays.

   Before the first decision (start-up, or after a reset) the window's own argmax is proposed:
   output is never withheld.

2. **Minimum duration** (``min_duration_s``): a proposed change is reported only once the new
   label has been proposed by every window from its first one to the current one and
   ``time(current) - time(first) >= min_duration_s`` (with a 1 s hop and 2 s, the third window in
   a row). The very first label after a (re)start is reported at once.

:meth:`Smoother.reset` forgets everything (the live buffer calls it after a gap or break).
:func:`smooth_sequence` runs the same smoother over a whole ``(n, k)`` probability array offline
and gives exactly the labels of the streaming path.

Spec strings (``--smooth``): ``none`` | ``vote[:[K/]N]`` | ``avg[:N]`` | ``ema:ALPHA``, followed by
optional ``,key=value`` items: ``enter=P``, ``margin=M`` (average/ema only) and ``min=SECONDS``
(any method). Examples: ``vote:3/5``, ``avg:5,enter=0.6``, ``ema:0.4,margin=0.1,min=2``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from har.errors import SmoothingError

METHODS = ("none", "vote", "average")
_TIME_EPS = 1e-6  # seconds: tolerance when comparing durations built from float timestamps

# The setting `har deploy` stores when no --smooth is given (chosen by measurement: docs/training.md).
DEFAULT_SPEC = "avg:4,enter=0.6"


@dataclass(frozen=True)
class SmoothingConfig:
    """How live predictions are smoothed. ``SmoothingConfig()`` is no smoothing at all."""

    method: str = "none"  # none | vote | average
    n: int = 5  # vote: windows that vote; average: windows averaged (ignored when alpha is set)
    k: int = 3  # vote: votes needed for a decision (1..n)
    alpha: float | None = None  # average: EMA weight of the newest window (0 < alpha <= 1) instead of a mean
    enter: float = 0.0  # average: averaged probability a class needs to become the decision
    margin: float = 0.0  # average: ... and by how much it must beat the current decision's
    min_duration_s: float = 0.0  # a new label is reported only after it persisted this long (s)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SmoothingError(f"smoothing method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("n", "k"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SmoothingError(f"smoothing {name} must be an integer >= 1, got {v!r}")
        if self.method == "vote" and self.k > self.n:
            raise SmoothingError(f"vote needs k <= n, got {self.k}/{self.n}")
        if self.alpha is not None and not (_is_num(self.alpha) and 0.0 < self.alpha <= 1.0):
            raise SmoothingError(f"smoothing alpha must be in (0, 1], got {self.alpha!r}")
        for name in ("enter", "margin"):
            v = getattr(self, name)
            if not (_is_num(v) and 0.0 <= v <= 1.0):
                raise SmoothingError(f"smoothing {name} must be in [0, 1], got {v!r}")
        if not (_is_num(self.min_duration_s) and 0.0 <= self.min_duration_s < 1e6):
            raise SmoothingError(f"minimum duration must be >= 0 seconds, got {self.min_duration_s!r}")

    @property
    def active(self) -> bool:
        """False when the smoother always reports the window's own argmax."""
        return self.method != "none" or self.min_duration_s > 0

    @property
    def spec(self) -> str:
        """The compact spec string (parse_spec(cfg.spec) == cfg)."""
        if self.method == "vote":
            s = f"vote:{self.k}/{self.n}"
        elif self.method == "average":
            s = f"ema:{_num(self.alpha)}" if self.alpha is not None else f"avg:{self.n}"
            if self.enter:
                s += f",enter={_num(self.enter)}"
            if self.margin:
                s += f",margin={_num(self.margin)}"
        else:
            s = "none"
        if self.min_duration_s:
            s += f",min={_num(self.min_duration_s)}"
        return s

    def with_min_duration(self, seconds: float | None) -> SmoothingConfig:
        """A copy with ``min_duration_s`` replaced (None: unchanged)."""
        return self if seconds is None else replace(self, min_duration_s=float(seconds))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SmoothingConfig:
        """From ``to_dict()`` output (bundle metadata). An empty dict or None = no smoothing."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise SmoothingError(f"smoothing settings must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise SmoothingError(f"unknown smoothing setting(s): {', '.join(map(str, unknown))}")
        return cls(**dict(data))


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _num(v: float | None) -> str:
    return f"{float(v or 0.0):g}"


def _parse_float(key: str, value: str, spec: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SmoothingError(f"smoothing spec {spec!r}: {key} needs a number, got {value!r}") from None


def _parse_int(key: str, value: str, spec: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SmoothingError(f"smoothing spec {spec!r}: {key} needs an integer, got {value!r}") from None


_SPEC_HELP = "use none, vote[:[K/]N], avg[:N] or ema:ALPHA, plus ,enter=P ,margin=M ,min=SECONDS"


def parse_spec(spec: str) -> SmoothingConfig:
    """Parse a ``--smooth`` spec (see the module docstring) into a SmoothingConfig."""
    text = spec.strip().lower()
    if not text:
        raise SmoothingError(f"empty smoothing spec: {_SPEC_HELP}")
    head, *items = [p.strip() for p in text.split(",")]
    name, _, arg = head.partition(":")
    name, arg = name.strip(), arg.strip()
    kw: dict[str, Any] = {}
    if name in ("none", "off"):
        if arg:
            raise SmoothingError(f"smoothing spec {spec!r}: 'none' takes no argument")
        kw["method"] = "none"
    elif name == "vote":
        kw["method"] = "vote"
        if arg:
            k_txt, slash, n_txt = arg.partition("/")
            if slash:
                kw["k"], kw["n"] = _parse_int("K", k_txt, spec), _parse_int("N", n_txt, spec)
            else:
                kw["n"] = _parse_int("N", k_txt, spec)
                kw["k"] = kw["n"] // 2 + 1  # a majority
    elif name in ("avg", "average"):
        kw["method"] = "average"
        if arg:
            kw["n"] = _parse_int("N", arg, spec)
    elif name == "ema":
        kw["method"] = "average"
        if not arg:
            raise SmoothingError(f"smoothing spec {spec!r}: ema needs a weight, e.g. ema:0.4")
        kw["alpha"] = _parse_float("ALPHA", arg, spec)
    else:
        raise SmoothingError(f"unknown smoothing method {name!r} in {spec!r}: {_SPEC_HELP}")
    keys = {"enter": "enter", "margin": "margin", "min": "min_duration_s"}
    for item in items:
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq or key not in keys:
            raise SmoothingError(f"smoothing spec {spec!r}: bad item {item!r} ({_SPEC_HELP})")
        if key in ("enter", "margin") and kw["method"] != "average":
            raise SmoothingError(f"smoothing spec {spec!r}: {key}= only applies to avg / ema")
        kw[keys[key]] = _parse_float(key, value, spec)
    return SmoothingConfig(**kw)


def resolve_smoothing(
    bundle_setting: Mapping[str, Any] | None, spec: str | None = None, min_duration_s: float | None = None
) -> SmoothingConfig:
    """The effective setting: the bundle's (``metadata.smoothing``; empty = none), replaced as a
    whole by ``spec`` when given (``--smooth``), then ``min_duration_s`` (``--min-duration``) on top."""
    cfg = parse_spec(spec) if spec is not None else SmoothingConfig.from_dict(bundle_setting)
    if min_duration_s is not None and not (_is_num(min_duration_s) and min_duration_s >= 0):
        raise SmoothingError(f"minimum duration must be >= 0 seconds, got {min_duration_s!r}")
    return cfg.with_min_duration(min_duration_s)


class Smoother:
    """Streaming smoother: ``update(time_s, probs)`` once per window, oldest first."""

    def __init__(self, config: SmoothingConfig, classes: Sequence[str]) -> None:
        self.config = config
        self.classes = tuple(classes)
        if not self.classes:
            raise SmoothingError("a smoother needs at least one class")
        self.reset()

    @property
    def active(self) -> bool:
        return self.config.active

    def reset(self) -> None:
        """Forget all history (after a gap or break): the next window starts afresh."""
        self._labels: deque[int] = deque(maxlen=self.config.n)  # vote history (argmax)
        self._probs: deque[np.ndarray] = deque(maxlen=self.config.n)  # average history
        self._ema: np.ndarray | None = None
        self._sum: np.ndarray | None = None  # sum of self._probs
        self._decision: int | None = None  # stage 1
        self._reported: int | None = None  # stage 2
        self._pending: int | None = None
        self._pending_since = 0.0

    def _propose(self, probs: np.ndarray, raw: int) -> int:
        cfg = self.config
        if cfg.method == "vote":
            self._labels.append(raw)
            counts = np.bincount(np.fromiter(self._labels, dtype=np.int64), minlength=len(self.classes))
            ok = np.flatnonzero(counts >= cfg.k)
            if ok.size and (self._decision is None or counts[self._decision] < cfg.k):
                hist = list(self._labels)
                last = {c: i for i, c in enumerate(hist)}
                self._decision = int(max(ok.tolist(), key=lambda c: (counts[c], last[c])))
        elif cfg.method == "average":
            p = probs.astype(np.float64)
            if cfg.alpha is not None:
                self._ema = p.copy() if self._ema is None else cfg.alpha * p + (1.0 - cfg.alpha) * self._ema
                avg = self._ema
            else:
                # running sum over the last n windows (float64; O(k) per window, not O(n k))
                if len(self._probs) == cfg.n:
                    self._sum -= self._probs[0]
                self._probs.append(p)
                self._sum = p.copy() if self._sum is None else self._sum + p
                avg = self._sum / len(self._probs)
            c = int(np.argmax(avg))
            d = self._decision
            if c != d and avg[c] >= cfg.enter and (d is None or avg[c] - avg[d] >= cfg.margin):
                self._decision = c
        else:
            self._decision = raw
        return raw if self._decision is None else self._decision

    def update_index(self, time_s: float, probs: np.ndarray) -> int:
        """Class index to report for the window ending at ``time_s`` with ``probs`` (n_classes,)."""
        p = np.asarray(probs).reshape(-1)
        if p.shape[0] != len(self.classes):
            raise SmoothingError(f"expected {len(self.classes)} probabilities, got {p.shape[0]}")
        raw = int(np.argmax(p))
        if not self.config.active:
            return raw
        return self._update(float(time_s), p, raw)

    def _update(self, time_s: float, p: np.ndarray, raw: int) -> int:
        """:meth:`update_index` after validation, with the argmax ``raw`` already known."""
        proposed = self._propose(p, raw)
        t = float(time_s)
        if self._reported is None or proposed == self._reported:
            self._reported = proposed
            self._pending = None
        else:
            if proposed != self._pending:
                self._pending, self._pending_since = proposed, t
            if t - self._pending_since >= self.config.min_duration_s - _TIME_EPS:
                self._reported, self._pending = proposed, None
        return self._reported

    def update(self, time_s: float, probs: np.ndarray) -> str:
        """Label to report for the window ending at ``time_s`` (seconds) with ``probs``."""
        return self.classes[self.update_index(time_s, probs)]


def smooth_sequence(
    probs: np.ndarray,
    times: Sequence[float] | np.ndarray,
    config: SmoothingConfig,
    classes: Sequence[str],
    resets: Iterable[int] = (),
) -> list[str]:
    """Offline: the labels a streaming :class:`Smoother` reports for windows ``probs`` (n, k)
    ending at ``times`` (n,), with :meth:`Smoother.reset` called before each window index in
    ``resets`` (the first window of each contiguous run after a gap)."""
    p = np.asarray(probs)
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[0] != t.shape[0]:
        raise SmoothingError(f"probabilities {p.shape} and times ({t.shape[0]},) do not match")
    sm = Smoother(config, classes)
    if p.shape[0] and p.shape[1] != len(sm.classes):
        raise SmoothingError(f"expected {len(sm.classes)} probabilities, got {p.shape[1]}")
    raw = np.argmax(p, axis=1).tolist() if p.shape[0] else []
    if not config.active:
        return [sm.classes[r] for r in raw]
    cut = set(int(i) for i in resets)
    tt = t.tolist()
    out: list[str] = []
    for i in range(p.shape[0]):  # the streaming smoother itself, minus per-window validation
        if i in cut:
            sm.reset()
        out.append(sm.classes[sm._update(tt[i], p[i], raw[i])])
    return out
