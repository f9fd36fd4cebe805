"""Round 33: a long-lived ``FaceIndex`` opened with ``"auto"`` follows the ANN backend
recorded for the database as another process changes it; before, it kept the one recorded
when it opened, searched with it, and saved its cache over the user's choice after every
write (each process then rebuilt the other's cache in turn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.index import ann as ann_mod
from exprsim.index.store import FaceIndex


def test_an_auto_index_follows_a_choice_made_elsewhere(tmp_path: Path) -> None:
    if not ann_mod.faiss_available():
        pytest.skip("faiss is not installed")
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as cli:
        cli.add(write_images(tmp_path / "a", 4))
        cli.rebuild_ann("faiss-hnsw")
    server = FaceIndex(db, embedder=StubEmbedder())  # open, searching, for a long time
    q = np.eye(16, dtype=np.float32)[0]
    server.query(q, 2)
    assert server._ann_stamp.backend == "faiss-hnsw"
    with FaceIndex(db, embedder=StubEmbedder()) as cli:  # the user chooses exact search
        cli.rebuild_ann("exact")
        cli.add(write_images(tmp_path / "b", 3, seed=5))
    server.query(q, 2)
    assert server._ann_stamp.backend == "exact"  # was faiss-hnsw
    stamp = ann_mod.read_cache_stamp(server.ann_path)
    assert stamp is not None and stamp.backend == "exact"  # was overwritten with faiss-hnsw
    assert server.info().ann_fresh
    server.close()


def test_an_explicit_backend_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as cli:
        cli.add(write_images(tmp_path / "a", 4))
        cli.rebuild_ann("exact")
    with FaceIndex(db, embedder=StubEmbedder(), ann_backend="exact") as mine:
        with FaceIndex(db, embedder=StubEmbedder()) as cli:
            cli.rebuild_ann("auto")
            cli.add(write_images(tmp_path / "b", 2, seed=3))
        mine.query(np.eye(16, dtype=np.float32)[0], 1)
        assert mine._ann_stamp.backend == "exact"
