"""Round 33: ``classify_images`` and ``Tagger.tag`` read a file named twice once, as
the CLI (and ``summarize_images``, ``embed_files``) read it; arrays are kept as given."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.classify import ReferenceSet, classify_images
from exprsim.apps.tag import Tagger
from exprsim.index.store import FaceIndex


def _twice(tmp_path: Path) -> list[object]:
    imgs = write_images(tmp_path / "imgs", 2)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        rel = os.path.relpath(imgs[0])
    finally:
        os.chdir(here)
    return [imgs[0], str(tmp_path / "." / rel), tmp_path / "imgs", imgs[1]]


def test_classify_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    ref = ReferenceSet(
        np.eye(4, 16, dtype=np.float32), np.array([0, 0, 1, 1]), ("a", "b"), "stub@1", 1
    )
    result = classify_images(_twice(tmp_path), StubEmbedder(), ref)
    assert sorted(Path(f.source).name for f in result.faces) == ["img_0000.png", "img_0001.png"]


def test_tag_images_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    imgs = _twice(tmp_path)
    with FaceIndex(tmp_path / "t.db", embedder=StubEmbedder()) as ix:
        tagger = Tagger(ix, threshold=2.0)
        tagger.add("x", imgs[0])
        result = tagger.tag(imgs)
    assert sorted(Path(r.source).name for r in result) == ["img_0000.png", "img_0001.png"]


def test_unique_inputs_keeps_arrays_and_the_first_name() -> None:
    from exprsim.io import unique_inputs

    a = np.zeros((4, 4, 3), np.uint8)
    got = list(unique_inputs(["x.png", a, "./x.png", a, "y.png"]))
    assert got[0] == "x.png" and got[1] is a and got[2] is a and got[3] == "y.png"
    assert len(got) == 4


def test_a_name_with_a_nul_byte_is_kept_for_its_reader_to_refuse() -> None:
    """Review: ``file_key`` raised ValueError on a NUL byte, so classify and tag raised
    where the name used to fail alone (reported in ``failures``)."""
    from exprsim.io import unique_inputs

    assert list(unique_inputs(["a\x00b.jpg", "a\x00b.jpg", "c.jpg"])) == ["a\x00b.jpg", "c.jpg"]
