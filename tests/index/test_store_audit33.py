"""Round 33: the index's refusals read as :func:`exprsim.io.load_image`'s."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder

from exprsim.errors import ImageError
from exprsim.index.store import FaceIndex
from exprsim.io import load_image


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_index_names_a_named_pipe_as_load_image_names_a_device(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        (outcome,) = ix.add([fifo]).files
    assert outcome.status == "failed"
    assert outcome.error == "not a regular file (a named pipe), not an image"


def test_load_image_names_a_device_the_same_way() -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null here")
    with pytest.raises(ImageError, match=r"not a regular file \(a character device\), not an"):
        load_image("/dev/null")
