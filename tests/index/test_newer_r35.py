"""Round 35: an index written by a newer exprsim, or edited by other programs.

Each case is a file this exprsim did not write as it is; each must give one clear line
(or the right answer), never a traceback, a silent wrong answer, or a damaged file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from exprsim.index import FaceIndex
from face_tables import unit_faces


def _table(n: int, start: int = 0) -> pd.DataFrame:
    return unit_faces([f"/p/img{start + i}.jpg" for i in range(n)], seed=start)


def _index(path: Path, n: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with FaceIndex(path) as ix:
        ix.add_table(_table(n), model="stub@1")
    return path


def test_a_read_only_copy_with_a_pending_write_ahead_log_has_every_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer stopped before SQLite merged its log into the file, the folder copied to
    read-only media: `immutable=1` ignored the log, and the faces committed last were
    silently missing (sqlite3 counted 5, exprsim 3)."""
    db = _index(tmp_path / "live" / "f.db")
    with FaceIndex(db) as ix:  # the last face, committed into the log and left there
        ix.add_table(_table(1, start=10), model="stub@1")
        ix._db.conn.execute("PRAGMA wal_autocheckpoint=0")
        ix.add_table(_table(1, start=20), model="stub@1")
        copy = tmp_path / "ro"
        copy.mkdir()
        for name in ("f.db", "f.db-wal", "f.db-shm"):
            if (db.parent / name).exists():
                shutil.copy2(db.parent / name, copy / name)
    assert (copy / "f.db-wal").stat().st_size > 0
    want = sqlite3.connect(f"file:{copy / 'f.db'}?mode=ro", uri=True)
    n = want.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    want.close()
    assert n == 5
    real = os.access  # nothing can be written (as for a user without root, on read-only media)
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: mode != os.W_OK and real(p, mode))
    with FaceIndex(copy / "f.db") as ix:
        assert ix._db.read_only and len(ix) == 5


def test_a_backend_a_newer_exprsim_recorded_searches_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every search, add and rebuild failed with "unknown ANN backend 'usearch-hnsw'" (a
    name the user never gave), and `index add` said so after storing the files."""
    db = _index(tmp_path / "f.db", n=20)
    con = sqlite3.connect(db)
    con.execute("INSERT OR REPLACE INTO meta VALUES ('ann_backend', 'usearch-hnsw')")
    con.commit()
    con.close()
    with FaceIndex(db) as ix:
        ids, emb = ix.embeddings()
        dist, got = ix.query(emb[4], k=3)
        assert got[0][0] == ids[4] and dist[0][0] < 1e-6
        ix.add_table(_table(2, start=50), model="stub@1")
        ix.refresh_ann()
        ix.rebuild_ann()
        assert len(ix) == 22 and ix.recorded_ann_backend == "usearch-hnsw"  # left as it is
    assert caplog.text.count("not one this exprsim knows") == 1


def test_tags_of_another_shape_are_refused_not_rewritten(tmp_path: Path) -> None:
    """`tag --index` rewrote `[{"name": "happy", ...}]` as `["happy", "{'name': ...}"]`;
    reads show such an item as its JSON text, writes refuse it."""
    from exprsim.errors import ExprsimError

    db = _index(tmp_path / "f.db")
    newer = '[{"name": "happy", "source": "ref"}]'
    con = sqlite3.connect(db)
    con.execute("UPDATE faces SET tags = ? WHERE id = 2", (newer,))
    con.commit()
    con.close()
    with FaceIndex(db) as ix:
        # read: shown as its JSON text (it failed every search and listing that met it)
        assert {r.id: r.tags for r in ix.records()}[2] == ('{"name": "happy", "source": "ref"}',)
        assert len(ix.to_frame()) == 3
        with pytest.raises(
            ExprsimError, match="not a list of names: damaged, or written by a newer"
        ):
            ix.add_tags(2, "sad")
    con = sqlite3.connect(db)
    assert con.execute("SELECT tags FROM faces WHERE id = 2").fetchone()[0] == newer
    con.close()


def test_a_reference_without_a_source_is_listed(tmp_path: Path) -> None:
    """`add_tag_reference(source=None)` stored NULL (as other programs may): `tag list`
    failed with AttributeError, `/api/tags` with a 500."""
    db = _index(tmp_path / "f.db")
    e = _table(1, start=7)[[f"e{i}" for i in range(16)]].to_numpy()[0]
    with FaceIndex(db) as ix:
        ix.add_tag_reference("happy", e, model="stub@1", source=None)  # type: ignore[arg-type]
    con = sqlite3.connect(db)
    assert con.execute("SELECT source FROM tag_refs").fetchall() == [("",)]
    con.execute("UPDATE tag_refs SET source = NULL")  # as another program may write it
    con.commit()
    con.close()
    with FaceIndex(db) as ix:
        assert [r["source"] for r in ix.tag_references()] == [""]


def _rebuild_faces_with(db: Path, extra: str) -> None:
    """The faces table made again with one more column (as a newer exprsim might)."""
    con = sqlite3.connect(db)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'faces'").fetchone()[0]
    con.executescript(
        "PRAGMA foreign_keys = OFF; BEGIN;"
        "ALTER TABLE faces RENAME TO faces_old;"
        + sql.replace("UNIQUE (file_id", f"{extra}, UNIQUE (file_id")
        + ";"
        "INSERT INTO faces SELECT *, 'x' FROM faces_old; DROP TABLE faces_old; COMMIT;"
    )
    con.close()


def test_a_column_this_exprsim_does_not_fill_is_named(tmp_path: Path) -> None:
    """An added NOT NULL column: "database: NOT NULL constraint failed: faces.pose_model"
    from the CLI, a 500 with a traceback from the web app."""
    from exprsim.errors import IndexDatabaseError

    db = _index(tmp_path / "f.db")
    _rebuild_faces_with(db, "pose_model TEXT NOT NULL")
    with FaceIndex(db) as ix:
        with pytest.raises(IndexDatabaseError) as caught:
            ix.add_table(_table(2, start=40), model="stub@1")
        assert len(ix) == 3
    said = str(caught.value)
    assert "a column this exprsim does not fill (faces.pose_model" in said
    assert "made by a newer exprsim? nothing was written" in said
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 3  # nothing written
    con.close()


def test_a_file_row_deleted_by_another_program_is_named(tmp_path: Path) -> None:
    from exprsim.errors import IndexDatabaseError

    db = _index(tmp_path / "f.db")
    con = sqlite3.connect(db)  # foreign keys are off in sqlite3: the faces stay
    last = con.execute("SELECT MAX(id) FROM files").fetchone()[0]
    con.execute("DELETE FROM files WHERE id = ?", (last,))
    con.commit()
    con.close()
    changed = pytest.raises(IndexDatabaseError, match="tables were changed by another program")
    with FaceIndex(db) as ix, changed:
        ix.add_table(_table(1, start=60), model="stub@1")


def _edit(db: Path, sql: str) -> None:
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()


def test_a_hand_edited_generation_is_damage_not_a_traceback(tmp_path: Path) -> None:
    from exprsim.errors import IndexDatabaseError

    db = _index(tmp_path / "f.db")
    _edit(db, "UPDATE meta SET value = '12.0' WHERE key = 'generation'")
    with FaceIndex(db) as ix, pytest.raises(IndexDatabaseError, match=r"generation '12.0'"):
        ix.query(np.eye(16, dtype=np.float32)[0], k=1)


def test_an_index_without_a_schema_version_is_left_unchanged(tmp_path: Path) -> None:
    """`index info` (read-only) wrote `schema 1` into it."""
    from exprsim.errors import IndexDatabaseError

    db = _index(tmp_path / "f.db")
    _edit(db, "DELETE FROM meta WHERE key = 'schema'")
    before = db.read_bytes()
    with pytest.raises(IndexDatabaseError, match="holds files but no schema version"):
        FaceIndex(db)
    assert db.read_bytes() == before
    empty = tmp_path / "new.db"  # a new index still gets its version
    with FaceIndex(empty) as ix:
        assert ix.info().schema >= 1


def test_a_binary_sha256_column_is_stored_as_hex(tmp_path: Path) -> None:
    """A Parquet column of 32-byte digests was stored as "b'\\xa8...'": copies of the
    file were no longer known as copies."""
    import hashlib

    digest = hashlib.sha256(b"photo").digest()
    df = _table(2)
    df["sha256"] = [digest, None]
    with FaceIndex(tmp_path / "f.db") as ix:
        ix.add_table(df, model="stub@1")
        files = ix.files().set_index("path")
        assert files.loc["/p/img0.jpg", "sha256"] == digest.hex()
        assert ix.faces_of_file(sha256=hashlib.sha256(b"photo").hexdigest())[0].source == (
            "/p/img0.jpg"
        )
    assert df["sha256"][0] == digest  # the caller's table as it was


@pytest.mark.parametrize(
    ("column", "values", "said"),
    [
        ("sha256", [b"\x01" * 20, None], "sha256 holds 20 bytes in row 0"),
        ("mtime_ns", [pd.Timestamp("2026-01-01"), pd.Timestamp("2026-01-02")], "Timestamp"),
    ],
)
def test_identity_columns_of_another_type_are_named(
    tmp_path: Path, column: str, values: list, said: str
) -> None:
    from exprsim.errors import ExprsimError

    df = _table(2)
    df[column] = values
    with FaceIndex(tmp_path / "f.db") as ix:
        with pytest.raises(ExprsimError, match=said):
            ix.add_table(df, model="stub@1", name="shard.parquet")
        assert len(ix) == 0


def test_whole_float_sizes_load_on_both_engines(store) -> None:
    """Review: an integer column with nulls (floats, as pandas reads it) passed the check
    but PostgreSQL's COPY refused "100.0" for a BIGINT."""
    df = _table(3)
    df["size"] = [100.0, np.nan, 300.0]
    df["mtime_ns"] = pd.array([5, None, 7], dtype="Int64")
    with FaceIndex(store) as ix:
        ix.add_table(df, model="stub@1")
        files = ix.files().set_index("path")
    assert files.loc["/p/img0.jpg", "size"] == 100 and files.loc["/p/img2.jpg", "size"] == 300
    assert pd.isna(files.loc["/p/img1.jpg", "size"])
    assert files.loc["/p/img2.jpg", "mtime_ns"] == 7


def test_a_long_lived_index_sees_a_restored_backup_written_again(tmp_path: Path) -> None:
    """Review: the copy of the embeddings a quality-filtered search reads was kept by the
    generation alone; a restored backup written again reaches it with other faces."""
    db = _index(tmp_path / "f.db", n=10)
    backup = sqlite3.connect(tmp_path / "backup.db")
    with sqlite3.connect(db) as live:
        live.backup(backup)  # SQLite's own backup: safe beside open connections
    with FaceIndex(db) as ix:
        ix.add_table(_table(5, start=100), model="stub@1")
        q = ix.embeddings()[1][-1]
        assert ix.nearest_passing(q, 1)[1][0] < 1e-6  # the face itself
        with sqlite3.connect(db) as live:
            backup.backup(live)  # restored under the open index
        with FaceIndex(db) as other:
            other.add_table(_table(5, start=200), model="stub@1")
        ids, emb = ix.embeddings()
        got_ids, got_d = ix.nearest_passing(q, 1)
    backup.close()
    d = np.linalg.norm(emb.astype(np.float64) - q.astype(np.float64), axis=1)
    assert d.min() > 1e-3  # that face is gone
    assert got_ids[0] == ids[int(np.argmin(d))] and got_d[0] == pytest.approx(d.min())
