"""A SQLite index opened through a link to its file is that file: one writer lock, one ANN
cache (was: a second lock and a second cache beside the link, the work done twice)."""

from __future__ import annotations

from pathlib import Path

from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex


def test_a_link_to_the_database_shares_its_lock_and_ann_cache(tmp_path: Path) -> None:
    db = tmp_path / "faces.db"
    alias = tmp_path / "alias.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "a", 3))
        ix.rebuild_ann("exact")
    alias.symlink_to(db.name)
    with FaceIndex(alias, embedder=StubEmbedder()) as ix:
        assert Path(ix.path) == db.resolve()
        assert ix.info().ann_fresh  # the cache built under the real name serves it
        ix.add(write_images(tmp_path / "b", 2, seed=1))
        ix.refresh_ann()
        assert len(ix) == 5
    assert sorted(p.name for p in tmp_path.glob("alias*")) == ["alias.db"]
    assert (tmp_path / "faces.db.lock").exists() and (tmp_path / "faces.db.ann").exists()
