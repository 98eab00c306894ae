"""Event-level metrics (har.scoring.events) on hand-made sequences; expected values computed by hand."""

from __future__ import annotations

import pytest

from har.scoring.events import Segment, edit_score, event_metrics, iou, levenshtein, segment_f1, segments


def _unit_spans(n: int) -> list[tuple[float, float]]:
    return [(float(i), float(i + 1)) for i in range(n)]


def test_segments_runs_and_unlabeled() -> None:
    labs = ["a", "a", "b", "", "", "b", "a"]
    spans = _unit_spans(7)
    assert segments(labs, spans) == [
        Segment("a", 0.0, 2.0, 2), Segment("b", 2.0, 3.0, 1), Segment("b", 5.0, 6.0, 1), Segment("a", 6.0, 7.0, 1)]
    assert segments([], []) == []
    with pytest.raises(ValueError):
        segments(["a"], [])


def test_iou() -> None:
    assert iou(Segment("a", 0, 3, 3), Segment("a", 0, 5, 5)) == pytest.approx(0.6)
    assert iou(Segment("a", 0, 2, 2), Segment("a", 1, 3, 2)) == pytest.approx(1 / 3)
    assert iou(Segment("a", 0, 1, 1), Segment("a", 1, 2, 1)) == 0.0  # touching is not overlapping


def test_levenshtein_and_edit_score() -> None:
    assert levenshtein(list("kitten"), list("sitting")) == 3
    assert levenshtein([], ["a", "b"]) == 2
    assert levenshtein(["a", "b"], ["a", "b"]) == 0
    # Consecutive repeats collapse: a a b b -> a b; a b a b vs a b: 2 deletions / 4.
    assert edit_score(["a", "a", "b", "b"], ["a", "b"]) == 1.0
    assert edit_score(["a", "b", "a", "b"], ["a", "b"]) == pytest.approx(0.5)
    assert edit_score([], []) == 1.0


def test_flicker_inside_an_event() -> None:
    # true: A[0,5] B[5,10]; pred: A[0,3] B[3,4] A[4,5] B[5,10]
    true = list("AAAAABBBBB")
    pred = list("AAABABBBBB")
    m = event_metrics(pred, true, _unit_spans(10))
    # A[0,3] vs A[0,5]: IoU 0.6 -> TP; B[3,4] vs B[5,10]: disjoint -> FP; A[4,5]: A already matched
    # (and IoU 0.2) -> FP; B[5,10]: IoU 1 -> TP.  P = 2/4, R = 2/2, F1 = 2/3.
    assert m["segment_precision"] == pytest.approx(0.5) and m["segment_recall"] == 1.0
    assert m["segment_f1"] == pytest.approx(2 / 3)
    # A B A B vs A B: distance 2, edit score 1 - 2/4.
    assert m["edit_distance"] == 2 and m["edit_score"] == pytest.approx(0.5)
    assert (m["pred_segments"], m["true_segments"], m["pred_changes"], m["true_changes"]) == (4, 2, 3, 1)


def test_iou_threshold_is_inclusive_and_matches_once() -> None:
    # true A[0,4]; pred A[0,2] (IoU 0.5 -> TP), B[2,3] (FP), A[3,4] (IoU 0.25, A used -> FP)
    f = segment_f1(segments(list("AABA"), _unit_spans(4)), segments(list("AAAA"), _unit_spans(4)))
    assert (f["tp"], f["fp"], f["fn"]) == (1, 2, 0)
    assert f["precision"] == pytest.approx(1 / 3) and f["recall"] == 1.0 and f["f1"] == pytest.approx(0.5)
    assert segment_f1(segments(list("AABA"), _unit_spans(4)), segments(list("AAAA"), _unit_spans(4)),
                      threshold=0.6)["tp"] == 0


def test_wrong_label_and_unlabeled_windows_are_left_out() -> None:
    # Window 2 is unlabeled in the truth: dropped from both. Then pred A C B B on spans
    # (0,1) (1,2) (3,4) (4,5), true A A B B: true A[0,2] B[3,5]; pred A[0,1] (IoU 0.5, TP),
    # C[1,2] (FP), B[3,5] (TP). P = 2/3, R = 1, F1 = 0.8. Edit: A C B vs A B = 1 -> 1 - 1/3.
    true = ["A", "A", "", "B", "B"]
    pred = ["A", "C", "C", "B", "B"]
    m = event_metrics(pred, true, _unit_spans(5))
    assert m["segment_f1"] == pytest.approx(0.8)
    assert m["segment_precision"] == pytest.approx(2 / 3) and m["segment_recall"] == 1.0
    assert m["edit_score"] == pytest.approx(2 / 3) and m["edit_distance"] == 1
    assert (m["pred_changes"], m["true_changes"]) == (2, 1)


def test_perfect_and_empty() -> None:
    m = event_metrics(list("aab"), list("aab"), _unit_spans(3))
    assert m["segment_f1"] == 1.0 and m["edit_score"] == 1.0 and m["pred_changes"] == m["true_changes"] == 1
    m = event_metrics(["a"], [""], _unit_spans(1))  # nothing labelled: nothing to score
    assert m["true_segments"] == 0 and m["segment_f1"] == 1.0 and m["edit_score"] == 1.0
    with pytest.raises(ValueError):
        event_metrics(["a"], ["a", "b"], _unit_spans(2))


def test_levenshtein_matches_the_textbook_programme() -> None:
    import random

    def textbook(a: list[str], b: list[str]) -> int:
        prev = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            cur = [i] + [0] * len(b)
            for j, y in enumerate(b, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
            prev = cur
        return prev[-1]

    r = random.Random(0)
    for _ in range(500):
        a = [r.choice("abcd") for _ in range(r.randint(0, 12))]
        b = [r.choice("abce") for _ in range(r.randint(0, 12))]
        assert levenshtein(a, b) == textbook(a, b), (a, b)
