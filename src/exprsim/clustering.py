"""The two clusterings the apps need, without importing scikit-learn.

``import sklearn.cluster`` costs about 1.4 s on this project's machines (it pulls in
``scipy.stats``), which every ``exprsim video`` and ``exprsim summarize`` run paid at start-up.
Both algorithms used there are small:

* :func:`agglomerate`: hierarchical clustering cut into exactly ``k`` clusters. scikit-learn's
  ``AgglomerativeClustering`` (without a connectivity graph) builds its tree with SciPy's
  ``linkage`` itself and cuts the last ``k - 1`` merges; this does the same with
  ``scipy.cluster.hierarchy`` (0.3 s to import), so the partition is the same (tested
  against scikit-learn).
* :func:`dbscan`: DBSCAN (Ester et al., 1996) as scikit-learn runs it: neighbourhoods within
  ``eps`` inclusive of the point itself, core points with at least ``min_samples`` of them,
  clusters grown from core points in index order, a border point labelled by the first
  cluster that reaches it, noise ``-1`` (tested against scikit-learn).
"""

from __future__ import annotations

import numpy as np

from exprsim.distances import pairwise_squared_l2

LINKAGES = ("ward", "complete", "average", "single")


def n_distinct(x: np.ndarray, decimals: int = 6) -> int:
    """Number of distinct rows of ``x`` ``(N, D)`` after rounding to ``decimals`` (copies of
    one photo give identical embeddings: they count once)."""
    return len(np.unique(np.asarray(x).round(decimals), axis=0))


def agglomerate(
    x: np.ndarray, k: int, linkage: str = "ward", metric: str = "euclidean"
) -> np.ndarray:
    """``(N, D)`` -> ``(N,)`` int64 labels ``0 .. k-1`` of the hierarchical tree cut into
    ``k`` clusters (``linkage`` ``"ward"`` needs ``metric="euclidean"``)."""
    from scipy.cluster.hierarchy import cut_tree
    from scipy.cluster.hierarchy import linkage as build

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    if linkage == "ward" and metric != "euclidean":
        raise ValueError("ward linkage needs the euclidean metric")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    tree = build(x, method=linkage, metric=metric)
    return np.asarray(cut_tree(tree, n_clusters=k), dtype=np.int64).reshape(n)


def dbscan(x: np.ndarray, eps: float, min_samples: int, chunk: int = 1024) -> np.ndarray:
    """``(N, D)`` -> ``(N,)`` int64 DBSCAN labels (Euclidean; ``-1`` noise), scikit-learn's
    semantics (module docstring). Distances are computed ``chunk`` rows at a time, so memory
    grows with the neighbourhoods, not with ``N^2``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if eps <= 0 or min_samples < 1:
        raise ValueError("eps must be > 0 and min_samples >= 1")
    hoods: list[np.ndarray] = []
    for a in range(0, n, chunk):
        for r, row in enumerate(pairwise_squared_l2(x[a : a + chunk], x)):
            near = row <= eps * eps
            near[a + r] = True  # a point is its own neighbour, whatever the rounding
            hoods.append(np.flatnonzero(near))
    core = np.array([len(h) >= min_samples for h in hoods], dtype=bool)
    labels = np.full(n, -1, dtype=np.int64)
    label = 0
    for i in range(n):
        if labels[i] != -1 or not core[i]:
            continue
        stack = [i]
        while stack:
            j = stack.pop()
            if labels[j] != -1:
                continue
            labels[j] = label
            if core[j]:
                stack.extend(int(v) for v in hoods[j] if labels[v] == -1)
        label += 1
    return labels
