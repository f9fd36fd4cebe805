"""Thirteenth robustness round: many copies of one vector no longer trap HNSW searches."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from exprsim.index.ann import FaissIndex, build_faiss_hnsw


def _data(n_same: int, n_other: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    other = rng.normal(size=(n_other, 16)).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    one = rng.normal(size=(1, 16)).astype(np.float32)
    return np.repeat(one / np.linalg.norm(one), n_same, axis=0), other


def _misses(index: FaissIndex, other: np.ndarray, other_ids: np.ndarray) -> int:
    _, ids = index.search(other, 1)
    return int((ids[:, 0] != other_ids).sum())


def test_copies_of_one_vector_leave_every_other_vector_findable():
    """Audit: with 1,000 identical vectors in the graph, 50 of 200 other vectors were not
    their own nearest (3,000: 94 of 200)."""
    same, other = _data(1000)
    x = np.concatenate([same, other])
    ids = np.arange(len(x), dtype=np.int64) + 10
    index = build_faiss_hnsw(x, ids)
    assert len(index) == len(x) and index.index.ntotal == 201
    assert _misses(index, other, ids[1000:]) == 0


def test_copies_added_later_stay_beside_the_graph_and_come_back_in_order(tmp_path):
    same, other = _data(600)
    index = build_faiss_hnsw(other, np.arange(200, dtype=np.int64))
    index.add(same, np.arange(1000, 1600, dtype=np.int64))
    assert len(index) == 800 and index.index.ntotal == 201
    assert _misses(index, other, np.arange(200)) == 0
    dist, ids = index.search(same[:1], 5)
    np.testing.assert_array_equal(ids[0], [1000, 1001, 1002, 1003, 1004])
    np.testing.assert_allclose(dist[0], 0.0, atol=1e-6)
    path = tmp_path / "c.npz"
    index.save(path)
    back = FaissIndex.load(path)
    assert len(back) == 800
    for q in (same[:1], other[:7]):
        for k in (1, 3, 700):
            np.testing.assert_array_equal(back.search(q, k)[1], index.search(q, k)[1])


def test_search_with_copies_matches_a_brute_force_ranking():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 16)).astype(np.float32)
    x = np.concatenate([base, base[:5], base[:5], base[10:12]])  # copies of a few
    ids = np.arange(len(x), dtype=np.int64)
    index = build_faiss_hnsw(x, ids)
    q = rng.normal(size=(4, 16)).astype(np.float32)
    dist, got = index.search(q, 20)
    for r in range(len(q)):
        want = np.sqrt(((x - q[r]) ** 2).sum(axis=1))  # a naive loop's distances
        np.testing.assert_allclose(dist[r], np.sort(want)[:20], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(want[got[r]], dist[r], rtol=1e-5, atol=1e-5)
        assert len(set(got[r].tolist())) == 20
