"""FaceIndex: round trip, incremental add, crash/resume, model refusal, removal, ANN cache.

Every test that takes the ``store`` fixture runs on both backends: a SQLite file and a
PostgreSQL + pgvector database (``conftest.py``; skipped with the reason when no server).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, grid_embedding, write_images

from exprsim.errors import ModelError
from exprsim.index.store import FaceIndex, ModelMismatchError
from exprsim.io import load_image

HERE = Path(__file__).resolve().parent


def test_round_trip(tmp_path: Path, store: str | Path) -> None:
    paths = write_images(tmp_path / "imgs", 6)
    db = store
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        report = index.add([tmp_path / "imgs"])
        assert report.count("added") == 6 and report.added_faces == 6
        assert index.model == "stub@1"
    with FaceIndex(db) as index:  # reopened, no embedder needed to read
        info = index.info()
        assert (info.n_files, info.n_faces, info.model) == (6, 6, "stub@1")
        recs = index.records()
        by_source = {r.source: r for r in recs}
        for p in paths:
            r = by_source[str(p.resolve())]
            np.testing.assert_allclose(r.embedding, grid_embedding(load_image(p)), atol=1e-7)
            assert r.box.tolist() == [0, 0, 32, 32] and r.quality_ok and r.detector == "mediapipe"
            assert index.crop(r.id).shape == (32, 32, 3)
        ids, emb = index.embeddings()
        assert emb.shape == (6, 16) and ids.tolist() == sorted(r.id for r in recs)
        dist, nn = index.query(emb, k=3)
        assert nn[:, 0].tolist() == ids.tolist()  # each face is its own nearest neighbour
        assert np.allclose(dist[:, 0], 0.0, atol=1e-3)
        assert (np.diff(dist, axis=1) >= 0).all()
        assert len(index.to_frame()) == 6 and list(report.to_frame().columns)[:2] == [
            "path",
            "status",
        ]
    if isinstance(db, Path):
        mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_incremental_add(tmp_path: Path, store: str | Path) -> None:
    paths = write_images(tmp_path / "imgs", 4)
    stub = StubEmbedder()
    with FaceIndex(store, embedder=stub) as index:
        index.add(paths)
        assert stub.calls == 4
        again = index.add(paths)
        assert again.count("skipped") == 4 and stub.calls == 4
        # same bytes, new mtime: not re-embedded
        os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
        assert index.add([paths[0]]).count("skipped") == 1 and stub.calls == 4
        # new content: re-embedded, old faces replaced
        write_images(tmp_path / "other", 1, seed=9)[0].replace(paths[1])
        rep = index.add(paths + write_images(tmp_path / "more", 1, seed=5))
        assert (rep.count("updated"), rep.count("added"), rep.count("skipped")) == (1, 1, 3)
        assert stub.calls == 6
        assert len(index) == 5 and index.info().n_files == 5


def test_failed_files_are_reported_not_raised(tmp_path: Path, store: str | Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    black = tmp_path / "black.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(black)
    with FaceIndex(store, embedder=StubEmbedder()) as index:
        rep = index.add([bad, black])
        by = {Path(f.path).name: f for f in rep.files}
        assert by["broken.jpg"].status == "failed" and "not an image" in by["broken.jpg"].error
        assert by["black.png"].status == "added" and by["black.png"].n_faces == 0
        assert index.info().n_failed_files == 1 and index.model is None  # no face: no model yet
        assert index.add([bad]).count("skipped") == 1
        assert index.add([bad], retry_failed=True).count("failed") == 1


def test_model_mismatch_is_refused(tmp_path: Path, store: str | Path) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    db = store
    with FaceIndex(db, embedder=StubEmbedder("stub@1")) as index:
        index.add(paths[:2])
    with FaceIndex(db, embedder=StubEmbedder("other@2")) as index:
        with pytest.raises(ModelMismatchError, match=r"stub@1.*other@2"):
            index.add(paths[2:])
        assert isinstance(ModelMismatchError("x"), ModelError)
        with pytest.raises(ModelMismatchError):
            index.add_tag_reference("smile", np.ones(16, np.float32) / 4, model="other@2")
        assert len(index) == 2 and index.model == "stub@1"


def test_remove_file_and_folder(tmp_path: Path, store: str | Path) -> None:
    a = write_images(tmp_path / "a", 3)
    write_images(tmp_path / "b", 2, seed=1)
    with FaceIndex(store, embedder=StubEmbedder()) as index:
        index.add([tmp_path / "a", tmp_path / "b"])
        gen = index.generation
        assert index.remove([a[0]]) == 1
        assert index.remove([tmp_path / "b"]) == 2
        assert index.remove([tmp_path / "nothing"]) == 0
        assert len(index) == 2 and index.generation > gen
        assert sorted(Path(r.source).name for r in index.records()) == [
            "img_0001.png",
            "img_0002.png",
        ]
        _, nn = index.query(np.ones(16, np.float32) / 4, k=5)
        assert sorted(nn[0, :2].tolist()) == sorted(r.id for r in index.records())
        assert nn[0, 2:].tolist() == [-1, -1, -1]


def test_ann_cache_is_rebuilt_when_stale(tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 3)
    db = tmp_path / "faces.db"
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        index.add([tmp_path / "imgs"])
        index.query(np.ones(16, np.float32) / 4, k=1)
        assert index.info().ann_fresh and index.info().ann_backend == "exact"
        write_images(tmp_path / "more", 1, seed=3)
        index.add([tmp_path / "more"])
        assert not index.info().ann_fresh
        _, nn = index.query(np.ones(16, np.float32) / 4, k=10)
        assert (nn[0] >= 0).sum() == 4 and index.info().ann_fresh
    Path(f"{db}.ann").write_bytes(b"garbage")  # a corrupt cache is rebuilt, not fatal
    with FaceIndex(db) as index:
        _, nn = index.query(np.ones(16, np.float32) / 4, k=10)
        assert (nn[0] >= 0).sum() == 4


def test_labels_tags_and_add_faces(tmp_path: Path, store: str | Path) -> None:
    stub = StubEmbedder()
    imgs = write_images(tmp_path / "imgs", 2)
    faces = stub.embed_images(imgs)
    with FaceIndex(store) as index:
        assert index.add_faces(faces, model="stub@1") == 2
        ids = [r.id for r in index.records()]
        index.set_label(ids[:1], "happy")
        index.add_tags(ids, ["b", "a"])
        index.add_tags(ids[:1], ["a", "c"])
        r0, r1 = index.get(ids)
        assert r0.label == "happy" and r1.label is None
        assert r0.tags == ("a", "b", "c") and r1.tags == ("a", "b")
        assert index.info().n_labelled == 1
        # tag references and the identity-descriptor cache
        e = np.ones(16, np.float32) / 4
        ref = index.add_tag_reference("smile", e, model="stub@1", source="x.png")
        assert index.add_tag_reference("smile", e, model="stub@1") == ref  # kept once
        refs = index.tag_references()
        assert [r["name"] for r in refs] == ["smile"] and np.allclose(refs[0]["embedding"], e)
        assert index.info().tag_names == ("smile",)
        index.store_identity_descriptors({ids[0]: np.arange(4, dtype=np.float32), ids[1]: None})
        index.store_identity_descriptors({ids[0]: np.ones(4, np.float32)})  # upsert
        got = index.identity_descriptors([*ids, 999_999])
        assert set(got) == set(ids) and got[ids[1]] is None
        np.testing.assert_array_equal(got[ids[0]], np.ones(4, np.float32))
        assert index.remove_tag("smile") == 1 and index.tag_references() == []
        assert list(index.files().columns)[:2] == ["path", "size"] and len(index.files()) == 2


def test_not_a_database(tmp_path: Path) -> None:
    from exprsim.errors import ExprsimError

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"hello world, not sqlite" * 100)
    with pytest.raises(ExprsimError, match="not a usable exprsim database"):
        FaceIndex(junk)
    with pytest.raises(ExprsimError, match="does not exist"):
        FaceIndex(tmp_path / "missing" / "faces.db")


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from stub_embedder import StubEmbedder
    from exprsim.index.store import FaceIndex
    FaceIndex({db!r}, embedder=StubEmbedder(delay=0.02)).add([{imgs!r}])
    """
)


def test_resume_after_kill(tmp_path: Path, store: str | Path, count_files) -> None:
    n = 120
    write_images(tmp_path / "imgs", n)
    db = store
    code = CHILD.format(here=str(HERE), db=str(db), imgs=str(tmp_path / "imgs"))
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if child.poll() is not None:
                break
            try:
                done = count_files()
            except Exception:  # the child is creating the tables
                continue
            if done >= 10:
                break
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    if isinstance(db, Path):
        with sqlite3.connect(db) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with FaceIndex(db) as index:
        c = index._db
        n_files, n_faces, dup = c.execute(
            "SELECT (SELECT COUNT(*) FROM files), (SELECT COUNT(*) FROM faces),"
            " (SELECT COUNT(*) FROM (SELECT file_id, face_index FROM faces"
            "  GROUP BY file_id, face_index HAVING COUNT(*) > 1) AS d)"
        ).fetchone()
    assert 10 <= n_files < n and n_faces == n_files and dup == 0
    stub = StubEmbedder()
    with FaceIndex(db, embedder=stub) as index:
        rep = index.add([tmp_path / "imgs"])
        assert rep.count("skipped") == n_files and rep.count("added") == n - n_files
        assert stub.calls == n - n_files
        assert len(index) == n and index.info().n_files == n
        srcs = [r.source for r in index.records()]
        assert len(set(srcs)) == n


def test_large_index_uses_faiss_ivf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faiss")
    from exprsim.index import ann

    monkeypatch.setattr(ann, "EXACT_MAX", 100)
    rng = np.random.default_rng(0)
    faces = []
    stub = StubEmbedder()
    proto = stub.embed_images(
        [np.full((8, 8, 3), 9, np.uint8) + np.eye(8, dtype=np.uint8)[..., None]]
    )[0]
    for i in range(400):
        e = rng.standard_normal(16).astype(np.float32)
        faces.append(type(proto)(f"src{i}", 0, proto.aligned, e / np.linalg.norm(e)))
    with FaceIndex(tmp_path / "faces.db") as index:
        index.add_faces(faces, model="stub@1")
        ids, emb = index.embeddings()
        dist, nn = index.query(emb[:20], k=5)
        assert index.info().ann_backend == "faiss-ivf"
        assert (nn[:, 0] == ids[:20]).all() and np.allclose(dist[:, 0], 0, atol=1e-3)
