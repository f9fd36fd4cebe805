"""Eighteenth audit round, apps: results that hold many faces show their sizes, not their
arrays, in a notebook."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from exprsim.apps.classify import ClassificationResult, FacePrediction
from exprsim.apps.search import SearchHit, SearchResult
from exprsim.apps.summarize import summarize


def _unit(n: int) -> np.ndarray:
    e = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_a_summary_of_many_faces_has_a_short_repr() -> None:
    """Before: about 1.8 KB per face (2.9 MB for 1,600 faces), every item's arrays."""
    e = _unit(1600)
    crop = np.zeros((112, 112, 3), np.uint8)
    items = [SimpleNamespace(crop=crop, embedding=v) for v in e]
    s = summarize(items, n_clusters=12)
    assert s.items is not None and len(s.items) == 1600
    text = repr(s)
    assert len(text) < 300, text
    sizes = ", ".join(str(c.size) for c in s.clusters[:10])
    assert (
        text == f"Summary(method='complete-cosine', 1600 items, 12 clusters of {sizes}, ... faces)"
    )
    assert sum(c.size for c in s.clusters) == 1600


def test_classification_and_search_results_show_sizes() -> None:
    crop = np.zeros((112, 112, 3), np.uint8)
    faces = tuple(
        FacePrediction(f"{i}.jpg", 0, "happiness", {"happiness": 0.9}, True, crop)
        for i in range(500)
    )
    text = repr(ClassificationResult(faces, "m@1", 21, ("happiness",), interrupted=True))
    assert text == (
        "ClassificationResult(500 faces, model='m@1', k=21, classes=('happiness',), interrupted)"
    )
    hit = SearchHit(1, 7, 0.25, "a.jpg", 0, np.zeros(4), True, 50.0, 0.0)
    res = SearchResult("q.jpg", 0, _unit(1)[0], (hit,) * 3, model="m@1", query_crop=crop)
    assert repr(res) == "SearchResult(query='q.jpg' face 0, 3 hits, nearest at 0.250, model='m@1')"
