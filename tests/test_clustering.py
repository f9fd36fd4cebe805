"""exprsim.clustering against scikit-learn (the implementations the apps used before)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.clustering import agglomerate, dbscan


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the names of the groups (-1 must stay -1)."""
    if not np.array_equal(a < 0, b < 0):
        return False
    pairs = {(int(u), int(v)) for u, v in zip(a, b, strict=True)}
    return len(pairs) == len({u for u, _ in pairs}) == len({v for _, v in pairs})


def _blobs(seed: int, n: int = 120, d: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d)) * 3
    return centres[rng.integers(0, 5, n)] + rng.normal(size=(n, d))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("linkage", "metric"), [("ward", "euclidean"), ("complete", "cosine"), ("average", "cosine")]
)
def test_agglomerate_gives_sklearns_partition(seed, linkage, metric):
    from sklearn.cluster import AgglomerativeClustering

    x = _blobs(seed)
    for k in (1, 2, 7, 30):
        ref = AgglomerativeClustering(n_clusters=k, linkage=linkage, metric=metric).fit_predict(x)
        got = agglomerate(x, k, linkage=linkage, metric=metric)
        assert sorted(set(got.tolist())) == list(range(k))
        assert _same_partition(got, ref), (k, linkage)


def test_agglomerate_checks_its_arguments():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="k must be"):
        agglomerate(x, 4)
    with pytest.raises(ValueError, match="euclidean"):
        agglomerate(x, 2, metric="cosine")
    with pytest.raises(ValueError, match="linkage"):
        agglomerate(x, 2, linkage="centroid")
    assert agglomerate(np.ones((1, 4)), 1).tolist() == [0]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("eps", "min_samples"), [(2.0, 3), (3.5, 5), (5.0, 1), (1.0, 2)])
def test_dbscan_gives_sklearns_labels(seed, eps, min_samples):
    from sklearn.cluster import DBSCAN

    x = _blobs(seed, n=150, d=8)
    ref = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(x)
    got = dbscan(x, eps=eps, min_samples=min_samples, chunk=37)  # chunks of odd size
    np.testing.assert_array_equal(got, ref)  # same names too: same visiting order


def test_dbscan_by_hand():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [10.5], [30.0]])
    # eps 1, min 2: 0-1-2 chain, 10-10.5 pair, 30 alone
    assert dbscan(x, eps=1.0, min_samples=2).tolist() == [0, 0, 0, 1, 1, -1]
    # min 3: only 1.0 is core (0, 1, 2 within 1); it pulls in its border points
    assert dbscan(x, eps=1.0, min_samples=3).tolist() == [0, 0, 0, -1, -1, -1]
    with pytest.raises(ValueError):
        dbscan(x, eps=0.0, min_samples=2)


def test_n_distinct_counts_rows_once() -> None:
    from exprsim.clustering import n_distinct

    x = np.repeat(np.eye(3, 16), [5, 1, 2], axis=0)
    assert n_distinct(x) == 3
    assert n_distinct(x + 1e-9) == 3  # below the rounding: the same face
    assert n_distinct(np.vstack([x, x[:1] + 1e-3])) == 4
