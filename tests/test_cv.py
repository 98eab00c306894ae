"""Leave-subjects-out cross-validation folds (har.training.cv)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from har.errors import TrainingError
from har.training.cv import make_folds


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


def test_old_model_config_without_conv_keys_loads_as_no_conv() -> None:
    """Model directories written before the conv front end must rebuild the same (conv-less) graph."""
    from har.config import ModelConfig, TrainConfig, config_from_dict, config_to_dict

    old = config_from_dict(ModelConfig, {"lstm_units": [64], "dropout": 0.2, "dense_units": 0})
    assert old.conv_filters == 0 and old.conv_stride == 1
    assert ModelConfig().conv_filters > 0  # today's default has the front end
    t = TrainConfig()
    assert config_from_dict(TrainConfig, config_to_dict(t)) == t
