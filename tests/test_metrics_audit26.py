"""Round 26 (docs/robustness.md): the evaluation's numbers, against plain references."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim import metrics as M


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    tr, te = rng.normal(size=(20, 4)), rng.normal(size=(5, 4))
    return tr, np.arange(20) % 3, te, np.array([0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    "bad",
    [
        lambda y: y[:, None],  # a column broadcast to (5, 5): 0.36
        lambda y: y[:1],  # one label broadcast to every row: 0.6
        lambda y: y.astype(str),  # text never equals an int: 0.0
        lambda y: y + 0.5,  # cut to ints
    ],
)
def test_knn_accuracy_refuses_test_labels_that_are_not_one_id_per_row(bad):
    tr, ytr, te, yte = _data()
    assert M.knn_accuracy(tr, ytr, te, yte, k=3) == pytest.approx(
        np.mean(M.knn_predict(tr, ytr, te, k=3) == yte)
    )
    with pytest.raises(ValueError, match="test_labels"):
        M.knn_accuracy(tr, ytr, te, bad(yte), k=3)


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [([0, 1, 2, 0], [0]), ([0, 1.7, 2], [0, 1, 2]), (["0", "1"], [0, 1]), ([[0, 1]], [[0, 1]])],
)
def test_classification_scores_refuse_what_they_would_broadcast_or_cut(y_true, y_pred):
    with pytest.raises(ValueError, match=r"y_true|y_pred"):
        M.classification_scores(y_true, y_pred)
    with pytest.raises(ValueError, match=r"y_true|y_pred"):
        M.per_class_prf(y_true, y_pred)


@pytest.mark.parametrize("bad", [[0, 1, 2, 5, 1], [0, 0.5, 2, 0, 1], [0, 1, 2]])
def test_knn_auc_refuses_labels_beyond_the_classes_or_fractional_or_short(bad):
    tr, ytr, te, _ = _data()
    with pytest.raises(ValueError, match="test_labels"):
        M.knn_auc(tr, ytr, te, bad, k=5, n_classes=3)


def _naive_recall_at_1(emb, labels, groups):
    hits = []
    for q in range(len(emb)):
        d = [
            (np.sum((emb[q] - emb[c]) ** 2), c)
            for c in range(len(emb))
            if c != q and groups[c] != groups[q]
        ]
        hits.append(labels[min(d)[1]] == labels[q])
    return float(np.mean(hits))


def test_recall_leaves_a_faces_copies_out_of_its_answers():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 3))
    labels = rng.integers(0, 4, size=40)
    emb[30:40], labels[30:40] = emb[0:10], labels[0:10]  # ten copies, votes and all
    groups = np.arange(40)
    groups[30:40] = np.arange(10)
    with_copies = M.retrieval_at_k(emb, labels, (1,))["recall"][1]
    without = M.retrieval_at_k(emb, labels, (1, 2), groups=groups)["recall"][1]
    assert without == pytest.approx(_naive_recall_at_1(emb, labels, groups))
    assert with_copies > without  # every copy was its twin's free hit
    assert M.retrieval_at_k(emb, labels, (1,), groups=np.arange(40))["recall"][1] == with_copies


def test_recall_refuses_labels_or_groups_not_one_per_item():
    emb = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="one label per item"):
        M.retrieval_at_k(emb, np.zeros((10, 1)), (1,))
    with pytest.raises(ValueError, match="one id per item"):
        M.retrieval_at_k(emb, np.zeros(10), (1,), groups=np.zeros(9))


def test_neighbours_around_a_large_common_offset_are_exact():
    rng = np.random.default_rng(2)
    x = 1e5 + 0.01 * rng.normal(size=(200, 16))
    idx, dist = M.knn_search(x, x, 5, exclude_self=True)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    naive = np.argsort(d, axis=1, kind="stable")[:, :5]
    assert (idx == naive).mean() > 0.99  # was 0.62 (cancellation in |q|^2 + |b|^2 - 2 q.b)
    np.testing.assert_allclose(dist, np.take_along_axis(d, naive, 1), rtol=1e-6)


def test_evaluate_image_copies_groups_pixel_identical_images():
    from exprsim.evaluate import image_copies

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(6, 4, 4), dtype=np.uint8)
    images[4] = images[1]
    ids = image_copies(images)
    assert ids[4] == ids[1] and len(set(ids.tolist())) == 5


def _triplets():
    emb = np.random.default_rng(0).normal(size=(9, 4))
    i, j, k = np.arange(3), np.arange(3, 6), np.arange(6, 9)
    return emb, i, j, k, np.zeros(3, np.int64)


def test_triplet_accuracy_refuses_fractional_faces_boolean_odd_and_unknown_types():
    emb, i, j, k, odd = _triplets()
    with pytest.raises(ValueError, match="whole face indices"):
        M.triplet_accuracy(emb, i + 0.9, j, k, odd)  # was cut to faces 0, 1, 2
    with pytest.raises(ValueError, match="not booleans"):
        M.triplet_accuracy(emb, i, j, k, np.array([True, False, True]))
    with pytest.raises(ValueError, match="ttype must be 0, 1 or 2"):
        M.triplet_accuracy(emb, i, j, k, odd, ttype=np.array([0, 1, 7]))  # was left out
    assert M.triplet_accuracy(emb, i, j, k, odd, ttype=np.array([0, 1, 2]))["n_all"] == 3


@pytest.mark.parametrize("labels", [[1, 2, 1, 2], [-1, 1, -1, 1], [0, 1, np.nan, 1]])
def test_roc_auc_refuses_labels_that_are_not_booleans_or_0_1(labels):
    with pytest.raises(ValueError, match="booleans or 0 / 1"):  # was NaN: every one True
        M.roc_auc(np.array(labels), np.array([0.1, 0.9, 0.2, 0.8]))


def test_roc_auc_of_0_1_labels_against_a_pair_count():
    y, s = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.8, 0.3, 0.3, 0.9])
    pairs = [(a, b) for a in s[y == 1] for b in s[y == 0]]
    naive = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])
    assert M.roc_auc(y, s) == pytest.approx(naive)


def test_knn_messages_for_a_float_k_and_an_empty_training_set():
    tr, ytr, te, _ = _data()
    with pytest.raises(ValueError, match=r"k must be an integer, got 2\.0"):
        M.knn_predict(tr, ytr, te, k=2.0)
    with pytest.raises(ValueError, match="no training rows"):
        M.knn_predict(tr[:0], ytr[:0], te, k=1)


def test_nmi_refuses_two_dimensional_labels():
    with pytest.raises(ValueError, match="1-d labelings"):
        M.nmi(np.zeros((2, 3)), np.zeros((2, 3)))
