"""Round 21: the summary page's "All faces" table shows each face's Euclidean distance to
its cluster's centre, converted from the cosine distance once (it was converted twice:
``sqrt(2 * sqrt(2 * cosine))``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pytest

from exprsim.apps.summarize import summarize, summary_page


@dataclass(frozen=True)
class _Item:
    source: str
    face_index: int
    embedding: np.ndarray


def _all_faces_rows(html: str) -> list[list[str]]:
    table = html.split("All faces", 1)[1]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    header = re.findall(r"<th>(.*?)</th>", rows[0])
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows[1:]]
    return [header, *cells]


@pytest.mark.parametrize("method", ["complete-cosine", "ward"])
def test_all_faces_distance_matches_an_independent_computation(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exprsim.report import plots

    # the maps are not under test (t-SNE is slow): stand-in images
    monkeypatch.setattr(plots, "embedding_map", lambda *a, **k: b"png")
    monkeypatch.setattr(plots, "similarity_heatmap", lambda *a, **k: b"png")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5))
    x[:4] += 4.0  # two clear groups
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    items = [_Item(f"f{i}.jpg", 0, e) for i, e in enumerate(x)]
    summary = summarize(items, n_clusters=2, method=method)
    header, *rows = _all_faces_rows(summary_page(summary).render())
    at_item = header.index("item")
    at_distance = header.index("distance to centre")
    shown = {int(r[at_item]): float(r[at_distance]) for r in rows}
    assert sorted(shown) == list(range(8))
    for c in summary.clusters:
        members = np.array(c.members)
        centre = x[members].mean(axis=0)
        if method != "ward":  # cosine methods: unit rows against the unit centre
            centre = centre / np.linalg.norm(centre)
        for m in members:
            expected = float(np.linalg.norm(x[m] - centre))
            assert shown[int(m)] == pytest.approx(expected, rel=2e-3, abs=1e-4)
    # and the table agrees with the CSV frame (the same unit everywhere)
    frame = summary.to_frame()
    for item, d in zip(frame["item"], frame["distance"], strict=True):
        assert shown[int(item)] == pytest.approx(float(d), rel=2e-3, abs=1e-4)
