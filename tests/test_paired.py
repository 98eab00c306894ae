"""The "auto" choices' rule (har.training.paired): keep the simpler model unless the complex one
is better by more than chance on the same validation windows (exact one-sided sign test)."""

from __future__ import annotations

import numpy as np
import pytest

from har.training.paired import SIGNIFICANCE, compare_paired, sign_test_p


def test_sign_test_matches_the_binomial_tail() -> None:
    assert sign_test_p(3, 0) == pytest.approx(0.125)
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 5) == 1.0
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    scipy_stats = pytest.importorskip("scipy.stats")
    for wins, losses in ((7, 2), (12, 5), (30, 18), (1, 1)):
        ref = scipy_stats.binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue
        assert sign_test_p(wins, losses) == pytest.approx(ref)


def _preds(n: int, simple_only: int, complex_only: int, both_wrong: int = 0) -> tuple[np.ndarray, ...]:
    y = np.arange(n) % 3
    a, b = y.copy(), y.copy()
    i = 0
    for _ in range(simple_only):
        b[i] = (y[i] + 1) % 3
        i += 1
    for _ in range(complex_only):
        a[i] = (y[i] + 1) % 3
        i += 1
    for _ in range(both_wrong):  # both wrong (even with different answers): not discordant
        a[i], b[i] = (y[i] + 1) % 3, (y[i] + 2) % 3
        i += 1
    return y, a, b


def test_the_demo_case_keeps_the_simpler_model_and_says_why() -> None:
    """1.000 vs 0.949 on one validation subject's 59 windows: 3 windows, p = 0.125."""
    y, a, b = _preds(59, simple_only=0, complex_only=3)
    cmp = compare_paired(y, a, b)
    assert (cmp.n, cmp.simple_only, cmp.complex_only) == (59, 0, 3)
    assert cmp.accuracy_complex == 1.0 and cmp.accuracy_simple == pytest.approx(56 / 59)
    assert cmp.p_value == pytest.approx(0.125) and not cmp.complex_wins
    assert cmp.describe("0 degrees", "180 degrees") == (
        "180 degrees 1.000 vs 0 degrees 0.949 on 59 windows, 3 vs 0 discordant, p=0.125: keeping 0 degrees"
    )
    hist = cmp.history("rotation_z")
    assert hist["rotation_z_discordant"] == [0.0, 3.0] and hist["rotation_z_p"] == [pytest.approx(0.125)]
    assert hist["rotation_z_val_accuracy"] == [pytest.approx(56 / 59), 1.0]


def test_a_clear_win_chooses_the_complex_model() -> None:
    y, a, b = _preds(200, simple_only=2, complex_only=15, both_wrong=4)
    cmp = compare_paired(y, a, b)
    assert (cmp.simple_only, cmp.complex_only) == (2, 15)  # both-wrong windows do not count
    assert cmp.p_value < SIGNIFICANCE and cmp.complex_wins
    assert cmp.describe("none", "minirocket_oof").endswith(": choosing minirocket_oof")


def test_ties_losses_and_borderline_keep_the_simpler_model() -> None:
    for simple_only, complex_only in ((0, 0), (4, 4), (6, 1), (1, 5)):  # (1, 5): p = 0.109
        y, a, b = _preds(100, simple_only, complex_only)
        assert not compare_paired(y, a, b).complex_wins
    y, a, b = _preds(100, 0, 5)  # p = 1/32 < 0.05
    assert compare_paired(y, a, b).complex_wins
    assert not compare_paired(y, a, b, alpha=0.01).complex_wins


def test_mismatched_lengths_fail() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        compare_paired(np.zeros(5, int), np.zeros(5, int), np.zeros(4, int))


def test_clusters_count_one_activity_of_one_person_once() -> None:
    """The demo's second run: 15 of 15 discordant windows were one validation subject's sitting
    (p = 3e-5 over windows); as one group of six it is 1 vs 0 won, p = 0.5: keep 0 degrees."""
    y = np.repeat(np.arange(6), 36)
    a, b = y.copy(), y.copy()
    a[np.flatnonzero(y == 2)[:15]] = 3  # only 0 degrees is wrong, all in class 2
    window_level = compare_paired(y, a, b)
    assert window_level.p_value == pytest.approx(0.5**15) and window_level.complex_wins
    cmp = compare_paired(y, a, b, clusters=np.char.add("sim07|", y.astype(str)))
    assert (cmp.clusters, cmp.clusters_complex, cmp.clusters_simple) == (6, 1, 0)
    assert cmp.p_value == pytest.approx(0.5) and not cmp.complex_wins
    assert cmp.describe("0 degrees", "180 degrees") == (
        "180 degrees 1.000 vs 0 degrees 0.931 on 216 windows, 15 vs 0 discordant in 1 vs 0 of 6 groups, "
        "p=0.5: keeping 0 degrees"
    )
    assert cmp.history("rotation_z")["rotation_z_groups"] == [6.0, 0.0, 1.0]


def test_clusters_won_across_people_and_activities_choose_the_complex_model() -> None:
    subjects = np.repeat(["a", "b"], 60)
    y = np.tile(np.repeat(np.arange(3), 20), 2)
    a, b = y.copy(), y.copy()
    keys = np.char.add(np.char.add(subjects, "|"), y.astype(str))
    for k in np.unique(keys):  # 0 degrees misses 3 windows of every person x activity
        a[np.flatnonzero(keys == k)[:3]] = (y[np.flatnonzero(keys == k)[:3]] + 1) % 3
    cmp = compare_paired(y, a, b, clusters=keys)
    assert (cmp.clusters_complex, cmp.clusters_simple) == (6, 0)
    assert cmp.p_value == pytest.approx(1 / 64) and cmp.complex_wins
    b[np.flatnonzero(keys == "a|0")[:5]] = 2  # one group now goes the other way: 5 vs 1, p = 0.109
    cmp = compare_paired(y, a, b, clusters=keys)
    assert (cmp.clusters_complex, cmp.clusters_simple) == (5, 1) and not cmp.complex_wins
    with pytest.raises(ValueError, match="clusters has 3 keys"):
        compare_paired(y, a, b, clusters=keys[:3])
