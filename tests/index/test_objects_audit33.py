"""Round 33 (the public objects): a ``FaceIndex`` says in one line that it neither pickles
nor copies (pickle raised "cannot pickle '_thread.RLock' object"; ``copy.copy(ix).close()``
closed the original too)."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.apps.tag import Tagger
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex


def test_an_index_neither_pickles_nor_copies(tmp_path: Path) -> None:
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(write_images(tmp_path / "imgs", 2))
        with pytest.raises(ExprsimError, match=r"does not pickle.*FaceIndex\(path\)"):
            pickle.dumps(ix)
        with pytest.raises(ExprsimError, match="does not pickle"):
            pickle.dumps(Tagger(ix))  # a tagger holds its index
        for what in (copy.copy, copy.deepcopy):
            with pytest.raises(ExprsimError, match="not copied"):
                what(ix)
        assert len(ix) == 2  # still open
