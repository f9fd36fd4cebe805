"""Re-embedding an index with another model (``FaceIndex.reembed``): the way forward after a
model upgrade. Checked against a face-by-face loop over the stored crops."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stub_embedder import StubEmbedder, grid_embedding, write_images

from exprsim.index.reembed import ReembedError
from exprsim.index.store import FaceIndex, ModelMismatchError


class CropStub(StubEmbedder):
    """The stub of tests/index, able to embed crops (``Embedder.embed_crops``): a crop's
    embedding is its grid embedding, negated so that every vector changes."""

    embedding_dim = 16

    def __init__(self, name_version: str = "stub@2", fail_after: int | None = None) -> None:
        super().__init__(name_version)
        self.crops_seen = 0
        self.fail_after = fail_after

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        self.crops_seen += len(crops)
        if self.fail_after is not None and self.crops_seen > self.fail_after:
            raise KeyboardInterrupt
        return np.stack([-grid_embedding(c) for c in crops])


def _index(tmp_path: Path, n: int = 5, db: str | Path | None = None) -> tuple[Any, list[Path]]:
    imgs = write_images(tmp_path / "p", n)
    db = tmp_path / "f.db" if db is None else db
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        ids = ix.embeddings()[0]
        ix.set_label([int(ids[0])], "mine")
        ix.add_tags([int(ids[1])], "holiday")
        crop = ix.crop(int(ids[2]))
        ix.add_tag_reference("smirk", ix.embeddings()[1][2], "stub@1", crop=crop)
        ix.rebuild_ann()  # a cache of the old vectors
    return db, imgs


def _expected(db: Any) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """What the new model gives each stored crop of the faces and the tag references, one
    row at a time."""
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        faces = {int(i): -grid_embedding(ix.crop(int(i))) for i in ix.embeddings()[0]}
        refs = {r["id"]: -grid_embedding(r["crop"]) for r in ix.tag_references()}
    return faces, refs


def test_reembed_rewrites_every_face_and_reference_with_the_new_model(tmp_path, store):
    """On SQLite and on PostgreSQL (skipped without a server)."""
    db, _ = _index(tmp_path, db=store)
    faces, refs = _expected(db)
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ModelMismatchError, match="exprsim index reembed"):
            ix.check_model("stub@2")
        report = ix.reembed()
        assert (report.old_model, report.model) == ("stub@1", "stub@2")
        assert (report.n_faces, report.n_tag_refs) == (5, 1)
        assert "re-embedded 5 faces and 1 tag reference face with stub@2" in report.summary()
        assert ix.model == "stub@2"
        ids, emb = ix.embeddings()
        for i, e in zip(ids, emb, strict=True):
            np.testing.assert_allclose(e, faces[int(i)], atol=1e-6)
        ref = ix.tag_references()[0]
        np.testing.assert_allclose(ref["embedding"], refs[ref["id"]], atol=1e-6)
        assert ref["model"] == "stub@2"
        records = {r.id: r for r in ix.records()}
        assert records[int(ids[0])].label == "mine" and "holiday" in records[int(ids[1])].tags
        assert {r.model for r in records.values()} == {"stub@2"}
        # searches use the new vectors, not the old model's cache
        d, found = ix.query(emb[3:4], k=1)
        assert int(found[0][0]) == int(ids[3]) and d[0][0] == pytest.approx(0.0, abs=1e-5)
        assert ix.reembed().summary().startswith("nothing to re-embed")
        ix.add(write_images(tmp_path / "q", 1, seed=9))  # the new model's faces are taken
        assert len(ix) == 6


def test_reembed_is_all_or_nothing_when_interrupted(tmp_path, store):
    db, _ = _index(tmp_path, db=store)
    before, _ = _expected(db)  # only to have the ids
    with FaceIndex(db, embedder=CropStub(fail_after=2)) as ix:
        old = ix.embeddings()[1].copy()
        with pytest.raises(KeyboardInterrupt):
            ix.reembed()
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix.model == "stub@1"
        np.testing.assert_array_equal(ix.embeddings()[1], old)
        assert {r.model for r in ix.records()} == {"stub@1"}
        assert sorted(ix.embeddings()[0].tolist()) == sorted(before)


def test_reembed_refuses_faces_without_a_crop_before_any_work(tmp_path):
    imgs = write_images(tmp_path / "p", 3)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder(), store_crops=False) as ix:
        ix.add(imgs)
    stub = CropStub()
    with FaceIndex(db, embedder=stub) as ix:
        with pytest.raises(ReembedError, match="3 of 3 faces keep no crop"):
            ix.reembed()
        assert ix.model == "stub@1" and stub.crops_seen == 0


def test_reembed_refuses_a_tag_whose_references_have_no_crop(tmp_path):
    db, _ = _index(tmp_path)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add_tag_reference("frown", ix.embeddings()[1][0], "stub@1")  # no crop
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ReembedError, match="tag frown has reference faces without a crop"):
            ix.reembed()
        assert ix.model == "stub@1"


def test_reembed_refuses_a_crop_that_does_not_decode(tmp_path):
    db, _ = _index(tmp_path)
    con = sqlite3.connect(db)
    con.execute("UPDATE faces SET crop = ? WHERE id = (SELECT MIN(id) FROM faces)", (b"junk",))
    con.commit()
    con.close()
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ReembedError, match=r"stored crop of faces id \d+ does not decode"):
            ix.reembed()
        assert ix.model == "stub@1"


def _meanwhile(monkeypatch: pytest.MonkeyPatch, db: Any, write: Any) -> None:
    """Make ``write(FaceIndex(db))`` run, as another writer would, once the references
    are embedded (the last reading before reembed writes)."""
    import exprsim.index.reembed as reembed_mod

    real = reembed_mod._embed_table

    def embed_then_write(index, table, *args):
        out = real(index, table, *args)
        if table == "tag_refs":
            with FaceIndex(db, embedder=StubEmbedder()) as other:
                write(other)
        return out

    monkeypatch.setattr(reembed_mod, "_embed_table", embed_then_write)


def test_reembed_notices_faces_removed_meanwhile(tmp_path, monkeypatch):
    """A writer that does not take the writer lock (``remove`` through the API) changed
    the faces while they were embedded: nothing is written."""
    db, imgs = _index(tmp_path)
    _meanwhile(monkeypatch, db, lambda other: other.remove([imgs[0]]))
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ReembedError, match="added, removed or changed while re-embedding"):
            ix.reembed()
        assert ix.model == "stub@1" and len(ix) == 4


def test_reembed_force_reembeds_an_index_of_the_same_model_and_drops_its_cache(tmp_path):
    db, _ = _index(tmp_path)
    with FaceIndex(db, embedder=CropStub("stub@1")) as ix:
        assert ix.reembed().n_faces == 0  # already of that model
        assert ix.ann_path.exists()
        report = ix.reembed(force=True)
        assert report.n_faces == 5 and not ix.ann_path.exists()
        ids, emb = ix.embeddings()
        _, found = ix.query(emb, k=1)
        assert [int(f[0]) for f in found] == [int(i) for i in ids]


def test_reembed_of_an_empty_index_does_nothing(tmp_path):
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=CropStub()) as ix:
        report = ix.reembed()
        assert report.n_faces == 0 and ix.model is None


class BatchNoise(CropStub):
    """A model whose output depends a little on the batch it is computed in (as a real
    forward pass's floats do)."""

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        emb = super().embed_crops(crops) + np.float32(1e-4) * len(crops)
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def test_copies_keep_one_embedding_and_stay_findable(tmp_path, store, monkeypatch):
    """Audit 19: copies of a photo embedded in different batches got embeddings a few ulps
    apart; PostgreSQL then kept the copy marked as a twin of nothing, and no search found
    it. Equal crops now get one embedding, and the marks are made again."""
    import shutil

    import exprsim.index.reembed as reembed_mod

    monkeypatch.setattr(reembed_mod, "CHUNK", 2)  # the copy lands in another chunk
    imgs = write_images(tmp_path / "p", 4)
    copy = tmp_path / "q" / "copy.png"
    copy.parent.mkdir()
    shutil.copy(imgs[0], copy)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add(imgs)
        ix.add([copy])
        assert len(ix) == 5
    with FaceIndex(store, embedder=BatchNoise()) as ix:
        ix.reembed()
        ids, emb = ix.embeddings()
        by_source = {r.source: r.id for r in ix.records()}
        first, twin = by_source[str(imgs[0].resolve())], by_source[str(copy.resolve())]
        row = {int(i): e for i, e in zip(ids, emb, strict=True)}
        np.testing.assert_array_equal(row[first], row[twin])
        _, found = ix.query(row[first][None], k=5)
        assert {first, twin} <= {int(f) for f in found[0]}


def test_a_reference_replaced_meanwhile_under_the_same_id_is_noticed(tmp_path, monkeypatch):
    """Audit 19: `tag remove` then `tag add` from another process while the references were
    embedded gave the new reference the removed one's id (SQLite reuses it) and then its
    embedding; reembed now compares the references' crops before writing."""
    db, _ = _index(tmp_path)

    def replace(other: FaceIndex) -> None:
        (ref,) = other.tag_references()
        other.remove_tag("smirk")
        crop = other.crop(int(other.embeddings()[0][0]))
        new = other.add_tag_reference("smirk", other.embeddings()[1][0], "stub@1", crop=crop)
        assert new == ref["id"]  # the same id, another face

    _meanwhile(monkeypatch, db, replace)
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ReembedError, match="changed while re-embedding"):
            ix.reembed()
        assert ix.model == "stub@1"


def test_an_emptied_index_takes_the_new_model(tmp_path):
    """Audit 19: an index emptied of its faces kept its old model, so searches with the new
    one were refused, and reembed said there was nothing to do."""
    from exprsim.apps.search import search

    db, imgs = _index(tmp_path)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.remove(imgs)
        ix.remove_tag("smirk")
        assert len(ix) == 0 and ix.model == "stub@1"
    with FaceIndex(db, embedder=CropStub()) as ix:
        with pytest.raises(ModelMismatchError):
            search(imgs[0], ix)
        report = ix.reembed()
        assert report.n_faces == 0 and "now takes model stub@2" in report.summary()
        assert ix.model == "stub@2"
        assert search(imgs[0], ix).hits == ()
