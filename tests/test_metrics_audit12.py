"""Twelfth audit (degenerate data), exprsim.metrics: garbage that used to give an answer.

k = 0 in Recall@K / Acc@K, negative or out-of-range training labels in the flat bincount of
kNN probabilities, NaN embeddings (now NaN, not 0.0) and odd positions outside {0, 1, 2}
in triplet accuracy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from exprsim import metrics as M


def unit(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# ----------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize("ks", [(0, 1), (-2,), (1.5,), (True,), ()])
def test_retrieval_refuses_k_below_one_or_not_an_integer(ks: tuple) -> None:
    emb, labels = unit(5), [0, 1, 0, 1, 0]
    with pytest.raises(ValueError) as exc:
        M.retrieval_at_k(emb, labels, ks=ks)  # k=0 gave recall@0 = recall@k_max, acc nan
    assert "integer >= 1" in one_line(exc)
    with pytest.raises(ValueError):
        M.recall_at_k(emb, labels, ks)
    with pytest.raises(ValueError):
        M.acc_at_k(emb, labels, ks)


def test_retrieval_with_valid_ks_matches_a_loop() -> None:
    """Numpy integer K and a generator of K work (the snapshot's ``max(ks)`` used up a
    generator and left empty dicts: a KeyError)."""
    emb, labels = unit(12, seed=1), np.arange(12) % 3
    out = M.retrieval_at_k(emb, labels, ks=(k for k in (np.int64(1), 3)))
    for k in (1, 3):
        hits, shares = [], []
        for q in range(12):
            d = [math.dist(emb[q], emb[b]) if b != q else math.inf for b in range(12)]
            near = sorted(range(12), key=lambda b: d[b])[:k]
            same = [labels[b] == labels[q] for b in near]
            hits.append(any(same))
            shares.append(sum(same) / k)
        assert out["recall"][k] == pytest.approx(np.mean(hits))
        assert out["acc"][k] == pytest.approx(np.mean(shares))


# ----------------------------------------------------------------------------- kNN


def test_knn_proba_refuses_a_negative_training_label() -> None:
    emb = unit(5)
    with pytest.raises(ValueError) as exc:
        # was: query 0 [0.5, 0.5] and query 1 [nan, nan] (the -1 landed in row 0's slots)
        M.knn_proba(emb, [0, -1, 0, 1, 1], emb, 1)
    assert "-1" in one_line(exc)
    for fn in (M.knn_predict, M.knn_accuracy):
        args = (emb, [0, -1, 0, 1, 1], emb) + (([0, 1, 0, 1, 1],) if fn is M.knn_accuracy else ())
        with pytest.raises(ValueError):
            fn(*args, k=1)
    with pytest.raises(ValueError):
        M.knn_auc(emb, [0, -1, 0, 1, 1], emb, [0, 1, 0, 1, 1], k=1)


def test_knn_proba_refuses_a_label_at_or_above_n_classes() -> None:
    emb = unit(5)
    with pytest.raises(ValueError) as exc:
        # was: the label 2 counted in the next query's class-0 slot
        M.knn_proba(emb, [0, 2, 0, 1, 1], emb, 1, n_classes=2)
    assert "[0, 2)" in one_line(exc)


@pytest.mark.parametrize("labels", [[0, 0.5, 0, 1, 1], [0, np.nan, 0, 1, 1], ["a"] * 5])
def test_knn_proba_refuses_labels_that_are_not_class_ids(labels: list) -> None:
    """0.5 is the fix; NaN and text are guards (the snapshot's int cast raised already)."""
    emb = unit(5)
    with pytest.raises(ValueError):
        M.knn_proba(emb, labels, emb, 1)  # 0.5 was truncated to class 0


def test_knn_proba_refuses_a_label_count_that_is_not_the_row_count() -> None:
    emb = unit(5)
    with pytest.raises(ValueError, match="one label per training row"):
        M.knn_proba(emb, [0, 1, 0], emb, 1)  # was a raw IndexError (or silence if longer)
    with pytest.raises(ValueError, match="one label per training row"):
        M.knn_proba(emb, [0, 1, 0, 1, 1, 0], emb, 1)


def test_knn_proba_whole_float_labels_equal_int_labels() -> None:
    """Guard (passes on the snapshot too): every query row is its own one-hot vote."""
    emb = unit(6, seed=2)
    labels = np.array([2, 0, 1, 2, 0, 1])
    got = M.knn_proba(emb, labels.astype(np.float64), emb, 1, n_classes=3)
    np.testing.assert_array_equal(got, np.eye(3)[labels])


# ----------------------------------------------------------------------------- triplets


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_triplet_accuracy_is_nan_when_a_triplet_has_a_non_finite_embedding(
    bad: float, metric: str, caplog: pytest.LogCaptureFixture
) -> None:
    """NaN, not 0.0 (the comparisons with NaN were all False, so "wrong"). NaN rather than
    an error: training validates a diverged model before its own check names the cause."""
    emb = unit(4)
    emb[2, 1] = bad
    with caplog.at_level("WARNING", logger="exprsim.metrics"):
        out = M.triplet_accuracy(emb, [0], [1], [2], [0], metric=metric)
    assert math.isnan(out["all"]) and out["n_all"] == 1
    assert "NaN or infinite" in caplog.text
    everything = M.triplet_accuracy(np.full((3, 4), np.nan), [0], [1], [2], [0], metric=metric)
    assert math.isnan(everything["all"])


def test_triplet_accuracy_per_type_is_nan_only_where_a_bad_triplet_lies() -> None:
    emb = np.array([[0, 0], [0, 1], [5, 5], [np.nan, 0]], np.float64)
    # type 0: a decidable, correct triplet; type 1: a triplet with the NaN face 3
    out = M.triplet_accuracy(emb, [0, 0], [1, 1], [2, 3], [2, 2], ttype=[0, 1])
    assert out["one"] == 1.0 and out["n_one"] == 1
    assert math.isnan(out["two"]) and out["n_two"] == 1
    assert math.isnan(out["all"]) and math.isnan(out["three"]) and out["n_three"] == 0


def test_triplet_accuracy_ignores_a_nan_row_no_triplet_uses() -> None:
    """Guard (passes on the snapshot too): only the faces of the triplets are read."""
    emb = np.array([[0, 0], [0, 1], [5, 5], [np.nan, 0]], np.float64)
    assert M.triplet_accuracy(emb, [0], [1], [2], [2])["all"] == 1.0  # d(0,1)=1 < others


@pytest.mark.parametrize("odd", [-1, 3, 1.5, np.nan])
def test_triplet_accuracy_refuses_odd_outside_0_1_2(odd: float) -> None:
    emb = unit(3)
    with pytest.raises(ValueError) as exc:
        M.triplet_accuracy(emb, [0], [1], [2], [odd])  # -1 was read as 2, 1.5 as 1
    assert "0, 1 or 2" in one_line(exc)


def test_triplet_accuracy_refuses_faces_outside_emb_and_odd_of_wrong_length() -> None:
    emb = unit(3)
    with pytest.raises(ValueError, match="index the 3 rows"):
        M.triplet_accuracy(emb, [0], [1], [-1], [0])  # -1 was the last row
    with pytest.raises(ValueError, match="index the 3 rows"):
        M.triplet_accuracy(emb, [0], [1], [3], [0])
    with pytest.raises(ValueError, match="one position per triplet"):
        M.triplet_accuracy(emb, [0, 1], [1, 2], [2, 0], [0])


def test_triplet_accuracy_valid_odd_values_match_a_loop() -> None:
    """Guard (passes on the snapshot too): odd as int, uint8 and whole floats."""
    emb = unit(9, seed=3)
    rng = np.random.default_rng(4)
    t = np.array([rng.choice(9, 3, replace=False) for _ in range(40)])
    odd = rng.integers(0, 3, 40)
    expected = []
    for faces, o in zip(t.tolist(), odd.tolist(), strict=True):
        a, b = (faces[p] for p in range(3) if p != o)
        c = faces[o]
        dab = math.dist(emb[a], emb[b])
        expected.append(dab < math.dist(emb[a], emb[c]) and dab < math.dist(emb[b], emb[c]))
    for o in (odd, odd.astype(np.uint8), odd.astype(np.float64)):
        got = M.triplet_accuracy(emb, t[:, 0], t[:, 1], t[:, 2], o)
        assert got["all"] == pytest.approx(np.mean(expected))
