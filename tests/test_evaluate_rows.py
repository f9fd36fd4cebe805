"""score_embedding reports every metric of the SGM paper's protocol, each checked against a
slow, obviously-correct loop written here (not against the metrics module it calls)."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from exprsim.evaluate import RECALL_KS, score_embedding


def naive_knn(tr: np.ndarray, tr_lab: np.ndarray, q: np.ndarray, k: int, n_cls: int) -> list[int]:
    """Majority label of the k nearest training rows (Euclidean; ties: lowest class)."""
    out = []
    for x in q:
        d = [math.dist(x, t) for t in tr]
        near = sorted(range(len(tr)), key=lambda r: d[r])[:k]
        votes = Counter(int(tr_lab[r]) for r in near)
        out.append(max(range(n_cls), key=lambda c: (votes[c], -c)))
    return out


def naive_macro(y: list[int], p: list[int], n_cls: int) -> tuple[float, float, float, float]:
    """Accuracy, macro precision, macro recall and macro F1 (0 where undefined)."""
    precs, recs, f1s = [], [], []
    for c in range(n_cls):
        tp = sum(1 for a, b in zip(y, p, strict=True) if a == c and b == c)
        n_pred = sum(1 for b in p if b == c)
        n_true = sum(1 for a in y if a == c)
        pr = tp / n_pred if n_pred else 0.0
        rc = tp / n_true if n_true else 0.0
        precs.append(pr)
        recs.append(rc)
        f1s.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    acc = sum(1 for a, b in zip(y, p, strict=True) if a == b) / len(y)
    return acc, sum(precs) / n_cls, sum(recs) / n_cls, sum(f1s) / n_cls


def naive_triplets(emb: np.ndarray, trip: SimpleNamespace) -> float:
    """Share of triplets whose labelled odd face is outside the strictly closest pair."""
    right = 0
    for i, j, k, odd in zip(trip.i, trip.j, trip.k, trip.odd, strict=True):
        faces = [i, j, k]
        c = faces[odd]
        a, b = (f for n, f in enumerate(faces) if n != odd)
        d_ab = math.dist(emb[a], emb[b])
        right += d_ab < math.dist(emb[a], emb[c]) and d_ab < math.dist(emb[b], emb[c])
    return right / len(trip.i)


def naive_retrieval(emb: np.ndarray, lab: np.ndarray, k: int) -> tuple[float, float]:
    """Recall@k and Acc@k with every row querying the others."""
    rec = acc = 0.0
    for q in range(len(emb)):
        others = sorted(
            (r for r in range(len(emb)) if r != q), key=lambda r: math.dist(emb[q], emb[r])
        )
        same = [lab[r] == lab[q] for r in others[:k]]
        rec += any(same)
        acc += sum(same) / k
    return rec / len(emb), acc / len(emb)


def test_row_has_the_sgm_protocol() -> None:
    rng = np.random.default_rng(0)
    tr_lab, te_lab = rng.integers(0, 8, 300), rng.integers(0, 8, 80)
    centres = rng.normal(size=(8, 16))
    tr = centres[tr_lab] + rng.normal(0, 0.8, (300, 16))
    te = centres[te_lab] + rng.normal(0, 0.8, (80, 16))
    trip = SimpleNamespace(
        i=np.arange(10), j=np.arange(10, 20), k=np.arange(20, 30),
        odd=rng.integers(0, 3, 10), ttype=np.arange(10) % 3,
    )  # fmt: skip
    row = score_embedding("x", tr, tr_lab, te, te_lab, trip)
    for key in ("nmi", "cluster_f1", "knn11_acc", "knn11_macro_f1", "knn11_f1_sgm"):
        assert 0.0 <= row[key] <= 1.0
    assert all(f"recall@{k}" in row and f"acc@{k}" in row for k in RECALL_KS)

    pred = naive_knn(tr, tr_lab, te, 11, 8)
    acc, p, r, f1 = naive_macro(te_lab.tolist(), pred, 8)
    assert row["knn11_acc"] == pytest.approx(acc)
    assert row["knn11_macro_precision"] == pytest.approx(p)
    assert row["knn11_macro_recall"] == pytest.approx(r)
    assert row["knn11_macro_f1"] == pytest.approx(f1)
    assert row["knn11_f1_sgm"] == pytest.approx(2 * p * r / (p + r))
    assert row["triplet_all"] == pytest.approx(naive_triplets(te, trip))
    for k in (1, 4):
        rec, acc_k = naive_retrieval(te, te_lab, k)
        assert row[f"recall@{k}"] == pytest.approx(rec)
        assert row[f"acc@{k}"] == pytest.approx(acc_k)


def test_hand_computed_row() -> None:
    """Points on a line, two classes: every number below is worked out by hand."""
    tr = np.array([[0.0], [1.0], [10.0], [11.0]] * 60)  # 240 rows: class 0 at 0/1, 1 at 10/11
    tr_lab = np.array([0, 0, 1, 1] * 60)
    step = 0.01 * np.arange(10)[:, None]
    # four groups of ten test points: A near 0.2 (class 1!), B near 0.5, C near 9, D near 10.5
    te = np.concatenate([0.2 + step, 0.5 + step, 9.0 + step, 10.5 + step])
    te_lab = np.repeat([1, 0, 1, 1], 10)
    trip = SimpleNamespace(
        i=np.array([10, 10]), j=np.array([0, 30]), k=np.array([30, 20]),
        odd=np.array([2, 2]), ttype=np.array([0, 1]),
    )  # fmt: skip
    row = score_embedding("line", tr, tr_lab, te, te_lab, trip, n_classes=2)
    # the 11 nearest training rows of A and B are all at 0 or 1 (class 0), of C and D at 10:
    # predictions 0, 0, 1, 1 per group vs truth 1, 0, 1, 1 -> 30 of 40 right
    assert row["knn11_acc"] == pytest.approx(0.75)
    # class 0: predicted 20 times (A, B), right 10 -> P 1/2, R 10/10
    # class 1: predicted 20 times (C, D), right 20 -> P 1, R 20/30
    assert row["knn11_macro_precision"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["knn11_macro_recall"] == pytest.approx((1.0 + 2 / 3) / 2)
    # (0.5, 0.2 | odd 10.5): the closest pair is (0.5, 0.2) -> right;
    # (0.5, 10.5 | odd 9.0): the closest pair (10.5, 9.0) leaves out 0.5 -> wrong
    assert row["triplet_all"] == pytest.approx(0.5)
    # a point's nearest other is in its own group (same label): Recall@1 = 1. Its 16 nearest
    # others: 9 of its group, then 7 of the next group (A <-> B, C <-> D); A and B differ in
    # label, C and D do not -> Acc@16 = (9/16 + 9/16 + 1 + 1) / 4
    assert row["recall@1"] == pytest.approx(1.0)
    assert row["acc@16"] == pytest.approx((9 / 16 + 9 / 16 + 2) / 4)


def test_embedding_function_of_a_model_name_is_its_embedder() -> None:
    import exprsim
    from exprsim.evaluate import embedding_function

    crops = np.random.default_rng(2).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    np.testing.assert_array_equal(
        embedding_function("default")(crops), exprsim.load_model("default").embed_crops(crops)
    )
