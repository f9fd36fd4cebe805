"""Eighteenth audit round, search: a result shares no array with the caller's query."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from stub_embedder import StubEmbedder

from exprsim.apps.search import search
from exprsim.index.store import FaceIndex


def test_editing_a_result_leaves_the_query_face_and_the_next_search_alone(
    image_index, tmp_path: Path
) -> None:
    """Before: with a FaceEmbedding as the query, ``query_embedding`` and ``query_crop``
    were its own arrays: negating the result's embedding changed the caller's face, and
    the next search with it answered other faces."""
    index: FaceIndex = image_index(12)
    (query,) = StubEmbedder().embed_images([tmp_path / "imgs" / "img_0003.png"])
    crop = query.aligned.crop.copy()  # writeable, as the shipped embedder's crops are
    query = dataclasses.replace(query, aligned=dataclasses.replace(query.aligned, crop=crop))
    kept = query.embedding.copy(), query.aligned.crop.copy(), query.aligned.face.box.copy()
    first = search(query, index, k=4)
    first.query_embedding[:] = -first.query_embedding
    assert first.query_crop is not None
    first.query_crop[:] = 0
    np.testing.assert_array_equal(query.embedding, kept[0])
    np.testing.assert_array_equal(query.aligned.crop, kept[1])
    np.testing.assert_array_equal(query.aligned.face.box, kept[2])
    again = search(query, index, k=4)
    assert [h.face_id for h in again.hits] == [h.face_id for h in first.hits]
