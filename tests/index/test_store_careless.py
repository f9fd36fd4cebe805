"""FaceIndex called carelessly: one path instead of a list, the same file twice, a file name
that is not UTF-8, bad queries and embeddings, an IVF cache built while empty (the fourth
robustness round, docs/robustness.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index import ann
from exprsim.index.store import FaceIndex


def test_one_path_is_one_input_for_add_and_remove(tmp_path: Path, store) -> None:
    paths = write_images(tmp_path / "imgs", 4)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        report = ix.add(str(paths[0]))  # a string, not a list
        assert [o.status for o in report.files] == ["added"]
        ix.add(paths)
        assert len(ix) == 4
        # a string used to be read character by character: "/" matched every stored path
        assert ix.remove(str(paths[1])) == 1
        assert len(ix) == 3 and str(paths[1].resolve()) not in {r.source for r in ix.records()}
        assert ix.remove(paths[2]) == 1 and len(ix) == 2  # a Path too


def test_the_same_file_named_twice_is_counted_once(tmp_path: Path, monkeypatch) -> None:
    (p,) = write_images(tmp_path / "imgs", 1)
    monkeypatch.chdir(tmp_path)
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        report = ix.add([p, str(p), Path("imgs") / p.name])
        assert len(report.files) == 1 and report.added_faces == 1 and len(ix) == 1


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes")
def test_a_name_that_is_not_utf8_fails_alone(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    (good,) = write_images(folder, 1)
    bad = os.fsdecode(bytes(folder) + b"/caf\xe9.png")
    Path(bad).write_bytes(good.read_bytes())
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        report = ix.add([folder])
        by_status = {o.status: o for o in report.files}
        assert set(by_status) == {"added", "failed"} and len(ix) == 1
        failed = by_status["failed"]
        assert "not valid UTF-8" in failed.error and failed.path.endswith("caf\\xe9.png")
        failed.path.encode("utf-8")  # printable, storable
        assert ix.remove(bad) == 0  # never stored, nothing to remove, no crash


def test_queries_and_k_are_checked(tmp_path: Path, store) -> None:
    write_images(tmp_path / "imgs", 3)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([tmp_path / "imgs"])
        q = ix.embeddings()[1][:1]
        for k in (0, -1, 2.5, True, "3"):
            with pytest.raises(ExprsimError, match="k must be"):
                ix.query(q, k=k)
        for bad in (np.full(16, np.nan), np.full(16, np.inf)):
            with pytest.raises(ExprsimError, match="NaN or infinite"):
                ix.query(bad, k=2)
        _, ids = ix.query(q, k=5)  # more than stored: padded
        assert ids.dtype == np.int64 and ids[0, 3:].tolist() == [-1, -1]


def test_exact_index_pads_with_int64_ids() -> None:
    d, i = ann.ExactIndex(np.zeros((0, 16), np.float32)).search(np.ones((2, 16)), 3)
    assert i.dtype == np.int64 and i.tolist() == [[-1] * 3] * 2 and np.isinf(d).all()


def test_bad_embeddings_never_reach_the_database(tmp_path: Path, store) -> None:
    write_images(tmp_path / "imgs", 2)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add([tmp_path / "imgs"])
        good = ix.embeddings()[1][0]
        for bad, why in ((np.ones(8), "16 values"), (np.full(16, np.nan), "NaN")):
            with pytest.raises(ExprsimError, match=why):
                ix.add_tag_reference("short", bad, "stub@1")
        assert ix.tag_references() == []
        rec = ix.records()[0]
        poisoned = SimpleNamespace(
            source="elsewhere.jpg", face_index=0, embedding=np.full(16, np.nan), aligned=None
        )
        with pytest.raises(ExprsimError, match="NaN"):
            ix.add_faces([poisoned], "stub@1")
        assert len(ix) == 2
        ix.add_tag_reference("fine", good, "stub@1")
        ix.add_tags([rec.id], "happy")  # one string is one tag
        assert ix.get([rec.id])[0].tags == ("happy",)


@pytest.mark.skipif(not ann.faiss_available(), reason="faiss-cpu not installed")
def test_ivf_built_while_empty_is_rebuilt_not_broken(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    write_images(tmp_path / "imgs", 5)
    with FaceIndex(db, embedder=StubEmbedder(), ann_backend="faiss-ivf") as ix:
        ix.add([tmp_path / "imgs"])
        ix.rebuild_ann()
        ix.remove([tmp_path / "imgs"])
        assert ix.rebuild_ann().count == 0  # an IVF over nothing: no centroids
        ix.add([tmp_path / "imgs"])
        q = ix.embeddings()[1]
        _, ids = ix.query(q, k=1)  # used to be faiss's "'is_trained' failed"
        assert sorted(ids[:, 0].tolist()) == sorted(ix.embeddings()[0].tolist())
    with FaceIndex(db, ann_backend="faiss-ivf") as ix:  # reopened: fine too
        assert ix.query(q, k=1)[1][:, 0].tolist() == ids[:, 0].tolist()
