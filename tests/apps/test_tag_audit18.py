"""Eighteenth audit round, tags: the calibrated threshold of one model is not used on an
index of another model's embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.tag import Tagger
from exprsim.index.store import FaceIndex, ModelMismatchError


def test_tagging_an_index_of_another_model_needs_a_threshold(tmp_path: Path) -> None:
    """Audit: ``tag --index`` (and the web's ``/api/tags/NAME/faces``) on an index made
    with exprnet_ens@6 used exprnet_ens@8's calibrated threshold: 7 faces tagged where the
    old model's own threshold tagged 4, exit 0, no word."""
    paths = write_images(tmp_path / "imgs", 6)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1")) as ix:
        ix.add(paths)
        _, emb = ix.embeddings()
        old = Tagger(ix, embedder=StubEmbedder("stub@1"))
        old.add_embedding("smile", emb[0], "stub@1")
        expected = old.tag_index(threshold=0.5)
        new = Tagger(ix, embedder=StubEmbedder("stub@2"))
        with pytest.raises(ModelMismatchError, match="give a threshold"):
            new.tag_index()
        with pytest.raises(ModelMismatchError):
            new.index_threshold()
        assert new.tag_index(threshold=0.5) == expected >= 1  # a threshold given: as before
        assert Tagger(ix, embedder=StubEmbedder("stub@2"), threshold=0.5).index_threshold() == 0.5
