"""Audit B, items 5, 7, 8, 10 and 11: kNN classes, sub-expression labels, sampled summaries,
compare's input names, tagging arguments (each test failed before its fix)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.classify import ExpressionKNN, evaluate
from exprsim.apps.compare import compare_images, odd_one_out
from exprsim.apps.subclasses import discover_subexpressions, split_classes
from exprsim.apps.summarize import summarize
from exprsim.apps.tag import Tagger, match_tags
from exprsim.errors import ExprsimError, ImageError
from exprsim.index.store import FaceIndex


def unit_rows(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- 5. kNN


@pytest.mark.parametrize("labels", [(3, 7), (0, 10**8), (-1, 1)])
def test_knn_integer_labels_give_one_class_per_label_seen(labels: tuple[int, int]) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    x = unit_rows(10)
    y = np.array([labels[0]] * 5 + [labels[1]] * 5)
    knn = ExpressionKNN(k=3).fit(x, y)
    ref = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x, y)
    assert knn.classes_.tolist() == list(labels) == ref.classes_.tolist()
    proba = knn.predict_proba(x[:4])
    assert proba.shape == (4, 2)  # was (4, 8) for 3/7 and (4, 10**8 + 1) for 0/10**8
    np.testing.assert_allclose(proba, ref.predict_proba(x[:4]), atol=1e-6)
    np.testing.assert_array_equal(knn.predict(x), ref.predict(x))
    assert knn.score(x, y) == pytest.approx(ref.score(x, y))


def test_knn_integer_labels_score_evaluate_and_unknown_labels() -> None:
    x = unit_rows(12, seed=1)
    y = np.array([3, 7, 9] * 4)
    knn = ExpressionKNN(k=1).fit(x, y)
    assert knn.score(x, y) == 1.0  # each face is its own nearest neighbour
    rep = evaluate(knn, x, y)
    assert rep.classes == ("3", "7", "9") and rep.accuracy == 1.0
    assert rep.confusion.tolist() == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    with pytest.raises(ExprsimError, match="unknown label 5"):
        knn.score(x[:1], [5])  # 5 lies between labels seen, it is not one of them
    # given classes: integer labels still index into them
    named = ExpressionKNN(k=1, classes=["a", "b", "c", "d"]).fit(x, np.arange(12) % 4)
    assert named.classes_.tolist() == ["a", "b", "c", "d"]
    assert named.predict(x[:4]).tolist() == ["a", "b", "c", "d"]


def test_knn_fit_refuses_labels_that_are_not_one_per_row() -> None:
    x = unit_rows(10)
    one_hot = np.eye(2, dtype=int)[[0] * 5 + [1] * 5]
    with pytest.raises(ExprsimError, match="1-d"):
        ExpressionKNN(k=3).fit(x, one_hot)  # used to pass fit and fail in predict
    with pytest.raises(ExprsimError, match="1-d"):
        ExpressionKNN(k=3).fit(x, np.array(1))
    with pytest.raises(ExprsimError, match="N labels"):
        ExpressionKNN(k=3).fit(x, [0, 1] * 4)


def test_knn_score_refuses_a_length_mismatch() -> None:
    x = unit_rows(10)
    knn = ExpressionKNN(k=3).fit(x, [0, 1] * 5)
    with pytest.raises(ExprsimError, match="one label per query"):
        knn.score(x[:3], [0, 1, 0, 1])
    with pytest.raises(ExprsimError, match="1-d"):
        knn.score(x[:2], [[0], [1]])


# ----------------------------------------------------------------------------- 7. sub-classes


def two_classes(n: int = 40) -> np.ndarray:
    return unit_rows(n, seed=2)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([-1] * 20 + [1] * 20), "non-negative"),
        (np.array([0.7] * 20 + [1.7] * 20), "whole"),
        (np.array([0.0] * 20 + [np.nan] * 20), "whole"),
        (np.array([0.0] * 20 + [np.inf] * 20), "whole"),
        (np.array(["a"] * 20 + ["b"] * 20), "int class ids"),
    ],
)
def test_subexpressions_refuse_bad_labels(labels: np.ndarray, match: str) -> None:
    x = two_classes()
    with pytest.raises(ExprsimError, match=match):
        discover_subexpressions(x, labels, class_names=["neutral", "happy"])
    with pytest.raises(ExprsimError, match=match):
        split_classes(x, labels, n_components=2, stride=5)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_subexpressions_refuse_non_finite_embeddings(bad: float) -> None:
    x = two_classes()
    x[-1, 3] = bad
    y = np.array([0] * 20 + [1] * 20)
    with pytest.raises(ExprsimError, match=r"NaN or infinite values \(row 39\)"):
        discover_subexpressions(x, y)
    with pytest.raises(ExprsimError, match="NaN or infinite"):
        split_classes(x, y)


def test_subexpressions_take_whole_float_labels_as_ints() -> None:
    x = two_classes()
    ints = np.array([0] * 20 + [1] * 20)
    a = discover_subexpressions(x, ints, class_names=["neutral", "happy"], n_components=1)
    b = discover_subexpressions(
        x, ints.astype(float), class_names=["neutral", "happy"], n_components=1
    )
    assert [(s.parent_name, s.size) for s in b.subexpressions] == [("neutral", 20), ("happy", 20)]
    assert [s.members.tolist() for s in a.subexpressions] == [
        s.members.tolist() for s in b.subexpressions
    ]


# ----------------------------------------------------------------------------- 8. summarize


def copies_and_distinct(n_copies: int = 25, n_other: int = 5) -> np.ndarray:
    u = unit_rows(n_other + 1)
    return np.vstack([np.repeat(u[:1], n_copies, axis=0), u[1:]])


@pytest.mark.parametrize("method", ["complete-cosine", "average-cosine", "ward"])
def test_sampled_summary_with_copies_keeps_the_clusters_asked_for(method: str) -> None:
    x = copies_and_distinct()  # 25 copies of one face, then 5 other faces: 6 distinct
    s = summarize(x, n_clusters=6, method=method, max_exact=6)
    assert [c.size for c in s.clusters] == [25, 1, 1, 1, 1, 1]  # was [27, 3]
    assert s.clusters[0].members == tuple(range(25))
    assert sorted(c.members[0] for c in s.clusters[1:]) == list(range(25, 30))


def test_sampled_summary_of_mostly_copies_keeps_copies_together() -> None:
    u = unit_rows(12, seed=3)
    reps = np.random.default_rng(4).integers(1, 60, 12)
    x = np.repeat(u, reps, axis=0)[np.random.default_rng(5).permutation(int(reps.sum()))]
    s = summarize(x, n_clusters=8, max_exact=10)
    assert len(s.clusters) == 8
    # identical rows share a cluster: at most 8 labels over 12 faces, one label per face
    _, face = np.unique(x, axis=0, return_inverse=True)
    for f in range(12):
        assert len(set(s.labels[face.reshape(-1) == f].tolist())) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10", None])
def test_summarize_checks_max_exact(bad: object) -> None:
    x = unit_rows(8)
    with pytest.raises(ExprsimError, match="max_exact"):
        summarize(x, n_clusters=3, max_exact=bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- 10. compare


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_compare_names_every_in_memory_input(stub: StubEmbedder) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    near = np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)
    other = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    res = compare_images([png_bytes(base), ("near.png", near), other], stub)
    assert res.sources == ("<bytes #0>", "near.png", "<array #2>")
    out = res.to_dict()
    assert out["images"] == ["<bytes #0>", "near.png", "<array #2>"]
    assert out["odd_one_out"] == "<array #2>"  # was "<array>", as were the other two
    pair = compare_images([("a", other), png_bytes(base)], stub)
    assert pair.sources == ("a", "<bytes #1>")


def test_compare_errors_say_which_input(stub: StubEmbedder, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    face = rng.integers(1, 255, (32, 32, 3), dtype=np.uint8)
    black = np.zeros((32, 32, 3), np.uint8)  # the stub finds no face in it
    with pytest.raises(ExprsimError, match=r"^<array #1>: no face found$"):
        compare_images([face, black, face], stub)
    with pytest.raises(ExprsimError, match=r"^blank\.png: no face found$"):
        compare_images([face, ("blank.png", black)], stub)
    with pytest.raises(ImageError, match=r"^<bytes #1>: "):
        compare_images([face, b"not an image"], stub)
    path = write_images(tmp_path, 1)[0]
    assert compare_images([path, face], stub).sources == (str(path), "<array #1>")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_odd_one_out_refuses_non_finite_embeddings(bad: float) -> None:
    e = unit_rows(3)
    e[1, 0] = bad
    with pytest.raises(ExprsimError, match="finite"):
        odd_one_out(e)  # was 0
    with pytest.raises(ExprsimError, match="finite"):
        odd_one_out(np.full((3, 16), np.nan))


# ----------------------------------------------------------------------------- 11. tagging


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_match_tags_refuses_non_finite_queries(bad: float) -> None:
    refs = np.eye(16)[:2]
    q = np.eye(16)[:2].copy()
    q[1, 4] = bad
    with pytest.raises(ExprsimError, match="NaN or infinite"):
        match_tags(q, refs, ["a", "b"])  # was ((), {"a": nan, ...}) for that row


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, "0.5", None, True])
def test_match_tags_refuses_bad_thresholds(bad: object) -> None:
    refs = np.eye(16)[:2]
    with pytest.raises(ExprsimError, match="threshold"):
        match_tags(refs, refs, ["a", "b"], threshold=bad)  # type: ignore[arg-type]


def test_match_tags_threshold_zero_tags_nothing() -> None:
    refs = np.eye(16)[:2]
    out = match_tags(refs, refs, ["a", "b"], threshold=0)  # strictly below 0: nothing
    assert [tags for tags, _ in out] == [(), ()]
    assert out[0][1] == {"a": 0.0, "b": pytest.approx(np.sqrt(2))}


def test_tagger_refuses_bad_queries_and_thresholds(tmp_path: Path, stub: StubEmbedder) -> None:
    imgs = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        tagger.add("first", imgs[0])
        with pytest.raises(ExprsimError, match="NaN or infinite"):
            tagger.tag_embeddings(np.full((1, 16), np.nan))
        with pytest.raises(ExprsimError, match="threshold"):
            tagger.tag_embeddings(np.eye(16)[:1], threshold=-1.0)
        calls = stub.calls
        with pytest.raises(ExprsimError, match="threshold"):
            tagger.tag(imgs, threshold=float("nan"))  # was: every face without tags
        assert stub.calls == calls  # refused before any image was read
        assert [r.tags for r in tagger.tag(imgs[:1], threshold=1e-3)] == [("first",)]


@pytest.mark.parametrize(
    ("name", "face", "match"),
    [
        (None, 0, "tag name"),
        ("", 0, "tag name"),
        ("  ", 0, "tag name"),
        (3, 0, "tag name"),
        ("x", 0.5, "face must be"),
        ("x", 1.0, "face must be"),
        ("x", True, "face must be"),
        ("x", -1, "face must be"),
        ("x", "0", "face must be"),
    ],
)
def test_tagger_add_checks_name_and_face(
    tmp_path: Path, stub: StubEmbedder, name: object, face: object, match: str
) -> None:
    img = write_images(tmp_path / "imgs", 1)[0]
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        with pytest.raises(ExprsimError, match=match):
            tagger.add(name, img, face=face)  # type: ignore[arg-type]
        assert stub.calls == 0 and tagger.references() == []
        assert tagger.add("x", img, face=np.int64(0)).name == "x"


@pytest.mark.parametrize("bad", [np.zeros(16), np.full(16, np.nan), np.r_[np.inf, np.zeros(15)]])
def test_tagger_add_embedding_refuses_references_without_direction(
    tmp_path: Path, stub: StubEmbedder, bad: np.ndarray
) -> None:
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as index:
        tagger = Tagger(index)
        with pytest.raises(ExprsimError, match=r"zeros|NaN|infinity"):
            tagger.add_embedding("zero", bad, stub.config.name_version)
        assert tagger.references() == []
        with pytest.raises(ExprsimError, match="tag name"):
            tagger.add_embedding(None, np.eye(16)[0], stub.config.name_version)  # type: ignore[arg-type]
