"""Twelfth-round audit of exprsim.clustering: DBSCAN in memory linear in N (it kept every
neighbourhood and a stack of up to N^2 points), the agglomerative cut as scikit-learn
makes it when merge heights tie (SciPy's cut_tree split tied merges otherwise), and the
"distinct faces" count at any scale."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.cluster.hierarchy import linkage as scipy_linkage

from exprsim.clustering import agglomerate, dbscan, n_distinct

METHODS = [
    ("ward", "euclidean"),
    ("complete", "euclidean"),
    ("average", "euclidean"),
    ("single", "euclidean"),
    ("complete", "cosine"),
    ("average", "cosine"),
]


def _naive_dbscan(x: np.ndarray, eps: float, min_samples: int) -> list[int]:
    """DBSCAN in plain loops: neighbours within eps (self included), clusters grown from
    core points in index order, a border point kept by the first cluster reaching it."""
    n = len(x)
    hood = []
    for i in range(n):
        row = []
        for j in range(n):
            d2 = sum((float(a) - float(b)) ** 2 for a, b in zip(x[i], x[j], strict=True))
            if i == j or d2 <= eps * eps:
                row.append(j)
        hood.append(row)
    core = [len(h) >= min_samples for h in hood]
    labels = [-1] * n
    cluster = 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i] = cluster
        todo = [i]
        while todo:
            j = todo.pop()
            for v in hood[j]:
                if labels[v] == -1:
                    labels[v] = cluster
                    if core[v]:
                        todo.append(v)
        cluster += 1
    return labels


def _cases(seed: int) -> list[tuple[np.ndarray, float, int]]:
    """Random points, and integer grids whose distances tie at eps exactly."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(12):
        n, d = int(rng.integers(1, 45)), int(rng.integers(1, 4))
        if t % 2:
            x = rng.integers(0, 4, size=(n, d)).astype(np.float64)
            eps = float(rng.choice([1.0, 1.5, 2.0, np.sqrt(2.0)]))
        else:
            x, eps = rng.normal(size=(n, d)), float(rng.uniform(0.3, 1.5))
        out.append((x, eps, int(rng.integers(1, 6))))
    return out


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_dbscan_equals_a_naive_reference(
    seed: int, dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guard (passes on the old code too): the rewrite keeps the labels and their
    numbering, whatever the block size, with the neighbourhoods kept or queried again."""
    import exprsim.clustering as clustering_mod

    if not dense:
        monkeypatch.setattr(clustering_mod, "DENSE_PAIRS", 0, raising=False)
    for x, eps, m in _cases(seed):
        ref = _naive_dbscan(x, eps, m)
        for chunk in (1, 7, 1024):
            assert dbscan(x, eps, m, chunk=chunk).tolist() == ref, (x.tolist(), eps, m, chunk)


@pytest.mark.parametrize("seed", range(5))
def test_dbscan_equals_sklearn(seed: int) -> None:
    """Guard: the same labels, numbered the same, as scikit-learn's DBSCAN."""
    cluster = pytest.importorskip("sklearn.cluster")
    for x, eps, m in _cases(100 + seed):
        ref = cluster.DBSCAN(eps=eps, min_samples=m).fit_predict(x)
        np.testing.assert_array_equal(dbscan(x, eps, m), ref)


@pytest.mark.parametrize("dense", [True, False])
def test_dbscan_memory_is_linear_in_n(dense: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """4,000 points of one person: the old code kept 4000^2 neighbour indices (128 MB) and
    a stack of millions of Python ints; now one bounded block of distances (and, up to
    DENSE_PAIRS pairs, one bool per pair: 16 MB)."""
    import exprsim.clustering as clustering_mod

    if not dense:
        monkeypatch.setattr(clustering_mod, "DENSE_PAIRS", 0, raising=False)
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=16) + rng.normal(size=(n, 16)) * 0.01  # all within eps of each other
    tracemalloc.start()
    try:
        labels = dbscan(x, eps=0.5, min_samples=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert labels.tolist() == [0] * n
    assert peak < n * n * 8 / 4, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("power", [-700, -60, 60, 700])
def test_dbscan_does_not_depend_on_the_scale(power: int) -> None:
    """x * 2**p with eps * 2**p: the same neighbours exactly (squares of 1e-200 underflowed
    to 0, every point a neighbour; those of 1e200 overflowed, every point noise); 2**+-60
    worked before (guards)."""
    for x, eps, m in _cases(7):
        ref = dbscan(x, eps, m)
        got = dbscan(np.ldexp(x, power), float(np.ldexp(eps, power)), m)
        np.testing.assert_array_equal(got, ref)


def _naive_cut(x: np.ndarray, k: int, method: str, metric: str) -> list[int]:
    """Union-find over the first n - k rows of SciPy's linkage (plain loops), clusters
    numbered in order of their first member."""
    tree = scipy_linkage(x, method=method, metric=metric)
    n = len(x)
    parent = list(range(2 * n))
    for i, row in enumerate(tree[: n - k]):
        parent[int(row[0])] = parent[int(row[1])] = n + i

    def root(v: int) -> int:
        while parent[v] != v:
            v = parent[v]
        return v

    names: dict[int, int] = {}
    return [names.setdefault(root(i), len(names)) for i in range(n)]


def _grids(seed: int, count: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        n, d = int(rng.integers(3, 25)), int(rng.integers(1, 4))
        x = rng.integers(0, 3, size=(n, d)).astype(np.float64)
        if x.any(axis=1).all():  # the cosine metric needs no all-zero row
            out.append((x, int(rng.integers(1, n + 1))))
    return out


@pytest.mark.parametrize(("method", "metric"), METHODS)
def test_agglomerate_keeps_the_first_n_minus_k_merges(method: str, metric: str) -> None:
    """Tie-heavy integer grids: the partition (and numbering) of the first n - k merges.
    SciPy's cut_tree, used before, cut tied merges elsewhere (about 1 case in 10)."""
    for x, k in _grids(1, 60):
        got = agglomerate(x, k, linkage=method, metric=metric)
        assert got.tolist() == _naive_cut(x, k, method, metric), (x.tolist(), k)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(u), int(v)) for u, v in zip(a, b, strict=True)}
    return len(pairs) == len({u for u, _ in pairs}) == len({v for _, v in pairs})


@pytest.mark.parametrize(("method", "metric"), METHODS)
def test_agglomerate_gives_sklearns_partition_when_heights_tie(method: str, metric: str) -> None:
    """As the module docstring says: scikit-learn's partition, also on tied merges."""
    cluster = pytest.importorskip("sklearn.cluster")
    for x, k in _grids(2, 60):
        ref = cluster.AgglomerativeClustering(n_clusters=k, linkage=method, metric=metric)
        got = agglomerate(x, k, linkage=method, metric=metric)
        assert _same_partition(got, ref.fit_predict(x)), (x.tolist(), k)


def test_agglomerate_example_of_the_audit() -> None:
    """degen.md finding 8: single linkage, 17 points, k = 9 (ARI 0.33 against sklearn)."""
    x = np.array(
        [[2, 2, 2], [2, 0, 0], [1, 1, 2], [2, 1, 1], [1, 2, 0], [1, 2, 1], [2, 2, 2],
         [1, 2, 0], [1, 0, 0], [2, 2, 2], [0, 2, 2], [0, 0, 2], [2, 1, 0], [0, 1, 2],
         [0, 0, 2], [2, 0, 1], [1, 1, 0]], dtype=np.float64,
    )  # fmt: skip
    assert agglomerate(x, 9, "single").tolist() == _naive_cut(x, 9, "single", "euclidean")


def _three_groups() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 16)), 4, axis=0) + rng.normal(size=(12, 16)) * 0.05
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-7, 1.0, 1e7, 1e200, 1e300])
def test_n_distinct_does_not_depend_on_the_scale(scale: float) -> None:
    """12 faces (3 groups of 4): 12 distinct at any scale (1e-7 gave 1, 1e-200 gave 1);
    4 copies of each face count once."""
    x = _three_groups() * scale
    assert n_distinct(x) == 12
    assert n_distinct(x, metric="cosine") == 12
    assert n_distinct(np.repeat(x, 4, axis=0)) == 12
    assert n_distinct(np.repeat(x, 4, axis=0), metric="cosine") == 12


def test_n_distinct_under_cosine_counts_directions() -> None:
    """A face and the same face times 3 (or 1e-9) are one face for the cosine metric,
    two for the euclidean one; tiny differences relative to the data still merge."""
    x = _three_groups()
    scaled = np.vstack([x, x * 3.0, x * 1e-9])
    assert n_distinct(scaled, metric="cosine") == 12
    assert n_distinct(scaled) == 25  # x * 1e-9: one point at the origin beside the others
    assert n_distinct(x + 1e-9) == 12 and n_distinct(x * 1e-7 + 1e-16) == 12
    assert n_distinct(np.zeros((5, 3))) == 1 and n_distinct(np.zeros((0, 3))) == 0
