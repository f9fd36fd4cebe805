"""Round 37 (an audit of array layouts and types): a query face's embedding
(``search(FaceEmbedding)``, ``FaceIndex.query``) was not checked: one of length 5 gave
distances of 4 (off the documented 0-2 scale), an all-zero one arbitrary faces at 1, a
``(2, 16)`` one NumPy's broadcast error; ``Tagger.tag`` of a face with an empty embedding
failed in ``zip()``; object arrays (``df.to_numpy()`` of mixed columns) were NumPy's
``isfinite`` error in ``odd_one_out``; a ``(4, 4)`` array was stored as an embedding;
float16 distances were up to 5e-4 off."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from exprsim.apps.compare import distance_matrix, odd_one_out
from exprsim.apps.search import search
from exprsim.apps.tag import Tagger, match_tags
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from exprsim.models.embedder import load_model
from exprsim.samples import sample_path

PHOTOS = ["grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame000.jpg"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory):
    model = load_model()
    faces = model.embed_images([sample_path(p) for p in PHOTOS])
    ix = FaceIndex(tmp_path_factory.mktemp("q") / "i.db")
    ix.add_faces(faces, model.config.name_version, model_digest=model.digest)
    yield model, faces, ix
    ix.close()


def test_a_query_face_of_another_length_is_searched_as_its_direction(indexed) -> None:
    model, faces, ix = indexed
    q = faces[1]
    want = search(q, ix, k=2, embedder=model, exclude_same_image=False)
    got = search(dataclasses.replace(q, embedding=q.embedding * 5), ix, k=2, embedder=model,
                 exclude_same_image=False)  # fmt: skip
    assert [h.face_id for h in got.hits] == [h.face_id for h in want.hits]
    assert np.allclose([h.distance for h in got.hits], [h.distance for h in want.hits], atol=1e-5)
    assert max(h.distance for h in got.hits) <= 2.0  # was 4.0 and more
    _, emb = ix.embeddings()
    d5, i5 = ix.query(emb[0] * 5, 2)
    d1, i1 = ix.query(emb[0], 2)
    assert list(i5[0]) == list(i1[0]) and np.allclose(d5, d1, atol=1e-5) and d5[0, 0] < 1e-3


@pytest.mark.parametrize(
    ("embedding", "said"),
    [
        (np.zeros(16, np.float32), "all zeros"),
        (np.ones((2, 16), np.float32), r"16 values in one row, got \(2, 16\)"),
        (np.array(["a"] * 16, dtype=object), "not numbers"),
    ],
)
def test_a_query_face_without_a_direction_is_refused(indexed, embedding, said) -> None:
    model, faces, ix = indexed
    with pytest.raises(ExprsimError, match=said):
        search(dataclasses.replace(faces[0], embedding=embedding), ix, k=2, embedder=model)
    if embedding.dtype != object and embedding.ndim == 1:
        with pytest.raises(ExprsimError, match="all zeros"):
            ix.query(embedding, 2)  # was: arbitrary faces at distance 1


def test_a_face_with_an_empty_embedding_is_named_when_tagged(indexed, tmp_path: Path) -> None:
    model, faces, _ = indexed
    with FaceIndex(tmp_path / "t.db") as ix:
        tagger = Tagger(ix, embedder=model)
        tagger.add_embedding("ref", faces[1].embedding, model.config.name_version)
        with pytest.raises(ExprsimError, match="embeddings of 0 values, references of 16"):
            tagger.tag([dataclasses.replace(faces[0], embedding=np.zeros(0, np.float32))])
        with pytest.raises(ExprsimError, match=r"NaN or infinite values \(or None\)"):
            match_tags(np.array([None] * 16), np.eye(1, 16), ["ref"])  # None was not named
    assert match_tags(np.zeros((0, 16)), np.eye(1, 16), ["ref"]) == []  # no face: no tags
    with pytest.raises(ExprsimError, match=r"references of 0 values \(2 of them\)"):
        match_tags(np.eye(1, 16), np.zeros((2, 0)), ["a", "b"])  # was: "0 references"


def test_an_embedding_is_one_row_of_16_values(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "t.db") as ix:
        with pytest.raises(ExprsimError, match=r"16 values in one row, got \(4, 4\)"):
            ix.add_tag_reference("smile", np.eye(4, dtype=np.float32), "m@1")
        ix.add_tag_reference("smile", np.eye(1, 16, dtype=np.float32), "m@1")  # (1, 16)
        ix.add_tag_reference("smile", np.eye(16, 1, k=-1, dtype=np.float32), "m@1")  # (16, 1)
        assert len(ix.tag_references()) == 2


def test_object_and_float16_arrays_are_read_as_their_numbers() -> None:
    x = np.random.default_rng(0).normal(size=(3, 16))
    assert odd_one_out(x.astype(object)) == odd_one_out(x)  # was NumPy's TypeError
    with pytest.raises(ExprsimError, match="not numbers"):
        odd_one_out(np.array([["a"] * 16] * 3, dtype=object))
    x16 = x.astype(np.float16)
    naive = np.array([[np.linalg.norm(a - b) for b in x16.astype(np.float64)]
                      for a in x16.astype(np.float64)])  # fmt: skip
    got = distance_matrix(x16)
    assert got.dtype == np.float32 and np.abs(got - naive).max() < 1e-5  # was 5e-4


def test_rows_of_no_values_are_not_summarised() -> None:
    from exprsim.apps.summarize import summarize

    for method in ("ward", "complete-cosine"):
        with pytest.raises(ExprsimError, match=r"embeddings of no values \(5 rows of 0\)"):
            summarize(np.zeros((5, 0)), n_clusters=2, method=method)
