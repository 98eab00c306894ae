"""Activity simulator: synthetic wrist (or waist) accelerometer streams for demos, tests and the
device emulator (``har emulate --simulate``). Not real people; good enough that a model has
something real to learn.

The model, in short (all accelerations in g, gravity included, device axes x, y, z):

* **Orientation.** Gravity (1 g) is projected through the device orientation: a posture
  (pitch, roll, yaw) per activity and subject, a per-session strap tilt, a slow random wander
  (Ornstein-Uhlenbeck, ~20 s) and activity-specific micro-movements. With the wrist placement the
  device x axis runs along the forearm: standing and walking put gravity mostly on x, sitting tilts
  the forearm towards horizontal (gravity shared by x and z), lying rolls the wrist so gravity
  moves to y.
* **Gait.** Steps with a per-subject cadence (walking 1.6-2.0 steps/s, running 2.5-3.0, stairs
  0.68-0.80 x walking), harmonics and a heel-strike transient on the vertical axis, forward and
  lateral (stride-rate) components, step-to-step variability, a slowly drifting cadence and
  occasional irregular steps (stumbles, shuffles). Running has a stance/flight cycle; stairs have
  a larger vertical component, asymmetric left/right steps and smaller arm swing; flights
  alternate up (slow, strong push) and down (faster, harder landings) with short landings between.
* **Arm swing** (wrist): the forearm pitch oscillates at the stride rate, which both re-projects
  gravity and adds tangential/centripetal acceleration.
* **Stillness.** Postural sway, breathing, weight shifts (standing), fidgets (sitting), small
  gestures and rare posture adjustments (lying).
* **Sensor.** White noise, the sensor's digital low-pass filter (2nd-order, bandwidth about a
  quarter of the rate), per-axis gain error and bias, clipping to +-4 g and quantisation to
  1 milli-g (a real +-4 g MEMS sensor).

Randomness comes from ``numpy.random.Generator`` streams seeded by ``subject_seed`` (who the
subject is: cadence, intensity, posture, noise level) and ``seed`` (the session: strap tilt,
steps, fidgets, noise). Same seeds and same sequence of ``generate`` calls -> same output; the
output does not depend on how a stream is chunked into calls (up to rare 1 mg rounding flips).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.errors import ConfigError, DataError, MissingDependencyError

try:  # imported only by the simulator (`har simulate`, `har emulate --simulate`), never by `har run`
    from scipy.signal import butter, lfilter, lfilter_zi
    from scipy.special import i0e
except ImportError:
    raise MissingDependencyError(
        "the activity simulator needs scipy, which a device install leaves out: pip install scipy "
        "(or the 'train' extra)"
    ) from None
from har.recording.format import Recording, RecordingMeta, write_recording

ACTIVITIES = ("walking", "running", "stairs", "sitting", "standing", "lying")
GAIT = ("walking", "running", "stairs")
STILL = ("sitting", "standing", "lying")
PLACEMENTS = ("wrist", "waist")

RANGE_G = 4.0  # sensor full scale, g
LSB_G = 0.001  # quantisation step, g (1 milli-g)
MIN_RATE_HZ = 10.0
MAX_RATE_HZ = 1000.0
G_MS2 = 9.80665
SIM_START_TIME = "2026-01-01T00:00:00.000+00:00"  # fixed so regenerated files are byte-identical

# Posture means (pitch, roll, yaw) in degrees and the between-subject spread (sd, degrees).
_POSTURES: dict[str, dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]] = {
    "wrist": {
        "walking": ((64.0, 12.0, 0.0), (8.0, 10.0, 25.0)),
        "running": ((25.0, 25.0, 0.0), (10.0, 12.0, 25.0)),
        "stairs": ((48.0, 6.0, 0.0), (8.0, 10.0, 25.0)),  # hand near/on the rail: forearm flatter
        "standing": ((62.0, 12.0, 0.0), (6.0, 8.0, 25.0)),
        "sitting": ((32.0, 30.0, 0.0), (7.0, 10.0, 25.0)),
        "lying": ((5.0, 88.0, 0.0), (14.0, 14.0, 25.0)),
    },
    "waist": {
        "walking": ((84.0, 0.0, 0.0), (5.0, 6.0, 10.0)),
        "running": ((78.0, 0.0, 0.0), (6.0, 6.0, 10.0)),
        "stairs": ((80.0, 0.0, 0.0), (6.0, 6.0, 10.0)),
        "standing": ((86.0, 0.0, 0.0), (4.0, 6.0, 10.0)),
        "sitting": ((68.0, 0.0, 0.0), (8.0, 8.0, 10.0)),
        "lying": ((4.0, 70.0, 0.0), (10.0, 20.0, 10.0)),
    },
}
# Still postures: sway sd (deg), sway time constant (s), micro-acceleration sd (g), breathing
# amplitude (deg), mean seconds between events, event kinds with probabilities.
_STILL: dict[str, dict[str, Any]] = {
    "standing": {
        "sway": 1.6,
        "sway_tau": 1.0,
        "micro": 0.009,
        "breath": 0.3,
        "every": 7.0,
        "kinds": (("shift", 0.5), ("gesture", 0.35), ("fidget", 0.15)),
    },
    "sitting": {
        "sway": 0.35,
        "sway_tau": 3.0,
        "micro": 0.0025,
        "breath": 0.4,
        "every": 12.0,
        "kinds": (("fidget", 0.6), ("shift", 0.3), ("gesture", 0.1)),
    },
    "lying": {
        "sway": 0.25,
        "sway_tau": 4.0,
        "micro": 0.002,
        "breath": 0.8,
        "every": 25.0,
        "kinds": (("shift", 0.7), ("fidget", 0.3)),
    },
}
_GAIT_SWAY = {"sway": 1.5, "sway_tau": 1.0, "micro": 0.015}


def _check_activity(activity: str) -> str:
    if activity not in ACTIVITIES:
        raise DataError(f"unknown activity {activity!r} (choose from {', '.join(ACTIVITIES)})")
    return activity


def _check_rate(rate_hz: float) -> float:
    try:
        r = float(rate_hz)
    except (TypeError, ValueError):
        raise ConfigError(f"rate must be a number in Hz, got {rate_hz!r}") from None
    if not (math.isfinite(r) and MIN_RATE_HZ <= r <= MAX_RATE_HZ):
        raise ConfigError(f"rate must be between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g} Hz, got {rate_hz!r}")
    return r


@dataclass(frozen=True)
class SubjectParams:
    """Who the subject is (drawn from ``subject_seed``). Frequencies in Hz, amplitudes in g,
    angles in degrees, lengths in m."""

    cadence: dict[str, float]  # steps per second per gait activity
    intensity: float  # multiplies gait amplitudes
    step_cv: float  # step-duration coefficient of variation
    amp_cv: float  # step-amplitude coefficient of variation
    irregular: float  # probability that a step is irregular
    harm: tuple[float, float, float, float]  # h2, phase2, h3, phase3 of the vertical waveform
    fwd_phase: float  # rad
    heel: float  # heel-strike bump amplitude relative to the vertical amplitude
    swing: dict[str, float]  # arm-swing amplitude per gait activity, deg
    swing_phase: float  # rad
    arm_length: float  # effective wrist radius of the swing, m
    stairs_asym: float  # left/right step amplitude asymmetry on stairs (fraction)
    run_duty: float  # stance fraction of a running step
    posture: dict[str, tuple[float, float, float]]  # (pitch, roll, yaw) deg per activity
    noise: float  # white sensor noise sd, g
    bias: tuple[float, float, float]  # g
    gain: tuple[float, float, float]  # per-axis gain
    breath_hz: float
    fidget_scale: float  # multiplies fidget / gesture amplitudes


def subject_params(subject_seed: int, placement: str = "wrist") -> SubjectParams:
    """Draw a subject's traits. Deterministic in ``subject_seed``."""
    rng = np.random.default_rng([int(subject_seed), 0x5B7EC7])
    walk = rng.uniform(1.6, 2.0)
    cadence = {"walking": walk, "running": rng.uniform(2.5, 3.0), "stairs": walk * rng.uniform(0.68, 0.80)}
    wrist = placement == "wrist"
    swing = {
        "walking": rng.uniform(14.0, 28.0) if wrist else 0.0,
        "running": rng.uniform(18.0, 32.0) if wrist else 0.0,
        "stairs": rng.uniform(3.0, 10.0) if wrist else 0.0,
    }
    posture = {}
    for act, (mean, sd) in _POSTURES[placement].items():
        p = [m + s * rng.standard_normal() for m, s in zip(mean, sd, strict=True)]
        posture[act] = (p[0], p[1], p[2])
    # Lying on either side: the wrist rolls one way or the other.
    if rng.random() < 0.4:
        pl = posture["lying"]
        posture["lying"] = (pl[0], -pl[1], pl[2])
    return SubjectParams(
        cadence=cadence,
        intensity=float(rng.uniform(0.8, 1.25)),
        step_cv=float(rng.uniform(0.02, 0.05)),
        amp_cv=float(rng.uniform(0.08, 0.16)),
        irregular=float(rng.uniform(0.02, 0.06)),
        harm=(
            float(rng.uniform(0.2, 0.6)),
            float(rng.uniform(0, 2 * np.pi)),
            float(rng.uniform(0.05, 0.3)),
            float(rng.uniform(0, 2 * np.pi)),
        ),
        fwd_phase=float(rng.uniform(0, 2 * np.pi)),
        heel=float(rng.uniform(0.3, 0.8)),
        swing=swing,
        swing_phase=float(rng.uniform(0, 2 * np.pi)),
        arm_length=float(rng.uniform(0.25, 0.4)) if wrist else 0.0,
        stairs_asym=float(rng.uniform(0.08, 0.25)),
        run_duty=float(rng.uniform(0.36, 0.46)),
        posture=posture,
        noise=float(rng.uniform(0.004, 0.012)),
        bias=tuple(float(v) for v in rng.normal(0.0, 0.015, 3)),  # type: ignore[arg-type]
        gain=tuple(float(v) for v in rng.normal(1.0, 0.01, 3)),  # type: ignore[arg-type]
        breath_hz=float(rng.uniform(0.2, 0.3)),
        fidget_scale=float(rng.uniform(0.6, 1.4)),
    )


@dataclass
class _Step:
    k: int  # step index (parity = left/right)
    activity: str
    duration: float  # s
    amp: float  # amplitude multiplier
    up: bool  # stairs: up or down flight
    jolt: np.ndarray | None  # (3,) g, world frame, irregular steps only
    jolt_at: float  # phase of the jolt in the step


@dataclass
class _Event:
    start: int  # global sample index
    length: int  # samples
    kind: str
    angles: np.ndarray  # (3,) peak pitch/roll/yaw change, deg
    acc: np.ndarray  # (3,) device-frame oscillation amplitude, g
    freq: float  # Hz of the oscillation
    hold: float  # fraction of the event at the plateau (shifts)


def _rotate(a: np.ndarray, pitch: np.ndarray, roll: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """World -> device: ``Rx(roll) @ Ry(pitch) @ Rz(yaw) @ a`` per row; angles in rad.

    World z is up, so a resting device reads (sin p, -cos p sin r, cos p cos r) g."""
    x, y, z = a[:, 0], a[:, 1], a[:, 2]
    c, s = np.cos(yaw), np.sin(yaw)
    x, y = c * x - s * y, s * x + c * y
    c, s = np.cos(pitch), np.sin(pitch)
    x, z = c * x + s * z, -s * x + c * z
    c, s = np.cos(roll), np.sin(roll)
    y, z = c * y - s * z, s * y + c * z
    return np.stack([x, y, z], axis=1)


class ActivitySimulator:
    """A streaming accelerometer simulator for one subject and one session.

    ``generate(activity, n)`` returns the next ``n`` samples (float32 (n, 3), g, gravity
    included, quantised to 1 mg, within +-4 g). State (step phase, orientation wander, pending
    fidgets) is kept between calls, so consecutive calls continue the same stream without a jump.

    Args:
        subject_seed: who the subject is (cadence, intensity, posture, noise level).
        rate_hz: sample rate, Hz (10-1000).
        seed: the session's randomness; ``None`` draws fresh entropy (not reproducible).
        placement: ``"wrist"`` (default; x along the forearm) or ``"waist"`` (x up when standing).
    """

    def __init__(
        self,
        subject_seed: int = 0,
        rate_hz: float = 50.0,
        seed: int | None = None,
        placement: str = "wrist",
    ) -> None:
        if placement not in PLACEMENTS:
            raise ConfigError(f"unknown placement {placement!r} (choose from {', '.join(PLACEMENTS)})")
        self.rate_hz = _check_rate(rate_hz)
        self.subject_seed = int(subject_seed)
        self.placement = placement
        self.params = subject_params(self.subject_seed, placement)
        ss = np.random.SeedSequence(None if seed is None else [int(seed), self.subject_seed, 0x51A])
        self.seed = seed
        session, gait, ou, events, noise = (np.random.default_rng(s) for s in ss.spawn(5))
        self._rng_gait, self._rng_ou, self._rng_events, self._rng_noise = gait, ou, events, noise
        # Per-session strap tilt (deg): the watch sits a little differently every day.
        self._tilt = session.normal(0.0, [4.0, 7.0, 5.0])
        self._breath_phase = float(session.uniform(0, 2 * np.pi))
        self._n = 0  # samples generated so far (global index of the next sample)
        self._current = "standing"
        # The sensor's digital low-pass filter (2nd-order Butterworth, bandwidth ~rate/4, <= 20 Hz).
        self._lpf = butter(2, min(0.24 * self.rate_hz, 20.0), fs=self.rate_hz)
        self._lpf_state: np.ndarray | None = None
        # Gait state.
        self._step: _Step | None = None
        self._k = 0
        self._t_in_step = 0.0  # s from the current step's start to the next sample
        self._cad_drift = 0.0  # AR(1) cadence drift, fraction
        self._flight_left = 0  # stairs: steps left in the current flight (0 -> landing)
        self._landing_left = 0
        self._up = bool(session.random() < 0.5)
        # Ornstein-Uhlenbeck states: wander (pitch, roll), sway (pitch, roll), micro acc (x, y, z).
        self._wander = session.normal(0.0, 3.0, 2)
        self._sway = np.zeros(2)
        self._micro = np.zeros(3)
        # Still-posture events.
        self._events: list[_Event] = []
        self._next_event = int(self._rng_events.exponential(5.0) * self.rate_hz)

    # -- public --------------------------------------------------------------------------------
    def generate(self, activity: str, n: int) -> np.ndarray:
        """The next ``n`` samples of ``activity``: float32 (n, 3), g (gravity included)."""
        _check_activity(activity)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise DataError(f"sample count must be a non-negative integer, got {n!r}")
        n = int(n)
        self._current = activity
        if n == 0:
            return np.zeros((0, 3), dtype=np.float32)
        p = self.params
        idx = self._n + np.arange(n)
        t = idx / self.rate_hz
        # Orientation (deg): posture + strap tilt + slow wander + sway (+ swing / events below).
        base = np.asarray(p.posture[activity]) + self._tilt
        # One draw of 7 normals per sample for all OU channels, so chunking does not matter.
        e = self._rng_ou.standard_normal((n, 7))
        still = _STILL.get(activity, _GAIT_SWAY)
        wander = self._ou("_wander", e[:, 0:2], tau=20.0, sd=4.0)
        sway = self._ou("_sway", e[:, 2:4], tau=still["sway_tau"], sd=still["sway"])
        micro = self._ou("_micro", e[:, 4:7], tau=0.15, sd=still["micro"])
        ang = np.tile(base, (n, 1))
        ang[:, :2] += wander + sway
        lin_world = np.zeros((n, 3))
        dev_extra = micro.copy()
        if activity in GAIT:
            lin_world, dpitch, tang, centri = self._gait(n)
            ang[:, 0] += dpitch
            dev_extra[:, 2] += tang
            dev_extra[:, 0] -= centri
        else:
            ang[:, 0] += still["breath"] * np.sin(2 * np.pi * p.breath_hz * t + self._breath_phase)
        ev_ang, ev_acc = self._render_events(activity, n)
        ang += ev_ang
        dev_extra += ev_acc
        rad = np.deg2rad(ang)
        world = lin_world + np.array([0.0, 0.0, 1.0])
        xyz = _rotate(world, rad[:, 0], rad[:, 1], rad[:, 2]) + dev_extra
        # Sensor: noise, the sensor's digital low-pass filter, gain, bias, clip, quantise.
        xyz = xyz + self._rng_noise.standard_normal((n, 3)) * p.noise
        if self._lpf_state is None:
            self._lpf_state = np.outer(lfilter_zi(*self._lpf), xyz[0])  # start settled
        xyz, self._lpf_state = lfilter(*self._lpf, xyz, axis=0, zi=self._lpf_state)
        xyz = xyz * np.asarray(p.gain) + np.asarray(p.bias)
        xyz = np.clip(xyz, -RANGE_G, RANGE_G)
        xyz = np.round(xyz / LSB_G) * LSB_G
        self._n += n
        return xyz.astype(np.float32)

    # -- internals -----------------------------------------------------------------------------
    def _ou(self, name: str, e: np.ndarray, tau: float, sd: float) -> np.ndarray:
        """Advance the Ornstein-Uhlenbeck state ``name`` (time constant ``tau`` s, stationary sd
        ``sd``) by one step per row of the standard-normal innovations ``e`` (n, dims)."""
        state: np.ndarray = getattr(self, name)
        a = math.exp(-1.0 / (tau * self.rate_hz))
        b = sd * math.sqrt(1.0 - a * a)
        out, _ = lfilter([b], [1.0, -a], e, axis=0, zi=(a * state)[None, :])
        setattr(self, name, out[-1].copy())
        return out

    def _new_step(self, activity: str) -> _Step:
        p = self.params
        r = self._rng_gait
        z = r.standard_normal(4)
        u = r.random(4)
        jolt_dir = r.standard_normal(3)
        self._cad_drift = 0.97 * self._cad_drift + 0.25 * p.step_cv * z[0]
        cadence = p.cadence[activity] * (1.0 + self._cad_drift)
        up = True
        if activity == "stairs":
            # Flights of 8-16 steps, alternating up and down, with 2-4 landing steps between.
            if self._flight_left <= 0 and self._landing_left <= 0:
                self._landing_left = 2 + int(u[3] * 3)
            if self._landing_left > 0:
                self._landing_left -= 1
                if self._landing_left == 0:
                    self._up = not self._up
                    self._flight_left = 8 + int(u[3] * 9)
                up = self._up
                cadence = p.cadence["walking"] * 0.9
            else:
                self._flight_left -= 1
                up = self._up
                cadence *= 1.0 if up else 1.15
        duration = (1.0 / cadence) * (1.0 + p.step_cv * z[1])
        amp = max(0.3, 1.0 + p.amp_cv * z[2])
        jolt = None
        jolt_at = 0.0
        if u[0] < p.irregular:
            duration *= 0.7 + 0.7 * u[1]
            amp *= 0.4 + 1.2 * u[2]
            jolt = jolt_dir * 0.15 * p.intensity
            jolt_at = float(u[3])
        duration = max(duration, 2.5 / self.rate_hz)
        step = _Step(self._k, activity, duration, amp, up, jolt, jolt_at)
        self._k += 1
        return step

    def _gait(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """World linear acceleration (n, 3) g, pitch swing (n,) deg, tangential and centripetal
        swing acceleration (n,) g, for the current gait activity."""
        lin = np.zeros((n, 3))
        dpitch = np.zeros(n)
        tang = np.zeros(n)
        centri = np.zeros(n)
        i = 0
        while i < n:
            if self._step is None:
                self._step = self._new_step(self._current)
            st = self._step
            t0 = self._t_in_step
            m = max(1, int(math.ceil((st.duration - t0) * self.rate_hz - 1e-9)))
            take = min(m, n - i)
            ph = (t0 + np.arange(take) / self.rate_hz) / st.duration
            sl = slice(i, i + take)
            lin[sl], dpitch[sl], tang[sl], centri[sl] = self._step_wave(st, ph)
            i += take
            if take == m:
                self._t_in_step = t0 + m / self.rate_hz - st.duration
                self._step = None
            else:
                self._t_in_step = t0 + take / self.rate_hz
        return lin, dpitch, tang, centri

    def _step_wave(self, st: _Step, ph: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = self.params
        act = st.activity
        two_pi = 2 * np.pi
        side = st.k % 2
        stride = (side + ph) / 2.0  # stride phase (two steps per stride)
        h2, f2, h3, f3 = p.harm
        inten = p.intensity * st.amp
        kappa = 30.0
        bump = np.exp(kappa * (np.cos(two_pi * (ph - 0.06)) - 1.0)) - i0e(kappa)  # zero-mean heel strike
        if act == "running":
            duty = p.run_duty
            stance = ph < duty
            peak = (1.0 - duty) * np.pi / (2.0 * duty)  # zero mean over the step
            v = np.where(stance, peak * np.sin(np.pi * np.minimum(ph, duty) / duty), -1.0)
            v = 0.7 * v * (0.85 + 0.15 * inten) + 0.5 * p.heel * inten * bump
            f = 0.45 * inten * np.where(stance, -np.sin(two_pi * np.minimum(ph, duty) / duty), 0.0)
            lat = 0.12 * inten * np.sin(two_pi * stride + p.fwd_phase)
        else:
            a_v = 0.30 * inten
            a_f = 0.18 * inten
            a_l = 0.08 * inten
            wave = np.cos(two_pi * ph) + h2 * np.cos(2 * two_pi * ph + f2) + h3 * np.cos(3 * two_pi * ph + f3)
            v = a_v * (wave + p.heel * bump)
            f = a_f * (np.sin(two_pi * ph + p.fwd_phase) + 0.4 * np.sin(2 * two_pi * ph + f2))
            lat = a_l * np.sin(two_pi * stride + p.fwd_phase)
            if act == "stairs":
                sgn = 1.0 if side == 0 else -1.0
                asym = 1.0 + sgn * p.stairs_asym
                if st.up:
                    # Slow push up each step: more vertical, less forward, stride-rate lift.
                    v = 1.8 * asym * v + 0.25 * inten * np.cos(two_pi * stride + f3)
                    f = 0.6 * f
                else:
                    # Down: harder landings, sharper heel strike.
                    v = asym * (1.4 * v + 0.4 * inten * bump)
                    f = 0.8 * f
        lin = np.stack([f, lat, v], axis=1)
        if st.jolt is not None:
            d = np.exp(40.0 * (np.cos(two_pi * (ph - st.jolt_at)) - 1.0))
            lin = lin + d[:, None] * st.jolt[None, :]
        swing = p.swing[act]
        ang = two_pi * stride + p.swing_phase
        dpitch = swing * np.sin(ang)
        w = np.pi / st.duration  # stride angular frequency, rad/s
        s_rad = np.deg2rad(swing)
        tang = p.arm_length * s_rad * w * w * np.sin(ang) / G_MS2
        centri = p.arm_length * (s_rad * w * np.cos(ang)) ** 2 / G_MS2
        return lin, dpitch, tang, centri

    def _new_event(self, activity: str, start: int) -> _Event:
        r = self._rng_events
        cfg = _STILL[activity]
        kinds = [k for k, _ in cfg["kinds"]]
        probs = np.array([w for _, w in cfg["kinds"]])
        kind = kinds[int(r.choice(len(kinds), p=probs / probs.sum()))]
        u = r.random(4)
        sgn = r.choice([-1.0, 1.0], 3)
        direction = r.standard_normal(3)
        direction /= np.linalg.norm(direction) + 1e-12
        sc = self.params.fidget_scale
        if kind == "shift":
            secs = 2.0 + 5.0 * u[0]
            mag = (2.0 + 5.0 * u[1]) * (1.5 if activity == "lying" else 1.0)
            angles = sgn * mag * np.array([1.0, 0.7 * u[2], 0.5])
            acc = direction * 0.01
            freq, hold = 1.0, 0.4 + 0.4 * u[3]
        elif kind == "gesture":
            secs = 1.0 + 1.5 * u[0]
            angles = sgn * (5.0 + 12.0 * u[1]) * np.array([1.0, u[2], 0.5])
            acc = direction * (0.04 + 0.10 * u[3]) * sc
            freq, hold = 1.0 + 2.0 * u[2], 0.0
        else:  # fidget
            secs = 0.3 + 1.2 * u[0]
            angles = sgn * (1.0 + 4.0 * u[1]) * np.array([1.0, u[2], 0.3])
            acc = direction * (0.03 + 0.09 * u[3]) * sc
            freq, hold = 3.0 + 3.0 * u[2], 0.0
        return _Event(start, max(2, int(secs * self.rate_hz)), kind, angles, acc, freq, hold)

    def _render_events(self, activity: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Schedule events starting in this chunk (still activities only) and render all active
        ones: orientation offsets (n, 3) deg and device-frame accelerations (n, 3) g."""
        end = self._n + n
        while self._next_event < end:
            if activity in STILL:
                self._events.append(self._new_event(activity, self._next_event))
                every = _STILL[activity]["every"]
            else:
                every = 5.0
            self._next_event += max(1, int(self._rng_events.exponential(every) * self.rate_hz))
        ang = np.zeros((n, 3))
        acc = np.zeros((n, 3))
        keep = []
        for ev in self._events:
            j = np.arange(self._n, end) - ev.start
            on = (j >= 0) & (j < ev.length)
            if on.any():
                x = j[on] / ev.length  # 0..1 through the event
                if ev.hold > 0:
                    r = (1.0 - ev.hold) / 2.0
                    env = np.where(
                        x < r,
                        0.5 - 0.5 * np.cos(np.pi * x / r),
                        np.where(x > 1.0 - r, 0.5 - 0.5 * np.cos(np.pi * (1.0 - x) / r), 1.0),
                    )
                else:
                    env = 0.5 - 0.5 * np.cos(2 * np.pi * x)
                ang[on] += env[:, None] * ev.angles[None, :]
                osc = np.sin(2 * np.pi * ev.freq * j[on] / self.rate_hz)
                acc[on] += (env * osc)[:, None] * ev.acc[None, :]
            if ev.start + ev.length > end:
                keep.append(ev)
        self._events = keep
        return ang, acc


def _check_schedule(schedule: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if not schedule:
        raise DataError("empty schedule: give (activity, seconds) segments")
    out = []
    for item in schedule:
        try:
            act, secs = item
            secs = float(secs)
        except (TypeError, ValueError):
            raise DataError(f"schedule entries must be (activity, seconds), got {item!r}") from None
        _check_activity(act)
        if not (math.isfinite(secs) and secs > 0):
            raise DataError(f"segment length must be positive seconds, got {secs!r} for {act}")
        out.append((act, secs))
    return out


def simulate_recording(
    schedule: list[tuple[str, float]],
    subject: str = "sim01",
    subject_seed: int = 0,
    rate_hz: float = 50.0,
    seed: int = 0,
    placement: str = "wrist",
) -> Recording:
    """One synthetic session: ``schedule`` is a list of (activity, seconds) segments played in
    order. Every sample is labelled with its segment's activity; ``seq`` counts samples from 0;
    ``time`` is seq / rate_hz (s). The sidecar says device="simulator" and is deterministic (fixed
    start time and session id) so regenerated files are byte-identical."""
    segs = _check_schedule(schedule)
    rate = _check_rate(rate_hz)
    sim = ActivitySimulator(subject_seed=subject_seed, rate_hz=rate, seed=seed, placement=placement)
    chunks, labels = [], []
    for act, secs in segs:
        n = max(1, int(round(secs * rate)))
        chunks.append(sim.generate(act, n))
        labels.append(np.full(n, act))
    xyz = np.concatenate(chunks).astype(np.float32)
    total = xyz.shape[0]
    meta = RecordingMeta(
        session_id=f"{subject}-seed{seed}",
        subject=subject,
        device="simulator",
        start_time=SIM_START_TIME,
        rate_hz=rate,
        measured_rate_hz=rate,
        labels=list(dict.fromkeys(a for a, _ in segs)),
        samples=total,
        source="har.simulate (synthetic)",
        complete=True,
        extra={
            "synthetic": True,
            "simulator": {
                "subject_seed": int(subject_seed),
                "seed": int(seed),
                "placement": placement,
                "range_g": RANGE_G,
                "lsb_g": LSB_G,
                "schedule": [[a, s] for a, s in segs],
            },
        },
    )
    return Recording(
        time=np.arange(total, dtype=np.float64) / rate,
        xyz=xyz,
        labels=np.concatenate(labels).astype(str),
        seq=np.arange(total, dtype=np.int64),
        meta=meta,
    )


def generate_dataset(
    out_dir: str | os.PathLike[str],
    subjects: int = 8,
    seconds_per_activity: float = 40.0,
    rate_hz: float = 50.0,
    seed: int = 0,
    overwrite: bool = False,
) -> list[Path]:
    """Write one recording per subject (``sim01.csv`` + ``.json`` ...) into ``out_dir``.

    Each holds all six activities, ``seconds_per_activity`` seconds each, in a subject-specific
    random order. Subject i (1-based) uses subject_seed = session seed = 1000 * seed + i. Refuses
    to replace existing files unless ``overwrite`` (nothing is written then)."""
    if isinstance(subjects, bool) or not isinstance(subjects, (int, np.integer)) or not 1 <= subjects <= 99:
        raise ConfigError(f"subjects must be an integer from 1 to 99, got {subjects!r}")
    secs = float(seconds_per_activity)
    rate = _check_rate(rate_hz)
    if not (math.isfinite(secs) and secs * rate >= 1):
        raise ConfigError(f"seconds per activity must give at least one sample, got {seconds_per_activity!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a directory")
    names = [f"sim{i:02d}" for i in range(1, int(subjects) + 1)]
    if not overwrite:
        for name in names:
            for suffix in (".csv", ".json"):
                if (out / (name + suffix)).exists():
                    raise DataError(f"{out / (name + suffix)} exists (choose another --out or pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names, start=1):
        s = 1000 * int(seed) + i
        order = np.random.default_rng([int(seed), i, 0x0DE]).permutation(len(ACTIVITIES))
        schedule = [(ACTIVITIES[j], secs) for j in order]
        rec = simulate_recording(schedule, subject=name, subject_seed=s, rate_hz=rate, seed=s)
        paths.append(write_recording(out / f"{name}.csv", rec, overwrite=True))
    return paths
