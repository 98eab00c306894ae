"""Plausibility checks: data that reads fine but is probably wrong (numpy only, no TensorFlow).

Used by `har info`, `har replay`, `har train`, `har import` and `har record`. Each check gives a
:class:`Finding`, one line naming the file and the field or line and carrying the number that
triggered it. ``error`` findings stop a command (a :class:`~har.errors.PlausibilityError`) unless
``--force`` accepts the data as it is; ``warning`` findings are printed as ``Warning: ...``.

* **Units**: the median magnitude of acceleration must be about 1 g (gravity included); about
  9.8 means m/s^2, about 1000 milli-g (:func:`unit_guess` names the likely unit).
* **Timestamps**: constant, duplicate or unsorted times, times too large for float64 to resolve
  the sample period, and a median step that gives an implausible rate (:data:`RATE_RANGE`; the
  likely time unit is named).
* **Rate**: the rate measured from ``time_s`` against the sidecar's ``rate_hz`` (warning beyond
  2 %, error beyond 20 %).
* **Sidecar vs CSV**: ``units`` and ``axes`` other than g and x,y,z (errors); ``labels`` and
  ``samples`` that disagree with the CSV (warnings).
* **Axes vs gravity**: in a static activity (sitting, standing, lying, ...) gravity should point
  the same way in every recording of a data set, and the same way as in a model's training data;
  a recording where it only matches after swapping or flipping axes is warned about.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from har.errors import PlausibilityError
from har.recording.format import Recording, read_recording, sidecar_path

RATE_RANGE = (0.5, 5000.0)  # Hz: accelerometer rates outside this are a wrong time unit
RATE_WARN = 0.02  # measured vs sidecar rate: warning beyond this fraction
RATE_ERROR = 0.20  # ... and an error beyond this one (the windows would be cut wrong)
G_WARN = (0.5, 2.0)  # median |a| (g) outside this band: a warning
G_ERROR_ABOVE = 3.0  # median |a| (g) above this: an error (m/s^2 or milli-g declared as g)
MAX_TIME_S = 1e10  # |time_s| beyond this is not seconds from a session start (or epoch seconds)
UNSORTED_FRACTION = 0.01  # more non-increasing time steps than this fraction: an error
STATIC_WORDS = ("sit", "stand", "lying", "lie", "laying", "still", "static", "idle", "rest", "sleep")
MIN_STATIC_SAMPLES = 20
UNITS_TO_G = {"g": 1.0, "m/s2": 1.0 / 9.80665, "mg": 1e-3}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
FORCE_HINT = "pass --force to use the data as it is"

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Finding:
    """One check's result: ``level`` "error" or "warning", ``check`` (units, time, rate, sidecar,
    axes, samples) and a one-line ``message`` naming the file and the field or line."""

    level: str
    check: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.level == "error"


def _err(check: str, msg: str) -> Finding:
    return Finding("error", check, msg)


def _warn(check: str, msg: str) -> Finding:
    return Finding("warning", check, msg)


# --- units --------------------------------------------------------------------------------------
def median_magnitude(xyz: np.ndarray) -> float | None:
    """Median of |a| over the finite rows (None without any); at most about 100,000 evenly spaced
    rows are used (a long file's median does not need every sample)."""
    a = np.asarray(xyz).reshape(-1, 3)
    a = a[:: max(1, a.shape[0] // 100_000)].astype(np.float64)
    a = a[np.isfinite(a).all(axis=1)]
    if a.shape[0] == 0:
        return None
    return float(np.median(np.sqrt((a * a).sum(axis=1))))


def unit_guess(median: float, current: str = "g") -> str | None:
    """The unit (g, m/s2, mg) in which values whose median |a| is ``median`` (read as ``current``)
    would have a median of about 1 g; None when none fits."""
    if not (median > 0 and math.isfinite(median)):
        return None
    raw = median / UNITS_TO_G.get(current, 1.0)  # back to the numbers in the file
    best = min(UNITS_TO_G, key=lambda u: abs(math.log(raw * UNITS_TO_G[u])))
    return best if 0.3 <= raw * UNITS_TO_G[best] <= 3.5 else None


def magnitude_findings(where: str, xyz: np.ndarray, units: str = "g", option: str = "") -> list[Finding]:
    """Median |a| far from 1 g. ``units``: what the values were declared as (for the proposal);
    ``option``: how to declare another unit (e.g. ``--units``) for the message."""
    med = median_magnitude(xyz)
    if med is None:
        return []
    guess = unit_guess(med, units)
    hint = f": the values look like {guess}" if guess and guess != units else ""
    if hint and option:
        hint += f" (try {option} {guess})"
    text = f"{where}: median |acceleration| is {med:.3g} g, expected about 1 g with gravity"
    if med > G_ERROR_ABOVE:
        return [_err("units", text + (hint or ": not in g"))]
    if med < G_WARN[0]:
        return [_warn("units", text + (hint or " (gravity removed? har expects it included)"))]
    if med > G_WARN[1]:
        return [_warn("units", text + hint)]
    return []


# --- time and rate ------------------------------------------------------------------------------
def time_unit_guess(step_s: float, declared: str = "s") -> str | None:
    """The time unit (s, ms, us, ns) that turns a median step of ``step_s`` seconds (read with
    unit ``declared``) into the rate nearest 50 Hz inside :data:`RATE_RANGE`; None if none does."""
    if not (step_s > 0 and math.isfinite(step_s)):
        return None
    raw = step_s / TIME_UNITS.get(declared, 1.0)
    ok = {u: 1.0 / (raw * f) for u, f in TIME_UNITS.items() if RATE_RANGE[0] <= 1.0 / (raw * f) <= RATE_RANGE[1]}
    if not ok:
        return None
    return min(ok, key=lambda u: abs(math.log(ok[u] / 50.0)))


def median_step(time_s: np.ndarray) -> float | None:
    """Median positive step between timestamps (s); None without any."""
    t = np.asarray(time_s, dtype=np.float64)
    if t.shape[0] < 2:
        return None
    dt = np.diff(t)
    pos = dt[dt > 0]
    return float(np.median(pos)) if pos.size else None


def time_findings(where: str, time_s: np.ndarray, column: str = "time_s", unit: str = "s",
                  option: str = "", first_line: int = 2) -> list[Finding]:
    """Constant, duplicate or unsorted timestamps, unresolvable magnitudes, implausible rates.
    ``first_line``: the file line of the first sample (error messages)."""
    t = np.asarray(time_s, dtype=np.float64)
    n = t.shape[0]
    if n < 2 or not np.isfinite(t).all():
        return []
    big = np.abs(t)
    i_big = int(big.argmax())
    limit = MAX_TIME_S / TIME_UNITS.get(unit, 1.0)  # in the column's unit (epoch ns are fine as ns)
    if big[i_big] > limit:
        i = int(np.flatnonzero(big > limit)[0])
        return [_err("time", f"{where}:{first_line + i}: {column} is {t[i]:.6g}: not "
                     f"{'seconds' if unit == 's' else unit} from the start of the session "
                     "(epoch milli- or nanoseconds?)")]
    dt = np.diff(t)
    pos = dt[dt > 0]
    if pos.size == 0:
        last = first_line + n - 1
        return [_err("time", f"{where}: {column} is {t[0]:g} on all {n} rows (lines {first_line}-{last}): "
                     "constant timestamps give no sample rate")]
    step = float(np.median(pos))
    res = float(np.spacing(big[i_big]))
    if res > 0.01 * step:
        return [_err("time", f"{where}:{first_line + i_big}: {column} reaches {t[i_big]:.6g}, where float64 cannot "
                     f"resolve the {step:.3g} {unit} sample period (times must count from the session start)")]
    bad = np.flatnonzero(dt <= 0)
    if bad.size > max(2, UNSORTED_FRACTION * (n - 1)):
        i = int(bad[0]) + 1
        return [_err("time", f"{where}:{first_line + i}: {column} {t[i]:g} after {t[i - 1]:g}: timestamps do not "
                     f"increase at {bad.size} of {n - 1} steps (duplicate or unsorted times)")]
    rate = 1.0 / (step * TIME_UNITS.get(unit, 1.0))
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        guess = time_unit_guess(step * TIME_UNITS.get(unit, 1.0), unit)
        if guess and option:
            hint = f": try {option} {guess}"
        elif guess:
            hint = f": {column} looks like {guess}, not {unit}"
        else:
            hint = ""
        return [_err("time", f"{where}: {column} steps of {step:.3g} {unit} (median) give {_hz(rate)} Hz, outside the "
                     f"plausible {RATE_RANGE[0]:g}-{RATE_RANGE[1]:g} Hz{hint}")]
    return []


def _hz(rate: float) -> str:
    return f"{rate:,.0f}" if 100 <= rate < 1e12 else f"{rate:.3g}"


def rate_findings(where: str, nominal_hz: float, time_s: np.ndarray) -> list[Finding]:
    """The sidecar's ``rate_hz`` against the rate the CSV's timestamps give."""
    step = median_step(time_s)
    if step is None or not nominal_hz > 0:
        return []
    measured = 1.0 / step
    rel = measured / nominal_hz - 1.0
    if abs(rel) <= RATE_WARN:
        return []
    text = (f"{where}: field 'rate_hz' is {nominal_hz:g} Hz but the CSV's time_s steps give {measured:.4g} Hz "
            f"({100 * rel:+.1f}%)")
    if abs(rel) > RATE_ERROR:
        return [_err("rate", text)]
    return [_warn("rate", text)]


# --- the sidecar against its CSV ----------------------------------------------------------------
def sidecar_findings(rec: Recording) -> list[Finding]:
    if not rec.has_sidecar or rec.path is None:
        return []
    side = str(sidecar_path(rec.path))
    m = rec.meta
    out: list[Finding] = []
    if str(m.units).strip().lower() != "g":
        out.append(_err("sidecar", f"{side}: field 'units' is {m.units!r}, but recordings hold g "
                        "(convert with `har import csv --units ...`)"))
    if [str(a).lower() for a in m.axes] != ["x", "y", "z"]:
        out.append(_err("sidecar", f"{side}: field 'axes' is {','.join(map(str, m.axes))}, but the CSV columns are "
                        "x,y,z in device order"))
    out += rate_findings(side, m.rate_hz, rec.time)
    if m.complete:
        csv_labels = rec.label_names()
        listed = [x for x in m.labels if x]
        if listed and set(listed) != set(csv_labels):
            out.append(_warn("sidecar", f"{side}: field 'labels' lists {', '.join(listed) or '-'} but the CSV holds "
                             f"{', '.join(csv_labels) or '-'}"))
        if m.samples and m.samples != len(rec):
            out.append(_warn("samples", f"{side}: field 'samples' is {m.samples} but the CSV has {len(rec)} rows"
                             + (" (rows lost?)" if m.samples > len(rec) else "")))
    return out


# --- axes against gravity -----------------------------------------------------------------------
def is_static(label: str) -> bool:
    low = label.lower()
    return any(w in low for w in STATIC_WORDS)


def static_gravity(rec: Recording) -> dict[str, np.ndarray]:
    """Mean acceleration (g) per static activity with enough samples."""
    out: dict[str, np.ndarray] = {}
    for lab in rec.label_names():
        if not is_static(lab):
            continue
        m = rec.labels == lab
        a = np.asarray(rec.xyz[m], dtype=np.float64)
        a = a[np.isfinite(a).all(axis=1)]
        if a.shape[0] >= MIN_STATIC_SAMPLES:
            out[lab] = a.mean(axis=0)
    return out


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return v / n if n > 0.3 else None


def _best_swap(v: np.ndarray, ref: np.ndarray) -> tuple[str, float]:
    """The axis permutation / sign flip of ``v`` that best matches ``ref`` (name, cosine); among
    near ties (gravity says nothing about an axis it does not load) the one with fewest flips."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            w = np.array([signs[i] * v[perm[i]] for i in range(3)])
            name = ",".join(("-" if signs[i] < 0 else "") + "xyz"[perm[i]] for i in range(3))
            found.append((float(w @ ref), sum(x < 0 for x in signs), name))
    top = max(c for c, _, _ in found)
    c, _, name = min((f for f in found if f[0] >= top - 0.05), key=lambda f: (f[1], -f[0]))
    return name, c


AXIS_ALIGNED = 0.9  # |dominant component| / |g| above which gravity lies along one axis
SWAP_MATCH = 0.95  # cosine a swap of the axes must reach to be proposed


def axes_findings(where: str, vec: np.ndarray, ref: np.ndarray, what: str, ref_what: str,
                  aligned: bool = True) -> list[Finding]:
    """Gravity ``vec`` (g) against a reference direction: a warning when they disagree (cosine
    < 0.5) but a swap of the axes agrees (cosine > SWAP_MATCH). ``aligned``: only when both lie
    along one axis each, different ones (a wrist held another way, or worn on the other arm, turns
    or flips gravity; it does not move it cleanly from one axis to another)."""
    u, r = _unit(np.asarray(vec, dtype=np.float64)), _unit(np.asarray(ref, dtype=np.float64))
    if u is None or r is None:
        return []
    cos = float(u @ r)
    if cos >= 0.5:
        return []
    if aligned:
        if min(float(np.abs(u).max()), float(np.abs(r).max())) < AXIS_ALIGNED:
            return []
        if int(np.abs(u).argmax()) == int(np.abs(r).argmax()):
            return []
    name, c = _best_swap(u, r)
    if c <= SWAP_MATCH:
        return []
    v = ", ".join(f"{x:+.2f}" for x in vec)
    rv = ", ".join(f"{x:+.2f}" for x in ref)
    return [_warn("axes", f"{where}: {what} gravity is ({v}) g but ({rv}) g in {ref_what} (angle "
                  f"{math.degrees(math.acos(max(-1.0, min(1.0, cos)))):.0f} deg): axes swapped? reading them as "
                  f"{name} would match")]


def gravity_consensus_findings(recs: Sequence[Recording]) -> list[Finding]:
    """Per static activity, each recording's gravity direction against the others' median."""
    per: dict[str, list[tuple[Recording, np.ndarray]]] = {}
    for r in recs:
        for lab, v in static_gravity(r).items():
            per.setdefault(lab, []).append((r, v))
    out: list[Finding] = []
    for lab, items in per.items():
        if len(items) < 3:
            continue
        dirs = np.array([v / max(float(np.linalg.norm(v)), 1e-9) for _, v in items])
        ref = np.median(dirs, axis=0)
        for r, v in items:
            out += axes_findings(str(r.path), v, ref, f"in '{lab}'", f"the other {len(items) - 1} recordings")
    return out


def model_gravity_findings(rec: Recording, model_mean: Sequence[float]) -> list[Finding]:
    """A recording's mean acceleration against the mean of a model's training windows."""
    a = np.asarray(rec.xyz, dtype=np.float64)
    a = a[np.isfinite(a).all(axis=1)] if a.size else a
    if a.shape[0] < MIN_STATIC_SAMPLES:
        return []
    return axes_findings(str(rec.path), a.mean(axis=0), np.asarray(model_mean, dtype=np.float64),
                         "the mean", "the model's training data", aligned=False)


# --- all of them --------------------------------------------------------------------------------
def check_recording(rec: Recording) -> list[Finding]:
    """Every single-recording check: timestamps, units, sidecar vs CSV."""
    where = str(rec.path) if rec.path is not None else rec.meta.session_id
    times = time_findings(where, rec.time)
    out = times + magnitude_findings(where, rec.xyz)
    out += [f for f in sidecar_findings(rec) if not (times and f.check == "rate")]  # broken times: said once
    if len(rec) == 0:
        out.append(_warn("samples", f"{where}: no samples (only a header)"))
    return out


def enforce(findings: Sequence[Finding], force: bool = False, warn: Warn | None = None) -> None:
    """Raise :class:`PlausibilityError` for the first error finding (unless ``force``: then errors
    are reported as warnings); pass every warning to ``warn``."""
    errors = [f for f in findings if f.is_error]
    if errors and not force:
        raise PlausibilityError(f"{errors[0].message}; {FORCE_HINT}")
    if warn is not None:
        for f in findings:
            warn(f.message + (" (accepted: --force)" if f.is_error else ""))


def load_checked(path: str | Path, force: bool = False, warn: Warn | None = None,
                 allow_nonfinite: bool = False) -> Recording:
    """:func:`read_recording` followed by :func:`check_recording` and :func:`enforce`."""
    rec = read_recording(path, allow_nonfinite=allow_nonfinite)
    enforce(check_recording(rec), force=force, warn=warn)
    return rec


def longest_stretch_s(rec: Recording) -> float:
    """Duration (s) of the longest contiguous segment (no gap or break); 0 for fewer than 2 rows."""
    best = 0.0
    for seg in rec.segments():
        if seg.stop - seg.start > 1:
            best = max(best, float(rec.time[seg.stop - 1] - rec.time[seg.start]) + 1.0 / rec.rate_hz)
    return best


def no_window_message(rec: Recording, window_s: float) -> str:
    """Why a recording gives no complete window of ``window_s`` seconds (one line)."""
    return (f"{rec.path}: no complete {window_s:g} s window: {len(rec)} sample(s), the longest stretch without "
            f"a gap or break is {longest_stretch_s(rec):.2f} s")


def check_for_model(path: str | Path, metadata: object, force: bool = False, warn: Warn | None = None) -> Recording:
    """:func:`load_checked`, plus the recording's gravity direction against the mean of the model's
    training windows (``metadata.normalization.mean``)."""
    rec = load_checked(path, force=force, warn=warn)
    norm = getattr(metadata, "normalization", None)
    mean = getattr(norm, "mean", None)
    if mean is not None and len(mean) == 3:
        enforce(model_gravity_findings(rec, mean), force=force, warn=warn)
    return rec


def check_files(paths: Sequence[str | Path], force: bool = False, warn: Warn | None = None) -> None:
    """:func:`load_checked` for every recording named by ``paths`` (files or directories)."""
    from har.recording.format import find_recordings

    for p in find_recordings(paths):
        load_checked(p, force=force, warn=warn)


def recorded_warnings(path: str | Path) -> list[str]:
    """The checks of a finished live recording as warning lines: the file is kept whatever they say
    (its rate is compared by the capture itself, so rate findings are left out)."""
    from har.errors import HarError

    try:
        return [f.message for f in check_recording(read_recording(path)) if f.check != "rate"]
    except HarError as e:
        return [str(e)]

