"""Round 35: faces stored with another model than the index's (another program's edit, a
newer exprsim's rows) are re-embedded; "nothing to re-embed" was said while they were
ranked with the rest."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stub_embedder import StubEmbedder, grid_embedding, write_images

from exprsim.index.store import FaceIndex


class CropStub(StubEmbedder):
    embedding_dim = 16

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        return np.stack([grid_embedding(c) for c in crops])


def test_faces_of_another_model_are_re_embedded(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "p", 4))
        want = {int(i): grid_embedding(ix.crop(int(i))) for i in ix.embeddings()[0]}
    con = sqlite3.connect(db)
    con.execute("UPDATE faces SET model = 'stub@9', embedding = ? WHERE id = 2", (bytes(64),))
    con.commit()
    con.close()
    with FaceIndex(db, embedder=CropStub()) as ix:
        report = ix.reembed()
        assert report.n_faces == 4
        ids, emb = ix.embeddings()
        for i, e in zip(ids, emb, strict=True):
            np.testing.assert_allclose(e, want[int(i)], atol=1e-6)
        assert {r.model for r in ix.records()} == {"stub@1"}
        assert ix.reembed().summary().startswith("nothing to re-embed")
