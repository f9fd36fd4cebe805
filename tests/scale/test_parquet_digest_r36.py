"""Round 36 (a review of the round): `index add --from-parquet` checked the model's name
only, so an index of one content took another model's embeddings of the same name; the
digest of --model, or of a Ray folder's stamp, is checked too."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exprsim.index.store import FaceIndex, ModelMismatchError
from exprsim.scale.parquet import load_parquet
from face_tables import unit_faces

NAME = "exprnet_ens@8"
A, B = "sha256:" + "a" * 16, "sha256:" + "b" * 16


def _shards(folder: Path, stamp: dict | None) -> Path:
    folder.mkdir()
    table = unit_faces(["/x/s0.jpg", "/x/s1.jpg"], 7).assign(model=NAME)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), folder / "part-0.parquet")
    if stamp is not None:
        (folder / "_embed.json").write_text(json.dumps(stamp))
    return folder


def test_shards_of_another_content_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces(["/x/a.jpg"], 0), NAME, model_digest=A)
    plain = _shards(tmp_path / "plain", None)
    with pytest.raises(ModelMismatchError, match="content"):
        load_parquet(plain, db, model_digest=B)  # the CLI's --model
    stamped = _shards(tmp_path / "ray", {"model": NAME, "content": B, "detector": "mediapipe"})
    with pytest.raises(ModelMismatchError, match="content"):
        load_parquet(stamped, db)
    same = _shards(tmp_path / "same", {"model": NAME, "content": A})
    assert load_parquet(same, db).faces == 2
    assert load_parquet(plain, db).files_added == 0  # no digest known: by name, as before


def test_an_embed_table_carries_its_models_content(tmp_path: Path, capsys) -> None:
    """`exprsim embed -o x.parquet` records the model's digest in the table's metadata; a
    load into an index of another content of the same name is refused without --model."""
    from exprsim.cli import main
    from exprsim.models.embedder import content_digest, load_model
    from exprsim.models.identity import DIGEST_KEY
    from exprsim.samples import sample_path

    table = tmp_path / "faces.parquet"
    assert main(["-q", "embed", str(sample_path("grace_hopper.jpg")), "-o", str(table)]) == 0
    assert pq.read_schema(table).metadata[DIGEST_KEY] == content_digest("default").encode()
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces(["/x/a.jpg"], 0), load_model().config.name_version, model_digest=A)
    rc = main(["-q", "index", "add", "--from-parquet", str(table), "--db", str(db)])
    assert rc == 2 and "content" in capsys.readouterr().err
    with FaceIndex(tmp_path / "g.db") as other, pytest.raises(ModelMismatchError, match="not sha"):
        other.add_table(pq.read_table(table), model_digest=B)  # a digest the table contradicts
