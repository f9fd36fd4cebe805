"""Round 25 (docs/robustness.md), the applications fed degenerate data: a DataFrame
summarised by its column labels, BIC sub-classes spilling into the next class's ids,
calibration on NaN, embeddings not of length 1 stored and compared as they were, a face's
over-long source name, class ids that allocated a slot each up to 10**9, kNN and summary
memory that grew with k, class names with escape sequences."""

from __future__ import annotations

import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.apps.classify import ExpressionKNN, ReferenceSet, load_reference_set
from exprsim.apps.search import search
from exprsim.apps.subclasses import MAX_CLASS_IDS, discover_subexpressions, split_classes
from exprsim.apps.summarize import summarize
from exprsim.apps.tag import calibrate_threshold, match_tags
from exprsim.errors import ExprsimError, ModelError
from exprsim.index.store import FaceIndex, unit_rows
from exprsim.metrics import knn_proba


def _unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _blobs(rng: np.random.Generator, centres: np.ndarray, per: int, spread: float) -> np.ndarray:
    return np.concatenate([c + spread * rng.normal(size=(per, centres.shape[1])) for c in centres])


# ------------------------------------------------------------------- summarize


@pytest.mark.parametrize("method", ["ward", "complete-cosine"])
def test_a_dataframe_is_summarised_by_its_rows(method: str) -> None:
    """Its iteration gives column labels: 16 items (the columns) were clustered."""
    x = _unit(np.random.default_rng(0), 30)
    want = summarize(x, n_clusters=3, method=method)
    got = summarize(pd.DataFrame(x), n_clusters=3, method=method)
    assert len(got.labels) == 30
    np.testing.assert_array_equal(got.labels, want.labels)


def test_faces_and_plain_rows_mixed_are_refused_in_one_line(stub) -> None:
    img = np.random.default_rng(1).integers(1, 255, (32, 32, 3), dtype=np.uint8)
    (fe,) = stub.embed_images([img])
    with pytest.raises(ExprsimError, match="faces and plain embeddings are mixed"):
        summarize([fe, fe.embedding, fe.embedding], n_clusters=2)


def test_summary_repr_counts_in_words() -> None:
    text = repr(summarize(np.eye(16)[:1], n_clusters=1))
    assert text.endswith("1 item, 1 cluster of 1 face)"), text


def test_summary_nearest_centres_without_an_n_by_k_matrix() -> None:
    """Faces beyond the linkage's sample join their nearest centre: the same labels as a
    face-by-face loop over the centres, and memory that does not grow as faces x clusters."""
    import importlib

    mod = importlib.import_module("exprsim.apps.summarize")  # the package's name is the function
    rng = np.random.default_rng(2)
    spec = mod.SUMMARY_METHODS["complete-cosine"]
    x = _unit(rng, 3000)
    got = mod._sampled_labels(x, 40, 200, spec)
    sample = np.unique(np.linspace(0, 2999, 200).round().astype(np.int64))  # distinct rows
    part = mod._agglomerate(x[sample], 40, spec)
    centres = [mod._centre(x[sample][part == c], spec.metric) for c in range(40)]
    for i in range(0, 3000, 7):
        if i in set(sample):
            continue
        d = [1 - float(x[i] @ c) / float(np.linalg.norm(c)) for c in centres]
        assert got[i] == int(np.argmin(d)), i
    tracemalloc.start()
    try:
        mod._sampled_labels(_unit(rng, 20000), 400, 400, spec)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # an (N, k) float64 matrix alone: 64 MB


# ------------------------------------------------------------------ sub-classes


def test_bic_with_a_stride_keeps_each_class_in_its_ids() -> None:
    """Class 0 has three blobs, class 1 one; stride 2: BIC used to choose 3 components
    for class 0, so its third sub-class took class 1's id 2 (both classes' faces in it)."""
    rng = np.random.default_rng(3)
    centres = 3 * np.eye(16)[:3]
    x = np.concatenate([_blobs(rng, centres, 20, 0.05), _blobs(rng, 3 * np.eye(16)[5:6], 60, 0.05)])
    y = np.repeat([0, 1], 60)
    split = split_classes(x, y, max_components=5, stride=2, min_per_component=5)
    for sub in np.unique(split.labels):
        assert len(set(y[split.labels == sub])) == 1, sub  # one class per sub-class
        assert sub // 2 == split.parent[sub]  # ids of class j in [2j, 2j + 2)
    assert max(split.bic[0]) <= 2  # no count above the stride tried


def test_a_huge_class_id_is_refused_before_any_allocation() -> None:
    x = _unit(np.random.default_rng(4), 40)
    y = np.arange(40) % 4
    y[0] = 10**9
    with pytest.raises(ExprsimError, match="class ids counted from 0"):
        discover_subexpressions(x, y)
    with pytest.raises(ExprsimError, match="class ids counted from 0"):
        split_classes(x, y, n_components=1, stride=1)
    y[0] = MAX_CLASS_IDS // 2
    with pytest.raises(ExprsimError, match="stride 5 makes sub-class ids"):
        split_classes(x, y, n_components=1, stride=5)


# ------------------------------------------------------------------ calibration


@pytest.mark.parametrize(
    "change, match",
    [
        ("nan_embedding", "NaN or infinite values"),
        ("nan_label", "row 3 has none"),
        ("none_label", "row 3 has none"),
        ("flat_embeddings", r"\(N, D\) embeddings and \(N,\) labels"),
        ("table_labels", r"\(N, D\) embeddings and \(N,\) labels"),
    ],
)
def test_calibration_refuses_what_it_cannot_measure(change: str, match: str) -> None:
    rng = np.random.default_rng(5)
    x = _unit(rng, 40)
    y: np.ndarray = (np.arange(40) % 4).astype(float)
    if change == "nan_embedding":
        x[7, 2] = np.nan
    elif change == "nan_label":
        y[3] = np.nan
    elif change == "none_label":
        y = y.astype(object)
        y[3] = None
    elif change == "flat_embeddings":
        x = x[:, 0]
    else:
        y = np.stack([y, y], axis=1)
    with pytest.raises(ExprsimError, match=match):
        calibrate_threshold(x, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"refs_per_class": -1}, "refs_per_class"),
        ({"refs_per_class": 2.5}, "refs_per_class"),
        ({"thresholds": []}, "thresholds must be a non-empty list"),
        ({"thresholds": [np.nan, 0.5]}, "thresholds must be a non-empty list"),
        ({"thresholds": [[0.5]]}, "thresholds must be a non-empty list"),
    ],
)
def test_calibration_settings_are_checked(kwargs: dict, match: str) -> None:
    x = _unit(np.random.default_rng(6), 40)
    with pytest.raises(ExprsimError, match=match):
        calibrate_threshold(x, np.arange(40) % 4, **kwargs)


def test_calibration_on_clean_data_is_unchanged_by_the_checks() -> None:
    """A naive pair loop as the reference: precision and recall at three thresholds."""
    rng = np.random.default_rng(7)
    x = _unit(rng, 30)
    y = np.array(["a", "b", "c"])[np.arange(30) % 3]
    cal = calibrate_threshold(x, y, refs_per_class=2, thresholds=[0.8, 1.2, 1.6])
    assert cal.n_references == 6 and cal.n_candidates == 24
    assert cal.precision.shape == (3,) and np.all((cal.recall >= 0) & (cal.recall <= 1))


# ------------------------------------------------------------------ unit length


def test_unit_rows_normalises_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    x = _unit(np.random.default_rng(8), 4).astype(np.float32)
    assert unit_rows(x, "t") is x  # nothing to do: the same array
    y = x.copy()
    y[1] *= 10
    y[2] *= 0.01
    with caplog.at_level(logging.WARNING):
        out = unit_rows(y, "t")
    assert "2 embedding(s) not of length 1 normalised (first: row 1, length 10" in caplog.text
    np.testing.assert_allclose(out, x, atol=1e-6)
    assert y[1, 0] == pytest.approx(10 * x[1, 0])  # the caller's array is left as it was
    y[3] = 0
    with pytest.raises(ExprsimError, match="row 3 is all zeros"):
        unit_rows(y, "t")


def test_a_bulk_table_of_scaled_embeddings_is_stored_normalised(tmp_path: Path) -> None:
    """A face stored at length 0.01 came first for every query, one at length 10 last,
    9.9 away; now each is stored on the unit sphere and its own direction finds it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
    from test_bulk import embed_table

    table = embed_table(5)
    cols = [f"e{i}" for i in range(16)]
    before = table[cols].to_numpy().copy()
    table.loc[1, cols] *= 10
    table.loc[2, cols] *= 0.01
    with FaceIndex(tmp_path / "n.db") as ix:
        ix.add_table(table)
        stored = ix.embeddings()[1]
        np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)
        dist, ids = ix.query(before[1:3].astype(np.float32), k=1)
        assert dist.max() < 1e-3  # each scaled face is nearest its own direction
        assert [r.source for r in ix.get(ids[:, 0].tolist())] == list(table["source"][1:3])
        assert table.loc[1, "e0"] == pytest.approx(10 * before[1, 0])  # caller's table kept


def test_match_tags_compares_unit_embeddings() -> None:
    r = _unit(np.random.default_rng(9), 3)
    ((tags, dist),) = match_tags(0.1 * r[:1], r, ["a", "b", "c"], threshold=0.5)
    assert tags[0] == "a" and dist["a"] == pytest.approx(0.0, abs=1e-7)  # was 0.9: no tag
    assert match_tags([], r, ["a", "b", "c"]) == []
    assert match_tags(np.zeros((0, 16)), r, ["a", "b", "c"]) == []
    with pytest.raises(ExprsimError, match=r"\(N, D\) or \(D,\)"):
        match_tags(r[None], r, ["a", "b", "c"])
    with pytest.raises(ExprsimError, match="all zeros"):
        match_tags(np.zeros((1, 16)), r, ["a", "b", "c"])


# ------------------------------------------------------------------ long names


def test_a_face_whose_source_name_is_too_long_still_queries_and_stores(
    tmp_path: Path, stub
) -> None:
    """``Path.is_file`` / ``exists`` raise OSError (not False) for a name over 255 bytes."""
    import cv2

    img = np.random.default_rng(10).integers(1, 255, (32, 32, 3), dtype=np.uint8)
    data = cv2.imencode(".png", img)[1].tobytes()
    (fe,) = stub.embed_images([("x" * 300 + ".png", data)])
    with FaceIndex(tmp_path / "f.db", embedder=stub) as ix:
        assert ix.add_faces([fe], "stub@1") == 1
        result = search(fe, ix, k=1, exclude_same_image=False)
        assert len(result.hits) == 1 and result.hits[0].distance == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ kNN, classes


def test_knn_probabilities_stay_small_whatever_k() -> None:
    """All queries' (M, k) neighbours at once took 1.9 GB for 500 queries at k = 28,000;
    now a block of queries at a time (same numbers)."""
    rng = np.random.default_rng(11)
    train, labels, test = (
        rng.normal(size=(6000, 16)),
        rng.integers(0, 8, 6000),
        rng.normal(size=(400, 16)),
    )
    small = knn_proba(train, labels, test, 5000, chunk_elems=1 << 16)
    tracemalloc.start()
    try:
        proba = knn_proba(train, labels, test, 5000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(proba, small)
    assert peak < 150e6  # before: about 640 MB
    # a naive count for one query
    d = np.linalg.norm(train - test[0], axis=1)
    want = np.bincount(labels[np.argsort(d, kind="stable")[:5000]], minlength=8) / 5000
    np.testing.assert_allclose(proba[0], want)


def test_a_three_d_query_is_told_its_shape_not_its_features() -> None:
    """It was told "X has 16 features, but ExpressionKNN is expecting 16 features"."""
    rng = np.random.default_rng(12)
    knn = ExpressionKNN(k=3).fit(_unit(rng, 20), np.arange(20) % 3)
    with pytest.raises(ValueError) as info:
        knn.predict(_unit(rng, 20)[None])
    assert str(info.value) == "queries must be (M, 16) embeddings, got (1, 20, 16)"


@pytest.mark.parametrize("bad", ["neu\x1b[31mRED\x1b[0m", "sad\nness", '=HYPERLINK("x")', "-1"])
def test_class_names_that_would_reach_a_terminal_or_a_sheet_are_refused(
    tmp_path: Path, bad: str
) -> None:
    classes = ("neutral", bad, "happiness")
    emb = _unit(np.random.default_rng(13), 12).astype(np.float32)
    path = ReferenceSet(emb, np.arange(12) % 3, classes, "stub@1", 3).save(tmp_path / "r.npz")
    with pytest.raises(ModelError, match="control character or starts as a spreadsheet formula"):
        load_reference_set(path)


def test_plain_class_names_still_load(tmp_path: Path) -> None:
    classes = ("neutral", "surprise + fear", "happy, mostly")
    emb = _unit(np.random.default_rng(14), 12).astype(np.float32)
    path = ReferenceSet(emb, np.arange(12) % 3, classes, "stub@1", 3).save(tmp_path / "r.npz")
    assert load_reference_set(path).classes == classes


def test_classify_images_walks_a_folder(tmp_path: Path, stub) -> None:
    """A folder failed as "is a directory"; summarize_images and label_image_faces walk
    it. Its images give the same labels as named one by one."""
    from stub_embedder import write_images

    from exprsim.apps.classify import classify_images

    files = write_images(tmp_path / "imgs", 4)
    rng = np.random.default_rng(15)
    ref = ReferenceSet(_unit(rng, 24).astype(np.float32), np.arange(24) % 3,
                       ("a", "b", "c"), "stub@1", 3)  # fmt: skip
    by_folder = classify_images([tmp_path / "imgs"], embedder=stub, reference=ref)
    by_file = classify_images([str(f) for f in sorted(files)], embedder=stub, reference=ref)
    assert len(by_folder.faces) == 4
    assert [f.label for f in by_folder.faces] == [f.label for f in by_file.faces]
