"""Round 24: ``knn_proba`` with a stray label of 10**11 (class ids not counted from 0)
tried to allocate 7 TiB; ``n_classes=0`` was silently inferred."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ExprsimError
from exprsim.metrics import knn_proba


def test_a_huge_class_id_is_refused_not_allocated() -> None:
    e = np.eye(10, 16, dtype=np.float32)
    with pytest.raises(ExprsimError, match="class ids must count from 0"):
        knn_proba(e, [0] * 9 + [10**11], e, 3)
    with pytest.raises(ExprsimError, match="n_classes"):
        knn_proba(e, [0] * 10, e, 3, n_classes=0)
    proba = knn_proba(e, [0] * 5 + [1] * 5, e, 3)
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1)
