"""Class-balanced batch sampler."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.data.sampler import BalancedClassSampler
from exprsim.errors import DataError


def _labels() -> np.ndarray:
    # unbalanced: class 0 has 50 rows, class 2 has 20, class 5 only 3
    lab = np.array([0] * 50 + [2] * 20 + [5] * 3)
    return np.random.default_rng(0).permutation(lab)


def test_every_batch_is_balanced() -> None:
    labels = _labels()
    s = BalancedClassSampler(labels, per_class=4, seed=1)
    assert s.batch_size == 12
    assert len(s) == len(labels) // 12
    batches = list(s.epoch(0))
    assert len(batches) == len(s)
    for b in batches:
        assert b.dtype == np.int64 and b.shape == (12,)
        assert [int(v) for v in labels[b]] == [0] * 4 + [2] * 4 + [5] * 4


def test_no_repeat_before_a_class_is_exhausted() -> None:
    labels = _labels()
    s = BalancedClassSampler(labels, per_class=5, batches_per_epoch=10, seed=0)
    drawn = np.concatenate(list(s.epoch(0)))
    big = drawn[labels[drawn] == 0]
    assert len(np.unique(big[:50])) == 50  # the 50 class-0 rows all come before a repeat
    small = drawn[labels[drawn] == 5]
    assert len(small) == 50 and set(small.tolist()) == set(np.flatnonzero(labels == 5).tolist())


def test_deterministic_per_epoch() -> None:
    labels = _labels()
    a = BalancedClassSampler(labels, per_class=3, seed=7)
    b = BalancedClassSampler(labels, per_class=3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a.epoch(2), b.epoch(2), strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.epoch(2), a.epoch(3), strict=True))


def test_bad_arguments() -> None:
    with pytest.raises(DataError):
        BalancedClassSampler(np.array([]), per_class=2)
    with pytest.raises(DataError):
        BalancedClassSampler(np.array([0, 1]), per_class=0)
