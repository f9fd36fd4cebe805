"""exprsim.data.twins against a naive loop."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.data.twins import near_twin_similarity


def test_near_twin_similarity_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 6, 6)).astype(np.uint8)
    query = rng.integers(0, 256, (7, 6, 6)).astype(np.uint8)
    query[3] = np.clip(base[17].astype(int) + 9, 0, 255)  # a brighter twin
    got = near_twin_similarity(query, base, chunk=3)
    for qi, q in enumerate(query):
        best = -1.0
        for b in base:
            u = q.astype(float).ravel() - q.mean()
            v = b.astype(float).ravel() - b.mean()
            best = max(best, float(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
        assert got[qi] == pytest.approx(best, abs=1e-4)
    assert got[3] > 0.99 and np.delete(got, 3).max() < 0.9


def test_near_twin_similarity_needs_a_base():
    with pytest.raises(ValueError, match="at least one"):
        near_twin_similarity(np.zeros((2, 4, 4)), np.zeros((0, 4, 4)))
