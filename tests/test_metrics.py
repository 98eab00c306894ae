"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from har.scoring.metrics import accuracy, compute_metrics, confusion_matrix, format_report, group_accuracy, macro_f1

Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 2, 2, 0, 2])


def test_confusion_and_accuracy() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(cm, [[2, 1, 1], [0, 2, 0], [1, 0, 3]])
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.7)
    assert accuracy(np.array([]), np.array([])) == 0.0


def test_per_class_and_macro_f1() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"])
    # a: P 2/3, R 2/4, F1 = 2*(2/3*1/2)/(2/3+1/2) = 4/7
    # b: P 2/3, R 1,   F1 = 0.8
    # c: P 3/4, R 3/4, F1 = 0.75
    assert m["per_class"]["a"] == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7, "support": 4})
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4})
    assert m["macro_f1"] == pytest.approx((4 / 7 + 0.8 + 0.75) / 3)
    assert m["n"] == 10 and m["accuracy"] == pytest.approx(0.7)
    assert m["confusion"] == [[2, 1, 1], [0, 2, 0], [1, 0, 3]]


def test_absent_class_does_not_count_in_macro_f1() -> None:
    yt = np.array([0, 0, 1])
    assert macro_f1(yt, yt, 4) == 1.0
    m = compute_metrics(yt, yt, ["a", "b", "c", "d"])
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_report_text() -> None:
    m = compute_metrics(Y_TRUE, Y_PRED, ["walking", "b", "c"])
    per = group_accuracy(Y_TRUE, Y_PRED, np.array(["s1"] * 5 + ["s2"] * 5))
    assert per == {"s1": {"accuracy": 0.6, "n": 5}, "s2": {"accuracy": 0.8, "n": 5}}
    text = format_report(m, title="T", per_group=per)
    assert "accuracy:  0.7000" in text and "walking" in text and "s2" in text
    rows = [ln for ln in text.splitlines() if ln.startswith(("walking ", "b ", "c "))]
    assert len({len(r) for r in rows[:3]}) == 1  # aligned per-class rows
    assert "true \\ pred" in text
