"""Round 27 (docs/robustness.md): the distance matrix of many faces."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from exprsim.apps import compare
from exprsim.errors import ExprsimError


def test_the_matrix_is_built_in_its_own_type_without_a_float64_copy() -> None:
    x = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    tracemalloc.start()
    try:
        d = compare.distance_matrix(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.dtype == np.float32 and d.shape == (3000, 3000)
    result = d.nbytes  # 36 MB
    assert peak < result + 2.2 * compare.DIFFERENCE_BLOCK * 8  # was ~5 times the result
    i, j = 17, 2950
    want = np.sqrt(((x[i].astype(np.float64) - x[j]) ** 2).sum())
    assert d[i, j] == pytest.approx(want, rel=1e-6) and d[i, i] == 0


def test_a_matrix_larger_than_the_memory_is_refused_before_it_is_made(monkeypatch) -> None:
    real = compare.os.sysconf

    def small(name):  # a machine of 64 MB
        return (
            4096
            if name == "SC_PAGE_SIZE"
            else (64 << 20) // 4096
            if name == "SC_PHYS_PAGES"
            else real(name)
        )

    monkeypatch.setattr(compare.os, "sysconf", small)
    x = np.zeros((5000, 16), np.float32)  # 100 MB of float32 distances
    with pytest.raises(ExprsimError, match=r"distances between 5,000 faces would take 0\.1 GiB"):
        compare.distance_matrix(x)  # was: allocated, then killed once written (at 50,000)
    assert compare.distance_matrix(x[:100]).shape == (100, 100)
