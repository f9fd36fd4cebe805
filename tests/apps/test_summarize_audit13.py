"""Thirteenth robustness round: summarize's distances are Euclidean whatever the method."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.apps.summarize import summarize


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["complete-cosine", "average-cosine", "ward"])
def test_table_distance_is_euclidean_to_the_centre(method):
    """Audit: the `distance` column was a cosine distance (0.000297) under the cosine
    methods and Euclidean under ward, while the page, `search` and `tag` say Euclidean
    (0.02438 for the same face)."""
    rng = np.random.default_rng(0)
    x = _unit(np.concatenate([rng.normal(size=(1, 16)) + 0.1 * rng.normal(size=(20, 16)),
                              rng.normal(size=(1, 16)) + 0.1 * rng.normal(size=(15, 16))]))  # fmt: skip
    s = summarize(x, n_clusters=2, method=method)
    frame = s.to_frame()
    doc = s.to_dict()
    for c, cd in zip(s.clusters, doc["clusters"], strict=True):
        members = np.asarray(c.members)
        centre = np.asarray(c.centre, np.float64)
        # a naive reference: each member's Euclidean distance to its centre
        want = np.linalg.norm(x[members] - centre[None, :], axis=1)
        got = frame.set_index("item").loc[members, "distance"].to_numpy()
        np.testing.assert_allclose(got, want, atol=1e-6)
        assert cd["spread"] == pytest.approx(want.mean(), abs=1e-6)
