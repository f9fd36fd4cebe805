"""Round 27 (docs/robustness.md): tagging an index while another command removes a tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps import tag as tag_mod
from exprsim.apps.tag import Tagger
from exprsim.index.store import FaceIndex


def _tagged(index: FaceIndex) -> dict[str, tuple[str, ...]]:
    return {Path(r.source).name: r.tags for r in index.records() if r.tags}


def test_a_tag_removed_while_the_index_is_tagged_does_not_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imgs = write_images(tmp_path / "imgs", 4)
    db = tmp_path / "faces.db"
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        index.add(imgs)
        tagger = Tagger(index, threshold=1e-3)
        tagger.add("smile", imgs[0])
        tagger.add("calm", imgs[1])
        real = tag_mod.match_tags
        removed: list[int] = []

        def match_then_remove(*args, **kwargs):
            out = real(*args, **kwargs)
            if not removed:  # `exprsim tag remove smile` in another process, meanwhile
                with FaceIndex(db) as other:
                    removed.append(Tagger(other).remove("smile"))
            return out

        monkeypatch.setattr(tag_mod, "match_tags", match_then_remove)
        assert tagger.tag_index() == 1  # matched again without "smile"
        # was {"img_0000.png": ("smile",), ...}: a tag without a reference, for good
        assert _tagged(index) == {"img_0001.png": ("calm",)}
        assert removed == [1] and tagger.names() == ["calm"]


def test_references_that_keep_changing_are_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exprsim.index.store import TagReferencesChanged

    imgs = write_images(tmp_path / "imgs", 5)
    with FaceIndex(tmp_path / "faces.db", embedder=StubEmbedder()) as index:
        index.add(imgs[:1])
        tagger = Tagger(index, threshold=1e-3)
        tagger.add("smile", imgs[0])
        real = index.retag
        more = iter(imgs[1:])

        def always_changed(*args, **kwargs):
            tagger.add("smile", next(more))  # another command adds a reference each time
            return real(*args, **kwargs)

        monkeypatch.setattr(index, "retag", always_changed)
        with pytest.raises(TagReferencesChanged, match="run it again") as info:
            tagger.tag_index()
        assert "\n" not in str(info.value)
        assert _tagged(index) == {}  # nothing half-done


def test_deleting_a_tag_is_one_transaction(tmp_path: Path, monkeypatch) -> None:
    imgs = write_images(tmp_path / "imgs", 2)
    with FaceIndex(tmp_path / "faces.db", embedder=StubEmbedder()) as index:
        index.add(imgs)
        tagger = Tagger(index, threshold=1e-3)
        tagger.add("smile", imgs[0])
        tagger.tag_index()
        assert _tagged(index) == {"img_0000.png": ("smile",)}

        def crash(*args, **kwargs):
            raise OSError("killed between the two steps")

        monkeypatch.setattr(index, "remove_tags", crash)  # the second step of the old code
        assert tagger.remove("smile") == 1
        assert _tagged(index) == {} and tagger.names() == []
