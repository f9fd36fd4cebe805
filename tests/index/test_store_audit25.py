"""Round 25 (docs/robustness.md): ``FaceIndex`` methods given something that is not a
table or a mapping answered with an ``AttributeError`` from deep inside (``'NoneType' has
no attribute 'to_pandas'``); they now say what they take, as a ``TypeError``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bulk import embed_table

from exprsim.index.store import FaceIndex


@pytest.mark.parametrize("bad", [None, [1, 2], "faces.parquet"])
def test_add_table_says_what_it_takes(tmp_path: Path, bad: object) -> None:
    with FaceIndex(tmp_path / "faces.db") as ix:
        with pytest.raises(TypeError, match="pandas DataFrame or a table with to_pandas"):
            ix.add_table(bad)
        assert ix.add_table(embed_table(2)).files_added == 2  # a table is still taken


@pytest.mark.parametrize("bad", [None, [(1, np.zeros(128, np.float32))]])
def test_identity_descriptors_must_be_a_mapping(tmp_path: Path, bad: object) -> None:
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(embed_table(2))
        with pytest.raises(TypeError, match="mapping of face id to descriptor"):
            ix.store_identity_descriptors(bad)  # type: ignore[arg-type]
        fid = ix.records()[0].id
        ix.store_identity_descriptors({fid: np.ones(128, np.float32)})
        assert ix.identity_descriptors([fid])[fid].shape == (128,)
