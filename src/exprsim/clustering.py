"""The two clusterings the apps need, without importing scikit-learn.

``import sklearn.cluster`` costs about 1.4 s on this project's machines (it pulls in
``scipy.stats``), which every ``exprsim video`` and ``exprsim summarize`` run paid at start-up.
Both algorithms used there are small:

* :func:`agglomerate`: hierarchical clustering cut into exactly ``k`` clusters. scikit-learn's
  ``AgglomerativeClustering`` (without a connectivity graph) builds its tree with SciPy's
  ``linkage`` itself and undoes the last ``k - 1`` merges, i.e. keeps the partition after the
  first ``n - k`` merges in the linkage's order; this does the same with
  ``scipy.cluster.hierarchy`` (0.3 s to import), so the partition is the same, also when
  merge heights tie (tested against scikit-learn on integer grids; SciPy's ``cut_tree``,
  used before, cuts by height and split tied merges differently).
* :func:`dbscan`: DBSCAN (Ester et al., 1996) as scikit-learn runs it: neighbourhoods within
  ``eps`` inclusive of the point itself, core points with at least ``min_samples`` of them,
  clusters grown from core points in index order, a border point labelled by the first
  cluster that reaches it, noise ``-1`` (tested against scikit-learn). Memory beyond the
  input is linear in ``N`` plus one bounded block of distances (:data:`BLOCK_ELEMS`).

:func:`n_distinct` counts the rows that are not copies of one another, relative to the
data's scale (and for the cosine metric, of the rows' directions).
"""

from __future__ import annotations

import numpy as np

LINKAGES = ("ward", "complete", "average", "single")

#: Most float64 distances DBSCAN holds at once (8 MiB); its other memory is linear in ``N``
#: beyond :data:`DENSE_PAIRS`.
BLOCK_ELEMS = 1 << 20
#: Up to this many point pairs (``N^2``; 64 MiB of bool, N = 8,192), DBSCAN keeps every
#: neighbourhood as one bool matrix and grows its clusters from it (as fast as the old
#: index arrays, at an eighth of their memory or less); beyond, it queries them again.
DENSE_PAIRS = 1 << 26


def power_of_two_scale(x: np.ndarray, per_row: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``x`` times a power of two (exact: every distance scales by exactly that power) so
    that its largest ``|value|`` lies in ``[0.5, 1)``, and the exponents ``e`` with
    ``x == scaled * 2**e`` (one per row when ``per_row``, else one for the array, as a
    ``(1,)`` array). All-zero rows (or arrays) stay zero with exponent 0. Far larger or
    smaller values than float64 can square (1e200, 1e-200) come out usable."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.size == 0:
        return x, np.zeros(len(x) if per_row else 1, dtype=np.int64)
    top = np.abs(x).max(axis=1) if per_row else np.abs(x).max(keepdims=True).reshape(1)
    exp = np.frexp(top)[1].astype(np.int64)  # top = m * 2**exp, 0.5 <= m < 1 (0 -> 0)
    return np.ldexp(x, -(exp[:, None] if per_row else exp[0])), exp


def distinct_rows(x: np.ndarray, metric: str = "euclidean", decimals: int = 6) -> np.ndarray:
    """``(N, D)`` -> ``(N, D)`` keys whose equal rows are "the same face": for
    ``metric="cosine"`` the rows' directions (unit rows), otherwise the rows less their
    mean, divided by the largest such row norm, rounded to ``decimals``. Copies of one
    photo get equal keys at any scale (1e-7 or 1e200 as well as unit embeddings); an
    all-zero array is one key."""
    if metric == "cosine":
        scaled, _ = power_of_two_scale(x, per_row=True)
        norms = np.sqrt((scaled * scaled).sum(axis=1, keepdims=True))
    else:
        # centred first: rows far from the origin (an offset of 1e6 on a spread of 0.05)
        # rounded to one key, and a summary of three clusters came out as one
        x = np.asarray(x, dtype=np.float64)
        scaled, _ = power_of_two_scale(x - x.mean(axis=0) if len(x) else x)
        norms = np.sqrt((scaled * scaled).sum(axis=1)).max(initial=0.0, keepdims=True)
    return np.asarray(scaled / np.where(norms > 0, norms, 1.0)).round(decimals)


def n_distinct(x: np.ndarray, decimals: int = 6, metric: str = "euclidean") -> int:
    """Number of distinct rows of ``x`` ``(N, D)``: rows whose :func:`distinct_rows` keys
    differ (copies of one photo give identical embeddings: they count once; differences
    below about ``10**-decimals`` of the data's scale do not count)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return 0
    return len(np.unique(distinct_rows(x, metric, decimals), axis=0))


def agglomerate(
    x: np.ndarray, k: int, linkage: str = "ward", metric: str = "euclidean"
) -> np.ndarray:
    """``(N, D)`` -> ``(N,)`` int64 labels ``0 .. k-1`` of the hierarchical tree cut into
    ``k`` clusters (``linkage`` ``"ward"`` needs ``metric="euclidean"``): the partition
    after the first ``N - k`` merges of SciPy's linkage, as scikit-learn's
    ``AgglomerativeClustering`` cuts it. Clusters are numbered in order of their first
    member (label 0 holds row 0)."""
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
    return first_merges(build(x, method=linkage, metric=metric), n - k)


def first_merges(tree: np.ndarray, m: int) -> np.ndarray:
    """Cluster labels ``(N,)`` of the ``N`` leaves of a SciPy linkage ``tree`` ``(N-1, 4)``
    after its first ``m`` merges (rows), numbered in order of their first member."""
    n = len(tree) + 1
    parent = np.arange(2 * n - 1, dtype=np.int64)
    children = np.asarray(tree[:m, :2], dtype=np.int64)
    parent[children[:, 0]] = parent[children[:, 1]] = n + np.arange(m, dtype=np.int64)
    while True:  # pointer doubling: every leaf ends at the root of its merged subtree
        up = parent[parent]
        if np.array_equal(up, parent):
            break
        parent = up
    _, first, inverse = np.unique(parent[:n], return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int64)
    return rank[inverse.reshape(-1)]


def _near(x: np.ndarray, sq: np.ndarray, rows: np.ndarray, cols: np.ndarray | None,
          eps2: float) -> np.ndarray:  # fmt: skip
    """``(len(rows), len(cols))`` bool: is the squared distance at most ``eps2``?

    The fast ``|a|^2 + |b|^2 - 2 a.b`` decides every pair farther than its rounding from
    ``eps2``; the few within it are decided by ``sum_d (a_d - b_d)^2`` summed in column
    order, so each pair gets the same answer in whatever block it is computed (and
    ``(i, j)`` the same as ``(j, i)``)."""
    a = x[rows]
    b = x if cols is None else x[cols]
    sa = sq[rows]
    sb = sq if cols is None else sq[cols]
    d = a @ b.T
    d *= -2.0
    d += sa[:, None]
    d += sb[None, :]
    near = d <= eps2
    d -= eps2
    np.abs(d, out=d)
    d -= 1e-9 * sb[None, :]  # far above the fast formula's rounding (D * 1e-16 * norms)
    d -= (1e-9 * (sa + eps2))[:, None]
    r, c = np.nonzero(d <= 0.0)
    del d
    step = max(1, BLOCK_ELEMS // max(x.shape[1], 1))
    for s in range(0, len(r), step):
        rr, cc = r[s : s + step], c[s : s + step]
        exact = np.zeros(len(rr))
        for col in range(x.shape[1]):
            diff = a[rr, col] - b[cc, col]
            exact += diff * diff
        near[rr, cc] = exact <= eps2
    return near


def dbscan(x: np.ndarray, eps: float, min_samples: int, chunk: int = 1024) -> np.ndarray:
    """``(N, D)`` -> ``(N,)`` int64 DBSCAN labels (Euclidean; ``-1`` noise), scikit-learn's
    semantics (module docstring): clusters numbered in order of their lowest core point,
    a border point in the lowest-numbered cluster with a core point within ``eps``.

    Memory: distances are computed at most ``chunk`` rows (and :data:`BLOCK_ELEMS`
    entries) at a time; neighbour counts first, then each cluster grown from its core
    points, every point labelled (and queued) once. Up to :data:`DENSE_PAIRS` pairs the
    neighbourhoods are kept as one ``(N, N)`` bool matrix; beyond, the memory is linear in
    ``N``."""
    if not eps > 0 or min_samples < 1:
        raise ValueError("eps must be > 0 and min_samples >= 1")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"x must be a finite (N, D) array, got shape {x.shape}")
    x, exp = power_of_two_scale(x)  # exact: the same neighbours, at any scale
    scaled_eps = float(np.ldexp(float(eps), -int(exp[0])))
    eps2 = min(scaled_eps * scaled_eps, 1e300)  # 1e300: beyond any distance of |x| < 1 rows
    sq = (x * x).sum(axis=1)
    counts = np.empty(n, dtype=np.int64)
    # up to DENSE_PAIRS pairs, the neighbourhoods are kept as one bool matrix (n^2 bytes:
    # 64 MB at 8,192 points) and clusters grow from it; beyond, they are queried again
    # block by block as clusters grow (slower with many small clusters, memory linear)
    dense = np.zeros((n, n), dtype=bool) if n * n <= DENSE_PAIRS else None
    rows = max(1, min(int(chunk), BLOCK_ELEMS // n))
    for a in range(0, n, rows):
        idx = np.arange(a, min(a + rows, n))
        near = _near(x, sq, idx, None, eps2)
        near[np.arange(len(idx)), idx] = True  # a point is its own neighbour
        counts[idx] = near.sum(axis=1)
        if dense is not None:
            dense[idx] = near
    core = counts >= min_samples
    labels = np.full(n, -1, dtype=np.int64)
    label = 0
    for i in np.flatnonzero(core):
        if labels[i] == -1:
            if dense is not None:
                _grow_dense(dense, core, labels, int(i), label)
            else:
                _grow(x, sq, core, labels, int(i), label, int(chunk), eps2)
            label += 1
    return labels


def _grow_dense(near: np.ndarray, core: np.ndarray, labels: np.ndarray, seed: int,
                label: int) -> None:  # fmt: skip
    """:func:`_grow` with every neighbourhood at hand (``near``: ``(N, N)`` bool)."""
    labels[seed] = label
    frontier = np.array([seed], dtype=np.int64)
    step = max(1, BLOCK_ELEMS // len(labels))  # rows of ``near`` copied at once
    while len(frontier):
        reach = np.zeros(len(labels), dtype=bool)
        for s in range(0, len(frontier), step):
            reach |= near[frontier[s : s + step]].any(axis=0)
        new = np.flatnonzero(reach & (labels == -1))
        labels[new] = label
        frontier = new[core[new]]


def _grow(x: np.ndarray, sq: np.ndarray, core: np.ndarray, labels: np.ndarray, seed: int,
          label: int, chunk: int, eps2: float) -> None:  # fmt: skip
    """Give ``label`` to every point density-reachable from core point ``seed`` that has
    no label yet. A point is labelled when it is queued, so it is queued at most once;
    the queued core points' neighbourhoods are queried in blocks, among the points still
    unlabelled."""
    labels[seed] = label
    pending = [np.array([seed], dtype=np.int64)]
    while pending:
        free = np.flatnonzero(labels == -1)
        if len(free) == 0:
            return
        size = max(1, min(chunk, BLOCK_ELEMS // len(free)))
        batch = pending.pop()
        if len(batch) > size:
            pending.append(batch[size:])
            batch = batch[:size]
        new = free[_near(x, sq, batch, free, eps2).any(axis=0)]
        labels[new] = label
        if (grown := new[core[new]]).size:
            pending.append(grown)
