"""Evaluation metrics for expression embeddings (numpy + scikit-learn; no torch).

* :func:`triplet_accuracy` — FECNet's triplet prediction accuracy, overall and per type.
* kNN classification — :func:`knn_search`, :func:`knn_proba`, :func:`knn_predict`,
  :func:`knn_accuracy`; :func:`classification_scores` / :func:`macro_f1`; one-vs-rest
  AUC-ROC from kNN class probabilities (:func:`knn_auc`, K=200 as FECNet).
* clustering — :func:`kmeans_nmi`, :func:`kmeans_scores` (NMI and pair-counting F1 of k-means
  clusters, k = number of classes, as the SGM paper), :func:`nmi`, :func:`clustering_f1`.
* retrieval — :func:`recall_at_k` and :func:`acc_at_k` (SGM paper: a query scores 1 when at
  least one of its K nearest neighbours, itself excluded, has its class; Acc@K is the share of
  the K neighbours with its class), both from :func:`retrieval_at_k`.

Distances come from :mod:`exprsim.distances` (the same formulas as training); all
all-pairs computations run in row chunks (``chunk_elems`` distances at a time, float64), so
30k x 3.5k problems stay within about 100 MB.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from exprsim.distances import (
    cosine_distance,
    l2,
    pairwise_cosine_distance,
    pairwise_squared_l2,
)
from exprsim.errors import ArgumentError, require_positive_int

TRIPLET_TYPES: tuple[str, ...] = ("one", "two", "three")
METRICS = ("euclidean", "cosine")
log = logging.getLogger(__name__)

#: Default number of distances held in memory at once (float64: 32 MiB per temporary).
CHUNK_ELEMS = 1 << 22


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _rowwise(metric: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Row-wise distance of ``metric`` (L2 without the gradient clamp: exact zeros stay 0)."""
    _check_metric(metric)
    return partial(l2, eps=0.0) if metric == "euclidean" else cosine_distance


def not_whole(values: np.ndarray) -> np.ndarray:
    """Boolean mask, the shape of ``values`` (a float array), of the entries that are not
    whole numbers: NaN, infinite or fractional (``int()`` would truncate ``2.7`` to 2)."""
    return ~np.isfinite(values) | (values != np.round(values))


def class_ids(labels: Any, what: str, error: type[Exception] = ValueError) -> np.ndarray:
    """``labels`` as ``(N,)`` int64 class ids (ints, bools or whole-number floats).

    Raises:
        error: not 1-d, not numbers, a NaN, infinite or fractional float (it would be
            truncated), an id beyond int64, or a negative id (it would index another
            row's or class's slot).
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise error(f"{what} must be a 1-d array of class ids, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = not_whole(arr)
        if bad.any():
            raise error(f"{what} must be whole class ids, got {arr[bad][0].item()!r}")
        if arr.size and np.abs(arr).max() > 2.0**62:
            raise error(f"{what} must be int64 class ids, got {np.abs(arr).max().item()!r}")
    elif arr.dtype.kind not in "biu":
        raise error(f"{what} must be int class ids (integers), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise error(f"{what} must be int64 class ids, got {int(arr.max())}")
    out = arr.astype(np.int64)
    if out.size and out.min() < 0:
        raise error(f"{what} must be non-negative class ids, got {out.min().item()}")
    return out


def _paired_ids(labels: Any, what: str, n: int) -> np.ndarray:
    """:func:`class_ids` of ``labels``, one per each of ``n`` rows (a single label, or a
    column, was broadcast against every row and gave a number)."""
    ids = class_ids(labels, what)
    if len(ids) != n:
        raise ValueError(f"{what} must hold one class id per row: {n} rows, {len(ids)} ids")
    return ids


# --------------------------------------------------------------------------- triplets


def _face_indices(values: Any, name: str) -> np.ndarray:
    """``(T,)`` int64 face indices (a float 0.9 was cut to face 0; text failed in NumPy's
    words)."""
    arr = np.asarray(values).reshape(-1)
    if arr.dtype.kind == "f" and not_whole(arr).any():
        raise ValueError(f"{name} must hold whole face indices, got {arr[not_whole(arr)][0]!r}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold face indices (integers), got dtype {arr.dtype}")
    return arr.astype(np.int64)


def triplet_accuracy(
    emb: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    k: np.ndarray,
    odd: np.ndarray,
    ttype: np.ndarray | None = None,
    metric: str = "euclidean",
) -> dict[str, float]:
    """FECNet triplet prediction accuracy.

    A triplet counts as correct when the distance of its similar pair ``(a, b)`` is strictly
    smaller than both ``d(a, c)`` and ``d(b, c)`` (``c`` the odd face), i.e. the predicted
    odd one (the face outside the closest pair) is the labelled one; exact ties count as
    wrong, as in the paper's formula.

    Args:
        emb: ``(N, D)`` embeddings.
        i, j, k: ``(T,)`` face indices into ``emb``.
        odd: ``(T,)`` position (0, 1, 2) of the odd face.
        ttype: ``(T,)`` type codes (0 one-, 1 two-, 2 three-class), optional.
        metric: ``"euclidean"`` or ``"cosine"``.

    Returns:
        ``{"all": acc, "n_all": T}`` plus ``"one"/"two"/"three"`` and ``"n_one"`` ... per
        type present (accuracies in ``[0, 1]``; NaN for an empty set, and NaN, with a
        warning, for a set with a triplet whose embeddings hold NaN or infinite values: its
        distances cannot be compared; a diverged training run still reaches its own check).

    Raises:
        ValueError: an ``odd`` outside {0, 1, 2}, or a face index outside ``emb``.
    """
    _check_metric(metric)
    emb = np.asarray(emb, np.float64)
    faces = np.stack([_face_indices(v, name) for v, name in ((i, "i"), (j, "j"), (k, "k"))], 1)
    odd = np.asarray(odd)
    if odd.dtype == bool:  # True read as position 1
        raise ValueError("odd must hold positions 0, 1 or 2, not booleans")
    if odd.shape != (len(faces),):
        raise ValueError(f"odd must hold one position per triplet, got shape {odd.shape}")
    valid = np.isin(odd, (0, 1, 2))
    if not valid.all():
        bad = odd[~valid][0].item()
        raise ValueError(f"odd must be 0, 1 or 2 (the odd face's position), got {bad!r}")
    odd = odd.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(emb)):
        raise ValueError(f"triplet faces must index the {len(emb)} rows of emb")
    # a NaN or infinite face makes its triplet undecidable (it used to count as wrong)
    undecided = (~np.isfinite(emb).all(axis=1))[faces].any(axis=1)
    if undecided.any():
        log.warning("%d triplets use NaN or infinite embeddings: accuracy NaN", undecided.sum())
    rows = np.arange(len(faces))
    a = emb[faces[rows, (odd + 1) % 3]]
    b = emb[faces[rows, (odd + 2) % 3]]
    c = emb[faces[rows, odd]]
    dist = _rowwise(metric)
    with np.errstate(invalid="ignore"):
        d_ab = dist(a, b)
        correct = (d_ab < dist(a, c)) & (d_ab < dist(b, c))

    def share(m: np.ndarray | slice) -> float:
        picked = correct[m]
        return float(picked.mean()) if picked.size and not undecided[m].any() else float("nan")

    out: dict[str, float] = {"all": share(slice(None)), "n_all": len(correct)}
    if ttype is not None:
        ttype = _paired_ids(ttype, "ttype", len(faces))
        if ttype.size and ttype.max() >= len(TRIPLET_TYPES):  # it fell out of every type
            raise ValueError(
                f"ttype must be 0, 1 or 2 (one-, two-, three-class), got {ttype.max().item()}"
            )
        for t, name in enumerate(TRIPLET_TYPES):
            m = ttype == t
            out[name] = share(m)
            out[f"n_{name}"] = int(m.sum())
    return out


# --------------------------------------------------------------------------- neighbours


def _chunks(n_query: int, n_base: int, chunk_elems: int) -> Iterator[slice]:
    step = max(1, chunk_elems // max(n_base, 1))
    for start in range(0, n_query, step):
        yield slice(start, min(start + step, n_query))


def knn_search(
    query: np.ndarray,
    base: np.ndarray,
    k: int,
    metric: str = "euclidean",
    exclude_self: bool = False,
    chunk_elems: int = CHUNK_ELEMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every query row in ``base``.

    Args:
        query: ``(M, D)``; base: ``(N, D)``.
        k: neighbours per query (``<= N``, or ``<= N - 1`` with ``exclude_self``).
        metric: ``"euclidean"`` or ``"cosine"`` (``1 - cos``).
        exclude_self: ``query`` *is* ``base`` (same rows): never return a row as its own
            neighbour.
        chunk_elems: distances computed at once.

    Returns:
        ``idx`` ``(M, k)`` int64 and ``dist`` ``(M, k)`` float64, nearest first.
    """
    _check_metric(metric)
    query = np.asarray(query, np.float64)
    base = np.asarray(base, np.float64)
    n = base.shape[0]
    if metric == "euclidean" and n and base.ndim == 2 and query.ndim == 2:
        # distances do not change when both sides move by one vector; the expansion
        # |q|^2 + |b|^2 - 2 q.b does: around a large common offset it cancelled to noise
        # and chose wrong neighbours (an offset of 1e5 on a spread of 0.01)
        centre = base.mean(axis=0)
        query, base = query - centre, base - centre
    if exclude_self and query.shape[0] != n:
        raise ValueError("exclude_self needs query and base to be the same rows")
    limit = n - 1 if exclude_self else n
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}], got {k}")
    idx_out = np.empty((query.shape[0], k), np.int64)
    dist_out = np.empty((query.shape[0], k), np.float64)
    # a row's cost: its n distances, or its k neighbours' D values gathered below (k of
    # 28,000 had gathered 500 MB a chunk)
    for sl in _chunks(query.shape[0], max(n, k * base.shape[-1]), chunk_elems):
        q = query[sl]
        d = (
            pairwise_squared_l2(q, base)
            if metric == "euclidean"
            else pairwise_cosine_distance(q, base)
        )
        if exclude_self:
            rows = np.arange(d.shape[0])
            d[rows, rows + sl.start] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        # recompute the k kept distances directly (the expansion above loses ~1e-8 to
        # cancellation, so exact duplicates would not come out at distance 0)
        exact = _rowwise(metric)(q[:, None, :], base[part])
        order = np.lexsort((np.take_along_axis(d, part, axis=1), exact), axis=1)
        idx_out[sl] = np.take_along_axis(part, order, axis=1)
        dist_out[sl] = np.take_along_axis(exact, order, axis=1)
    return idx_out, dist_out


#: most cells of a probability table :func:`knn_proba` makes (queries x classes: 2 GB)
MAX_PROBA_CELLS = 250_000_000


def _n_classes(*label_arrays: np.ndarray) -> int:
    return int(max(int(np.max(a)) for a in label_arrays if len(a)) + 1)


def knn_proba(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    k: int,
    n_classes: int | None = None,
    metric: str = "euclidean",
    weights: str = "uniform",
    chunk_elems: int = CHUNK_ELEMS,
) -> np.ndarray:
    """Class probabilities ``(M, C)`` from the k nearest training rows.

    ``weights="uniform"``: the share of the k neighbours in each class. ``"distance"``:
    neighbours weighted by ``1 / distance``; where a query has neighbours at distance 0, only
    those count (as scikit-learn's ``KNeighborsClassifier``).

    Raises:
        ValueError: a training label that is negative, fractional or not below
            ``n_classes``, one label per training row missing, or a bad ``k`` / ``metric`` /
            ``weights``.
    """
    if weights not in ("uniform", "distance"):
        raise ValueError(f"weights must be 'uniform' or 'distance', got {weights!r}")
    train_labels = class_ids(train_labels, "train_labels")
    if not len(train_labels):
        raise ValueError("no training rows: kNN needs at least one labelled row")
    if n_classes is None:
        n_classes = _n_classes(train_labels)
    else:
        n_classes = require_positive_int(n_classes, "n_classes", ArgumentError)
    test = np.atleast_2d(np.asarray(test_emb))
    queries = len(test)
    if queries * n_classes > MAX_PROBA_CELLS:  # a label of 10**11 allocated 7 TiB
        raise ArgumentError(
            f"{n_classes} classes (labels 0 .. {n_classes - 1}) x {queries} queries do not "
            f"fit in memory: class ids must count from 0 (use a label encoder)"
        )
    if len(train_labels) != len(train_emb):
        raise ValueError(
            f"one label per training row: {len(train_emb)} rows, {len(train_labels)} labels"
        )
    if train_labels.size and train_labels.max() >= n_classes:
        raise ValueError(
            f"train_labels must lie in [0, {n_classes}), got {train_labels.max().item()}"
        )
    # queries a block at a time: the (M, k) neighbours of every query at once had grown
    # with M x k (8.9 GB for 8,000 queries at k = 28,150)
    step = max(1, chunk_elems // max(int(k) if isinstance(k, numbers.Integral) else 1, 1))
    blocks = []
    for start in range(0, max(len(test), 1), step):  # an empty query set is checked too
        idx, dist = knn_search(
            test[start : start + step], train_emb, k, metric, chunk_elems=chunk_elems
        )
        blocks.append(_vote(idx, dist, train_labels, n_classes, weights))
    return np.concatenate(blocks)


def _vote(
    idx: np.ndarray, dist: np.ndarray, labels: np.ndarray, n_classes: int, weights: str
) -> np.ndarray:
    """``(M, C)`` class shares of ``(M, k)`` neighbours (:func:`knn_proba`)."""
    if weights == "uniform":
        w = np.ones_like(dist)
    else:
        zero = dist <= 0
        with np.errstate(divide="ignore"):
            w = np.where(zero.any(axis=1, keepdims=True), zero.astype(np.float64), 1.0 / dist)
    m = len(idx)
    flat = (np.arange(m)[:, None] * n_classes + labels[idx]).ravel()
    proba = np.bincount(flat, weights=w.ravel(), minlength=m * n_classes).reshape(m, n_classes)
    return proba / proba.sum(axis=1, keepdims=True)


def knn_predict(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    k: int = 11,
    metric: str = "euclidean",
    weights: str = "uniform",
    n_classes: int | None = None,
    chunk_elems: int = CHUNK_ELEMS,
) -> np.ndarray:
    """``(M,)`` int64 kNN labels (ties go to the lowest class index, as scikit-learn)."""
    proba = knn_proba(train_emb, train_labels, test_emb, k, n_classes, metric, weights, chunk_elems)
    return proba.argmax(axis=1).astype(np.int64)


def knn_accuracy(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    k: int = 11,
    metric: str = "euclidean",
    weights: str = "uniform",
) -> float:
    """Share of test rows whose kNN label equals ``test_labels``.

    Raises:
        ValueError: ``test_labels`` not one class id per test row (see :func:`class_ids`).
    """
    truth = _paired_ids(test_labels, "test_labels", len(np.atleast_2d(np.asarray(test_emb))))
    pred = knn_predict(train_emb, train_labels, test_emb, k, metric, weights)
    return float((pred == truth).mean())


# --------------------------------------------------------------------------- classification


def per_class_prf(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1, each ``(C,)`` over ``labels`` (default: the classes
    in ``y_true`` or ``y_pred``, sorted); 0 where a class has no predictions or no members
    (scikit-learn's ``precision_recall_fscore_support(..., zero_division=0)``).

    Raises:
        ValueError: labels that are not class ids (:func:`class_ids`), or not one
            prediction per true label.
    """
    y_true = class_ids(y_true, "y_true")
    y_pred = _paired_ids(y_pred, "y_pred", len(y_true))
    classes = np.asarray(
        sorted(set(y_true.tolist()) | set(y_pred.tolist())) if labels is None else labels
    )
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in classes], np.float64)
    n_pred = np.array([np.sum(y_pred == c) for c in classes], np.float64)
    n_true = np.array([np.sum(y_true == c) for c in classes], np.float64)
    prec = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)
    rec = np.divide(tp, n_true, out=np.zeros_like(tp), where=n_true > 0)
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(tp), where=denom > 0)
    return prec, rec, f1


def classification_scores(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None
) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 (zero where a class has no predictions).

    ``macro_f1`` is the mean of per-class F1 (scikit-learn's ``f1_score(average="macro")``);
    ``f1_sgm`` is the harmonic mean of macro precision and macro recall, which is how the
    SGM paper's Table 2 F1 column relates to its precision and recall columns.

    Args:
        labels: classes averaged over (default: those in ``y_true`` or ``y_pred``).

    Raises:
        ValueError: see :func:`per_class_prf`.
    """
    y_true = class_ids(y_true, "y_true")
    y_pred = _paired_ids(y_pred, "y_pred", len(y_true))
    prec, rec, f1 = per_class_prf(y_true, y_pred, labels)
    p, r = float(prec.mean()), float(rec.mean())
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_precision": p,
        "macro_recall": r,
        "macro_f1": float(f1.mean()),
        "f1_sgm": 2 * p * r / (p + r) if p + r > 0 else 0.0,
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Mean per-class F1 (see :func:`classification_scores`)."""
    return classification_scores(y_true, y_pred, labels)["macro_f1"]


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Binary AUC-ROC via the rank-sum (Mann-Whitney) statistic, ties counted half.

    Returns NaN unless ``y_true`` holds both classes.
    """
    from scipy.stats import rankdata

    y = np.asarray(y_true)
    if y.dtype != bool:  # labels {1, 2} or {-1, 1} were all True: NaN, not an AUC
        values = set(np.unique(y).tolist()) if y.size else set()
        if not values <= {0, 1}:
            raise ValueError(f"y_true must be booleans or 0 / 1, got values {sorted(values)[:4]!r}")
        y = y.astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def knn_auc(
    train_emb: np.ndarray,
    train_labels: np.ndarray,
    test_emb: np.ndarray,
    test_labels: np.ndarray,
    k: int = 200,
    n_classes: int | None = None,
    metric: str = "euclidean",
    weights: str = "uniform",
) -> dict[str, Any]:
    """One-vs-rest AUC-ROC per class from kNN class probabilities (FECNet: K=200).

    Returns:
        ``{"per_class": [C floats, NaN for a class absent from (or alone in) the test set],
        "mean": mean over the defined ones, "k": k}``.

    Raises:
        ValueError: ``test_labels`` not one class id per test row (:func:`class_ids`), or
            one not below ``n_classes`` (it would count as a negative of every class).
    """
    n_test = len(np.atleast_2d(np.asarray(test_emb)))
    test_labels = _paired_ids(test_labels, "test_labels", n_test)
    n_classes = n_classes or _n_classes(class_ids(train_labels, "train_labels"), test_labels)
    if test_labels.size and test_labels.max() >= n_classes:
        raise ValueError(
            f"test_labels must lie in [0, {n_classes}), got {test_labels.max().item()}"
        )
    proba = knn_proba(train_emb, train_labels, test_emb, k, n_classes, metric, weights)
    per_class = [roc_auc(test_labels == c, proba[:, c]) for c in range(n_classes)]
    defined = [a for a in per_class if not np.isnan(a)]
    return {
        "per_class": per_class,
        "mean": float(np.mean(defined)) if defined else float("nan"),
        "k": k,
    }


# --------------------------------------------------------------------------- clustering


def _contingency(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    _, t = np.unique(np.asarray(labels_true), return_inverse=True)
    _, p = np.unique(np.asarray(labels_pred), return_inverse=True)
    table = np.zeros((t.max(initial=-1) + 1, p.max(initial=-1) + 1), np.float64)
    np.add.at(table, (t, p), 1.0)
    return table


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Normalised mutual information ``I(O; G) / ((H(O) + H(G)) / 2)`` (arithmetic mean).

    Equals scikit-learn's ``normalized_mutual_info_score`` default; 1.0 when both labelings
    are a single group.
    """
    shapes = {np.shape(labels_true), np.shape(labels_pred)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:  # 2-d labels were flattened
        raise ValueError(f"nmi needs two 1-d labelings of one length, got shapes {shapes}")
    table = _contingency(labels_true, labels_pred)
    n = table.sum()
    h_true, h_pred = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    if h_true + h_pred == 0:
        return 1.0
    nz = table > 0
    pij = table[nz] / n
    outer = np.outer(table.sum(axis=1), table.sum(axis=0))[nz] / (n * n)
    mi = float((pij * (np.log(pij) - np.log(outer))).sum())
    return max(0.0, mi / ((h_true + h_pred) / 2.0))


def clustering_f1(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Pair-counting F1 of a clustering (Manning et al., IR book 16.3; SGM's clustering F1).

    Over all pairs of items: precision = share of same-cluster pairs that share a class,
    recall = share of same-class pairs placed in the same cluster; F1 their harmonic mean.
    """
    table = _contingency(labels_true, labels_pred)

    def pairs(x: np.ndarray) -> float:
        return float((x * (x - 1) / 2).sum())

    tp = pairs(table)
    same_cluster = pairs(table.sum(axis=0))
    same_class = pairs(table.sum(axis=1))
    if tp == 0:
        return 0.0
    p, r = tp / same_cluster, tp / same_class
    return 2 * p * r / (p + r)


def kmeans_scores(
    emb: np.ndarray,
    labels: np.ndarray,
    n_clusters: int | None = None,
    seed: int = 0,
    n_init: int = 10,
) -> dict[str, float]:
    """k-means (k = number of classes by default) on ``emb``, scored against ``labels``.

    Returns:
        ``{"nmi", "f1", "n_clusters"}``.
    """
    from sklearn.cluster import KMeans

    labels = np.asarray(labels)
    n_clusters = int(n_clusters or len(np.unique(labels)))
    pred = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit_predict(
        np.asarray(emb, np.float64)
    )
    return {"nmi": nmi(labels, pred), "f1": clustering_f1(labels, pred), "n_clusters": n_clusters}


def kmeans_nmi(
    emb: np.ndarray, labels: np.ndarray, n_clusters: int | None = None, seed: int = 0
) -> float:
    """NMI of k-means clusters of ``emb`` against ``labels`` (see :func:`kmeans_scores`)."""
    return kmeans_scores(emb, labels, n_clusters, seed)["nmi"]


# --------------------------------------------------------------------------- retrieval


def retrieval_at_k(
    emb: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
    metric: str = "euclidean",
    chunk_elems: int = CHUNK_ELEMS,
    groups: np.ndarray | None = None,
) -> dict[str, dict[int, float]]:
    """Recall@K and Acc@K of every item as a query against the others (itself excluded).

    Args:
        groups: optional ``(N,)`` ids of copies (items of one id, e.g. pixel-identical
            images, are not each other's answers: a copy would be found first and be a
            hit for free).

    Returns:
        ``{"recall": {K: value}, "acc": {K: value}}``.

    Raises:
        ValueError: ``ks`` empty or holding a K that is not an integer >= 1 (or above
            ``N - 1`` less the largest group's other copies); labels or groups not one
            per item.
    """
    labels = np.asarray(labels)
    n = len(np.atleast_2d(np.asarray(emb)))
    if labels.shape != (n,):
        raise ValueError(f"labels must hold one label per item: {n} items, shape {labels.shape}")
    ks = list(ks)
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1]
    if bad or not ks:
        raise ValueError(f"every K of ks must be an integer >= 1, got {bad[0] if bad else ks!r}")
    kmax = max(ks)
    if groups is None:
        idx, _ = knn_search(emb, emb, kmax, metric, exclude_self=True, chunk_elems=chunk_elems)
    else:
        idx = _without_copies(emb, kmax, metric, chunk_elems, groups)
    same = labels[idx] == labels[:, None]  # (N, kmax)
    hits = np.cumsum(same, axis=1)
    recall = {int(k): float((hits[:, k - 1] > 0).mean()) for k in ks}
    acc = {int(k): float((hits[:, k - 1] / k).mean()) for k in ks}
    return {"recall": recall, "acc": acc}


def _without_copies(
    emb: np.ndarray, kmax: int, metric: str, chunk_elems: int, groups: np.ndarray
) -> np.ndarray:
    """``(N, kmax)`` nearest items of every item, its own copies (same ``groups`` id) left
    out (:func:`retrieval_at_k`)."""
    groups = np.asarray(groups)
    n = len(np.atleast_2d(np.asarray(emb)))
    if groups.shape != (n,):
        raise ValueError(f"groups must hold one id per item: {n} items, shape {groups.shape}")
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    extra = int(counts.max()) - 1 if n else 0
    idx, _ = knn_search(emb, emb, kmax + extra, metric, exclude_self=True, chunk_elems=chunk_elems)
    other = inverse[idx] != inverse[:, None]
    order = np.argsort(~other, axis=1, kind="stable")[:, :kmax]  # the first kmax others
    return np.take_along_axis(idx, order, axis=1)


def recall_at_k(
    emb: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
    metric: str = "euclidean",
) -> dict[int, float]:
    """Share of queries with at least one same-class item among their K nearest (self excluded)."""
    return retrieval_at_k(emb, labels, ks, metric)["recall"]


def acc_at_k(
    emb: np.ndarray,
    labels: np.ndarray,
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32),
    metric: str = "euclidean",
) -> dict[int, float]:
    """Mean share of a query's K nearest items (self excluded) that have its class."""
    return retrieval_at_k(emb, labels, ks, metric)["acc"]
