"""Store locations for the index tests: a SQLite file, or a fresh PostgreSQL database.

PostgreSQL comes from ``EXPRSIM_TEST_PG`` (a libpq URI of a server with pgvector whose user
may create databases) when set, else from the ``pgserver`` wheel (PostgreSQL 16 + pgvector,
started once per session in a temp folder, no root). Without either, or without
``psycopg`` / ``pgvector`` (``pip install 'exprsim[postgres]' pgserver``), the PostgreSQL
half of each test is skipped with the reason.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

_counter = itertools.count()


def with_database(url: str, name: str) -> str:
    """The same server URI with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL URI whose user may create databases (skips when none can be had)."""
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'exprsim[postgres]'")
    pytest.importorskip(
        "pgvector", reason="pgvector not installed: pip install 'exprsim[postgres]'"
    )
    url = os.environ.get("EXPRSIM_TEST_PG")
    if url:
        yield url
        return
    pgserver = pytest.importorskip(
        "pgserver",
        reason="no PostgreSQL for the tests: pip install pgserver, or set EXPRSIM_TEST_PG",
    )
    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_admin_url: str) -> str:
    """A fresh, empty database on the test server."""
    import psycopg

    name = f"exprsim_test_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return with_database(pg_admin_url, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's FaceIndex lives: ``tmp_path / "faces.db"`` or a ``postgresql://`` URI."""
    if request.param == "sqlite":
        return tmp_path / "faces.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def count_files(store: str | Path) -> Callable[[], int]:
    """Rows in ``files``, read with the engine's own client (safe while another process writes)."""

    def count() -> int:
        if isinstance(store, Path):
            import sqlite3

            if not store.exists():
                return 0
            with sqlite3.connect(store, timeout=1) as c:
                return int(c.execute("SELECT COUNT(*) FROM files").fetchone()[0])
        import psycopg

        with psycopg.connect(store) as c:
            row = c.execute("SELECT to_regclass('files') IS NOT NULL").fetchone()
            if not row[0]:
                return 0
            return int(c.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    return count
