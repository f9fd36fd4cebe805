"""Eighteenth audit round, the index: a loop of symbolic links is named as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder

from exprsim.errors import ImageError
from exprsim.index.store import FaceIndex
from exprsim.io import load_image


def test_a_link_loop_is_named_as_such_by_load_image_and_index_add(tmp_path: Path) -> None:
    """Before: ``loop.jpg`` read "no such file" (it is there) and ``index add`` said "cannot
    stat (Too many levels of symbolic links)"; a broken link still reads "no such file"."""
    (tmp_path / "a.jpg").symlink_to(tmp_path / "loop.jpg")
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(tmp_path / "a.jpg")
    broken = tmp_path / "broken.jpg"
    broken.symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageError, match="loop of symbolic links"):
        load_image(loop)
    with pytest.raises(ImageError, match="no such file"):
        load_image(broken)
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as index:
        by = {Path(f.path).name: f.error for f in index.add([loop, broken]).files}
    assert by == {
        "loop.jpg": "a loop of symbolic links (no file at its end)",
        "broken.jpg": "no such file",
    }


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("cafe\u0301", "composed form"),
        ("joy\u2028FORGED", "line or paragraph separator"),
        ("joy\u2029x", "line or paragraph separator"),
    ],
)
def test_new_tag_names_are_composed_and_on_one_line(name: str, why: str) -> None:
    """Before: both were taken: a decomposed ``café`` became a second ``café``, and
    U+2028 went raw into the printed table and the CSV (line-based readers split there)."""
    from exprsim.errors import ExprsimError
    from exprsim.index.store import check_new_tag_name, compose_tag_name

    with pytest.raises(ExprsimError, match=why):
        check_new_tag_name(name)
    check_new_tag_name(compose_tag_name("cafe\u0301"))  # what the CLI and the web pass on
    assert compose_tag_name("cafe\u0301") == "caf\u00e9"
    assert compose_tag_name("caf\u00e9", ["cafe\u0301", "tea"]) == "cafe\u0301"  # stored so
    assert compose_tag_name("tea", ["cafe\u0301", "tea"]) == "tea"


def test_an_ann_cache_of_another_history_with_the_same_highest_ids_is_rebuilt(
    tmp_path: Path,
) -> None:
    """Audit: back up, remove face 2 (the cache catches up), restore, remove face 3: the
    database reaches the cache's generation with the same highest ids and count, and the
    cache (kept beside it) was taken as fresh: face 2 was not found, face 3 was."""
    import shutil

    from stub_embedder import write_images

    paths = write_images(tmp_path / "imgs", 12)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        ix.refresh_ann()
    shutil.copy(db, tmp_path / "backup.db")
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.remove([paths[1]])
        ix.query(np.zeros((1, 16), np.float32) + 0.25, k=1)  # the cache catches up and saves
    shutil.copy(tmp_path / "backup.db", db)  # restore the database only
    for extra in (tmp_path / "f.db-wal", tmp_path / "f.db-shm"):
        extra.unlink(missing_ok=True)
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.remove([paths[2]])
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        recs = {r.id: r.embedding for r in ix.records()}
        assert len(recs) == 11
        for fid, emb in recs.items():
            dist, ids = ix.query(emb[None], k=1)
            assert ids[0, 0] == fid and dist[0, 0] < 1e-5  # each face finds itself
        assert ix.info().ann_fresh
