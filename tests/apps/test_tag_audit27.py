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


def _unit(rng, n):
    import numpy as np

    x = rng.normal(size=(n, 16))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_tags_in_blocks_are_those_of_a_plain_loop(monkeypatch) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x, r = _unit(rng, 300), _unit(rng, 9)
    r[4] = r[1]  # two identical references of two names
    names = ["a", "b", "c", "a", "d", "b", "c", "e", "a"]
    monkeypatch.setattr(tag_mod, "MATCH_BLOCK", 9 * 7)  # 7 faces a block, a ragged last one
    got = tag_mod.match_tags(x, r, names, threshold=1.1)
    for i in range(len(x)):  # the reference: every name, every reference, one by one
        dist = {
            n: min(float(np.linalg.norm(x[i] - r[j])) for j in range(9) if names[j] == n)
            for n in sorted(set(names))
        }
        tags = tuple(n for _, n in sorted((v, n) for n, v in dist.items() if v < 1.1))
        assert got[i][0] == tags
        assert got[i][1] == pytest.approx(dist, abs=1e-9)
    lean = tag_mod.match_tags(x, r, names, threshold=1.1, distances=False)
    assert [t for t, _ in lean] == [t for t, _ in got] and lean[0][1] == {}
    nearest = tag_mod.nearest_reference(x, r)
    assert nearest == pytest.approx([min(d.values()) for _, d in got], abs=1e-12)


def test_tagging_many_faces_holds_a_block_of_distances_only() -> None:
    import tracemalloc

    import numpy as np

    rng = np.random.default_rng(1)
    x, r = _unit(rng, 40_000), _unit(rng, 400)
    names = [f"t{i % 40}" for i in range(400)]
    tracemalloc.start()
    try:
        tag_mod.match_tags(x, r, names, threshold=0.3, distances=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 120e6  # was 384 MB (with the distances): the (N, R) matrix and copies


def test_a_reference_replaced_under_a_reused_id_is_a_change(tmp_path: Path) -> None:
    """Review: SQLite gave a removed reference's id to the next one, so comparing ids
    took 'angry' for the 'sad' it had matched against."""
    import numpy as np

    from exprsim.index.store import TagReferencesChanged, tag_refs_digest

    e = np.eye(16, dtype=np.float32)
    with FaceIndex(tmp_path / "faces.db") as index:
        index.add_tag_reference("happy", e[0], "m@1")
        sad = index.add_tag_reference("sad", e[1], "m@1")
        refs = index.tag_references()
        used = tag_refs_digest((r["id"], r["name"], r["embedding"]) for r in refs)
        index.delete_tag("sad")  # another command: tag remove sad, then tag add angry
        angry = index.add_tag_reference("angry", e[2], "m@1")
        assert angry == sad  # the id is the same
        with pytest.raises(TagReferencesChanged):
            index.retag({}, {"happy", "sad"}, references=used)
        now = tag_refs_digest((r["id"], r["name"], r["embedding"]) for r in index.tag_references())
        assert index.retag({}, {"happy", "angry"}, references=now) == 0
