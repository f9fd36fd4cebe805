"""FaceIndex inputs found by the sixth audit (docs/robustness.md): a blank path given to
remove, faces of in-memory images, tag references that are not unit vectors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


@pytest.mark.parametrize("bad", ["", "  ", [""], [Path("x.png"), ""], "/", "//"])
def test_remove_refuses_a_blank_path_or_the_root_and_removes_nothing(
    tmp_path: Path, store, bad
) -> None:
    paths = write_images(tmp_path / "imgs", 3)
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add(paths)
        with pytest.raises(ExprsimError, match="nothing was removed"):
            ix.remove(bad)  # "" emptied the whole index
        assert len(ix) == 3
        assert ix.remove(paths[0]) == 1 and len(ix) == 2  # a real path still works


def _face(source: str, i: int = 0) -> SimpleNamespace:
    from exprsim.faces.types import AlignedFace, Face, Quality

    emb = np.zeros(16, np.float32)
    emb[i % 16] = 1.0
    face = Face(np.array([0, 0, 9, 9], np.float32), 0.9, np.zeros((5, 2), np.float32))
    aligned = AlignedFace(face, np.zeros((8, 8, 3), np.uint8), Quality(5.0, 0, 0, 0, True))
    return SimpleNamespace(source=source, face_index=0, aligned=aligned, embedding=emb)


def test_faces_of_in_memory_images_are_refused_not_merged(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        model = ix.embedder.config.name_version
        # two images given as pixels: a raw sqlite3 IntegrityError in one call, and the
        # second replaced the first across calls
        with pytest.raises(ExprsimError, match=r"in-memory image \(source <array>\)"):
            ix.add_faces([_face("a.png", 1), _face("<array>", 2)], model)
        assert len(ix) == 0  # nothing stored, not even the good one
        assert ix.add_faces([_face(str(tmp_path / "a.png"))], model) == 1


def test_tag_references_are_stored_as_unit_vectors(tmp_path: Path, caplog) -> None:
    with FaceIndex(tmp_path / "x.db", embedder=StubEmbedder()) as ix:
        model = ix.embedder.config.name_version
        e = np.zeros(16, np.float32)
        e[3] = 10.0  # the right direction, ten times too long: never matched before
        ix.add_tag_reference("wide", e, model)
        assert "normalised to 1" in caplog.text
        (stored,) = [r for r in ix.tag_references() if r["name"] == "wide"]
        np.testing.assert_allclose(stored["embedding"], e / 10.0, rtol=1e-6)
        with pytest.raises(ExprsimError, match="all-zero"):
            ix.add_tag_reference("zero", np.zeros(16), model)
        with pytest.raises(ExprsimError, match="non-empty string"):
            ix.add_tag_reference(None, e, model)  # type: ignore[arg-type]
