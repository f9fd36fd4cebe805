"""``exprsim index reembed``: an index of an older model searched again after re-embedding."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_run import one_line, run

from exprsim.samples import sample_path


def _old_model_index(tmp_path: Path, embedder, n: int = 3) -> Path:
    """An index of real sample photos whose faces are recorded as another model's (as an
    index built before an upgrade)."""
    from exprsim.index.store import FaceIndex

    db = tmp_path / "old.db"
    names = ("grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame144.jpg")
    with FaceIndex(db, embedder=embedder) as ix:
        ix.add([sample_path(name) for name in names[:n]])
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = 'older@1' WHERE key = 'model'")
    con.execute(
        "UPDATE faces SET model = 'older@1', embedding = ?", (np.ones(16, "<f4").tobytes(),)
    )
    con.commit()
    con.close()
    return db


@pytest.mark.slow
def test_index_reembed_lets_an_older_models_index_be_searched_again(
    tmp_path, capsys, monkeypatch, random_model_dir
):
    from exprsim.index.store import FaceIndex
    from exprsim.models.embedder import load_model

    embedder = load_model(str(random_model_dir))
    import exprsim.cli.apps_cmd as apps_cmd

    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: embedder)
    db = _old_model_index(tmp_path, embedder)
    query = sample_path("grace_hopper.jpg")
    rc, out, err = run(capsys, "search", "-q", str(query), "--db", str(db), "-k", "1")
    assert rc == 2 and "exprsim index reembed" in one_line(err)
    rc, out, err = run(capsys, "index", "reembed", "--db", str(db))
    assert rc == 0, err
    assert out.strip().startswith("re-embedded 3 faces with ") and "(was older@1)" in out
    with FaceIndex(db, embedder=embedder) as ix:  # each face: its stored crop, embedded now
        ids, emb = ix.embeddings()
        crops = np.stack([ix.crop(int(i)) for i in ids])
        np.testing.assert_allclose(emb, embedder.embed_crops(crops), atol=1e-5)
    rc, out, err = run(capsys, "search", "-q", str(query), "--db", str(db), "-k", "1",
                       "--include-same-image")  # fmt: skip
    assert rc == 0, err
    assert "grace_hopper.jpg" in out
    rc, out, err = run(capsys, "index", "reembed", "--db", str(db))
    assert rc == 0 and out.startswith("nothing to re-embed")


def _stub_index(tmp_path: Path) -> Path:
    from stub_embedder import StubEmbedder, write_images

    from exprsim.index.store import FaceIndex

    db = tmp_path / "s.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "p", 3))
    return db


class _CropStub:
    """Embeds crops (as ``Embedder.embed_crops``) under the name ``stub@2``."""

    def __init__(self) -> None:
        from stub_embedder import StubConfig

        self.config = StubConfig("stub@2")
        self.embedding_dim = 16

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        from stub_embedder import grid_embedding

        return np.stack([-grid_embedding(c) for c in crops])


@pytest.mark.parametrize(
    ("where", "said", "model"),
    [
        ("_drop_ann_cache", "the index was re-embedded", "stub@2"),  # after the commit
        ("_write", "nothing was written", "stub@1"),  # before it
    ],
)
def test_ctrl_c_says_whether_the_index_was_reembedded(
    tmp_path, capsys, monkeypatch, where, said, model
):
    """Audit 19: a Ctrl-C after the writing transaction said "nothing was written"."""
    import exprsim.cli.apps_cmd as apps_cmd
    import exprsim.index.reembed as reembed_mod
    from exprsim.index.store import FaceIndex

    db = _stub_index(tmp_path)
    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: _CropStub())

    def interrupted(*args) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(reembed_mod, where, interrupted)
    rc, _, err = run(capsys, "index", "reembed", "--db", str(db))
    assert rc == 130 and said in one_line(err)
    with FaceIndex(db, embedder=_CropStub()) as ix:
        assert ix.model == model


def test_the_hint_names_the_database_and_the_model_option(tmp_path, capsys, monkeypatch):
    """Audit 19: "`exprsim index reembed` re-embeds its faces with the current model" was not
    runnable (no --db) and, after `search --model X`, re-embedded with the default model."""
    import exprsim.cli.apps_cmd as apps_cmd

    db = _stub_index(tmp_path)
    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: _CropStub())
    rc, _, err = run(capsys, "index", "add", str(tmp_path / "p"), "--db", str(db))
    line = one_line(err)
    assert rc == 2 and "exprsim index reembed --db DB" in line and "--model" in line
