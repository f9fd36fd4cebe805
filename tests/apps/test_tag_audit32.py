"""Thirty-second round, tags: ``Tagger.remove`` and ``Tagger.untag`` read a name typed with
combining accents as the composed tag the CLI and the web app store (round 30 left it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.tag import Tagger
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex

NFD, NFC = "cafe\u0301", "caf\u00e9"


def _index(tmp_path: Path) -> tuple[FaceIndex, Tagger]:
    ix = FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1"))
    ix.add(write_images(tmp_path / "imgs", 4))
    ids, emb = ix.embeddings()
    tagger = Tagger(ix, embedder=StubEmbedder("stub@1"), threshold=2.0)
    tagger.add_embedding(NFC, emb[0], "stub@1")
    tagger.add_embedding("tea", emb[1], "stub@1")
    ix.retag({int(i): [NFC] for i in ids[:2]}, [NFC])  # as `tag --index` tags them
    return ix, tagger


def test_remove_reads_a_decomposed_name_as_the_stored_tag(tmp_path: Path) -> None:
    """Before: ``Tagger.remove("cafe\\u0301")`` returned 0 and left the tag ``café`` whole,
    where ``exprsim tag remove`` of the same bytes deleted it."""
    ix, tagger = _index(tmp_path)
    with ix:
        assert tagger.stored_name(NFD) == NFC
        assert tagger.remove(NFD) == 1
        assert tagger.names() == ["tea"]
        assert not any(NFC in r.tags for r in ix.records())  # faces untagged


def test_untag_reads_a_decomposed_name_as_the_stored_tag(tmp_path: Path) -> None:
    ix, tagger = _index(tmp_path)
    with ix:
        assert tagger.untag(NFD) == 2
        assert tagger.names() == [NFC, "tea"]  # the references stay
        assert tagger.untag(NFD) == 0


def test_a_name_stored_decomposed_by_an_old_version_is_still_found(tmp_path: Path) -> None:
    """A reference stored decomposed (versions before round 18 kept names as typed) is the
    tag that either spelling names, as in the CLI."""
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1")) as ix:
        tagger = Tagger(ix, embedder=StubEmbedder("stub@1"))
        ix._db.execute(  # what an old version wrote: check_new_tag_name refuses it now
            "INSERT INTO tag_refs (name, source, face_index, embedding, model, crop, added_at)"
            " VALUES (?, '', 0, ?, 'stub@1', NULL, 0)",
            (NFD, bytes(64)),
        )
        assert tagger.stored_name(NFC) == NFD
        assert tagger.remove(NFC) == 1
        assert tagger.names() == []


@pytest.mark.parametrize("bad", ["", "  ", None, "x\udce9"])
def test_remove_still_refuses_what_is_not_a_name(tmp_path: Path, bad: object) -> None:
    with (
        FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1")) as ix,
        pytest.raises(ExprsimError, match="tag name"),
    ):
        Tagger(ix).remove(bad)  # type: ignore[arg-type]


def test_untag_and_remove_reach_faces_tagged_decomposed_without_a_reference(
    tmp_path: Path,
) -> None:
    """Review: faces tagged ``cafe\\u0301`` by an earlier version, with no reference of that
    name: ``untag`` of those very bytes looked for the composed name only."""
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder("stub@1")) as ix:
        ix.add(write_images(tmp_path / "imgs", 2))
        ix._db.execute(
            "UPDATE faces SET tags = ?", (json.dumps([NFD]),)
        )  # what an old version wrote
        tagger = Tagger(ix, embedder=StubEmbedder("stub@1"))
        assert tagger.untag(NFD) == 2
        assert not any(r.tags for r in ix.records())
        ix._db.execute("UPDATE faces SET tags = ?", (json.dumps([NFD]),))
        assert tagger.remove(NFD) == 0  # no reference: none deleted, the faces untagged
        assert not any(r.tags for r in ix.records())
