"""Round 37 (a review of round 36): `index add --from-parquet DIR` whose shards were
embedded by two models of one name and other contents loaded the first shard, then refused
the second (a folder half loaded); the shards' digests are compared before any is loaded,
as their models' names were."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex, ModelMismatchError
from exprsim.models.identity import DIGEST_KEY
from exprsim.scale.parquet import load_parquet
from face_tables import unit_faces

NAME = "exprnet_ens@8"
A, B = "sha256:" + "a" * 16, "sha256:" + "b" * 16


def _shard(path: Path, sources: list[str], digest: str | None) -> None:
    table = pa.Table.from_pandas(unit_faces(sources, 1).assign(model=NAME), preserve_index=False)
    if digest is not None:
        table = table.replace_schema_metadata({**table.schema.metadata, DIGEST_KEY: digest})
    pq.write_table(table, path)


def _files(db: Path) -> int:
    with FaceIndex(db) as ix:
        return int(ix.info().n_files)


def test_shards_of_two_contents_are_refused_before_any_is_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    _shard(folder / "a.parquet", ["/x/a.jpg"], A)
    _shard(folder / "b.parquet", ["/x/b.jpg"], B)
    db = tmp_path / "f.db"
    with pytest.raises(ExprsimError, match=r"2 models of one name.*No shard was loaded"):
        load_parquet(folder, db)
    assert not db.exists() or _files(db) == 0  # was: a.parquet's face stored
    with pytest.raises(ModelMismatchError, match=r"b\.parquet.*not sha256:a+; no shard"):
        load_parquet(folder, db, model_digest=A)  # --model of one of them
    assert not db.exists() or _files(db) == 0


def test_shards_of_one_content_and_shards_without_one_load(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    _shard(folder / "a.parquet", ["/x/a.jpg"], A)
    _shard(folder / "b.parquet", ["/x/b.jpg"], A)
    _shard(folder / "c.parquet", ["/x/c.jpg"], None)  # an earlier exprsim's: no digest
    db = tmp_path / "f.db"
    load_parquet(folder, db, model_digest=A)
    with FaceIndex(db) as ix:
        assert ix.info().n_files == 3
        assert ix.model_digest == A


def test_a_shard_of_another_content_than_the_index_is_refused_first(tmp_path: Path) -> None:
    """A review of this round: shards without a digest, then one of another content than
    the index's, were loaded up to that one."""
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces(["/x/0.jpg"], 0), NAME, model_digest=B)
    folder = tmp_path / "shards"
    folder.mkdir()
    _shard(folder / "a.parquet", ["/x/a.jpg"], None)
    _shard(folder / "b.parquet", ["/x/b.jpg"], A)
    with pytest.raises(ModelMismatchError, match=r"b\.parquet.*not sha256:b+; no shard"):
        load_parquet(folder, db)
    assert _files(db) == 1  # was 2: a.parquet loaded
