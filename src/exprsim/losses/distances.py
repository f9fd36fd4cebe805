"""Alias of :mod:`exprsim.distances` (where the helpers live, below both the library and
training); kept so that older imports keep working. New code imports :mod:`exprsim.distances`.
"""

from __future__ import annotations

from exprsim.distances import (
    SQRT_EPS,
    cosine_distance,
    cosine_similarity,
    hellinger,
    l2,
    l2_normalize,
    pairwise_cosine_distance,
    pairwise_hellinger,
    pairwise_l2,
    pairwise_squared_l2,
    squared_l2,
)

__all__ = [
    "SQRT_EPS",
    "cosine_distance",
    "cosine_similarity",
    "hellinger",
    "l2",
    "l2_normalize",
    "pairwise_cosine_distance",
    "pairwise_hellinger",
    "pairwise_l2",
    "pairwise_squared_l2",
    "squared_l2",
]
