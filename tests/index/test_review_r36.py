"""Round 36, a review of round 35: a long-lived index's nearest-neighbour index in memory
is keyed by the write token too, a ``meta`` table with a column of another program's takes
writes, and faces with tags of another shape do not stop a tag's removal elsewhere."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from exprsim.index import FaceIndex
from face_tables import unit_faces

COLS = [f"e{i}" for i in range(16)]


def _restore(backup: Path, db: Path) -> None:
    src, dst = sqlite3.connect(backup), sqlite3.connect(db)
    src.backup(dst)  # as `sqlite3 faces.db ".restore backup.db"`, online
    dst.close()
    src.close()


def test_a_long_lived_index_answers_from_a_restored_backup_written_again(tmp_path: Path) -> None:
    db, backup = tmp_path / "f.db", tmp_path / "backup.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces([f"/p/base_{i}.jpg" for i in range(40)], 3), model="m@1")
    _restore(db, backup)
    with FaceIndex(db) as long, FaceIndex(db) as writer:
        writer.add_table(unit_faces([f"/p/A_{i}.jpg" for i in range(30)], 4), model="m@1")
        b = unit_faces([f"/p/B_{i}.jpg" for i in range(30)], 5)
        q = b[COLS].to_numpy(np.float32)[7]
        long.query(q, k=1)  # its ANN index in memory: of base + A
        generation = long.generation
        _restore(backup, db)
        writer.add_table(b, model="m@1")
        assert long.generation == generation  # the same generation, other faces
        dist, ids = long.query(q, k=1)
        assert long.get([int(ids[0][0])])[0].source == "/p/B_7.jpg"
        assert dist[0][0] < 1e-5


def test_writes_go_on_when_meta_has_a_column_of_another_program(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces([f"/p/{i}.jpg" for i in range(3)], 0), model="m@1")
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE meta ADD COLUMN updated_at REAL")
    con.commit()
    con.close()
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces([f"/p/new{i}.jpg" for i in range(2)], 1), model="m@1")
        ix.add_tags([1], "x")
        assert len(ix) == 5


def test_removing_a_tag_leaves_faces_with_tags_of_another_shape_alone(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_table(unit_faces([f"/p/{i}.jpg" for i in range(4)], 0), model="m@1")
        ix.add_tags([1, 2], "happy")
    foreign = [{"name": "smile", "score": 0.9}]
    con = sqlite3.connect(db)
    con.execute("UPDATE faces SET tags = ? WHERE id = 3", (json.dumps(foreign),))
    con.execute("UPDATE faces SET tags = ? WHERE id = 4", (json.dumps(["happy", *foreign]),))
    con.commit()
    con.close()
    with FaceIndex(db) as ix:
        assert ix.remove_tags("happy") == 3
        rows = dict(sqlite3.connect(db).execute("SELECT id, tags FROM faces").fetchall())
        assert json.loads(rows[3]) == foreign and json.loads(rows[4]) == foreign
        assert json.loads(rows[1]) == []
        ix.add_tags([1], "sad")
        assert ix.delete_tag("sad") == (0, 1)  # (references, faces)
