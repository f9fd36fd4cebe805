"""Ninth robustness round, part 2 (SQLite and both engines): a FaceIndex shared by threads
or used after ``close()``, ``--db`` values that are neither a file nor a PostgreSQL URI,
and text no engine stores as given (a NUL above all)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError, IndexDatabaseError
from exprsim.index.store import FaceIndex


def _table(sources: list[str], **extra: list[object]) -> pd.DataFrame:
    emb = np.eye(16, dtype=np.float32)[: len(sources)]
    cols = {f"e{i}": emb[:, i] for i in range(16)}
    return pd.DataFrame({"source": sources, **cols, "model": "stub@1", **extra})


# ----------------------------------------------------------------------------- threads


def test_one_index_serves_several_threads(store: str | Path, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", 6)
    errors: list[BaseException] = []
    with FaceIndex(store, embedder=StubEmbedder()) as ix:
        ix.add(paths[:3])
        ids, emb = ix.embeddings()

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    _, got = ix.query(emb, k=2)
                    assert set(got[:, 0]) == set(ids)
                    ix.set_label([int(ids[i % 3])], f"person {i}")
                    assert ix.info().n_faces >= 3
                if i == 0:  # a writer among the readers
                    ix.add(paths[3:])
            except BaseException as exc:
                errors.append(exc)

        # was: sqlite3.ProgrammingError (objects created in a thread ... only in that thread)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(ix) == 6 and ix.info().n_labelled >= 1


def test_a_closed_index_refuses_every_call_in_one_line(store: str | Path, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "imgs", 2)
    ix = FaceIndex(store, embedder=StubEmbedder())
    ix.add(paths[:1])
    q = ix.embeddings()[1]
    ix.close()
    calls = {
        "query": lambda: ix.query(q, 1),
        "add": lambda: ix.add(paths[1:]),
        "info": ix.info,
        "len": lambda: len(ix),
        "set_label": lambda: ix.set_label([1], "x"),
        "records": ix.records,
    }
    for what, call in calls.items():
        # was: sqlite3.ProgrammingError: Cannot operate on a closed database.
        with pytest.raises(IndexDatabaseError, match="closed") as caught:
            call()
        assert "\n" not in str(caught.value), what
    ix.close()  # twice is fine


# ----------------------------------------------------------------------------- --db


@pytest.mark.parametrize(
    "db",
    [
        "host=db.internal dbname=faces user=svc password=hunter22",
        "dbname=faces",
        "pg://localhost/faces",
        "postgresql:/x",
        "file:///tmp/faces.db",
    ],
)
def test_a_location_that_is_no_file_nor_postgres_uri_is_refused(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from exprsim.cli import main

    monkeypatch.chdir(tmp_path)
    paths = write_images(tmp_path / "imgs", 1)
    with pytest.raises(ExprsimError) as caught:  # was: a SQLite file of that name
        FaceIndex(db, embedder=StubEmbedder())
    text = str(caught.value)
    assert "\n" not in text and "hunter22" not in text
    assert "postgresql://" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]
    assert main(["-q", "index", "add", str(paths[0]), "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hunter22" not in err and "postgresql://" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


def test_a_file_so_named_can_still_be_given_as_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with FaceIndex("./dbname=faces", embedder=StubEmbedder()) as ix:
        assert len(ix) == 0
    assert (tmp_path / "dbname=faces").is_file()


# ----------------------------------------------------------------------------- NUL


def test_sqlite_refuses_a_nul_in_a_loaded_source_naming_row_and_column(tmp_path: Path) -> None:
    table = _table(["/r/a.jpg", "/r/b\x00.jpg", "/r/c.jpg"])
    with FaceIndex(tmp_path / "f.db") as ix:
        with pytest.raises(ExprsimError) as caught:  # was: 3 files added, a NUL stored
            ix.add_table(table)
        text = str(caught.value)
        assert "row 1, column source" in text and "\\x00" in text and "\x00" not in text
        assert len(ix) == 0 and ix.info().n_files == 0
        with pytest.raises(ExprsimError, match=r"^part-00000\.parquet: the table has 1 rows"):
            ix.add_table(table, name="part-00000.parquet")  # a shard's name goes first
        bad_detector = _table(["/r/a.jpg"], detector=["d\x00"])
        with pytest.raises(ExprsimError, match="row 0, column detector"):
            ix.add_table(bad_detector)
        ix.add_table(_table(["/r/tab\tname.jpg"]))  # a file name may hold a tab
        assert len(ix) == 1


def test_sqlite_refuses_a_nul_in_a_label_and_in_api_sources(tmp_path: Path) -> None:
    from exprsim.models.embedder import FaceEmbedding

    paths = write_images(tmp_path / "imgs", 1)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        ix.add(paths)
        fid = int(ix.embeddings()[0][0])
        with pytest.raises(ExprsimError, match="label"):  # was: stored with the NUL
            ix.set_label([fid], "bo\x00b")
        with pytest.raises(ExprsimError, match="label"):
            ix.set_label([fid], "line\nbreak")
        assert ix.get([fid])[0].label is None
        ix.set_label([fid], "Grace Hopper")
        e = np.eye(16, dtype=np.float32)[0]
        with pytest.raises(ExprsimError, match="source"):
            ix.add_tag_reference("smile", e, "stub@1", source="/r/x\x00.jpg")
        face = StubEmbedder().embed_images([str(paths[0])])[0]
        renamed = FaceEmbedding("/r/y\x00.jpg", 0, face.aligned, face.embedding)
        with pytest.raises(ExprsimError, match="source"):  # was: ValueError (embedded null)
            ix.add_faces([renamed], "stub@1")
        assert len(ix) == 1 and ix.tag_references() == []
