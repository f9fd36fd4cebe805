"""Round 34: a bulk load stored a negative face number (shown by ``search``), and skipped
shards of a folder not named ``*.parquet`` (``.parq``) without a word (4 of 7 faces)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from exprsim.scale import load_parquet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from test_bulk import embed_table


@pytest.mark.parametrize(("column", "value"), [("face", -1), ("size", -5)])
def test_a_negative_count_is_refused(tmp_path: Path, column: str, value: int) -> None:
    table = embed_table(3).assign(size=100)
    table.loc[1, column] = value
    with FaceIndex(tmp_path / "f.db") as ix:
        with pytest.raises(ExprsimError, match=f"column {column} must hold whole numbers from 0"):
            ix.add_table(table)  # was: stored, face -1 shown by search
        assert len(ix) == 0


def test_files_of_a_folder_that_are_not_shards_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    embed_table(3, seed=1).to_parquet(folder / "a.parquet")
    embed_table(4, seed=2).to_parquet(folder / "b.parq")
    (folder / "_SUCCESS").write_text("")  # a writer's marker: not a shard, not named
    (folder / ".a.parquet.crc").write_text("")
    with caplog.at_level(logging.WARNING), FaceIndex(tmp_path / "f.db") as ix:
        load_parquet(folder, ix)
        assert len(ix) == 3
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "1 file(s) under" in said[0] and "b.parq" in said[0], said
