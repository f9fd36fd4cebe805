"""The one seeded hold-out split shared by training and the applications."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.data.split import holdout_split


@pytest.mark.parametrize(("n", "fraction"), [(0, 0.05), (1, 0.5), (10, 0.3), (1001, 0.05)])
def test_partition_sizes_and_order(n: int, fraction: float) -> None:
    tr, va = holdout_split(n, fraction, seed=3)
    assert len(va) == round(fraction * n) and len(tr) == n - len(va)
    assert sorted([*tr.tolist(), *va.tolist()]) == list(range(n))  # disjoint, covers all
    assert (np.diff(tr) > 0).all() and (np.diff(va) > 0).all()


def test_seeded_and_pinned() -> None:
    """Same seed, same split; the split is numpy's seeded permutation, first m held out.

    The default model's validation faces (and the faces kNN's K and the tag threshold are
    chosen on) depend on this staying exactly as it is.
    """
    a, b = holdout_split(500, 0.1, 0), holdout_split(500, 0.1, 0)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(holdout_split(500, 0.1, 1)[1], a[1])
    perm = np.random.default_rng(0).permutation(500)
    assert a[1].tolist() == sorted(perm[:50].tolist())
