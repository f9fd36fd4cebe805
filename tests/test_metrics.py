"""Metrics against slow loops and scikit-learn."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import (
    f1_score,
    normalized_mutual_info_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.neighbors import KNeighborsClassifier

from exprsim import metrics as M


def _emb(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dist(a, b) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


def test_triplet_accuracy_matches_loop() -> None:
    emb = _emb(40)
    rng = np.random.default_rng(1)
    t = np.array([rng.choice(40, 3, replace=False) for _ in range(300)])
    odd = rng.integers(0, 3, 300)
    ttype = rng.integers(0, 3, 300)
    correct = []
    for (i, j, k), o in zip(t.tolist(), odd.tolist(), strict=True):
        faces = [i, j, k]
        a, b = [faces[p] for p in range(3) if p != o]
        c = faces[o]
        dab = _dist(emb[a], emb[b])
        correct.append(dab < _dist(emb[a], emb[c]) and dab < _dist(emb[b], emb[c]))
    correct = np.array(correct)
    out = M.triplet_accuracy(emb, t[:, 0], t[:, 1], t[:, 2], odd, ttype)
    assert out["all"] == pytest.approx(correct.mean()) and out["n_all"] == 300
    for code, name in enumerate(("one", "two", "three")):
        assert out[name] == pytest.approx(correct[ttype == code].mean())
        assert out[f"n_{name}"] == int((ttype == code).sum())
    assert set(M.triplet_accuracy(emb, t[:, 0], t[:, 1], t[:, 2], odd)) == {"all", "n_all"}
    # cosine on unit vectors orders like euclidean
    cos = M.triplet_accuracy(emb, t[:, 0], t[:, 1], t[:, 2], odd, metric="cosine")
    assert cos["all"] == pytest.approx(out["all"])


def test_triplet_accuracy_ties_are_wrong() -> None:
    emb = np.zeros((3, 2))
    assert M.triplet_accuracy(emb, [0], [1], [2], [0])["all"] == 0.0


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_knn_search_matches_brute_force_and_chunks(metric: str) -> None:
    base, query = _emb(50, seed=2), _emb(13, seed=3)
    idx, dist = M.knn_search(query, base, 5, metric=metric)
    small_idx, small_dist = M.knn_search(
        query, base, 5, metric=metric, chunk_elems=60
    )  # 1 row / chunk
    assert np.array_equal(idx, small_idx) and np.allclose(dist, small_dist)
    for q in range(13):
        if metric == "euclidean":
            ds = [_dist(query[q], base[b]) for b in range(50)]
        else:
            ds = [1 - float(query[q] @ base[b]) for b in range(50)]
        order = sorted(range(50), key=lambda b: ds[b])[:5]
        assert idx[q].tolist() == order
        assert np.allclose(dist[q], [ds[b] for b in order], atol=1e-9)


def test_knn_search_exclude_self() -> None:
    emb = _emb(30, seed=4)
    idx, _ = M.knn_search(emb, emb, 29, exclude_self=True, chunk_elems=100)
    for q in range(30):
        assert q not in idx[q] and len(set(idx[q].tolist())) == 29
    with pytest.raises(ValueError):
        M.knn_search(emb, emb, 30, exclude_self=True)
    with pytest.raises(ValueError):
        M.knn_search(emb, emb, 3, metric="manhattan")


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_proba_and_predict_match_sklearn(weights: str) -> None:
    train, test = _emb(200, seed=5), _emb(40, seed=6)
    labels = np.random.default_rng(7).integers(0, 4, 200)
    ours = M.knn_proba(train, labels, test, 11, n_classes=4, weights=weights)
    clf = KNeighborsClassifier(n_neighbors=11, weights=weights, algorithm="brute").fit(
        train, labels
    )
    assert np.allclose(ours, clf.predict_proba(test))
    assert np.array_equal(
        M.knn_predict(train, labels, test, 11, weights=weights), clf.predict(test)
    )
    test_labels = np.random.default_rng(8).integers(0, 4, 40)
    acc = M.knn_accuracy(train, labels, test, test_labels, 11, weights=weights)
    assert acc == pytest.approx((clf.predict(test) == test_labels).mean())


def test_knn_proba_loop_and_zero_distance() -> None:
    train = _emb(30, seed=9)
    labels = np.arange(30) % 3
    test = np.vstack([train[4], _emb(1, seed=10)])
    proba = M.knn_proba(train, labels, test, 7, weights="distance")
    assert proba[0].tolist() == [0.0, 1.0, 0.0]  # exact match: only it counts
    uni = M.knn_proba(train, labels, test, 7)
    near = sorted(range(30), key=lambda b: _dist(test[1], train[b]))[:7]
    assert uni[1].tolist() == pytest.approx(
        [sum(labels[b] == c for b in near) / 7 for c in range(3)]
    )


def test_classification_scores_match_sklearn() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 5, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 6, 300))  # class 5 only predicted
    s = M.classification_scores(y, p)
    kw = {"average": "macro", "zero_division": 0}
    assert s["accuracy"] == pytest.approx((y == p).mean())
    assert s["macro_precision"] == pytest.approx(precision_score(y, p, **kw))
    assert s["macro_recall"] == pytest.approx(recall_score(y, p, **kw))
    assert s["macro_f1"] == pytest.approx(f1_score(y, p, **kw))
    assert M.macro_f1(y, p) == pytest.approx(f1_score(y, p, **kw))
    pr, rc = s["macro_precision"], s["macro_recall"]
    assert s["f1_sgm"] == pytest.approx(2 * pr * rc / (pr + rc))
    assert M.macro_f1(y, p, labels=range(5)) == pytest.approx(f1_score(y, p, labels=range(5), **kw))
    prec, rec, f1 = M.per_class_prf(y, p, labels=range(6))
    none = {"average": None, "zero_division": 0, "labels": range(6)}
    np.testing.assert_allclose(prec, precision_score(y, p, **none))
    np.testing.assert_allclose(rec, recall_score(y, p, **none))
    np.testing.assert_allclose(f1, f1_score(y, p, **none))


def test_roc_auc_matches_sklearn() -> None:
    rng = np.random.default_rng(12)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert M.roc_auc(y, score) == pytest.approx(roc_auc_score(y, score))
    assert math.isnan(M.roc_auc(np.ones(5), np.arange(5)))


def test_knn_auc_per_class() -> None:
    train, test = _emb(300, seed=13), _emb(80, seed=14)
    tl = (train[:, 0] > 0).astype(int) + 2 * (train[:, 1] > 0)
    sl = (test[:, 0] > 0).astype(int) + 2 * (test[:, 1] > 0)
    out = M.knn_auc(train, tl, test, sl, k=50, n_classes=5)
    proba = (
        KNeighborsClassifier(n_neighbors=50, algorithm="brute").fit(train, tl).predict_proba(test)
    )
    for c in range(4):
        assert out["per_class"][c] == pytest.approx(roc_auc_score(sl == c, proba[:, c]))
    assert math.isnan(out["per_class"][4])  # class 4 never occurs
    assert out["mean"] == pytest.approx(np.mean(out["per_class"][:4]))
    assert out["mean"] > 0.8  # labels are a function of the embedding


def test_nmi_matches_sklearn() -> None:
    rng = np.random.default_rng(15)
    for _ in range(5):
        a, b = rng.integers(0, 6, 200), rng.integers(0, 4, 200)
        b = np.where(rng.random(200) < 0.5, a, b)
        assert M.nmi(a, b) == pytest.approx(normalized_mutual_info_score(a, b))
    assert M.nmi(np.zeros(5), np.zeros(5)) == 1.0
    assert M.nmi(np.array([3, 3, 7, 7]), np.array([1, 1, 0, 0])) == pytest.approx(1.0)


def test_clustering_f1_matches_pair_loop() -> None:
    rng = np.random.default_rng(16)
    t, p = rng.integers(0, 4, 60), rng.integers(0, 5, 60)
    tp = fp = fn = 0
    for a in range(60):
        for b in range(a + 1, 60):
            same_c, same_k = t[a] == t[b], p[a] == p[b]
            tp += same_c and same_k
            fp += same_k and not same_c
            fn += same_c and not same_k
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    assert M.clustering_f1(t, p) == pytest.approx(2 * prec * rec / (prec + rec))
    assert M.clustering_f1(t, t) == pytest.approx(1.0)


def test_kmeans_scores_on_separated_clusters() -> None:
    rng = np.random.default_rng(17)
    centres = rng.normal(size=(4, 16)) * 10
    labels = np.repeat(np.arange(4), 50)
    emb = centres[labels] + rng.normal(size=(200, 16))
    s = M.kmeans_scores(emb, labels, seed=0)
    assert s["nmi"] == pytest.approx(1.0) and s["f1"] == pytest.approx(1.0) and s["n_clusters"] == 4
    assert M.kmeans_nmi(rng.normal(size=(200, 16)), labels) < 0.2


def test_recall_and_acc_at_k_match_loop() -> None:
    emb = _emb(60, seed=18)
    labels = np.random.default_rng(19).integers(0, 5, 60)
    ks = (1, 2, 4, 8)
    rec = M.recall_at_k(emb, labels, ks)
    acc = M.acc_at_k(emb, labels, ks)
    for k in ks:
        hits, shares = [], []
        for q in range(60):
            others = sorted((b for b in range(60) if b != q), key=lambda b: _dist(emb[q], emb[b]))[
                :k
            ]
            same = [labels[b] == labels[q] for b in others]
            hits.append(any(same))
            shares.append(sum(same) / k)
        assert rec[k] == pytest.approx(np.mean(hits))
        assert acc[k] == pytest.approx(np.mean(shares))
    assert all(rec[a] <= rec[b] for a, b in itertools.pairwise(ks))
