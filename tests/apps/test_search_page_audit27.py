"""Round 27 (docs/robustness.md): a search page of many hits."""

from __future__ import annotations

import numpy as np

from exprsim.apps.search import SearchHit, SearchResult, search_page
from exprsim.report.html import MAX_GALLERY


class _Index:
    def __init__(self) -> None:
        self.read: list[int] = []

    def crop(self, face_id: int) -> np.ndarray:
        self.read.append(face_id)
        return np.full((16, 16, 3), face_id % 250, np.uint8)


def test_only_the_crops_shown_are_read() -> None:
    n = MAX_GALLERY + 120
    hits = tuple(
        SearchHit(i + 1, 1000 + i, 0.1, f"f{i}.jpg", 0, np.zeros(4), True, 9.0, 0.0)
        for i in range(n)
    )
    result = SearchResult("q.jpg", 0, np.zeros(16, np.float32), hits)
    index = _Index()
    html = search_page(result, index).render()
    assert index.read == [1000 + i for i in range(MAX_GALLERY)]  # was every hit's
    assert "120 more" in html
