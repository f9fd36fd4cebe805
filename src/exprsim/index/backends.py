"""Where a :class:`~exprsim.index.store.FaceIndex` keeps its rows: a SQLite file or a PostgreSQL server.

:class:`~exprsim.index.store.FaceIndex` writes its SQL once, with ``?`` placeholders and
syntax both engines accept (``ON CONFLICT``, ``RETURNING``); a :class:`StoreBackend` owns
the connection and everything that differs between the engines:

* the schema (types, the HNSW index of pgvector);
* transactions and the one-writer lock (``flock`` beside a SQLite file, an advisory lock in
  PostgreSQL);
* how a ``(16,)`` float32 embedding travels (a float32 blob, or a pgvector ``vector(16)``);
* bulk loads (``executemany`` in one transaction, or ``COPY``);
* nearest-neighbour search: the SQLite store has none of its own (``searcher()`` is
  ``None``: the faiss/numpy ANN cache beside the file answers, :mod:`exprsim.index.ann`),
  PostgreSQL answers from its HNSW index (:mod:`exprsim.index.pgvector`).

:func:`open_backend` picks one from the location: a ``postgresql://`` / ``postgres://``
URI (any libpq form, Unix sockets included) or a file path.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ExprsimError, IndexBusyError, IndexDatabaseError
from exprsim.io import special_file, stat_or_none
from exprsim.lockholder import forget_holder, lock_holder, note_holder

log = logging.getLogger(__name__)

#: bytes of one stored embedding: 16 float32 values
EMBEDDING_BYTES = 16 * 4

PG_SCHEMES = ("postgresql://", "postgres://")


def check_db_file(db: str, hint: str) -> None:
    """Refuse a ``--db`` SQLite file that is missing (``hint``: how to make one, after
    "no such database"), a folder, a pipe or another special file, or empty; a PostgreSQL
    URI is not checked here.

    Raises:
        ExprsimError: one line naming ``db`` and what it is.
    """
    if is_postgres_url(db):
        return
    path = Path(db)
    if path.is_dir():
        raise ExprsimError(f"{db}: is a directory, expected a database file")
    kind = special_file(path)
    if kind:  # SQLite met a pipe as "disk I/O error"; is_file() called it missing
        raise ExprsimError(f"{db}: is {kind}, not a database file")
    if not path.is_file():
        raise ExprsimError(f"{db}: no such database ({hint})")
    if path.stat().st_size == 0:
        raise ExprsimError(f"{db}: an empty file, not an exprsim index")


SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    ctime_ns INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    n_faces INTEGER NOT NULL DEFAULT 0,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    face_index INTEGER NOT NULL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    score REAL,
    detector TEXT,
    landmarks BLOB,
    sharpness REAL, yaw REAL, pitch REAL, roll REAL,
    quality_ok INTEGER,
    reasons TEXT,
    embedding BLOB NOT NULL,
    model TEXT NOT NULL,
    label TEXT,
    tags TEXT,
    crop BLOB,
    UNIQUE (file_id, face_index)
);
CREATE TABLE IF NOT EXISTS tag_refs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT,
    face_index INTEGER,
    embedding BLOB NOT NULL,
    model TEXT NOT NULL,
    crop BLOB,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_refs_name ON tag_refs(name);
CREATE TABLE IF NOT EXISTS identity (
    face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
    descriptor BLOB
);
-- every face inserted or deleted, in order: lets the ANN cache catch up incrementally
-- (exprsim.index.store.FaceIndex._ann_index) instead of being rebuilt from scratch.
CREATE TABLE IF NOT EXISTS face_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    face_id INTEGER NOT NULL,
    op INTEGER NOT NULL  -- +1 inserted, -1 deleted
);
CREATE TRIGGER IF NOT EXISTS faces_log_ins AFTER INSERT ON faces
BEGIN INSERT INTO face_log (face_id, op) VALUES (new.id, 1); END;
CREATE TRIGGER IF NOT EXISTS faces_log_del AFTER DELETE ON faces
BEGIN INSERT INTO face_log (face_id, op) VALUES (old.id, -1); END;
"""


#: version of the tables above; a database of another version is refused before anything
#: is written to it
SCHEMA_VERSION = 1

#: columns of the tables above added after their version was set, with their SQLite type:
#: an index made before gets them when it is next opened for writing (``ALTER TABLE ...
#: ADD COLUMN``, in both engines); one that cannot be written works without them. They are
#: not asked of a table to tell exprsim's from another program's.
#: ``files.ctime_ns`` is the file's ``st_ctime_ns``: a file rewritten with the same size and
#: modification time (``cp -p``, ``rsync -t``, ``exiftool -P``) has a new change time.
ADDED_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {"files": (("ctime_ns", "INTEGER"),)}

#: how long a SQLite connection waits for another process's write transaction
BUSY_TIMEOUT_S = 30.0

#: what exprsim keeps beside a SQLite index ``DB``: ``DB`` + each suffix, and what it is
SIDE_FILES: dict[str, str] = {
    "-wal": "write-ahead log",
    "-shm": "shared-memory file",
    "-journal": "rollback journal",
    ".ann.json": "ANN cache stamp",
    ".ann": "ANN cache",
    ".lock": "writer lock",
    ".web": "web upload folder",
}

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite_file(path: Path) -> bool:
    """Whether ``path`` is a SQLite database file (by its header)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def check_db_name(path: str | Path) -> None:
    """Refuse a SQLite index whose file is, or would become, a side file of another index
    (:data:`SIDE_FILES`): SQLite deletes or replays a ``-wal`` it does not recognise, and the
    ANN cache overwrites ``.ann``, so either index would destroy the other later.

    A new file may not end with a side suffix; an existing one only when its base does not
    exist. An index is refused too while one of its own side names holds a SQLite database
    (an index made earlier under that name).

    Raises:
        ExprsimError: naming both files; nothing was written.
    """
    check_location(path)
    path = Path(path)
    name = path.name
    for suffix, what in SIDE_FILES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            base = path.with_name(name[: -len(suffix)])
            if not path.exists() or base.exists():
                raise ExprsimError(
                    f"{path}: the name of the {what} of the index {base} (exprsim or SQLite "
                    "would overwrite or delete it); choose a name not ending in "
                    f"{suffix!r}"
                )
    for suffix, what in SIDE_FILES.items():
        side = Path(f"{path}{suffix}")
        if _is_sqlite_file(side):
            raise ExprsimError(
                f"{path}: {side} is a SQLite database of its own (an index made with --db "
                f"{side}?) that this index would overwrite as its {what}; rename it first"
            )


def check_schema(where: object, text: object) -> None:
    """Refuse an index whose ``meta.schema`` is not :data:`SCHEMA_VERSION`.

    Raises:
        ExprsimError: a damaged value, or another version (a newer exprsim's index is not
            changed by this one).
    """
    try:
        schema = int(str(text))
    except ValueError:
        raise IndexDatabaseError(str(where), f"damaged database (schema {text!r})") from None
    if schema > SCHEMA_VERSION:
        raise IndexDatabaseError(
            str(where),
            f"schema {schema}, made by a newer exprsim; this exprsim reads "
            f"{SCHEMA_VERSION} and left the file unchanged (upgrade exprsim)",
        )
    if schema != SCHEMA_VERSION:
        raise IndexDatabaseError(
            str(where), f"schema {schema}, this exprsim reads {SCHEMA_VERSION}"
        )


@functools.cache
def _sqlite_layout() -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    """The columns of each table of :data:`SQLITE_SCHEMA` (less :data:`ADDED_COLUMNS`), and
    the names of all its tables, indexes and triggers (read from an in-memory database made
    with it)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SQLITE_SCHEMA)
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
        later = {(t, c) for t, added in ADDED_COLUMNS.items() for c, _ in added}
        columns = {
            str(name): tuple(
                str(c[1])
                for c in conn.execute(f"PRAGMA table_info({name})")
                if (name, c[1]) not in later
            )
            for kind, name in rows
            if kind == "table"
        }
    finally:
        conn.close()
    return columns, frozenset(str(r[1]) for r in rows)


def table_columns() -> dict[str, tuple[str, ...]]:
    """The columns of each of exprsim's tables that every exprsim index has (the same in
    both engines; :data:`ADDED_COLUMNS` left out)."""
    return _sqlite_layout()[0]


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (another process held a lock past
    the wait), as opposed to a damaged file."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def is_postgres_url(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (a ``postgresql://`` URI)."""
    return isinstance(location, str) and location.lower().startswith(PG_SCHEMES)


#: keywords of a libpq ``key=value`` connection string (the usual ones)
_LIBPQ_KEYS = frozenset(
    [
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "service",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "application_name",
        "options",
        "target_session_attrs",
        "gssencmode",
    ]
)


def check_location(location: str | Path) -> None:
    """Refuse, in one line and without echoing it (it may hold a password), a location
    that is neither a ``postgresql://`` URI nor meant as a file path: a libpq
    ``key=value`` connection string, or a URI of another scheme (``pg://``,
    ``postgresql:/x``, ``file:///...``); either would otherwise become a SQLite file of
    that name. A file whose name looks so can still be named as ``./NAME``.

    Raises:
        ExprsimError: saying what to write instead.
    """
    if not isinstance(location, str) or is_postgres_url(location):
        return
    key = re.match(r"\s*([A-Za-z_]+)\s*=", location)
    if key and key.group(1).lower() in _LIBPQ_KEYS:
        raise ExprsimError(
            "the database looks like a libpq key=value connection string "
            f"({key.group(1)}=...); give a postgresql:// URI instead "
            "(postgresql://USER@HOST:PORT/DBNAME), or write ./NAME for a SQLite file so named"
        )
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):/", location)
    if scheme:  # two letters at least: C:/ is a Windows drive
        name = scheme.group(1)
        hint = (
            "a PostgreSQL URI starts with postgresql:// (two slashes)"
            if f"{name.lower()}://" in PG_SCHEMES
            else "give a SQLite file path or a postgresql:// URI"
        )
        raise ExprsimError(
            f"the database is a URI of scheme {name}:, which exprsim does not know; {hint} "
            "(write ./NAME for a SQLite file so named)"
        )


def is_write(sql: str) -> bool:
    """Whether a statement may change the database (anything but a ``SELECT``)."""
    return not sql.lstrip()[:6].upper().startswith("SELECT")


class Rows:
    """A statement's result, read whole while the connection was held (another thread may
    use the connection as soon as :meth:`StoreBackend.execute` returns): ``fetchone``,
    ``fetchall``, iteration, ``rowcount`` and ``description`` as a DB-API cursor has them."""

    def __init__(self, cursor: Any) -> None:
        self.description = cursor.description
        self._rows: list[Any] = list(cursor.fetchall()) if self.description is not None else []
        self.rowcount = int(cursor.rowcount)  # after the fetch: RETURNING counts then
        self._at = 0

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[Any]:
        rest, self._at = self._rows[self._at :], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class StoreBackend:
    """Connection + dialect of one store (see the module docstring).

    Attributes:
        kind: ``"sqlite"`` or ``"postgresql"``.
        path: what messages call the store: the file ``Path``, or the URI without password.
    """

    kind = ""
    path: Path | str
    #: set by :meth:`close`; every later use raises :meth:`closed_error`
    closed = False
    #: whether ``files`` has ``ctime_ns`` (:data:`ADDED_COLUMNS`; not in an index made
    #: before it that could not be written when opened)
    file_ctime = True

    def gone(self) -> str:
        """Why the store opened is no longer the one its name gives (``""``: it is)."""
        return ""

    def closed_error(self) -> IndexDatabaseError:
        return IndexDatabaseError(
            self.path, "closed (FaceIndex.close() was called; open the index again)"
        )

    # -- statements

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); returns its result (:class:`Rows`)."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """All statements inside commit together or not at all."""
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractContextManager[Any]:
        """Reads inside see one state of the store (SQLite: without waiting for a writer)."""
        return self.transaction()

    def try_write(self, sql: str, params: Sequence[Any] = (), many: bool = False) -> bool:
        """Run one housekeeping write that may be skipped (``many``: ``params`` is a
        sequence of rows, as :meth:`executemany`); returns whether it ran (SQLite: not
        when another process holds the write lock, or the file is read-only)."""
        with self.transaction() as c:
            if many:
                c.executemany(sql, params)
            else:
                c.execute(sql, params)
        return True

    def writer_lock(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """One :meth:`FaceIndex.add` at a time per store; a second writer waits, for ever
        or at most ``wait`` seconds (then :class:`~exprsim.errors.IndexBusyError`)."""
        raise NotImplementedError

    def busy_error(self, wait: float) -> IndexBusyError:
        return IndexBusyError(
            self.path,
            f"another writer has been adding to the index for over {wait:g} s; "
            "nothing was changed; try again when it is done",
        )

    def close(self) -> None:
        raise NotImplementedError

    # -- values

    def vector_param(self, embedding: np.ndarray) -> Any:
        """A ``(16,)`` float32 embedding as this engine stores it."""
        raise NotImplementedError

    # -- bulk

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Append rows to ``table`` (inside the caller's transaction); returns how many."""
        raise NotImplementedError

    def after_explicit_ids(self, table: str) -> None:
        """Rows were inserted with explicit ids: keep the id generator ahead of them."""

    def after_embeddings_changed(self) -> None:
        """Embeddings of stored faces were rewritten (inside the caller's transaction):
        bring what depends on their equality up to date (PostgreSQL's ``twin`` marks)."""

    def lock_tags(self) -> None:
        """Inside the caller's transaction, wait for every other writer of faces' tags or
        tag references to commit (each reads the tags, then writes them back). SQLite's
        ``BEGIN IMMEDIATE`` serialises writers already; PostgreSQL takes an advisory lock."""

    def bulk_load(self, n_new: int, n_existing: int) -> contextlib.AbstractContextManager[None]:
        """Around a bulk load of ``n_new`` faces (e.g. drop and rebuild a vector index)."""
        return contextlib.nullcontext()

    # -- reading

    def all_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Every face id ``(N,)`` int64 and embedding ``(N, 16)`` float32, ordered by id."""
        raise NotImplementedError

    def nearest_where(
        self, query: np.ndarray, k: int, where: str, params: Sequence[Any] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` faces nearest ``query`` (``(16,)``) among those matching the SQL
        condition ``where`` (``?`` placeholders), exactly, ranked inside the engine: ids
        ``(n,)`` int64 and distances ``(n,)`` float64, nearest first, ties by id; ``n < k``
        when fewer match. Only engines with their own vector search (:meth:`searcher`)
        have one; the embedded store ranks in process (``FaceIndex.nearest_passing``)."""
        raise NotImplementedError

    def db_bytes(self) -> int:
        raise NotImplementedError

    def searcher(self) -> Any:
        """The engine's own vector search (``search(queries, k)``), or ``None``."""
        return None

    def frame(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """A query's result as a DataFrame."""
        import pandas as pd

        cur = self.execute(sql, params)
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def _integrity_problem(exc: sqlite3.IntegrityError) -> str:
    """What a constraint exprsim's own writes keep, failing, says of the file: a column it
    does not fill (a newer exprsim's), or tables changed by another program (a file row
    deleted in sqlite3 left its faces, whose place a new file then took)."""
    text = str(exc)
    if text.startswith("NOT NULL constraint failed: "):
        column = text.removeprefix("NOT NULL constraint failed: ")
        return (
            f"has a column this exprsim does not fill ({column}, which may not be empty): "
            "made by a newer exprsim? nothing was written"
        )
    return f"its tables were changed by another program ({text}); nothing was written"


def _folder_writable(path: Path) -> bool:
    """Whether the folder of ``path`` takes new files (SQLite's ``-shm``)."""
    return os.access(path.parent, os.W_OK)


def _wal_pending(path: Path) -> bool:
    """Whether the write-ahead log beside ``path`` holds changes (a writer stopped before
    it merged them into the file: a clean close removes the log)."""
    st = stat_or_none(Path(f"{path}-wal"))
    return st is not None and st.st_size > 0


def writable(path: Path) -> bool:
    """Whether an existing database file and its folder (its ``-wal``, ``-shm`` and lock
    files live there) can be written (false on read-only media and for read-only files)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


#: SQLite's primary result codes of a disk that cannot be written or read
_SQLITE_IOERR, _SQLITE_FULL = 10, 13

#: free bytes under which a disk is taken to be full
_FULL_BELOW = 1 << 20


def is_disk_error(exc: BaseException) -> bool:
    """Whether a SQLite error is its disk's (full, or failing to read or write), not the
    database's."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_IOERR, _SQLITE_FULL)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a SQLite error says its disk is full (``SQLITE_FULL``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_FULL


def _open_failure(path: Path, exc: sqlite3.DatabaseError) -> str:
    """Why the database at ``path`` could not be opened, in words that point at the cause:
    a full disk (SQLite cannot make its ``-shm`` file there: the database is intact) or a
    disk failing, not a damaged index, unless SQLite says so."""
    if not is_disk_error(exc):
        if "unable to open" in str(exc) and _out_of_descriptors():
            return (
                f"cannot be opened ({exc}): this process has too many open files (ulimit "
                "-n); raise the limit and try again"
            )
        return f"not a usable exprsim database ({exc})"
    try:
        full = shutil.disk_usage(path.parent).free < _FULL_BELOW
    except OSError:
        full = False
    if full:
        return f"its disk is full ({exc}); free some space and try again"
    return f"cannot be read or written ({exc}): is its disk full or failing{size_limit_note()}?"


def _out_of_descriptors() -> bool:
    """Whether this process cannot open one more file (``EMFILE``, ``ENFILE``)."""
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        return exc.errno in (errno.EMFILE, errno.ENFILE)
    return False


def size_limit_note() -> str:
    """``", or past this process's file-size limit (...)"`` when one is set (``ulimit
    -f``: SQLite's writes past it fail as a "disk I/O error"), else ``""``."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return ""
    if soft == resource.RLIM_INFINITY:
        return ""
    return f", or past this process's file-size limit (ulimit -f: {soft:,} bytes)"


def _file_id(path: Path | str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path``, ``None`` when there is none."""
    st = stat_or_none(path)
    return None if st is None else (st.st_dev, st.st_ino)


def _refuse_hard_links(path: Path) -> None:
    """Refuse a database file with more than one name (hard links): SQLite keeps a
    database's journal (``-wal``) and shared memory (``-shm``) beside the name it is opened
    by, and exprsim its writer lock, so two commands on two names of one file wrote it at
    once and corrupted it ("database disk image is malformed"; SQLite's own
    "How To Corrupt" notes, 2.5)."""
    st = stat_or_none(path)  # None: not there yet (created now), or unreadable: SQLite says
    links = 1 if st is None else st.st_nlink
    if links > 1:
        raise IndexDatabaseError(
            path,
            f"has {links} names (hard links): SQLite keeps its journal beside the name a "
            "database is opened by, so two names of one index corrupt it; keep one name "
            "(`find / -samefile DB` lists them; `cp DB x && mv x DB` unlinks this one)",
        )


def _flock_waiting(fh: Any, db: str, every: float = 60.0) -> None:
    """An exclusive ``flock`` on ``fh``, waited for as long as it takes, saying again every
    ``every`` seconds who holds it (:func:`lock_holder`: a holder stopped with Ctrl-Z is
    named so, where a plain wait said nothing more, for ever)."""
    import fcntl

    said = time.monotonic()
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - said >= every:
                log.warning("%s: still waiting for the other writer%s", db, lock_holder(fh))
                said = time.monotonic()
            time.sleep(0.1)


def _flock_within(fh: Any, wait: float, busy: Callable[[float], Exception]) -> None:
    """An exclusive ``flock`` on ``fh``, tried until ``wait`` seconds have passed; then
    ``busy(wait)`` is raised."""
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise busy(wait) from None
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))


class SQLiteBackend(StoreBackend):
    """One SQLite file (WAL, ``synchronous=FULL``, foreign keys on).

    Opening an existing index writes nothing (a reader never waits for a writer): the file
    is checked first, and refused untouched when it is another program's database or an
    index of another schema version; only a new file, or one that lacks a table or WAL
    mode (an earlier exprsim's), is set up. A name that is another index's side file is
    refused (:func:`check_db_name`).

    An existing file that cannot be written (:func:`writable`: read-only media, a read-only
    file) is opened read-only: searches and listings work, and a command that would
    change it fails with one line saying so (:attr:`read_only`).

    One connection serves any thread, one at a time: each statement, and each transaction
    from ``BEGIN`` to ``COMMIT``, holds it (:meth:`_held`).
    """

    kind = "sqlite"
    read_only = False

    def __init__(self, path: str | Path, create: bool = True) -> None:
        self._lock = threading.RLock()
        self._reconnect = False  # a forked child's connection is mid-statement: a new one
        from exprsim import forking

        forking.track(self)
        check_location(path)
        self.path = Path(path)
        if self.path.is_symlink():  # one lock, one ANN cache, one upload folder per file
            self.path = Path(os.path.realpath(self.path))
        if self.path.is_dir():
            raise IndexDatabaseError(self.path, "is a directory, expected a database file")
        kind = special_file(self.path)
        if kind:  # SQLite met a pipe as "disk I/O error", a missing file as "no such database"
            raise IndexDatabaseError(self.path, f"is {kind}, not a database file")
        if not self.path.parent.exists():
            raise IndexDatabaseError(self.path, f"folder {self.path.parent} does not exist")
        check_db_name(self.path)
        if not create and not self.path.exists():
            raise IndexDatabaseError(self.path, "no such database")
        self.read_only = self.path.exists() and not writable(self.path)
        if not self.read_only:  # a read-only opener writes no journal: a snapshot is fine
            _refuse_hard_links(self.path)
        try:
            if self.read_only:
                self._open_read_only()
                return
            self.conn = self._connect(create)
            self._file = _file_id(self.path)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            present = self._check_existing()
            if not self._complete(present):  # new, or an earlier exprsim's: set it up
                self._set_wal()
                # one transaction: another opener meanwhile sees no index or all of it,
                # never a half-made one (IF NOT EXISTS: idempotent after it)
                self.conn.executescript(f"BEGIN IMMEDIATE;\n{SQLITE_SCHEMA}\nCOMMIT;")
            if self._missing_columns():
                self.file_ctime = self._add_columns()
        except sqlite3.DatabaseError as exc:
            self.close()
            if is_locked(exc):  # another process holds it (exclusively): not a damaged file
                raise
            raise IndexDatabaseError(self.path, _open_failure(self.path, exc)) from exc
        except BaseException:
            self.close()
            raise

    def gone(self) -> str:
        """Why the database file opened is no longer at its name (``""``: it is): deleted,
        or another file renamed over it. SQLite goes on writing the file it has open, so
        whatever a command stored since went with it."""
        opened = getattr(self, "_file", None)
        if opened is None:
            return ""
        now = _file_id(self.path)
        if now is None:
            return "was deleted"
        return "" if now == opened else "was replaced by another file"

    def _set_wal(self) -> None:
        """``journal_mode=WAL``, waiting out another connection that holds the file: SQLite
        answers "locked" at once there instead of calling its busy handler (two openers
        of a new index at the same moment)."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _connect(self, create: bool) -> sqlite3.Connection:
        """A read-write connection; with ``create`` False, ``mode=rw``: a file removed since
        the caller looked is an error, never re-created empty."""
        path = Path(self.path)
        if create:
            return sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        from urllib.parse import quote

        uri = f"file:{quote(str(path.resolve()))}?mode=rw"
        try:
            return sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.OperationalError as exc:
            if path.exists():
                raise
            raise IndexDatabaseError(path, "no such database") from exc

    _forked_mid_use = False

    def _read_only_error(self) -> IndexDatabaseError:
        if self._forked_mid_use:
            return IndexDatabaseError(
                self.path,
                "read-only in this process: it was forked while another thread used the "
                "index; open it in a process started with spawn, or fork while it is idle",
                read_only=True,
            )
        return IndexDatabaseError(
            self.path,
            "read-only (the file or its folder cannot be written); this command would change it",
            read_only=True,
        )

    def _open_read_only(self) -> None:
        """Open without writing anything: ``mode=ro`` when the folder can hold SQLite's
        shared-memory file or a write-ahead log holds changes not merged into the file yet
        (``immutable=1`` ignores them: the faces a killed writer committed were not there),
        else ``immutable=1`` (read-only media: nothing changes it)."""
        from urllib.parse import quote

        path = Path(self.path)
        pending = _wal_pending(path)
        how = "mode=ro" if pending or _folder_writable(path) else "immutable=1"
        uri = f"file:{quote(str(path.resolve()))}?{how}"
        try:
            self.conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            tables = self._check_existing()
        except sqlite3.OperationalError as exc:
            if not pending:
                raise
            raise IndexDatabaseError(
                self.path,
                f"holds changes not merged into it yet ({path.name}-wal, from a writer that "
                "was stopped) and cannot be read without writing beside it; open it once "
                "where its folder can be written",
            ) from exc
        if not {"files", "faces", "meta"} <= tables:
            raise IndexDatabaseError(self.path, "read-only, and not an exprsim index")
        self.file_ctime = not self._missing_columns()
        log.info("%s: cannot be written; opened read-only", self.path)

    def _check_existing(self) -> set[str]:
        """Refuse, before anything is written, a file exprsim must leave alone: another
        program's SQLite database (tables, but not exprsim's ``files`` and ``faces``, or
        those without exprsim's columns), or an index of another schema version. Returns
        the names of the tables, indexes and triggers it holds."""
        rows = self.conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        tables = {str(r[1]) for r in rows if r[0] == "table"}
        if tables and not {"files", "faces"} <= tables:
            shown = ", ".join(sorted(tables)[:5])
            raise IndexDatabaseError(
                self.path,
                f"a SQLite database of something else (tables: {shown}), "
                "not an exprsim index; exprsim leaves it untouched",
            )
        columns, _ = _sqlite_layout()
        for table in sorted(tables & columns.keys()):
            have = {str(c[1]) for c in self.conn.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in columns[table] if c not in have]
            if missing:
                raise IndexDatabaseError(
                    self.path,
                    f"a SQLite database of something else (its table {table} "
                    f"lacks the columns {', '.join(missing[:4])} of an exprsim index); "
                    "exprsim leaves it untouched",
                )
        if "meta" in tables:
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is not None:
                check_schema(self.path, row[0])
        return {str(r[1]) for r in rows}

    def _missing_columns(self) -> list[tuple[str, str, str]]:
        """The :data:`ADDED_COLUMNS` the file lacks: (table, column, type)."""
        missing = []
        for table, added in ADDED_COLUMNS.items():
            have = {str(c[1]) for c in self.conn.execute(f"PRAGMA table_info({table})")}
            missing += [(table, column, kind) for column, kind in added if column not in have]
        return missing

    def _add_columns(self) -> bool:
        """Give an index made before :data:`ADDED_COLUMNS` those columns, in one
        transaction (another opener may have added them meanwhile: looked at again in it).
        Opening never waits for a writer: while another process writes, this connection
        goes on without them (returns ``False``; the next opener adds them)."""
        with self._not_waiting() as free:
            if not free:
                log.info("%s: busy; the columns of a newer exprsim are added later", self.path)
                return False
            try:
                for table, column, kind in self._missing_columns():
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return True

    def _complete(self, present: set[str]) -> bool:
        """Whether the file has every table, index and trigger of :data:`SQLITE_SCHEMA`
        and is in WAL mode (then opening it writes nothing)."""
        if not _sqlite_layout()[1] <= present:
            return False
        mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        return str(mode).lower() == "wal"

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        """The connection, for this thread alone until the block ends (re-entrant); a closed
        backend is refused (:meth:`closed_error`)."""
        with self._lock:
            if self.closed:
                raise self.closed_error()
            if self._reconnect:
                self._connect_again()
            yield

    def _after_fork_in_child(self) -> None:
        """A parent thread held the connection when the process forked (a statement or a
        transaction under way): this child gets a free lock and, at its next statement, a
        read-only connection of its own (the parent's is left to the parent, never closed
        here). Read-only: SQLite's record of the parent's file locks came with the fork,
        and a write of the child's would wait for them, then fail as "locked"."""
        from exprsim.forking import held_elsewhere

        if held_elsewhere(self._lock):
            self._lock = threading.RLock()
            self._reconnect = not self.closed

    def _connect_again(self) -> None:
        """A read-only connection to the same file (:meth:`_after_fork_in_child`)."""
        self._reconnect = False
        if not self.read_only:
            self.read_only = True
            self._forked_mid_use = True
        self._open_read_only()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._held():
            return Rows(self.conn.execute(sql, tuple(params)))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._held():
            self.conn.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        # read-only: a plain snapshot for reads; a write inside fails, in one clear line.
        # BEGIN inside the try: a Ctrl-C raised as it returns (after a wait for another
        # writer) left the connection in a transaction for good, every later write failing
        with self._held():
            outer = self.conn.in_transaction  # (a misuse) not rolled back by this one
            try:
                self.conn.execute("BEGIN" if self.read_only else "BEGIN IMMEDIATE")
                yield self
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback(outer)
                if self.read_only and "readonly" in str(exc).replace("-", "").replace(" ", ""):
                    raise self._read_only_error() from exc
                raise
            except sqlite3.IntegrityError as exc:  # exprsim's own writes keep its rules
                self._rollback(outer)
                raise IndexDatabaseError(self.path, _integrity_problem(exc)) from exc
            except BaseException:
                self._rollback(outer)
                raise

    def _rollback(self, outer: bool = False) -> None:
        """Roll back the connection's transaction, if one is open and was not open before
        (``outer``) the block that failed (a failure of its own is not raised over the
        error that made it roll back)."""
        if self.conn.in_transaction and not outer:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A deferred transaction: its reads see one state, and in WAL mode they do not
        wait for (or block) another process's write transaction."""
        with self._held():
            outer = self.conn.in_transaction
            try:
                self.conn.execute("BEGIN")
                yield self
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback(outer)
                raise

    def try_write(self, sql: str, params: Sequence[Any] = (), many: bool = False) -> bool:
        if self.read_only:
            return False
        with self._held(), self._not_waiting() as free:
            if not free:
                log.debug("%s: busy, skipped %s", self.path, sql)
                return False
            try:
                if many:
                    self.conn.executemany(sql, params)
                else:
                    self.conn.execute(sql, params)
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return True

    @contextlib.contextmanager
    def _not_waiting(self) -> Iterator[bool]:
        """``BEGIN IMMEDIATE`` without waiting for another process's write lock: yields
        whether the transaction began (the block then commits or rolls back itself)."""
        wait = int(self.conn.execute("PRAGMA busy_timeout").fetchone()[0])
        self.conn.execute("PRAGMA busy_timeout = 0")  # housekeeping never waits
        try:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                began = False
            else:
                began = True
            self.conn.execute(f"PRAGMA busy_timeout = {wait}")
        except BaseException:  # e.g. a Ctrl-C as BEGIN returned: no transaction left open
            self._rollback()
            self.conn.execute(f"PRAGMA busy_timeout = {wait}")
            raise
        yield began

    @contextlib.contextmanager
    def writer_lock(self, wait: float | None = None) -> Iterator[None]:
        """``flock`` on ``<db>.lock``: a second writer waits (for ever, or ``wait``
        seconds), then skips what the first stored."""
        if self.read_only:
            raise self._read_only_error()
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: SQLite's own locking only
            yield
            return
        db = Path(self.path)
        with open(db.with_name(db.name + ".lock"), "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning(
                    "%s: another writer is adding or re-embedding files%s; waiting for it",
                    self.path,
                    lock_holder(fh),
                )
                if wait is None:
                    _flock_waiting(fh, str(self.path))
                else:
                    _flock_within(fh, wait, self.busy_error)
            note_holder(fh)
            try:
                yield
            finally:
                forget_holder(fh)  # no holder named after it
                fcntl.flock(fh, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            conn = getattr(self, "conn", None)
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def vector_param(self, embedding: np.ndarray) -> Any:
        return np.ascontiguousarray(embedding, dtype=np.float32).reshape(-1).tobytes()

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with self._held():
            cur = self.conn.executemany(sql, rows)
            return int(cur.rowcount)

    def all_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        with self._held():
            rows = self.conn.execute("SELECT id, embedding FROM faces ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 16), np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        sizes = [len(r[1]) if isinstance(r[1], bytes) else -1 for r in rows]
        bad = [i for i, n in enumerate(sizes) if n != EMBEDDING_BYTES]
        if bad:  # joined, one row of another size shifted every embedding after it
            n, first = sizes[bad[0]], int(ids[bad[0]])
            what = f"{n} bytes" if n >= 0 else "no blob"
            raise IndexDatabaseError(
                self.path,
                f"damaged: face {first} has an embedding of {what}, not {EMBEDDING_BYTES} (16 "
                f"float32 values); {len(bad)} face(s) so (written by another program?)",
            )
        flat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, flat.reshape(len(rows), -1).copy()

    def db_bytes(self) -> int:
        files = (Path(self.path), Path(f"{self.path}-wal"))
        return sum(int(p.stat().st_size) for p in files if p.exists())


def open_backend(location: str | Path, create: bool = True) -> StoreBackend:
    """The backend for a file path or a ``postgresql://`` URI (``create``: set up the tables
    of a PostgreSQL database that has none, create a missing SQLite file; ``False``: refuse
    both, for read-only uses).

    Raises:
        ExprsimError: a location that is neither (:func:`check_location`)."""
    check_location(location)
    if is_postgres_url(location):
        from exprsim.index.pgvector import PostgresBackend

        return PostgresBackend(str(location), create=create)
    return SQLiteBackend(location, create=create)
