"""Eighteenth audit round, ExpressionKNN as scikit-learn's tools and a data scientist use it."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.apps.classify import ExpressionKNN, ReferenceSet
from exprsim.errors import ExprsimError

sklearn = pytest.importorskip("sklearn")


def _data(n: int = 60, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d)) + 1.5 * np.eye(d)[y]
    return x / np.linalg.norm(x, axis=1, keepdims=True), y


def test_scikit_learns_tools_take_it_and_agree_with_its_own_knn() -> None:
    """Before: every tool but ``clone`` raised AttributeError (no ``__sklearn_tags__``)."""
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer
    from sklearn.utils.validation import check_is_fitted

    x, y = _data()
    ours = ExpressionKNN(k=5)
    assert is_classifier(ours)
    with pytest.raises(NotFittedError):
        check_is_fitted(ours)
    theirs = KNeighborsClassifier(n_neighbors=5, algorithm="brute")
    np.testing.assert_allclose(
        cross_val_score(ours, x, y, cv=3), cross_val_score(theirs, x, y, cv=3)
    )
    grid = GridSearchCV(ExpressionKNN(), {"k": [1, 5, 11]}, cv=3).fit(x, y)
    grid_theirs = GridSearchCV(theirs, {"n_neighbors": [1, 5, 11]}, cv=3).fit(x, y)
    assert grid.best_params_["k"] == grid_theirs.best_params_["n_neighbors"]
    pipe = make_pipeline(Normalizer(), ExpressionKNN(k=5)).fit(x * 3.0, y)
    np.testing.assert_array_equal(pipe.predict(x), ours.fit(x, y).predict(x))
    check_is_fitted(ours)
    assert ours.n_features_in_ == 16
    assert repr(ours) == "ExpressionKNN(k=5)" and repr(ExpressionKNN()) == "ExpressionKNN()"


def test_queries_of_the_wrong_shape_are_refused_and_none_is_no_query() -> None:
    """Before: one 1-d query was answered (scikit-learn refuses it), ``[]`` read "got (1,
    0)", and 0 rows of the wrong width answered ``[]``."""
    x, y = _data()
    knn = ExpressionKNN(k=5).fit(x, y)
    with pytest.raises(ExprsimError, match=r"got \(16,\) \(one query x: pass \[x\]\)"):
        knn.predict(x[0])
    assert knn.predict_proba([]).shape == (0, 3)
    with pytest.raises(ExprsimError, match=r"\(M, 16\) embeddings, got \(0, 8\)"):
        knn.predict(np.zeros((0, 8)))
    with pytest.raises(ExprsimError, match=r"\(N, D\) embeddings"):
        ExpressionKNN().fit(np.zeros((5, 0)), np.zeros(5, int))


def test_parameters_set_after_fit_and_a_k_of_zero_are_refused() -> None:
    """Before: ``set_params(k=2.5)`` after fit voted with 2 neighbours, and the reference
    set's ``classifier(k=0)`` used its default K."""
    x, y = _data()
    knn = ExpressionKNN(k=5).fit(x, y)
    knn.set_params(k=2.5)
    with pytest.raises(ExprsimError, match="k"):
        knn.predict(x)
    knn.set_params(k=5, metric="manhattan")
    with pytest.raises(ExprsimError, match="metric"):
        knn.predict(x)
    ref = ReferenceSet(x.astype(np.float32), y, ["a", "b", "c"], "m", 5)
    assert ref.classifier().k == 5 and ref.classifier(k=3).k == 3
    with pytest.raises(ExprsimError, match="k"):
        ref.classifier(k=0)


def test_finite_values_too_large_for_float32_are_named_as_such() -> None:
    """Before: "the embeddings hold NaN or infinite values" for finite 1e39 values."""
    x, y = _data()
    big = x.astype(np.float64)
    big[3, 2] = 1e39
    with pytest.raises(ExprsimError, match="beyond float32's range"):
        ExpressionKNN().fit(big, y)
    nan = x.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ExprsimError, match="NaN or infinite"):
        ExpressionKNN().fit(nan, y)
