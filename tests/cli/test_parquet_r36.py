"""Round 36 (an audit of every deletion): a failed `index add --from-parquet` into a new
database removed it again when it held no face, even when another command had written
into it meanwhile (a `tag add`: its reference went with the file). It is removed only
while nothing was written into it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_run import run

import exprsim.scale
from exprsim.index.store import FaceIndex


def _fails_after(write):
    def load(*args, **kwargs):
        write()
        raise RuntimeError("the load failed")

    return load


@pytest.mark.parametrize("meanwhile", [True, False], ids=["written-meanwhile", "untouched"])
def test_a_new_database_is_removed_only_while_nothing_was_written(
    capsys, tmp_path: Path, monkeypatch, meanwhile: bool
) -> None:
    db = tmp_path / "new.db"
    (tmp_path / "shards").mkdir()

    def other_command() -> None:
        if meanwhile:
            with FaceIndex(db) as ix:
                ix.add_tag_reference("smile", np.eye(1, 16, dtype=np.float32)[0], "m@1")

    monkeypatch.setattr(exprsim.scale, "load_parquet", _fails_after(other_command))
    with pytest.raises(RuntimeError):
        run(capsys, "index", "add", "--from-parquet", str(tmp_path / "shards"), "--db", str(db))
    assert db.exists() is meanwhile
    if meanwhile:
        with FaceIndex(db) as ix:
            assert [r["name"] for r in ix.tag_references()] == ["smile"]
