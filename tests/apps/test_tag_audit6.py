"""Audit A (sixth round), items 6 and 8 in exprsim.apps.tag: tags derived from references
are recomputed, a removed tag leaves the faces, names that are not UTF-8 (each test failed
before its fix)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, grid_embedding, write_images

from exprsim.apps.tag import Tagger
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from exprsim.io import load_image


def tags_by_file(index: FaceIndex) -> dict[str, tuple[str, ...]]:
    return {Path(r.source).name: r.tags for r in index.records()}


@pytest.fixture
def index(tmp_path: Path, stub: StubEmbedder):
    imgs = write_images(tmp_path / "imgs", 4)
    with FaceIndex(tmp_path / "faces.db", embedder=stub) as ix:
        ix.add(imgs)
        yield ix


def test_remove_takes_the_tag_off_every_indexed_face(index: FaceIndex) -> None:
    imgs = sorted(Path(r.source) for r in index.records())
    tagger = Tagger(index)
    tagger.add("smiley", imgs[0])
    tagger.add("frown", imgs[1])
    assert tagger.tag_index(threshold=2.0) == 4  # everything within 2 of everything
    ids = [r.id for r in index.records()]
    index.add_tags(ids[:2], "favourite")
    assert tagger.remove("smiley") == 1
    # was: every face kept 'smiley', a tag with no reference left
    assert all("smiley" not in t for t in tags_by_file(index).values())
    assert tags_by_file(index)["img_0000.png"] == ("favourite", "frown")
    assert tagger.untag("frown") == 4 and tagger.untag("frown") == 0
    assert set(tags_by_file(index).values()) == {("favourite",), ()}


def test_tag_index_recomputes_the_reference_tags(index: FaceIndex) -> None:
    imgs = sorted(Path(r.source) for r in index.records())
    tagger = Tagger(index)
    tagger.add("alpha", imgs[0])
    tagger.add("beta", imgs[1])
    assert tagger.tag_index(threshold=2.0) == 4
    assert set(tags_by_file(index).values()) == {("alpha", "beta")}
    ids = [r.id for r in index.records()]
    index.add_tags(ids, "holiday")  # a user tag: not a reference's name
    # a stricter threshold takes the looser matches away (was: tags only ever added)
    assert tagger.tag_index(threshold=1e-3) == 2
    assert tags_by_file(index) == {
        "img_0000.png": ("alpha", "holiday"),
        "img_0001.png": ("beta", "holiday"),
        "img_0002.png": ("holiday",),
        "img_0003.png": ("holiday",),
    }
    # a face moved to another reference's name loses the old one
    e2 = grid_embedding(load_image(imgs[2]))
    tagger.remove("alpha")
    tagger.add_embedding("alpha", e2, "stub@1")
    assert tagger.tag_index(threshold=1e-3) == 2
    assert tags_by_file(index)["img_0000.png"] == ("holiday",)
    assert tags_by_file(index)["img_0002.png"] == ("alpha", "holiday")


def test_tag_index_changes_nothing_when_it_refuses(index: FaceIndex) -> None:
    imgs = sorted(Path(r.source) for r in index.records())
    tagger = Tagger(index)
    tagger.add("alpha", imgs[0])
    tagger.tag_index(threshold=2.0)
    before = tags_by_file(index)
    with pytest.raises(ExprsimError, match="threshold"):
        tagger.tag_index(threshold=float("nan"))
    assert tags_by_file(index) == before


def test_a_tag_name_that_is_not_utf8_is_refused_before_the_image_is_read(
    index: FaceIndex, stub: StubEmbedder
) -> None:
    from exprsim.apps.tag import check_tag_name

    name = os.fsdecode(b"h\xffappy")
    img = Path(index.records()[0].source)
    calls = stub.calls
    with pytest.raises(ExprsimError, match="not valid UTF-8"):
        Tagger(index).add(name, img)  # was: UnicodeEncodeError from SQLite
    assert stub.calls == calls
    with pytest.raises(ExprsimError, match="not valid UTF-8"):
        check_tag_name(name)
    with pytest.raises(ExprsimError, match="non-empty"):
        check_tag_name("  ")
    check_tag_name("café")


def test_a_reference_from_a_file_whose_name_is_not_utf8(index: FaceIndex, tmp_path: Path) -> None:
    src = Path(index.records()[0].source)
    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    odd.write_bytes(src.read_bytes())
    ref = Tagger(index).add("happy", odd)  # was: UnicodeEncodeError from SQLite
    assert ref.source.endswith("caf\\xe9.png")
    stored = index.tag_references()
    assert stored[0]["source"] == ref.source
    np.testing.assert_allclose(stored[0]["embedding"], grid_embedding(load_image(odd)), atol=1e-6)
