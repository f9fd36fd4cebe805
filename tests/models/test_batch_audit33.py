"""Round 33 (the public objects): ``Embedder.batch_size`` is checked when set after
construction too (0 was range()'s raw error, -1 "need at least one array")."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ModelError
from exprsim.models.embedder import load_model


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_a_bad_batch_size_set_later_is_refused(bad: object) -> None:
    model = load_model()
    with pytest.raises(ModelError, match="batch_size"):
        model.batch_size = bad  # type: ignore[assignment]
    assert model.batch_size == 64  # unchanged
    model.batch_size = np.int64(2)  # type: ignore[assignment]
    assert model.batch_size == 2 and type(model.batch_size) is int
    crops = np.zeros((5, 112, 112, 3), np.uint8)
    assert model.embed_crops(crops, reframe=False).shape == (5, 16)
