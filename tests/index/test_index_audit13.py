"""Thirteenth robustness round: the life of an index (models, removals, bulk loads, the
identity cache)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex, ModelMismatchError


def test_an_index_left_with_tag_references_only_names_them_when_refusing_a_model(tmp_path):
    """Audit: 0 faces but one tag reference refused another model with "holds embeddings
    ... re-index everything", with nothing left to re-index."""
    imgs = write_images(tmp_path / "p", 1)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        ix.add_tag_reference("happy", ix.embeddings()[1][0], "stub@1")
        ix.remove(imgs)
        assert len(ix) == 0
    with FaceIndex(db, embedder=StubEmbedder("stub@2")) as ix:
        with pytest.raises(ModelMismatchError, match=r"tag reference faces.*tag remove"):
            ix.add(imgs)
        with pytest.raises(ModelMismatchError, match=r"tag reference faces.*tag remove"):
            ix.check_model("stub@2")
    with FaceIndex(db, embedder=StubEmbedder()) as ix:  # faces left: the usual message
        ix.add(imgs)
        with pytest.raises(ModelMismatchError, match="holds embeddings of model stub@1"):
            ix.check_model("stub@2")


def test_remove_names_the_paths_that_removed_nothing(tmp_path):
    imgs = write_images(tmp_path / "p", 2)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        missed: list = []
        ghost = tmp_path / "p" / "never.png"
        assert ix.remove([imgs[0], ghost, imgs[0]], missed) == 1
        assert missed == [ghost, imgs[0]]  # the second imgs[0] found nothing left
        assert len(ix) == 1


def test_a_bulk_load_warns_about_relative_sources_it_cannot_find(tmp_path, monkeypatch, caplog):
    """Audit: a table of relative paths loaded from another folder was stored as text;
    the same photos added later were indexed twice."""
    import pandas as pd

    rows = [{"source": "relalb/a.jpg", "face": 0, **{f"e{i}": float(i == 0) for i in range(16)}},
            {"source": "/abs/b.jpg", "face": 0, **{f"e{i}": float(i == 1) for i in range(16)}}]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with (
        FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix,
        caplog.at_level(logging.WARNING, logger="exprsim.index.store"),
    ):
        ix.add_table(pd.DataFrame(rows), model="stub@1")
    text = caplog.text
    assert "1 sources of the table are relative paths" in text and "relalb/a.jpg" in text


def test_an_unreadable_hit_is_checked_for_identity_again_next_time(tmp_path, monkeypatch):
    """Audit: a hit whose file could not be read once kept "no descriptor" for good."""
    import importlib

    search_mod = importlib.import_module("exprsim.apps.search")  # the module, not the function

    class Encoder:
        def __init__(self, *a, **k):
            pass

        def descriptor(self, image, box):
            return np.ones(128, np.float32)

    monkeypatch.setattr(search_mod, "IdentityEncoder", Encoder)
    imgs = write_images(tmp_path / "p", 2)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        query = search_mod._query_face(str(imgs[0]), ix.embedder, 0, None)
        records = ix.records()
        moved = imgs[1].with_suffix(".away")
        imgs[1].rename(moved)
        first = search_mod._IdentityFilter(ix, query, 0.6).distances(records)
        assert first[records[1].id] is None  # unreadable now
        moved.rename(imgs[1])
        again = search_mod._IdentityFilter(ix, query, 0.6).distances(records)
        assert again[records[1].id] == pytest.approx(0.0)


@pytest.mark.slow
def test_hundreds_of_copies_of_a_photo_leave_the_others_findable_with_hnsw(tmp_path):
    """Audit: 1,500 copies of one photo and `--ann faiss-hnsw`: 18 of 18 other photos were
    not their own first hit (the copies' identical embeddings trap HNSW's search)."""
    import shutil

    pytest.importorskip("faiss")
    imgs = write_images(tmp_path / "p", 40)
    copies = tmp_path / "copies"
    copies.mkdir()
    for i in range(1000):
        shutil.copyfile(imgs[0], copies / f"c{i:04d}.png")
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add([copies])
        ix.add(imgs[1:])
        ix.rebuild_ann("faiss-hnsw")
        ids, emb = ix.embeddings()
        by_id = dict(zip(ids.tolist(), range(len(ids)), strict=True))
        own = {r.source: r.id for r in ix.records() if Path(r.source).parent.name == "p"}
        assert len(own) == 39
        for fid in own.values():
            _, hit = ix.query(emb[by_id[fid]], 1)
            assert int(np.asarray(hit).reshape(-1)[0]) == fid
