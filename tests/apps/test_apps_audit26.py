"""Round 26 (docs/robustness.md): classification reports and evaluation rows."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.apps.classify import ExpressionKNN, evaluate

X = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1], [-5, 5], [-5, 5.1]], np.float64)
Y = list("aabbcc")


def test_a_class_neither_held_out_nor_predicted_is_not_an_f1_of_zero():
    knn = ExpressionKNN(k=1).fit(X, Y)
    r = evaluate(knn, X[:4] + 0.01, Y[:4])  # class c has no test face and is not predicted
    assert r.accuracy == 1.0
    assert r.macro_f1 == pytest.approx(1.0)  # was 0.667: c counted as an F1 of 0
    assert [row["class"] for row in r.per_class] == ["a", "b", "c"]  # the table lists it


def test_evaluate_refuses_labels_that_are_not_one_per_embedding():
    knn = ExpressionKNN(k=1).fit(X, Y)
    with pytest.raises(ValueError, match="one label per embedding"):
        evaluate(knn, X, Y[:1])  # was accuracy 0.667 with n=1


def test_two_embedders_of_one_name_keep_their_own_rows_and_heads(monkeypatch):
    import exprsim.evaluate as ev

    class Fake:
        def __init__(self, pred: int) -> None:
            self.pred = pred
            self.config = type("C", (), {"name_version": "same@1"})()

        def embed_crops(self, im):
            x = im.reshape(len(im), -1)[:, :4].astype(np.float32) / 255
            return x / np.linalg.norm(x, axis=1, keepdims=True)

        def emotion_proba(self, im):
            p = np.zeros((len(im), 8))
            p[:, self.pred] = 1
            return p

    monkeypatch.setattr("exprsim.models.embedder.Embedder", Fake)
    rng = np.random.default_rng(0)
    images = rng.integers(1, 255, size=(250, 48, 48), dtype=np.uint8)

    class Trip:
        i, j, k = np.arange(3), np.arange(3, 6), np.arange(6, 9)
        odd, ttype = np.zeros(3, np.int64), np.zeros(3, np.int64)

        def __len__(self):
            return 3

    trip = Trip()

    class Sets:
        # every face of class 0 but one: head 0 is right on all but one, head 1 wrong
        majority = np.array([0] * 249 + [1], np.int64)

        def __init__(self):
            self.images = images

        def __len__(self):
            return len(self.images)

    monkeypatch.setattr(ev, "publictest_sets", lambda *a, **k: (Sets(), Sets(), trip))
    report = ev.evaluate_ferplus(Fake(0), also=[Fake(1)])
    names = [r["name"] for r in report.rows]
    assert names == ["same@1", "same@1 #2"]
    assert [r["head_acc"] for r in report.rows] == [0.996, 0.004]  # was B's head twice


def test_tagger_tag_walks_a_folder(tmp_path, stub):
    from stub_embedder import write_images

    from exprsim.apps.tag import Tagger
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        tagger.add("first", imgs[0])
        by_file = tagger.tag(imgs, threshold=1e-3)
        by_folder = tagger.tag([tmp_path / "imgs"], threshold=1e-3)  # was "is a directory"
    assert [(r.source, r.tags) for r in by_folder] == [(r.source, r.tags) for r in by_file]
    assert len(by_folder) == 2


def test_a_summary_of_more_clusters_than_it_can_hold_is_refused_at_once():
    from exprsim.apps.summarize import MAX_SUMMARY_CLUSTERS, summarize
    from exprsim.errors import ExprsimError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(MAX_SUMMARY_CLUSTERS + 5, 4)).astype(np.float32)
    with pytest.raises(ExprsimError, match="n_clusters must be at most 20,000"):
        summarize(x, n_clusters=MAX_SUMMARY_CLUSTERS + 1, max_exact=10)  # was 1.6 GB and up
    assert len(summarize(x[:50], n_clusters=5).clusters) == 5


def _blob(rng, m, centre, spread=0.2):
    x = rng.normal(size=(m, 16)) * spread + centre
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("covariance", ["full", "tied"])
def test_bic_keeps_a_class_of_one_mode_whole_with_full_or_tied_covariances(covariance):
    from exprsim.apps.subclasses import split_classes

    for m in (20, 40):
        x = _blob(np.random.default_rng(0), m, 1.0)
        got = split_classes(x, np.zeros(m, int), covariance_type=covariance).n_components
        assert got == {0: 1}, (m, got)  # "full" gave 3 to 5 sub-classes of one blob
    rng = np.random.default_rng(1)
    two = np.vstack([_blob(rng, 50, np.eye(16)[0], 0.05), _blob(rng, 50, np.eye(16)[1], 0.05)])
    assert split_classes(two, np.zeros(100, int), covariance_type=covariance).n_components == {
        0: 2
    }  # two modes are still found


def test_summaries_far_from_the_origin_keep_their_clusters():
    from exprsim.apps.summarize import summarize

    rng = np.random.default_rng(0)
    x = np.vstack([_blob(rng, 30, np.eye(16)[k], 0.05) for k in range(3)])
    near = summarize(x, 3, "ward").labels
    far = summarize(x + 1e6, 3, "ward").labels  # was 1 cluster: "only 1 distinct face"
    assert len(set(far.tolist())) == 3
    assert (far == near).all()


def test_a_cosine_centre_does_not_lean_to_longer_rows():
    from exprsim.apps.summarize import summarize

    rng = np.random.default_rng(0)
    x = np.vstack([_blob(rng, 10, np.eye(16)[0], 0.3), _blob(rng, 10, np.eye(16)[1], 0.3)])
    longer = x.copy()
    longer[[3, 15]] *= 50  # the same directions
    a, b = summarize(x, 2), summarize(longer, 2)
    assert [c.representative for c in a.clusters] == [c.representative for c in b.clusters]


def test_apps_name_what_is_wrong_in_one_line():
    from exprsim.apps.labels import ferplus_faces
    from exprsim.apps.subclasses import discover_subexpressions, split_classes
    from exprsim.apps.summarize import summarize
    from exprsim.errors import ExprsimError

    x = np.random.default_rng(0).normal(size=(6, 16))
    x[4] = np.nan
    with pytest.raises(ExprsimError, match="row 4 holds NaN"):  # was "got shape (6, 16)"
        summarize(x, 2)
    with pytest.raises(ExprsimError, match=r"emb must be \(N, D\)"):  # was lexsort's TypeError
        split_classes(np.zeros((5, 0)), [0] * 5)
    y = np.random.default_rng(1).normal(size=(12, 16))
    with pytest.raises(ExprsimError, match="crops must hold one per face"):  # the page failed
        discover_subexpressions(y, np.zeros(12, int), crops=[None] * 3)
    for bad in (2.5, True, 0):  # 2.5 failed after loading FER, True gave 1 face
        with pytest.raises(ExprsimError, match="max_faces"):
            ferplus_faces("PublicTest", max_faces=bad, embedder=object())


@pytest.mark.parametrize("scale", [1e-170, 1e160, 1.0])
def test_the_odd_one_out_and_distances_at_any_scale(scale):
    from exprsim.apps.compare import distance_matrix, odd_one_out

    e = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0]])
    assert odd_one_out(e * scale) == 2  # was 0 at 1e-170 (every distance 0)
    d = distance_matrix(e * scale)
    assert d[0, 1] == pytest.approx(0.1 * scale, rel=1e-12) and np.isfinite(d).all()


def test_a_distance_matrix_diagonal_is_zero_for_a_nan_row_too():
    from exprsim.apps.compare import distance_matrix

    d = distance_matrix(np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]))
    assert (np.diag(d) == 0).all() and np.isnan(d[0, 1])  # as documented: 0 on the diagonal
