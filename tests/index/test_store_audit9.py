"""Ninth robustness round: a fault of the index's database is told by its type
(:class:`exprsim.errors.IndexDatabaseError`), not by the words of its message."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.errors import ExprsimError, IndexDatabaseError
from exprsim.index.store import FaceIndex


def test_database_faults_are_typed_and_keep_their_one_line_message(tmp_path: Path) -> None:
    folder = tmp_path / "a folder"
    folder.mkdir()
    cases = [
        (folder, "is a directory, expected a database file"),
        (tmp_path / "gone" / "f.db", f"folder {tmp_path / 'gone'} does not exist"),
    ]
    for db, detail in cases:
        with pytest.raises(IndexDatabaseError) as caught:
            FaceIndex(db, embedder=StubEmbedder())
        err = caught.value
        assert (err.db, err.detail, err.read_only) == (str(db), detail, False)
        assert str(err) == f"{db}: {detail}"  # the message users saw before
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all " * 200)
    with pytest.raises(IndexDatabaseError, match="not a usable exprsim database"):
        FaceIndex(junk, embedder=StubEmbedder()).records()


def test_a_refused_write_to_a_read_only_index_says_so_in_its_type(
    tmp_path: Path, monkeypatch
) -> None:
    import exprsim.index.backends as backends

    paths = write_images(tmp_path / "imgs", 2)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add(paths[:1])
    monkeypatch.setattr(backends, "writable", lambda path: False)
    with FaceIndex(db, embedder=StubEmbedder()) as ix, pytest.raises(IndexDatabaseError) as c:
        ix.add(paths[1:])
    assert c.value.read_only and c.value.db == str(db)
    assert str(c.value).startswith(f"{db}: read-only (")


def test_the_error_pickles_whole() -> None:
    err = IndexDatabaseError("/srv/f.db", "no such database", read_only=True)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is IndexDatabaseError and isinstance(back, ExprsimError)
    assert (back.db, back.detail, back.read_only, str(back)) == (
        "/srv/f.db",
        "no such database",
        True,
        "/srv/f.db: no such database",
    )


def test_a_bad_row_of_a_loaded_shard_names_the_shard(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from exprsim.scale.parquet import load_parquet

    shards = tmp_path / "shards"
    shards.mkdir()
    emb = np.eye(16, dtype=np.float32)[:2]
    table = pd.DataFrame(
        {"source": ["/r/a.jpg", "/r/b\x00.jpg"], **{f"e{i}": emb[:, i] for i in range(16)}}
    )
    table["model"] = "stub@1"
    table.to_parquet(shards / "part-00003.parquet")
    with pytest.raises(ExprsimError) as caught:
        load_parquet(shards, tmp_path / "f.db", progress=False)
    assert str(caught.value).startswith(str(shards / "part-00003.parquet"))
    assert "row 1, column source" in str(caught.value)


def test_the_index_never_reads_a_pipe_or_a_huge_file_whole(tmp_path: Path) -> None:
    import os

    from exprsim.io import file_byte_limit

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)  # was: read_bytes() waited for a writer for ever
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as fh:  # sparse: no disk used, nothing to read
        fh.truncate(file_byte_limit() + 1)
    with FaceIndex(tmp_path / "f.db", embedder=StubEmbedder()) as ix:
        outcomes = {Path(o.path).name: o for o in ix.add([fifo, huge]).files}
    assert outcomes["fifo.jpg"].status == "failed"
    assert "not a regular file" in outcomes["fifo.jpg"].error
    assert outcomes["huge.jpg"].status == "failed"
    assert "file too large" in outcomes["huge.jpg"].error


def test_a_new_index_opened_by_several_threads_at_once_is_created_once(tmp_path: Path) -> None:
    import threading

    errors: list[str] = []
    for trial in range(12):
        db = tmp_path / f"t{trial}.db"

        def open_it(db: Path = db) -> None:
            try:
                FaceIndex(db).close()
            except Exception as exc:  # was: "a SQLite database of something else (tables: meta)"
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
