"""Shared test helper: a bulk-load table (``FaceIndex.add_table``) of random unit
embeddings, one face a source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def unit_faces(sources: Sequence[str], seed: int) -> pd.DataFrame:
    """``source`` and ``e0`` ... ``e15``: one random unit embedding (float32) per source,
    drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(sources), 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    df = pd.DataFrame(x.astype(np.float32), columns=[f"e{i}" for i in range(16)])
    df.insert(0, "source", list(sources))
    return df
