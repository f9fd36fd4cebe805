"""Nineteenth robustness round, PostgreSQL: a password holding ``@`` and then ``?`` is
hidden whole, a bulk load whose server died keeps its own message, a long-lived index
connects again after the server comes back, and hand-made tables of the wrong shape are
refused at open.

The tests that need a server use ``pg_url`` / ``pg_admin_url`` (``conftest.py``) or start
their own ``pgserver``, and are skipped without one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pandas as pd
import pytest

from exprsim.errors import IndexDatabaseError, IndexUnavailableError
from exprsim.index.pgvector import redact, scrub
from exprsim.index.store import FaceIndex

_H = "?host=/some/dir"

# ----------------------------------------------------------------------------- passwords

#: a URI and its redaction: the audit's cases first, then the ones earlier rounds fixed
_REDACTED = [
    ("postgresql://pw1:xy@z?a&bcd@/pwdb" + _H, "postgresql://pw1:***@/pwdb" + _H),
    ("postgresql://pw1:p@ss?word1@/pwdb" + _H, "postgresql://pw1:***@/pwdb" + _H),
    ("postgresql://pw1:Sec#ret/x@y:z?a&b%20é@/pwdb" + _H, "postgresql://pw1:***@/pwdb" + _H),
    ("postgresql://u:p@ss?a=b@/db" + _H, "postgresql://u:***@/db" + _H),
    ("postgresql://u:p@s?host=x&y@/db" + _H, "postgresql://u:***@/db" + _H),
    ("postgresql://u:pa/ss?host=x@/db", "postgresql://u:***@/db"),
    ("postgresql://h:5432/db?password=a@b", "postgresql://h:5432/db?password=***"),
    ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
    # a database name holding an "@" (round 19's review): the host and name stay shown
    ("postgresql://app:Sup3rS3cret@dbhost.invalid/sales@2024", "postgresql://app:***@dbhost.invalid/sales@2024"),
    ("postgresql://app:3@efW,CyzH@%2Ftmp%2Fnosock/d@b", "postgresql://app:***@%2Ftmp%2Fnosock/d@b"),
    ("postgresql://usr:6/kj cbhgN7k@localhost:1/db", "postgresql://usr:***@localhost:1/db"),
    ("postgresql://usr:u@o/xiJ6x1@%2Ftmp/db?application_name=x@y", "postgresql://usr:***@%2Ftmp/db?application_name=x@y"),
    ("postgresql://bob:s3cret@db.example:5432/faces", "postgresql://bob:***@db.example:5432/faces"),
    ("postgresql://alice:pa/ss@/f?host=/no/sock", "postgresql://alice:***@/f?host=/no/sock"),
    ("postgresql://alice:p@ss@/f?host=/no/sock", "postgresql://alice:***@/f?host=/no/sock"),
    ("postgresql://alice:p%zz9secret@host/db", "postgresql://alice:***@host/db"),
    ("postgresql://al:Xy9@127.0.0.1:1/db?password=top1", "postgresql://al:***@127.0.0.1:1/db?password=***"),
    ("postgresql://alice:s3cr3t@[::1/faces1", "postgresql://alice:***@[::1/faces1"),
    ("postgresql://u:pa?ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:pa#ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:p@s#s@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:%23%2F%40%3A%3F%26%25@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u@h/db?sslmode=x&password=s3cret", "postgresql://u@h/db?sslmode=x&password=***"),
    ("PostgreSQL://u:s3cret@h/db", "PostgreSQL://u:***@h/db"),
    ("postgresql://h/db?PASSWORD=s3cret#x", "postgresql://h/db?PASSWORD=***#x"),
    ("postgresql://u:@/db" + _H, "postgresql://u:***@/db" + _H),
    ("postgresql://me@corp:pw@h1:5432,h2:5433/db", "postgresql://me@corp:***@h1:5432,h2:5433/db"),
    ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
    # nothing to hide: an "@" in the query or the database name stays
    ("postgresql://u:pw@h/db?application_name=a@b", "postgresql://u:***@h/db?application_name=a@b"),
    ("postgresql://h/db?user=a@b", "postgresql://h/db?user=a@b"),
    ("postgresql://h/d@b", "postgresql://h/d@b"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://%2Fvar%2Frun/db", "postgresql://%2Fvar%2Frun/db"),
    ("host=db dbname=faces user=svc password=hunter22", "host=db dbname=faces user=svc password=hunter22"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "want"), _REDACTED)
def test_redact_hides_the_whole_password(url: str, want: str) -> None:
    assert redact(url) == want  # was: pw1:***@z?a&bcd@/pwdb, pw1:***@ss?word1@/pwdb


@pytest.mark.parametrize(
    ("url", "password", "pieces"),
    [
        ("postgresql://pw1:xy@z?a&bcd@/pwdb" + _H, "xy@z?a&bcd", ["bcd"]),
        ("postgresql://pw1:p@ss?word1@/pwdb" + _H, "p@ss?word1", ["word1"]),
        ("postgresql://pw1:Sec#ret/x@y:z?a&b%20é@/pwdb" + _H, "Sec#ret/x@y:z?a&b%20é", ["b%20é"]),
    ],
)
def test_driver_messages_lose_every_form_of_the_password(
    url: str, password: str, pieces: list[str]
) -> None:
    tail = password.split("@", 1)[1]  # what libpq, cutting at the first "@", takes for a host
    encoded = quote(password, safe="")
    text = f'no host "{tail}" for "{password}" ({encoded}), or {" ".join(pieces)}'
    out = scrub(text, url)
    for shown in (password, tail, encoded, *pieces):
        assert shown not in out, out  # was: the part after the first "@" left


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("postgresql://pw1:xy@z?a&bcd@/pwdb" + _H, ["z?a&bcd", "bcd", '"a"']),
        ("postgresql://pw1:p@ss?word1@/pwdb" + _H, ["ss?word1", "word1"]),
        ("postgresql://pw1:Sec#ret/x@y:z?a&b%20é@/pwdb" + _H, ["y:z?a&b", "b%20é", "Sec#ret"]),
    ],
)
def test_the_cli_shows_no_part_of_such_a_password(
    url: str, hidden: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg", reason="psycopg not installed")
    from exprsim.cli import main

    with pytest.raises(IndexDatabaseError) as caught:
        FaceIndex(url, create=False)
    assert main(["-q", "index", "info", "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pw1:***@/pwdb?host=" in err, err
    for text in (str(caught.value), err):
        for secret in hidden:
            assert secret not in text, text


# ----------------------------------------------------------------------------- bulk load


class _DeadIndex:
    """An index whose server died: every call fails as the real one's does."""

    path = "postgresql://u:***@db/faces"

    def __enter__(self) -> _DeadIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __len__(self) -> int:
        raise IndexUnavailableError(
            self.path, "PostgreSQL cannot be reached (the connection is closed)"
        )


def test_a_bulk_load_whose_server_died_keeps_its_own_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import exprsim.cli.apps_cmd as apps_cmd
    import exprsim.scale
    from exprsim.cli import main

    stored = (
        "the faces loaded were stored, but building the HNSW index failed (the server "
        "closed the connection); searches scan every face until `exprsim index rebuild`"
    )

    def load(*args: object, **kwargs: object) -> None:
        raise IndexUnavailableError(_DeadIndex.path, stored)

    monkeypatch.setattr(apps_cmd, "_open_index", lambda *a, **kw: _DeadIndex())
    monkeypatch.setattr(exprsim.scale, "load_parquet", load)
    (tmp_path / "shards").mkdir()
    db = "postgresql://u:pw@db/faces"
    assert main(["-q", "index", "add", "--from-parquet", str(tmp_path / "shards"), "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the faces loaded were stored" in err, err  # was: lost
    assert "connection is closed" not in err


# ----------------------------------------------------------------------------- reconnecting


def _table(n: int) -> pd.DataFrame:
    emb = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    cols = {f"e{i}": emb[:, i] for i in range(16)}
    return pd.DataFrame({"source": [f"/p/{i}.jpg" for i in range(n)], **cols, "model": "stub@1"})


def _admin(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def _terminate(admin_url: str, ix: FaceIndex) -> None:
    """End the index's own server session from another connection, and wait until it is
    gone (``pg_terminate_backend`` only signals it)."""
    import psycopg

    pid = ix._db.conn.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(200):
            gone = conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))
            if gone.fetchone() is None:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} still there")


def _works(ix: FaceIndex, q: np.ndarray, want: np.ndarray) -> None:
    """Searches (HNSW, and a filtered exact scan), counts and the session settings work."""
    _, got = ix.query(q, 3)
    assert (got[0] == want).all()
    ids, _ = ix.nearest_passing(q[0], 3)
    assert list(ids) == list(want)
    assert len(ix) == 30 and ix.info().n_faces == 30
    assert ix._db.execute("SHOW hnsw.ef_search").fetchone()[0] == "100"  # type: ignore[attr-defined]


def test_an_index_connects_again_after_its_session_was_ended(
    pg_url: str, pg_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(30))
        q = ix.embeddings()[1][:1]
        want = ix.query(q, 3)[1][0]
        _terminate(pg_admin_url, ix)
        _works(ix, q, want)  # was: IndexUnavailableError on every call, for good
        assert "connected again" in caplog.text


def test_while_the_server_is_unreachable_each_call_fails_in_one_line_then_works(
    pg_url: str, pg_admin_url: str
) -> None:
    db = urlsplit(pg_url).path.lstrip("/")
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(30))
        q = ix.embeddings()[1][:1]
        want = ix.query(q, 3)[1][0]
        _admin(pg_admin_url, f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")
        try:
            _terminate(pg_admin_url, ix)
            for _ in range(2):
                with pytest.raises(IndexUnavailableError) as caught:
                    len(ix)
                assert "\n" not in str(caught.value) and "cannot connect" in str(caught.value)
        finally:
            _admin(pg_admin_url, f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")
        _works(ix, q, want)


def test_no_statement_is_run_again_in_a_transaction_or_under_the_writer_lock(
    pg_url: str, pg_admin_url: str
) -> None:
    import psycopg

    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(30))
        q = ix.embeddings()[1][:1]
        want = ix.query(q, 3)[1][0]
        db = ix._db  # type: ignore[attr-defined]
        with pytest.raises(IndexUnavailableError), db.transaction():
            db.execute("UPDATE faces SET label = 'x' WHERE id = 1")
            _terminate(pg_admin_url, ix)
            db.execute("UPDATE faces SET label = 'y' WHERE id = 2")  # no new connection here
        with pytest.raises(IndexUnavailableError), db.writer_lock():
            _terminate(pg_admin_url, ix)
            len(ix)  # not on a new connection: it would not hold the writer's lock
        _works(ix, q, want)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM faces WHERE label IS NOT NULL").fetchone()[0] == 0
        assert (
            conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
            == 0
        )


@contextlib.contextmanager
def _own_server(folder: Path) -> Iterator[tuple[str, object]]:
    """A PostgreSQL server of this test alone (``pgserver``) in ``folder`` (one made by
    ``tmp_path_factory.mktemp``, as the shared server's: a test's own ``tmp_path`` may be
    closed to the server's user), stopped and removed after."""
    pgserver = pytest.importorskip("pgserver", reason="no pgserver: pip install pgserver")
    pytest.importorskip("psycopg", reason="psycopg not installed")
    server = pgserver.get_server(str(folder), cleanup_mode="delete")
    try:
        yield server.get_uri(), server
    finally:
        with contextlib.suppress(Exception):  # after a restart pgserver knows the old pid only
            _pg_ctl(server, "-w", "-m", "immediate", "stop")
        server.cleanup()


def _pg_ctl(server: object, *args: str) -> None:
    import pgserver

    data = Path(server.pgdata)  # type: ignore[attr-defined]
    log = str(data / "restart.log")
    user = server.system_user  # type: ignore[attr-defined]
    pgserver.pg_ctl([*args, "-l", log], pgdata=data, user=user, timeout=60)


def test_an_index_works_again_after_the_server_restarted(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with _own_server(tmp_path_factory.mktemp("pgown")) as (admin, server):
        _admin(admin, "CREATE DATABASE restarted")
        url = admin.replace("/postgres?", "/restarted?")
        with FaceIndex(url) as ix:
            ix.add_table(_table(30))
            q = ix.embeddings()[1][:1]
            want = ix.query(q, 3)[1][0]
            _pg_ctl(server, "-w", "-m", "fast", "restart")
            _works(ix, q, want)  # was: "the connection is lost" on every call


# ----------------------------------------------------------------------------- table shapes


def _hand_made(url: str, schema: str) -> None:
    _admin(url, "CREATE EXTENSION IF NOT EXISTS vector", schema)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("vector(16)", "vector(32)"), ["faces", "vector(32)", "not vector(16)"]),
        (("embedding vector(16)", "embedding BYTEA"), ["faces", "type bytea"]),
        (("    quality_ok INTEGER,\n", ""), ["faces", "lacks the columns quality_ok"]),
        (("    path TEXT NOT NULL UNIQUE,\n", ""), ["files", "lacks the columns path"]),
    ],
)
def test_hand_made_tables_of_another_shape_are_refused_at_open(
    pg_url: str, change: tuple[str, str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from exprsim.cli import main
    from exprsim.index.pgvector import PG_SCHEMA

    assert change[0] in PG_SCHEMA
    _hand_made(pg_url, PG_SCHEMA.replace(*change))
    for create in (True, False):  # was: opened; then "expected 32 dimensions, not 16" or
        with pytest.raises(IndexDatabaseError) as caught:  # 'column "quality_ok" does not exist'
            FaceIndex(pg_url, create=create)
        text = str(caught.value)
        assert "\n" not in text and "exprsim leaves it untouched" in text
        assert all(w in text for w in words), text
    assert main(["-q", "index", "info", "--db", pg_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(w in err for w in words), err


def test_exprsim_tables_open_and_an_earlier_exprsims_too(pg_url: str) -> None:
    from exprsim.index.pgvector import PG_SCHEMA

    twin = "    twin BOOLEAN NOT NULL DEFAULT false,\n"
    assert twin in PG_SCHEMA
    _hand_made(pg_url, PG_SCHEMA.replace(twin, ""))  # before copies were marked
    with FaceIndex(pg_url, create=False) as ix:
        assert len(ix) == 0
    with FaceIndex(pg_url) as ix:
        ix.add_table(_table(30))
        assert len(ix) == 30


def test_the_check_reads_the_tables_the_search_path_finds(pg_url: str) -> None:
    from exprsim.index.pgvector import PG_SCHEMA

    odd = PG_SCHEMA.replace("vector(16)", "vector(8)")
    _admin(pg_url, "CREATE EXTENSION IF NOT EXISTS vector", "CREATE SCHEMA other")
    _admin(pg_url, "SET search_path = other, public", odd)
    with FaceIndex(pg_url) as ix:  # other.faces is not what the index uses: public's are made
        ix.add_table(_table(30))
        assert len(ix) == 30
    opts = "options=-csearch_path%3Dother,public"
    other = pg_url + ("&" if "?" in pg_url else "?") + opts
    with pytest.raises(IndexDatabaseError, match="vector\\(8\\)"):
        FaceIndex(other, create=False)


# ----------------------------------------------------------------------------- pgvector's schema


def _as_user(url: str, user: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@pytest.mark.parametrize("usage", [False, True])
def test_pgvector_in_a_schema_the_user_cannot_see_is_named(pg_url: str, usage: bool) -> None:
    """Audit 18, item 9: pgvector installed in another schema gave "type "vector" does not
    exist" (no usage right) or "vector type not found" (not on the search path) without
    saying where it is or what to do."""
    from exprsim.errors import IndexDatabaseError

    role = f"noext_{'u' if usage else 'n'}_{abs(hash(pg_url)) % 10_000}"
    _admin(
        pg_url,
        f"DROP ROLE IF EXISTS {role}",
        f"CREATE ROLE {role} LOGIN",
        "CREATE SCHEMA ext",
        "CREATE EXTENSION vector SCHEMA ext",
        f"GRANT CREATE, USAGE ON SCHEMA public TO {role}",
        *([f"GRANT USAGE ON SCHEMA ext TO {role}"] if usage else []),
    )
    try:
        with pytest.raises(IndexDatabaseError) as caught:
            FaceIndex(_as_user(pg_url, role))
        text = str(caught.value)
        assert "\n" not in text and "pgvector is installed in schema ext" in text
        want = "not on the search path" if usage else f"GRANT USAGE ON SCHEMA ext TO {role}"
        assert want in text
    finally:
        _admin(pg_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")
