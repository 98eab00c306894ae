"""Leave-subjects-out cross-validation folds (har.cv)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from har.cv import make_folds
from har.errors import TrainingError


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 40), k=st.integers(2, 10), seed=st.integers(0, 1000))
def test_folds_disjoint_and_cover_every_subject_once(n: int, k: int, seed: int) -> None:
    subjects = [f"s{i:02d}" for i in range(n)]
    if n < k:
        with pytest.raises(TrainingError, match="at least"):
            make_folds(subjects, k, seed)
        return
    folds = make_folds(subjects + subjects[:3], k, seed)  # duplicates count once
    assert len(folds) == k
    flat = [s for f in folds for s in f]
    assert sorted(flat) == sorted(subjects) and len(flat) == len(set(flat))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert folds == make_folds(list(reversed(subjects)), k, seed)  # seeded, order independent


def test_too_few_folds() -> None:
    with pytest.raises(TrainingError):
        make_folds(["a", "b"], 1, 0)
