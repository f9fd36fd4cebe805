"""Fourteenth robustness round, the index's Python API: face ids given as text or alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


def test_face_ids_as_text_are_refused_and_one_integer_is_one_id(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "p", 9))
        for call in (
            lambda: ix.get("12"),
            lambda: ix.set_label("12", "x"),
            lambda: ix.add_tags("13", ["smile"]),
            lambda: ix.remove_tags(["smile"], face_ids="13"),
        ):
            # was: the faces 1 and 2 (1 and 3) read or changed, without a word
            with pytest.raises(ExprsimError, match="got the text '1"):
                call()
        assert [r.id for r in ix.get(5)] == [5]  # was: a bare TypeError
        assert not any(r.label or r.tags for r in ix.get(range(1, 10)))
        with pytest.raises(ExprsimError, match="must be integers"):
            ix.get(None)  # type: ignore[arg-type]


def test_out_of_range_arguments_are_exprsim_errors_and_still_value_errors() -> None:
    from exprsim.faces.align import AlignConfig
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    for bad in (lambda: AlignConfig(size=0), lambda: AlignConfig(size=2.5)):  # type: ignore[arg-type]
        with pytest.raises(ExprsimError, match=r"AlignConfig\.size"):  # was: a bare ValueError
            bad()
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(sample_path("grace_hopper.jpg"), max_pixels=0)
    with pytest.raises(ExprsimError, match="max_pixels"):
        load_image(sample_path("grace_hopper.jpg"), max_pixels=-1)


def test_a_bad_tag_threshold_and_a_path_for_an_index_are_refused_at_once(tmp_path: Path) -> None:
    from exprsim.apps.search import search
    from exprsim.apps.tag import Tagger

    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        for bad in (-1, "x", float("nan")):
            with pytest.raises(ExprsimError, match="threshold"):  # was: only at the next tag()
                Tagger(ix, threshold=bad)  # type: ignore[arg-type]
        tagger = Tagger(ix, threshold=0.5)
        with pytest.raises(ExprsimError, match="threshold"):
            tagger.threshold = -2.0
        assert tagger.threshold == 0.5
    img = write_images(tmp_path / "p", 1)[0]
    with pytest.raises(ExprsimError, match="index must be a FaceIndex"):  # was AttributeError
        search(img, str(tmp_path / "f.db"), embedder=StubEmbedder())


def test_face_ids_that_are_not_integers_are_refused(tmp_path: Path) -> None:
    """Fifteenth round: a list's members went through int(): get([1.999]) read face 1,
    get([True]) face 1, get(["2"]) face 2, and set_label([1.9], ...) labelled face 1."""
    import numpy as np

    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "p", 3))
        for bad in ([1.999], [2.0], [True], ["2"], True, np.float64(2.0), [np.bool_(True)]):
            with pytest.raises(ExprsimError, match="integer"):
                ix.get(bad)  # type: ignore[arg-type]
            with pytest.raises(ExprsimError, match="integer"):
                ix.set_label(bad, "wrong")  # type: ignore[arg-type]
        assert not any(r.label for r in ix.get([1, 2, 3]))
        assert [r.id for r in ix.get(np.array([2, 3]))] == [2, 3]  # NumPy integers are ids
        assert [r.id for r in ix.get(np.int64(1))] == [1]
