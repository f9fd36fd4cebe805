"""Round 34: a refit of ``ExpressionKNN`` that fails part-way (a label outside the new
``classes``) kept the earlier fit's neighbours with the new ``classes_``: ``predict`` then
named the wrong emotions, without a word. A failed refit now keeps the earlier fit whole."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.apps.classify import ExpressionKNN
from exprsim.errors import ExprsimError


def _faces() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(6, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.array(["happy", "happy", "sad", "sad", "angry", "angry"])


@pytest.mark.parametrize("classes", [["angry", "happy", "sad"], None])
def test_a_failed_refit_keeps_the_earlier_fit(classes: list[str] | None) -> None:
    x, y = _faces()
    knn = ExpressionKNN(k=1, classes=classes).fit(x, y)
    assert knn.predict(x).tolist() == y.tolist()
    knn.set_params(classes=["sad", "happy", "angry", "neutral"])  # another order
    with pytest.raises(ExprsimError, match="unknown label 'fear'"):
        knn.fit(x, np.array(["happy", "happy", "sad", "sad", "angry", "fear"]))
    assert knn.predict(x).tolist() == y.tolist()  # was: 'sad' named 'angry', and so on
    assert sorted(knn.classes_.tolist()) == ["angry", "happy", "sad"]


def test_a_first_fit_that_fails_leaves_the_estimator_unfitted() -> None:
    x, _ = _faces()
    knn = ExpressionKNN(k=1, classes=["a", "b"])
    with pytest.raises(ExprsimError):
        knn.fit(x, np.array(["a", "b", "a", "b", "a", "c"]))
    assert not hasattr(knn, "classes_") and not hasattr(knn, "embeddings_")
