"""Twelfth audit (degenerate data), classify: ExpressionKNN's label types, cosine zero rows,
repeated class names, scoring nothing, and odd values in a reference-set file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from exprsim.apps import classify as cl
from exprsim.apps.classify import ExpressionKNN
from exprsim.errors import ExprsimError, ModelError


def clusters(labels: list, seed: int = 0, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows near one axis per distinct label (so k=1 and k=3 both recover the labels)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    _, axis = np.unique(y.astype(str), return_inverse=True)
    x = np.eye(dim)[axis] + rng.normal(scale=0.05, size=(len(y), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# ----------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize(
    "labels",
    [
        [0.0, 1.0, 2.0] * 4,
        [2.0, 10.0] * 6,  # sorted as numbers (2 before 10), not as text
        [-1.0, 3.0, 7.0] * 4,
        [True, False, True] * 4,
    ],
)
@pytest.mark.parametrize("k", [1, 3])
def test_numeric_labels_come_back_as_values_like_sklearn(labels: list, k: int) -> None:
    sk = pytest.importorskip("sklearn.neighbors")
    x, y = clusters(labels)
    knn = ExpressionKNN(k=k).fit(x, y)
    ref = sk.KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(x, y)
    assert knn.classes_.dtype == ref.classes_.dtype == y.dtype
    np.testing.assert_array_equal(knn.classes_, ref.classes_)
    pred = knn.predict(x)
    assert pred.dtype == y.dtype
    np.testing.assert_array_equal(pred, ref.predict(x))
    np.testing.assert_allclose(knn.predict_proba(x), ref.predict_proba(x), atol=1e-6)
    # the caller's own accuracy and score agree (was 0.0 against 1.0)
    assert float(np.mean(pred == y)) == knn.score(x, y) == pytest.approx(ref.score(x, y))


def test_float32_labels_keep_their_dtype_and_order() -> None:
    x, y = clusters([10.0, 2.0, 2.0, 10.0, 2.0, 10.0])
    y32 = y.astype(np.float32)
    knn = ExpressionKNN(k=1).fit(x, y32)
    assert knn.classes_.tolist() == [2.0, 10.0] and knn.classes_.dtype == np.float32
    assert knn.predict(x).dtype == np.float32
    np.testing.assert_array_equal(knn.predict(x), y32)


def test_object_labels_one_and_one_point_zero_are_one_class() -> None:
    x, _ = clusters([0, 0, 1, 1])
    y = np.array([1, 1.0, 2, 2.0], dtype=object)
    knn = ExpressionKNN(k=1).fit(x, y)
    assert knn.classes_.tolist() == [1.0, 2.0]  # was ['1', '1.0', '2', '2.0']
    assert knn.predict(x).tolist() == [1.0, 1.0, 2.0, 2.0]
    assert knn.score(x, y) == 1.0


def test_whole_float_labels_match_integer_labels() -> None:
    """Whole-number floats (a pandas id column) behave as the ints they hold: scored by
    value against integer fits, and as positions into given ``classes``."""
    x, y = clusters([0, 1, 2] * 4)
    ints = ExpressionKNN(k=1).fit(x, y)
    assert ints.score(x, y.astype(np.float64)) == 1.0  # was "unknown label '0.0'"
    named = ExpressionKNN(k=1, classes=["a", "b", "c"]).fit(x, y.astype(np.float64))
    assert named.predict(x).tolist() == ["a", "b", "c"] * 4
    assert named.score(x, y.astype(np.float64)) == 1.0


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0.0, 1.0, np.nan, 1.0]),
        np.array([0, 1, None, 1], dtype=object),
        np.array(["a", "b", None, "b"], dtype=object),
        np.array(["a", "b", np.nan, "b"], dtype=object),
    ],
)
def test_a_missing_label_is_refused_in_one_line(labels: np.ndarray) -> None:
    x, _ = clusters([0, 1, 2, 1])
    with pytest.raises(ExprsimError) as exc:
        ExpressionKNN(k=1).fit(x, labels)  # was a class named 'nan' / 'None'
    assert "label 2 is missing" in one_line(exc)
    knn = ExpressionKNN(k=1).fit(x, [0, 1, 2, 1])
    with pytest.raises(ExprsimError, match="missing"):
        knn.score(x, labels)


def test_a_pandas_column_with_a_missing_id_is_refused() -> None:
    pd = pytest.importorskip("pandas")
    x, _ = clusters([0, 1, 2, 0])
    column = pd.DataFrame({"label": [0, 1, None, 0]})["label"]  # float64 with NaN
    with pytest.raises(ExprsimError, match="label 2 is missing"):
        ExpressionKNN(k=1).fit(x, column)
    nullable = pd.Series([0, 1, None, 0], dtype="Int64")
    with pytest.raises(ExprsimError, match="label 2 is missing"):
        ExpressionKNN(k=1).fit(x, nullable)


def test_fractional_infinite_and_mixed_labels_are_refused() -> None:
    x, _ = clusters([0, 1, 0, 1])
    with pytest.raises(ExprsimError) as exc:
        ExpressionKNN(k=1).fit(x, [0.5, 1.5, 0.5, 1.5])  # scikit-learn: "continuous"
    assert "0.5" in one_line(exc)
    with pytest.raises(ExprsimError, match="whole"):
        ExpressionKNN(k=1).fit(x, [0.0, np.inf, 0.0, 1.0])
    with pytest.raises(ExprsimError, match="mix text and numbers"):
        ExpressionKNN(k=1).fit(x, np.array(["a", 1, "a", 1], dtype=object))


def test_text_labels_work_as_before() -> None:
    """Guard (passes on the snapshot too): str, unicode and text held in object arrays."""
    names = ["нейтрально", "😀", "", "sad ness"] * 3
    x, y = clusters(names)
    for labels in (y, y.astype(object), list(names)):
        knn = ExpressionKNN(k=1).fit(x, labels)
        assert knn.classes_.tolist() == sorted(set(names))
        assert knn.predict(x).tolist() == names
        assert knn.score(x, names) == 1.0
    fixed = ExpressionKNN(k=1, classes=["x", "y"]).fit(x[:2], ["y", "x"])
    assert fixed.predict(x[:2]).tolist() == ["y", "x"]


# ----------------------------------------------------------------------------- finding 10


def test_cosine_refuses_all_zero_rows_in_fit_and_queries() -> None:
    x, y = clusters([0, 1, 2, 3])
    with pytest.raises(ExprsimError) as exc:
        ExpressionKNN(k=1, metric="cosine").fit(x, y).predict_proba(np.zeros((1, 8)))
    assert "all zero" in one_line(exc)  # was a confident [1, 0, 0, 0]
    with_zero = np.vstack([x, np.zeros((1, 8), np.float32)])
    with pytest.raises(ExprsimError, match="embedding 4 is all zero"):
        ExpressionKNN(k=1, metric="cosine").fit(with_zero, [0, 1, 2, 3, 0])


def test_euclidean_still_places_zero_rows() -> None:
    """Guard (passes on the snapshot too): a zero row is a point like any other under L2."""
    x = np.array([[0, 0], [3, 4], [0, 0.1]], np.float32)
    knn = ExpressionKNN(k=1).fit(x, [0, 1, 0])
    assert knn.predict(np.zeros((1, 2))).tolist() == [0]


def test_repeated_class_names_are_refused() -> None:
    x, y = clusters([0, 1, 0, 1])
    with pytest.raises(ExprsimError) as exc:
        ExpressionKNN(k=1, classes=["a", "a"]).fit(x, y)  # every prediction was 'a'
    assert "'a' is repeated" in one_line(exc)


def test_score_of_no_faces_is_an_error_without_runtime_warnings() -> None:
    x, y = clusters([0, 1, 0, 1])
    knn = ExpressionKNN(k=1).fit(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ExprsimError) as exc:
            knn.score(np.zeros((0, 8), np.float32), [])  # was NaN and two RuntimeWarnings
    assert "at least one" in one_line(exc)


# ----------------------------------------------------------------------------- reference file


def save_reference(path: Path, n: int = 24, **override: np.ndarray) -> Path:
    """A reference set file (8 FER+ classes, k=3), with arrays replaced by ``override``."""
    from exprsim.data.fer import FERPLUS_CLASSES

    rng = np.random.default_rng(3)
    emb = rng.normal(size=(n, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    arrays = {
        "embeddings": emb,
        "labels": np.arange(n) % 8,
        "classes": np.array(FERPLUS_CLASSES),
        "model": np.array("stub@1"),
        "k": np.array(3),
        "meta": np.array(json.dumps({})),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"k": np.array(2.7)}, "2.7"),  # was used as k=2
        ({"k": np.array(True)}, "k"),
        ({"labels": np.arange(24) % 8 + 0.5}, "0.5"),  # was truncated to 0..7
        ({"labels": np.where(np.arange(24) == 5, np.nan, np.arange(24) % 8)}, "nan"),
        ({"embeddings": np.zeros((24, 16), np.float32)}, "all zero"),  # was 'neutral', p=1
    ],
)
def test_reference_files_with_odd_values_are_refused(
    tmp_path: Path, override: dict, needle: str
) -> None:
    path = save_reference(tmp_path / "ref.npz", **override)
    with pytest.raises(ModelError) as exc:
        cl.load_reference_set(path)
    text = one_line(exc)
    assert "not a valid reference set" in text and needle in text


def test_reference_file_with_one_zero_row_is_refused(tmp_path: Path) -> None:
    emb = np.random.default_rng(4).normal(size=(24, 16)).astype(np.float32)
    emb[7] = 0.0
    with pytest.raises(ModelError, match="1 of 24 embeddings are all zero, the first at row 7"):
        cl.load_reference_set(save_reference(tmp_path / "ref.npz", embeddings=emb))


def test_reference_files_with_whole_float_values_still_load(tmp_path: Path) -> None:
    """Guard (passes on the snapshot too): 3.0 is k=3, float labels 0.0..7.0 are the ids."""
    labels = (np.arange(24) % 8).astype(np.float64)
    ref = cl.load_reference_set(
        save_reference(tmp_path / "ref.npz", k=np.array(3.0), labels=labels)
    )
    assert ref.k == 3 and ref.labels.dtype == np.int64
    np.testing.assert_array_equal(ref.labels, np.arange(24) % 8)


def test_classify_cli_refuses_a_zero_reference_in_one_line(
    tmp_path: Path, random_model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from exprsim.cli import main
    from exprsim.samples import sample_path

    photo = str(sample_path("grace_hopper.jpg"))
    for name, override in (
        ("zero.npz", {"embeddings": np.zeros((24, 16), np.float32)}),
        ("kfloat.npz", {"k": np.array(2.7)}),
    ):
        ref = save_reference(tmp_path / name, model=np.array("exprnet_s@test"), **override)
        rc = main(
            ["-q", "classify", photo, "--reference", str(ref), "--model", str(random_model_dir)]
        )
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "not a valid reference set" in err and "\n" not in err
