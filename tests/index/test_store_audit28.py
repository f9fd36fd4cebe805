"""Round 28 (docs/robustness.md): rows stored before ``files.ctime_ns`` get it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from stub_embedder import StubEmbedder
from test_store_audit27 import _bmp, _rewrite_keeping_time, run_sql

from exprsim.index import store as store_mod
from exprsim.index.store import FaceIndex


def _forget_ctimes(store: str | Path) -> None:
    """Rows as an index made before ``files.ctime_ns`` left them once it got the column."""
    run_sql(store, "UPDATE files SET ctime_ns = NULL")


def _ctimes(ix: FaceIndex) -> dict[str, int | None]:
    rows = ix._db.execute("SELECT path, ctime_ns FROM files").fetchall()
    return {Path(r[0]).name: r[1] for r in rows}


def test_a_row_without_a_change_time_gets_one_when_found_unchanged(store, tmp_path):
    photo = tmp_path / "a.bmp"
    _bmp(photo, 0)
    stub = StubEmbedder()
    with FaceIndex(store, embedder=stub) as ix:
        ix.add([photo])
    _forget_ctimes(store)
    with FaceIndex(store, embedder=stub) as ix:
        assert [o.status for o in ix.add([photo]).files] == ["skipped"]
        assert _ctimes(ix) == {"a.bmp": os.stat(photo).st_ctime_ns}
        _rewrite_keeping_time(photo, _bmp(tmp_path / "b.bmp", 1))
        assert [o.status for o in ix.add([photo]).files] == ["updated"]  # was "skipped"
    assert stub.calls == 2


def test_change_times_are_recorded_a_batch_at_a_time(tmp_path, monkeypatch):
    db = tmp_path / "faces.db"
    photos = [tmp_path / f"{i}.bmp" for i in range(7)]
    for i, photo in enumerate(photos):
        _bmp(photo, i)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(photos)
    _forget_ctimes(db)
    monkeypatch.setattr(store_mod, "STAMP_BATCH", 3)
    batches: list[int] = []
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        stamp = ix._stamp_ctimes
        monkeypatch.setattr(ix, "_stamp_ctimes", lambda s: (batches.append(len(s)), stamp(s)))
        assert {o.status for o in ix.add(photos).files} == {"skipped"}
        assert sorted(v for v in _ctimes(ix).values()) == sorted(
            os.stat(p).st_ctime_ns for p in photos
        )
        # the rows have one now: a second pass records nothing
        batches_before = list(batches)
        ix.add(photos)
    assert batches_before == [3, 3, 1]
    assert batches[len(batches_before) :] == [0]


def test_a_row_changed_meanwhile_is_not_stamped(tmp_path):
    db, photo = tmp_path / "faces.db", tmp_path / "a.bmp"
    _bmp(photo, 0)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([photo])
        ix._db.execute("UPDATE files SET ctime_ns = NULL")
        row = ix._db.execute("SELECT id, size, mtime_ns FROM files").fetchone()
        stamps = [(123, row[0], row[1], row[2] + 1)]  # another writer moved mtime_ns
        ix._stamp_ctimes(stamps)
        assert stamps == []
        assert _ctimes(ix) == {"a.bmp": None}


# -- two writers at once (the mixed-versions audit: PostgreSQL) -------------------------------


def _random_faces(n: int, seed: int, prefix: str) -> list:
    proto = StubEmbedder().embed_images([np.full((8, 8, 3), 9, np.uint8)])[0]
    e = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return [type(proto)(f"{prefix}{i}", 0, proto.aligned, v) for i, v in enumerate(e)]


def test_an_emptied_index_never_takes_two_models_at_once(store):
    """Two writers of two models into an emptied index: both stored their faces (1 run in 3
    in the audit; every later search mixed them). The second now waits, then is refused."""
    import threading

    import pytest

    from exprsim.index.store import ModelMismatchError

    with FaceIndex(store) as ix:
        ix.add_faces(_random_faces(3, 0, "old"), model="m@7")
        ix.remove(["old0", "old1", "old2"])
        assert len(ix) == 0 and ix.model == "m@7"
    outcome: dict[str, object] = {}
    first_in = threading.Event()
    with FaceIndex(store) as a, FaceIndex(store) as b:

        def second() -> None:
            first_in.wait()
            try:
                b.add_faces(_random_faces(4, 2, "new"), model="m@8")
                outcome["b"] = "stored"
            except ModelMismatchError as exc:
                outcome["b"] = exc

        thread = threading.Thread(target=second)
        thread.start()
        with a._transaction() as c:  # the first writer, its transaction still open
            a._write_file(c, "kept0", None, None, "m@7", _random_faces(1, 1, "k"), None, None)
            first_in.set()
            thread.join(1.5)
            assert thread.is_alive()  # waiting for the first writer (was: its own faces in)
        thread.join(30)
        assert isinstance(outcome["b"], ModelMismatchError)  # was "stored": @7 and @8 mixed
        rows = a._db.execute("SELECT DISTINCT model FROM faces").fetchall()
        assert [r[0] for r in rows] == ["m@7"] and a.model == "m@7"
    with pytest.raises(ModelMismatchError):
        FaceIndex(store).add_faces(_random_faces(1, 3, "x"), model="m@8")


def test_every_writer_takes_the_generation_before_anything_else(tmp_path):
    """PostgreSQL: `add` took the twins' lock (deleting and inserting faces) before the
    generation, `remove` the generation before the twins' lock: the two deadlocked ("deadlock
    detected", 4 of 8 runs in the audit). Every writer now takes the generation first."""
    db = tmp_path / "faces.db"
    with FaceIndex(db) as ix:
        ix.add_faces(_random_faces(2, 0, "a"), model="m@1")
        statements: list[str] = []
        real = ix._db.execute

        def spy(sql, params=()):
            statements.append(" ".join(str(sql).split()))
            return real(sql, params)

        ix._db.execute = spy  # type: ignore[method-assign]
        writes = ("UPDATE", "DELETE", "INSERT")

        def first_write() -> str:
            done = [s for s in statements if s.startswith(writes)]
            statements.clear()
            return done[0] if done else ""

        generation = "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
        ix.add_faces(_random_faces(2, 1, "a"), model="m@1")  # replaces a0, a1
        assert first_write().startswith(generation)  # was: DELETE FROM files
        ix.remove(["a0"])
        assert first_write().startswith(generation)
        ix.add_tag_reference("t", _random_faces(1, 2, "r")[0].embedding, "m@1")
        assert first_write() == "UPDATE meta SET value = value WHERE key = 'generation'"


def test_an_identity_row_without_a_descriptor_is_asked_again(store, tmp_path):
    """exprsim before round 13 cached NULL for an image it could not read; read as "dlib
    found no face" it hid a same-person face for good once the file was back."""
    photo = tmp_path / "a.bmp"
    _bmp(photo, 0)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([photo])
        (fid,) = [r.id for r in ix.records()]
        ix._db.execute("INSERT INTO identity (face_id, descriptor) VALUES (?, NULL)", (fid,))
        assert ix.identity_descriptors([fid]) == {}  # unknown: computed again (was {fid: None})
        ix.store_identity_descriptors({fid: None})  # dlib found no face: kept as such
        assert ix.identity_descriptors([fid]) == {fid: None}
        ix.store_identity_descriptors({fid: np.ones(128, np.float32)})
        np.testing.assert_array_equal(ix.identity_descriptors([fid])[fid], np.ones(128))
