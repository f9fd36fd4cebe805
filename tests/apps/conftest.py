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
