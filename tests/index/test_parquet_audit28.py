"""Round 28 (docs/robustness.md, the mixed-versions audit): a folder of shards of two models."""

from __future__ import annotations

import pytest
from test_bulk import embed_table

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex
from exprsim.scale.parquet import load_parquet


def _shards(tmp_path, models: list[str]):
    folder = tmp_path / "shards"
    folder.mkdir()
    for i, model in enumerate(models):
        embed_table(3, seed=i, model=model).to_parquet(folder / f"{i}.parquet")
    return folder


def test_shards_of_two_models_are_refused_before_any_is_loaded(tmp_path):
    """An old version's shards beside a new one's: the first model's were loaded, then
    "holds embeddings of model @7 ... reembed" for a database the command had just made."""
    folder = _shards(tmp_path, ["m@7", "m@8", "m@8"])
    db = tmp_path / "faces.db"
    with pytest.raises(ExprsimError, match=r"2 models \(m@7: 0.parquet; m@8: 1.parquet and 1 more"):
        load_parquet(folder, db)
    with FaceIndex(db) as ix:
        assert len(ix) == 0  # was 3: half loaded


def test_shards_of_another_model_than_asked_are_refused_before_any_is_loaded(tmp_path):
    folder = _shards(tmp_path, ["m@8", "m@7"])
    db = tmp_path / "faces.db"
    with pytest.raises(ExprsimError, match=r"1.parquet: holds embeddings of m@7, not of m@8"):
        load_parquet(folder, db, model="m@8")
    with FaceIndex(db) as ix:
        assert len(ix) == 0


def test_shards_of_one_model_load_as_before(tmp_path):
    folder = _shards(tmp_path, ["m@8", "m@8"])
    report = load_parquet(folder, tmp_path / "faces.db")
    assert (report.files_added, report.faces, report.model) == (6, 6, "m@8")
