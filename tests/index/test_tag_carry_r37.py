"""Round 37 (an analysis of the locks PostgreSQL writers take): a file indexed again reads
its old faces' labels and tags, deletes them and writes them onto the new faces; a tag set
by another connection between that read and the delete was lost without a word (READ
COMMITTED). Indexing a file now takes the tags' lock first (then the generation, the order
``add_tag_reference`` takes them in), so the other writer waits and is told the face it
named was replaced, or its tag is carried."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image
from stub_embedder import StubEmbedder

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


def _photo(path: Path, bump: int = 0) -> None:
    pixels = np.random.default_rng(0).integers(1, 250, (32, 32, 3), dtype=np.uint8)
    pixels[0, 0, 0] += bump  # another file, the same face
    Image.fromarray(pixels).save(path, "BMP")


def test_a_tag_set_while_its_file_is_indexed_again_is_not_lost(store, monkeypatch, tmp_path):
    photo = tmp_path / "a.bmp"
    _photo(photo)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([photo])
        old = ix.records()[0].id
        ix.add_tags([old], "t1")
    _photo(photo, bump=1)
    backend = type(FaceIndex(store)._db)
    real, between = backend.execute, threading.Event()

    def execute(self, sql, params=()):
        if sql.startswith("DELETE FROM files WHERE path"):  # read the tags, not deleted yet
            between.set()
            time.sleep(0.8)
        return real(self, sql, params)

    monkeypatch.setattr(backend, "execute", execute)
    adder = FaceIndex(store, embedder=StubEmbedder())
    t = threading.Thread(target=adder.add, args=([photo],))
    t.start()
    try:
        assert between.wait(20)
        with FaceIndex(store) as other:
            try:
                other.add_tags([old], "t2")
                refused = False
            except ExprsimError as exc:  # the face was replaced meanwhile: said
                refused = "no face" in str(exc)
                assert refused, exc
    finally:
        t.join(30)
        adder.close()
    with FaceIndex(store) as ix:
        (face,) = ix.records()
        assert face.id != old and "t1" in face.tags
        assert refused or "t2" in face.tags  # was: neither, on PostgreSQL
