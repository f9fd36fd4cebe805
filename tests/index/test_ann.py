"""ANN backends against a naive loop; persistence; backend choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exprsim.index import ann


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_knn(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dist, idx = [], []
    for v in q:
        d = [float(np.sqrt(((v.astype(np.float64) - r) ** 2).sum())) for r in x]
        order = sorted(range(len(d)), key=lambda i: (d[i], i))[:k]
        idx.append(order)
        dist.append([d[i] for i in order])
    return np.array(dist), np.array(idx)


@pytest.mark.parametrize("chunk", [7, 1000])
def test_exact_matches_naive(chunk: int) -> None:
    rng = np.random.default_rng(0)
    x, q = unit(rng, 300), unit(rng, 5)
    ids = np.arange(300, dtype=np.int64) * 10 + 3
    dist, got = ann.ExactIndex(x, ids, chunk=chunk).search(q, 8)
    ref_d, ref_i = naive_knn(x, q, 8)
    np.testing.assert_array_equal(got, ids[ref_i])
    np.testing.assert_allclose(dist, ref_d, atol=1e-5)


def test_padding_when_fewer_than_k() -> None:
    x = unit(np.random.default_rng(1), 3)
    dist, idx = ann.ExactIndex(x).search(x[0], 5)
    assert idx[0, 3:].tolist() == [-1, -1] and np.isinf(dist[0, 3:]).all()
    dist, idx = ann.ExactIndex(np.zeros((0, 16), np.float32)).search(x[0], 2)
    assert idx.tolist() == [[-1, -1]]


@pytest.mark.parametrize(("backend", "kw"), [("faiss-hnsw", {}), ("faiss-ivf", {"nprobe": 64})])
def test_faiss_recall_and_persistence(backend: str, kw: dict, tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    x, q = unit(rng, 5000), unit(rng, 50)
    ids = np.arange(5000, dtype=np.int64) + 100
    index = ann.build_index(x, ids, backend=backend, **kw)
    assert index.name == backend and len(index) == 5000
    _, exact = ann.ExactIndex(x, ids).search(q, 10)
    dist, got = index.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact, strict=True)])
    assert recall >= 0.95
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    path = tmp_path / "x.ann"
    index.save(path)
    again = ann.load_index(path)
    assert again.name == backend
    np.testing.assert_array_equal(again.search(q, 10)[1], got)


def test_exact_save_load(tmp_path: Path) -> None:
    x = unit(np.random.default_rng(3), 50)
    ann.ExactIndex(x, np.arange(50) + 7).save(tmp_path / "e.ann")
    again = ann.load_index(tmp_path / "e.ann")
    assert again.name == "exact" and again.search(x[4], 1)[1][0, 0] == 11


def test_resolve_backend() -> None:
    assert ann.resolve_backend("auto", 10) == "exact"
    big = ann.resolve_backend("auto", ann.EXACT_MAX)
    assert big == ("faiss-ivf" if ann.faiss_available() else "exact")
    assert ann.resolve_backend("faiss-ivf", 10) == "faiss-ivf"
    with pytest.raises(Exception, match="unknown ANN backend"):
        ann.resolve_backend("annoy", 10)


def test_stamp_round_trip(tmp_path: Path) -> None:
    s = ann.AnnStamp(3, "m@1", "exact", 9)
    s.save(tmp_path / "s.json")
    assert ann.AnnStamp.load(tmp_path / "s.json") == s
    (tmp_path / "bad.json").write_text("{")
    assert ann.AnnStamp.load(tmp_path / "bad.json") is None
