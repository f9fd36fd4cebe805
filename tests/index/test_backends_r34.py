"""Round 34: a Ctrl-C (or any exception) raised as ``BEGIN`` returned (after a wait for
another writer, which SQLite does not interrupt) left the index's connection inside a write
transaction for good: every later write or query of that ``FaceIndex`` failed ("cannot
start a transaction within a transaction") and other processes found the database locked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_bulk import random_faces

from exprsim.index.store import FaceIndex


class _InterruptAfter:
    """A connection that raises ``KeyboardInterrupt`` as the first statement starting with
    ``prefix`` returns (the statement done, as a signal arriving during it leaves it)."""

    def __init__(self, conn: Any, prefix: str) -> None:
        self.real, self.prefix, self.armed = conn, prefix, True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def execute(self, sql: str, *params: Any) -> Any:
        out = self.real.execute(sql, *params)
        if self.armed and sql.startswith(self.prefix):
            self.armed = False
            raise KeyboardInterrupt
        return out


@pytest.fixture
def index(tmp_path: Path) -> Any:
    with FaceIndex(tmp_path / "f.db") as ix:
        ix.add_faces(random_faces(4, 0), model="stub@1")
        yield ix


@pytest.mark.parametrize("prefix", ["BEGIN", "COMMIT"])
def test_an_interrupted_write_leaves_no_transaction_open(index: Any, prefix: str) -> None:
    real = index._db.conn
    index._db.conn = _InterruptAfter(real, prefix)
    ids = [r.id for r in index.records()]
    with pytest.raises(KeyboardInterrupt):
        index.add_tags(ids[:1], "x")
    assert not real.in_transaction  # was: True, for good
    index.add_tags(ids[:1], "y")  # was: "cannot start a transaction within a transaction"
    _, nn = index.query(index.records()[0].embedding[None], k=1)
    assert nn[0, 0] == ids[0]
    with FaceIndex(index._db.path) as other:  # another opener writes (was: locked)
        other.add_tags(ids[1:2], "z")
    tags = {t for r in index.records() for t in (r.tags or [])}
    assert "y" in tags and "z" in tags and ("x" in tags) == (prefix == "COMMIT")


def test_an_interrupted_snapshot_leaves_no_transaction_open(index: Any) -> None:
    real = index._db.conn
    index._db.conn = _InterruptAfter(real, "BEGIN")
    with pytest.raises(KeyboardInterrupt), index._db.snapshot():
        pass
    assert not real.in_transaction
    assert len(index.records()) == 4 and np.isfinite(index.embeddings()[1]).all()


# A row written by another program with an embedding of another size (float64: 128 bytes)
# shifted every embedding after it: `index rebuild` said "16 faces" with exit 0, and each
# search then failed as "queries must be (Q, 17)".


@pytest.mark.parametrize("size", [128, 4, 0])
def test_an_embedding_of_another_size_is_named(tmp_path: Path, size: int) -> None:
    import sqlite3

    from exprsim.errors import ExprsimError, IndexDatabaseError

    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_faces(random_faces(4, 0), model="stub@1")
        bad = ix.records()[1].id
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE faces SET embedding = ? WHERE id = ?", (b"\1" * size, bad))
    with FaceIndex(db) as ix:
        with pytest.raises(IndexDatabaseError) as err:
            ix.embeddings()
        assert f"face {bad} has an embedding of {size} bytes, not 64" in str(err.value)
        with pytest.raises(ExprsimError, match=f"an embedding of {size} bytes, not 64"):
            ix.records()


# An ANN catch-up stopped (a Ctrl-C) after it changed the in-memory index but before its
# stamp: the next query rebuilt (right answers), blaming the cache file: "holds 6 vectors,
# its stamp 4".


def test_an_interrupted_catch_up_is_not_blamed_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from exprsim.index import ann

    db = tmp_path / "f.db"
    with FaceIndex(db) as ix:
        ix.add_faces(random_faces(4, 0), model="stub@1")
        q = np.stack([r.embedding for r in ix.records()])
        ix.query(q, 2)  # builds and saves the cache
        with FaceIndex(db) as other:
            other.add_faces(random_faces(2, 1, prefix="more"), model="stub@1")
        real = ann.ExactIndex.add

        def add_then_ctrl_c(self: Any, *a: Any, **k: Any) -> Any:
            real(self, *a, **k)
            raise KeyboardInterrupt

        monkeypatch.setattr(ann.ExactIndex, "add", add_then_ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            ix.query(q, 2)
        monkeypatch.undo()
        with caplog.at_level(logging.INFO):
            _, got = ix.query(q, 6)
        assert "its stamp" not in caplog.text  # was: the file blamed
        ids, emb = ix.embeddings()
        assert np.array_equal(got, ann.ExactIndex(emb, ids).search(q, 6)[1])


def test_a_nested_transaction_refused_leaves_the_outer_one(index: Any) -> None:
    """Review: with BEGIN inside the try, a BEGIN refused because a transaction was open
    (a misuse) rolled back the outer transaction too."""
    import sqlite3

    db = index._db
    with db.transaction():
        db.execute("CREATE TABLE probe (x)")
        db.execute("INSERT INTO probe VALUES (1)")
        with pytest.raises(sqlite3.OperationalError), db.transaction():
            pass
        with pytest.raises(sqlite3.OperationalError), db.snapshot():
            pass
        db.execute("INSERT INTO probe VALUES (2)")
    assert db.execute("SELECT count(*) FROM probe").fetchone()[0] == 2


# An index of an exprsim before the face log (2026-11-29), opened read-only (a read-only
# mount, another user's file): `search` and `index rebuild` failed with "no such table:
# sqlite_sequence".


def test_a_read_only_index_without_a_face_log_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import exprsim.index.backends as backends

    db = tmp_path / "old.db"
    with FaceIndex(db) as ix:
        ix.add_faces(random_faces(5, 0), model="stub@1")
        q = np.stack([r.embedding for r in ix.records()])
    with sqlite3.connect(db) as conn:  # the layout before the log: no log, no sequence
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute("DROP TABLE face_log")
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("DELETE FROM sqlite_master WHERE name = 'sqlite_sequence'")
    (tmp_path / "old.db.ann").unlink(missing_ok=True)
    monkeypatch.setattr(backends, "writable", lambda path: False)
    with FaceIndex(db) as ix:
        assert ix._db.read_only
        _, got = ix.query(q, 1)  # was: "no such table: sqlite_sequence"
        assert got[:, 0].tolist() == [r.id for r in ix.records()]
        ix.rebuild_ann()


# A second writer waited for ever behind a writer stopped with Ctrl-Z, told only "another
# writer is adding or re-embedding files; waiting for it".


def test_a_waiting_writer_names_the_holder_and_says_it_is_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import fcntl
    import logging
    import os
    import signal
    import socket
    import subprocess
    import time

    from exprsim.errors import IndexBusyError
    from exprsim.index.backends import lock_holder

    db = tmp_path / "f.db"
    with FaceIndex(db) as ix, ix._db.writer_lock():
        assert (tmp_path / "f.db.lock").read_bytes().startswith(f"{os.getpid()} ".encode())
    lock = tmp_path / "f.db.lock"
    assert lock.read_bytes() == b""  # the holder's name goes with its lock
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        sleeper.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10  # the stop is delivered asynchronously
        while b") T " not in Path(f"/proc/{sleeper.pid}/stat").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with open(lock, "a+b") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            host = socket.gethostname() or "-"
            held.write(f"{sleeper.pid} {host} exprsim index add photos\n".encode())
            held.flush()
            with open(lock, "a+b") as other:
                said = lock_holder(other)
            assert said.startswith(f" (pid {sleeper.pid}, `exprsim index add photos`")
            assert "stopped" in said
            ix = FaceIndex(db)
            busy = pytest.raises(IndexBusyError)
            with caplog.at_level(logging.WARNING), ix, busy, ix._db.writer_lock(wait=0.3):
                pass
            assert f"(pid {sleeper.pid}," in caplog.text and "stopped" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_writer_waiting_for_ever_says_so_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import fcntl
    import logging
    import threading

    from exprsim.index.backends import _flock_waiting

    lock = tmp_path / "f.db.lock"
    lock.write_bytes(b"")
    with open(lock, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        threading.Timer(0.7, lambda: fcntl.flock(held, fcntl.LOCK_UN)).start()
        with open(lock, "a+b") as waiting, caplog.at_level(logging.WARNING):
            _flock_waiting(waiting, "f.db", every=0.2)  # returns once the holder lets go
            fcntl.flock(waiting, fcntl.LOCK_UN)
    said = [r.getMessage() for r in caplog.records if "still waiting" in r.getMessage()]
    assert 2 <= len(said) <= 4, said
