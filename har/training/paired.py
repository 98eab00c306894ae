"""Choosing between a simpler and a more complex model on the same validation windows.

The "auto" choices of har.training.fit (z rotation 0 or 180 degrees, distillation none or a
teacher) keep the simpler model unless the complex one is better by more than chance: an exact
one-sided sign test (McNemar's exact test) over the discordant windows, the validation windows
where exactly one of the two models is right. One validation subject can make 1.000 vs 0.949
out of three windows; that is p = 0.125, not a reason to train differently.

Windows are not independent: the windows of one activity of one person are one piece of evidence
(in a demo run 15 of 15 discordant windows were one validation subject's `sitting`, p = 3e-5 over
windows, and 180 degrees then lost 7.6 points on the test wearers). With ``clusters`` (a key per
window, e.g. recording x label) the sign test counts clusters instead: a cluster is won by the
model that is right on more of its windows, and p is over the clusters won (ties do not count).

Pure numpy (no TensorFlow)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SIGNIFICANCE = 0.05  # the complex model is chosen only when the one-sided p-value is below this


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: P(at least ``wins`` of ``wins + losses`` fair coin flips), the
    probability of the complex model winning this many discordant windows by chance (1.0 when
    there are none)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(wins, n + 1)) / 2.0**n)


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Two models' predictions on the same windows: accuracies, discordant counts, p-value."""

    n: int
    accuracy_simple: float
    accuracy_complex: float
    simple_only: int  # windows only the simpler model gets right
    complex_only: int  # windows only the complex model gets right
    p_value: float
    alpha: float = SIGNIFICANCE
    clusters: int = 0  # 0: the test counted windows; else how many clusters it counted
    clusters_simple: int = 0  # clusters where the simpler model is right on more windows
    clusters_complex: int = 0  # clusters where the complex model is right on more windows

    @property
    def complex_wins(self) -> bool:
        """True when the complex model is significantly better (one-sided p < alpha)."""
        wins, losses = ((self.clusters_complex, self.clusters_simple) if self.clusters
                        else (self.complex_only, self.simple_only))
        return wins > losses and self.p_value < self.alpha

    def describe(self, simple: str, complex_: str) -> str:
        """One line: both accuracies, the discordant counts, p and the decision."""
        verdict = f"choosing {complex_}" if self.complex_wins else f"keeping {simple}"
        groups = (f" in {self.clusters_complex} vs {self.clusters_simple} of {self.clusters} groups"
                  if self.clusters else "")
        return (
            f"{complex_} {self.accuracy_complex:.3f} vs {simple} {self.accuracy_simple:.3f} on {self.n} windows, "
            f"{self.complex_only} vs {self.simple_only} discordant{groups}, p={self.p_value:.3g}: {verdict}"
        )

    def history(self, key: str) -> dict[str, list[float]]:
        """The numbers for a training history under ``key``: ``key_val_accuracy`` (simple, complex),
        ``key_discordant`` (simple only, complex only), ``key_p``."""
        out = {
            f"{key}_val_accuracy": [self.accuracy_simple, self.accuracy_complex],
            f"{key}_discordant": [float(self.simple_only), float(self.complex_only)],
            f"{key}_p": [self.p_value],
        }
        if self.clusters:
            out[f"{key}_groups"] = [float(self.clusters), float(self.clusters_simple), float(self.clusters_complex)]
        return out


def compare_paired(
    y: np.ndarray,
    pred_simple: np.ndarray,
    pred_complex: np.ndarray,
    alpha: float = SIGNIFICANCE,
    clusters: np.ndarray | None = None,
) -> PairedComparison:
    """Compare two models' class predictions ``pred_simple`` / ``pred_complex`` on the windows
    with labels ``y`` (all 1-D integer arrays of one length). ``clusters`` (one key per window):
    the sign test counts the clusters each model wins instead of the windows (see the module
    docstring)."""
    y, a, b = (np.asarray(v).reshape(-1) for v in (y, pred_simple, pred_complex))
    if not y.shape == a.shape == b.shape:
        raise ValueError(f"labels and predictions differ in length: {y.shape[0]}, {a.shape[0]}, {b.shape[0]}")
    ok_a, ok_b = a == y, b == y
    simple_only, complex_only = int(np.sum(ok_a & ~ok_b)), int(np.sum(ok_b & ~ok_a))
    n = int(y.size)
    counted: dict[str, int] = {}
    p = sign_test_p(complex_only, simple_only)
    if clusters is not None:
        keys = np.asarray(clusters).reshape(-1)
        if keys.shape != y.shape:
            raise ValueError(f"clusters has {keys.shape[0]} keys for {y.shape[0]} windows")
        _, inverse = np.unique(keys, return_inverse=True)
        net = np.bincount(inverse, weights=ok_b.astype(float) - ok_a.astype(float))
        counted = {"clusters": int(net.size), "clusters_simple": int(np.sum(net < 0)),
                   "clusters_complex": int(np.sum(net > 0))}
        p = sign_test_p(counted["clusters_complex"], counted["clusters_simple"])
    return PairedComparison(
        n=n,
        accuracy_simple=float(ok_a.mean()) if n else 0.0,
        accuracy_complex=float(ok_b.mean()) if n else 0.0,
        simple_only=simple_only,
        complex_only=complex_only,
        p_value=p,
        alpha=alpha,
        **counted,
    )
