"""``ExpressionKNN`` against scikit-learn's own estimator checks (``check_estimator``: 55
checks of the API, errors and invariances every scikit-learn estimator passes).

Before round 24, 17 of them failed: its errors were not ``ValueError`` (so
``GridSearchCV``'s ``error_score`` and callers catching ``ValueError`` missed them), a
fit before ``fit`` was not a ``NotFittedError``, complex embeddings were cast to real with
a warning, sparse input, ``y=None``, a continuous target and a column of labels were not
told apart."""

from __future__ import annotations

import pytest

sklearn = pytest.importorskip("sklearn")
if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6):  # pragma: no cover
    pytest.skip("expected_failed_checks needs scikit-learn 1.6", allow_module_level=True)

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from exprsim.apps.classify import ExpressionKNN  # noqa: E402


def _expected_failures(estimator: ExpressionKNN) -> dict[str, str]:
    if estimator.metric == "cosine":
        return {
            "check_estimators_dtypes": "the cosine metric refuses an all-zero embedding "
            "(no direction), which the check's integer data holds"
        }
    return {}


@parametrize_with_checks(
    [ExpressionKNN(k=3), ExpressionKNN(k=3, metric="cosine", weights="distance")],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)
