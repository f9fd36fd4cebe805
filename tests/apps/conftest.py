"""Fixtures for the application tests: the stub embedder of tests/index (the random-weight
embedder and its checkpoint folder live in tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# the fast, deterministic stand-in embedder lives beside the index tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))


@pytest.fixture
def stub():
    from stub_embedder import StubEmbedder

    return StubEmbedder()


@pytest.fixture
def image_index(tmp_path: Path, stub):
    """``image_index(n)``: a FaceIndex (stub embedder) over ``n`` random images written to
    ``tmp_path/imgs``; closed after the test."""
    from stub_embedder import write_images

    from exprsim.index.store import FaceIndex

    opened = []

    def make(n: int) -> FaceIndex:
        write_images(tmp_path / "imgs", n)
        idx = FaceIndex(tmp_path / "faces.db", embedder=stub)
        idx.add([tmp_path / "imgs"])
        opened.append(idx)
        return idx

    yield make
    for idx in opened:
        idx.close()
