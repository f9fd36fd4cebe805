"""FaceIndex inputs found by the sixth audit (docs/robustness.md): a blank path given to
remove, faces of in-memory images, tag references that are not unit vectors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


@pytest.mark.parametrize("bad", ["", "  ", [""], [Path("x.png"), ""], "/", "//"])
def test_remove_refuses_a_blank_path_or_the_root_and_removes_nothing(
    tmp_path: Path, store, bad
) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        with pytest.raises(ExprsimError, match="nothing was removed"):
            ix.remove(bad)  # "" emptied the whole index
        assert len(ix) == 3
        assert ix.remove(paths[0]) == 1 and len(ix) == 2  # a real path still works


def _face(source: str, i: int = 0) -> SimpleNamespace:
    from exprsim.faces.types import AlignedFace, Face, Quality

    emb = np.zeros(16, np.float32)
    emb[i % 16] = 1.0
    face = Face(np.array([0, 0, 9, 9], np.float32), 0.9, np.zeros((5, 2), np.float32))
    aligned = AlignedFace(face, np.zeros((8, 8, 3), np.uint8), Quality(5.0, 0, 0, 0, True))
    return SimpleNamespace(source=source, face_index=0, aligned=aligned, embedding=emb)


def test_faces_of_in_memory_images_are_refused_not_merged(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        model = ix.embedder.config.name_version
        # two images given as pixels: a raw sqlite3 IntegrityError in one call, and the
        # second replaced the first across calls
        with pytest.raises(ExprsimError, match=r"in-memory image \(source <array>\)"):
            ix.add_faces([_face("a.png", 1), _face("<array>", 2)], model)
        assert len(ix) == 0  # nothing stored, not even the good one
        assert ix.add_faces([_face(str(tmp_path / "a.png"))], model) == 1


def test_tag_references_are_stored_as_unit_vectors(tmp_path: Path, caplog) -> None:
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        model = ix.embedder.config.name_version
        e = np.zeros(16, np.float32)
        e[3] = 10.0  # the right direction, ten times too long: never matched before
        ix.add_tag_reference("wide", e, model)
        assert "normalised to 1" in caplog.text
        (stored,) = [r for r in ix.tag_references() if r["name"] == "wide"]
        np.testing.assert_allclose(stored["embedding"], e / 10.0, rtol=1e-6)
        with pytest.raises(ExprsimError, match="all-zero"):
            ix.add_tag_reference("zero", np.zeros(16), model)
        with pytest.raises(ExprsimError, match="non-empty string"):
            ix.add_tag_reference(None, e, model)  # type: ignore[arg-type]


# ------------------------------------------------------------ index/search side (audit A)


def test_an_ann_cache_of_another_history_is_rebuilt(tmp_path: Path) -> None:
    """A backup restored and written again reaches the cache's generation and face ids
    with other faces: the cache (kept beside it) ranked a face at 0.03 instead of 1.23."""
    import shutil

    paths = write_images(tmp_path / "imgs", 5)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[:1])
    shutil.copy(db, tmp_path / "backup.db")
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[1:3])
        ix.refresh_ann()  # the cache now holds faces 1-3 of this history
    shutil.copy(tmp_path / "backup.db", db)  # restore; the cache files stay
    for extra in (tmp_path / "f.db-wal", tmp_path / "f.db-shm"):
        extra.unlink(missing_ok=True)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[3:5])  # same generation and face ids as the cache, other faces
        recs = {r.id: r.embedding for r in ix.records()}
        for fid, emb in recs.items():
            dist, ids = ix.query(emb[None], k=1)
            assert ids[0, 0] == fid and dist[0, 0] < 1e-5  # each face finds itself


def test_reindexing_a_changed_file_keeps_labels_tags_and_a_failed_one_keeps_its_faces(
    tmp_path: Path,
) -> None:
    (p,) = write_images(tmp_path / "imgs", 1)
    data = p.read_bytes()
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add([p])
        ids = [r.id for r in ix.records()]
        ix.set_label(ids, "grandma")
        ix.add_tags(ids, "favourite")
        p.write_bytes(data + b"\0" * 16)  # a tool rewrote the file: same pixels
        assert [o.status for o in ix.add([p]).files] == ["updated"]
        assert [(r.label, r.tags) for r in ix.records()] == [("grandma", ("favourite",))]
        p.write_bytes(data[:300])  # a half-copied version, for a moment
        (out,) = ix.add([p]).files
        assert out.status == "failed" and "indexed before are kept" in out.error
        assert [(r.label, r.tags) for r in ix.records()] == [("grandma", ("favourite",))]
        p.write_bytes(data)  # fixed: indexed again
        assert [o.status for o in ix.add([p]).files] == ["updated"]


def test_auto_keeps_the_backend_of_an_explicit_rebuild(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    paths = write_images(tmp_path / "imgs", 4)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths[:2])
        ix.rebuild_ann("faiss-hnsw")
        ix.add(paths[2:])
        assert ix.refresh_ann("auto").backend == "faiss-hnsw"  # was rebuilt as exact
        assert ix.info().ann_backend == "faiss-hnsw"


@pytest.mark.parametrize("text", ["null", "[]", '"x"', '{"generation": 1e999}'])
def test_a_damaged_ann_stamp_is_rebuilt_not_fatal(tmp_path: Path, text: str) -> None:
    paths = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths)
        ix.refresh_ann()
        ix.ann_stamp_path.write_text(text)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        assert ix.refresh_ann().count == 2  # AttributeError / OverflowError before


@pytest.mark.parametrize(
    ("sql", "match"),
    [
        ("UPDATE meta SET value = '1.0' WHERE key = 'schema'", r"damaged database \(schema"),
        ("UPDATE faces SET tags = 'happy'", "tags 'happy' are not JSON"),
        ("UPDATE faces SET landmarks = x'00000000'", "1 landmark values"),
    ],
)
def test_damaged_database_contents_are_one_line(tmp_path: Path, sql: str, match: str) -> None:
    import sqlite3

    paths = write_images(tmp_path / "imgs", 1)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths)
    with sqlite3.connect(tmp_path / "f.db") as conn:
        conn.execute(sql)
    with (
        pytest.raises(ExprsimError, match=match),
        FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix,
    ):
        ix.records()


def test_a_database_that_cannot_be_written_is_read_only(tmp_path: Path, monkeypatch) -> None:
    import exprsim.index.backends as backends

    paths = write_images(tmp_path / "imgs", 3)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[:2])
        before = {r.id: r.embedding for r in ix.records()}
    # read-only media (root may write anything, so the check itself is made to say no)
    monkeypatch.setattr(backends, "writable", lambda path: False)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:  # was "not a usable exprsim database"
        assert len(ix) == 2 and ix.info().n_faces == 2
        _, ids = ix.query(before[1][None], k=1)
        assert ids[0, 0] == 1
        with pytest.raises(ExprsimError, match="read-only"):
            ix.add(paths[2:])
        with pytest.raises(ExprsimError, match="read-only"):
            ix.remove(paths[0])
    monkeypatch.undo()
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert len(ix) == 2  # nothing changed


def test_a_tiny_ivf_index_prints_nothing_on_stderr(capfd) -> None:
    pytest.importorskip("faiss")
    from exprsim.index.ann import build_faiss_ivf

    x = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    index = build_faiss_ivf(x)
    capfd.readouterr()  # (the build itself above)
    build_faiss_ivf(x)
    assert "clustering" not in capfd.readouterr().err  # faiss's C++ warning, past -q
    assert len(index) == 5


def test_a_copy_under_another_path_takes_the_faces_of_the_first(tmp_path: Path) -> None:
    import shutil

    (p,) = write_images(tmp_path / "imgs", 1)
    copy = tmp_path / "elsewhere" / "copy.png"
    copy.parent.mkdir()
    shutil.copy(p, copy)
    stub = StubEmbedder()
    with FaceIndex(tmp_path / "f.db", embedder=stub) as ix:
        ix.add([p])
        calls = stub.calls
        (out,) = ix.add([copy]).files
        assert out.status == "added" and out.n_faces == 1
        assert stub.calls == calls  # not embedded again (it was: the faces of the same bytes)
        recs = sorted(ix.records(), key=lambda r: r.id)
        assert [r.source for r in recs] == [str(p.resolve()), str(copy.resolve())]
        np.testing.assert_array_equal(recs[0].embedding, recs[1].embedding)
        assert recs[0].sha256 == recs[1].sha256 and recs[1].face_index == 0
        _, ids = ix.query(recs[0].embedding[None], k=2)  # the ANN cache has both
        assert sorted(ids[0].tolist()) == [recs[0].id, recs[1].id]
        assert ix.remove(p) == 1 and len(ix) == 1  # the copy stands alone


def test_retag_replaces_managed_tags_in_one_transaction(tmp_path: Path, monkeypatch) -> None:
    paths = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths)
        a, b = (r.id for r in ix.records())
        ix.add_tags([a], ["smiley", "mine"])
        assert ix.retag({a: ["neutral"], b: ["smiley"]}, managed={"smiley", "neutral"}) == 2
        tags = {r.id: r.tags for r in ix.records()}
        assert tags == {a: ("mine", "neutral"), b: ("smiley",)}  # the user's tag stays
        # a failure half-way changes nothing (it was two transactions: remove, then add)
        import exprsim.index.store as store_mod

        real = store_mod._tags_of
        calls = []

        def fail_on_second(text):
            calls.append(text)
            if len(calls) == 2:
                raise RuntimeError("disk gone")
            return real(text)

        monkeypatch.setattr(store_mod, "_tags_of", fail_on_second)
        with pytest.raises(RuntimeError):
            ix.retag({a: [], b: []}, managed={"smiley", "neutral"})
        monkeypatch.undo()
        assert {r.id: r.tags for r in ix.records()} == tags
