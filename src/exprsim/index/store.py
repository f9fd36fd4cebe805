"""FaceIndex: every face of a photo collection in one SQLite file, plus an ANN index beside it.

Layout of ``faces.db`` (WAL mode, ``synchronous=FULL``; all writes in transactions):

* ``meta(key, value)``: ``schema``, ``model`` (``name@version`` of the embedder every stored
  embedding comes from; set by the first add, never mixed), ``generation`` (bumped by
  every write, so a stale ANN file is detected), ``created``;
* ``files``: one row per image file: resolved ``path``, ``size``, ``mtime_ns``, ``sha256``,
  ``status`` (``done`` or ``failed`` + ``error``), ``n_faces``;
* ``faces``: one row per face: ``file_id``, ``face_index``, box, detector score,
  landmarks ``(5, 2)`` float32 blob, quality fields, ``embedding`` ``(16,)`` float32 blob,
  ``model``, optional ``label`` and ``tags`` (JSON list), aligned ``crop`` (JPEG);
* ``tag_refs``: reference faces of user-defined expressions (:class:`exprsim.apps.tag.Tagger`);
* ``identity``: cached dlib face descriptors (:mod:`exprsim.apps.search`).

Crash safety: a file's faces and its ``files`` row are written in one transaction, so a
killed ``add`` leaves every file either fully indexed or absent; the next ``add`` skips
what is done (same path, size and mtime, or same SHA-256) and carries on.

The ANN index (``faces.db.ann`` + ``faces.db.ann.json``, see :mod:`exprsim.index.ann`) is a
cache: it records the ``generation`` it was built from and is rebuilt from SQLite whenever
it is missing or stale.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ExprsimError, ImageError, ModelError
from exprsim.index import ann as ann_mod

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EMBEDDING_DTYPE = np.float32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    status TEXT NOT NULL,
    error TEXT,
    n_faces INTEGER NOT NULL DEFAULT 0,
    added_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS faces (
    id INTEGER PRIMARY KEY,
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
"""

_FACE_COLUMNS = (
    "faces.id, files.path, files.sha256, face_index, x1, y1, x2, y2, score, detector, landmarks, "
    "sharpness, yaw, pitch, roll, quality_ok, reasons, embedding, faces.model, label, tags"
)


class ModelMismatchError(ModelError):
    """The index holds embeddings of another model; embeddings of two models never mix."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FileOutcome:
    """What :meth:`FaceIndex.add` did with one file.

    Attributes:
        path: resolved file path.
        status: ``added``, ``updated`` (changed since last time), ``skipped`` (already
            indexed, or failed before and not retried) or ``failed``.
        n_faces: faces stored for the file.
        error: why it failed (``failed``), or why it failed last time (a ``skipped`` file
            that failed before; ``retry_failed=True`` tries it again).
    """

    path: str
    status: str
    n_faces: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "n_faces": self.n_faces,
            "error": self.error,
        }


@dataclass(frozen=True)
class AddReport:
    """Result of :meth:`FaceIndex.add`: one :class:`FileOutcome` per file seen."""

    files: tuple[FileOutcome, ...]
    model: str
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def added_faces(self) -> int:
        return sum(f.n_faces for f in self.files if f.status in ("added", "updated"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seconds": round(self.seconds, 3),
            "added": self.count("added"),
            "updated": self.count("updated"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "added_faces": self.added_faces,
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [f.to_dict() for f in self.files], columns=["path", "status", "n_faces", "error"]
        )

    @property
    def failed_before(self) -> int:
        """Files skipped because they failed in an earlier run (not retried)."""
        return sum(1 for f in self.files if f.status == "skipped" and f.error)

    def summary(self) -> str:
        d = self.to_dict()
        text = (
            f"{d['added']} files added, {d['updated']} updated, {d['skipped']} skipped, "
            f"{d['failed']} failed; {d['added_faces']} faces stored ({d['seconds']:.1f} s)"
        )
        if self.failed_before:
            text += (
                f"; {self.failed_before} of the skipped files failed in an earlier run "
                "(--retry-failed tries them again)"
            )
        return text


@dataclass(frozen=True)
class IndexInfo:
    """What a :class:`FaceIndex` holds (:meth:`FaceIndex.info`)."""

    path: str
    model: str | None
    n_files: int
    n_failed_files: int
    n_faces: int
    n_quality_ok: int
    n_labelled: int
    tag_names: tuple[str, ...]
    n_tag_refs: int
    ann_backend: str | None
    ann_fresh: bool
    db_bytes: int
    schema: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "model": self.model,
            "files": self.n_files,
            "failed_files": self.n_failed_files,
            "faces": self.n_faces,
            "quality_ok_faces": self.n_quality_ok,
            "labelled_faces": self.n_labelled,
            "tags": ", ".join(self.tag_names),
            "tag_references": self.n_tag_refs,
            "ann_backend": self.ann_backend,
            "ann_fresh": self.ann_fresh,
            "db_bytes": self.db_bytes,
            "schema": self.schema,
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(list(self.to_dict().items()), columns=["field", "value"])


@dataclass(frozen=True)
class FaceRecord:
    """One stored face.

    Attributes:
        id: row id in ``faces`` (stable; what :meth:`FaceIndex.query` returns).
        source: resolved image path.
        sha256: content hash of the image file.
        face_index: face number within its image.
        box: ``(4,)`` float32 ``x1, y1, x2, y2``.
        score: detector confidence.
        landmarks: ``(5, 2)`` float32 or ``None``.
        sharpness, yaw, pitch, roll, quality_ok, reasons: quality (see ``faces.types.Quality``).
        embedding: ``(16,)`` float32.
        model: ``name@version`` of the embedder.
        label: optional user label.
        tags: user tags.
    """

    id: int
    source: str
    sha256: str | None
    face_index: int
    box: np.ndarray
    score: float
    detector: str
    landmarks: np.ndarray | None
    sharpness: float
    yaw: float
    pitch: float
    roll: float
    quality_ok: bool
    reasons: tuple[str, ...]
    embedding: np.ndarray
    model: str
    label: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "face": self.face_index,
            "x1": float(self.box[0]),
            "y1": float(self.box[1]),
            "x2": float(self.box[2]),
            "y2": float(self.box[3]),
            "score": self.score,
            "sharpness": self.sharpness,
            "yaw": self.yaw,
            "pitch": self.pitch,
            "roll": self.roll,
            "quality_ok": self.quality_ok,
            "reasons": ",".join(self.reasons),
            "label": self.label,
            "tags": ",".join(self.tags),
            "model": self.model,
        }


# ----------------------------------------------------------------------------- helpers


def _file_key(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_crop(crop: np.ndarray, quality: int = 90) -> bytes:
    """``(S, S, 3)`` or ``(S, S)`` uint8 -> JPEG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_crop(blob: bytes | None) -> np.ndarray | None:
    """JPEG bytes (from :func:`encode_crop`) -> ``(S, S, 3)`` uint8 RGB, or ``None``."""
    if not blob:
        return None
    from exprsim.io import decode_image

    return decode_image(bytes(blob), "<crop>")


def _blob(arr: np.ndarray | None) -> bytes | None:
    if arr is None:
        return None
    return np.ascontiguousarray(np.asarray(arr, dtype=np.float32)).tobytes()


def _row_to_record(row: sqlite3.Row | tuple[Any, ...]) -> FaceRecord:
    (fid, path, sha, fidx, x1, y1, x2, y2, score, det, lm, sh, yaw, pitch, roll, ok, reasons, emb,
     model, label, tags) = tuple(row)  # fmt: skip
    return FaceRecord(
        id=int(fid),
        source=path,
        sha256=sha,
        face_index=int(fidx),
        box=np.array([x1, y1, x2, y2], dtype=np.float32),
        score=float(score) if score is not None else float("nan"),
        detector=det or "",
        landmarks=np.frombuffer(lm, dtype=np.float32).reshape(5, 2) if lm else None,
        sharpness=float(sh) if sh is not None else float("nan"),
        yaw=float(yaw) if yaw is not None else float("nan"),
        pitch=float(pitch) if pitch is not None else float("nan"),
        roll=float(roll) if roll is not None else float("nan"),
        quality_ok=bool(ok),
        reasons=tuple(r for r in (reasons or "").split(",") if r),
        embedding=np.frombuffer(emb, dtype=EMBEDDING_DTYPE).copy(),
        model=model,
        label=label,
        tags=tuple(json.loads(tags)) if tags else (),
    )


# ----------------------------------------------------------------------------- the index


class FaceIndex:
    """A persistent, incremental index of faces and their expression embeddings.

    Args:
        db_path: the SQLite file (created when missing). The ANN cache lives at
            ``<db_path>.ann``.
        embedder: the :class:`~exprsim.models.embedder.Embedder` used by :meth:`add`
            (default: ``exprsim.load_model()``, loaded on first use).
        ann_backend: ``"auto"``, ``"exact"``, ``"faiss-hnsw"`` or ``"faiss-ivf"``
            (:mod:`exprsim.index.ann`).
        store_crops: keep each aligned crop (JPEG, ~4 KB) for reports.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        db_path: str | Path,
        embedder: Any = None,
        ann_backend: str = "auto",
        store_crops: bool = True,
    ) -> None:
        self.path = Path(db_path)
        if self.path.is_dir():
            raise ExprsimError(f"{self.path}: is a directory, expected a database file")
        if not self.path.parent.exists():
            raise ExprsimError(f"{self.path}: folder {self.path.parent} does not exist")
        self._embedder = embedder
        self.ann_backend = ann_backend
        self.store_crops = store_crops
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)  # IF NOT EXISTS: idempotent
            self._init_meta()
        except sqlite3.DatabaseError as exc:
            raise ExprsimError(f"{self.path}: not a usable exprsim database ({exc})") from exc
        self._ann: Any = None
        self._ann_generation = -1

    # -- plumbing

    def close(self) -> None:
        """Close the database connection."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> FaceIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def _init_meta(self) -> None:
        with self._transaction() as c:
            c.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            c.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            c.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
        schema = int(self._meta("schema") or 0)
        if schema != SCHEMA_VERSION:
            raise ExprsimError(f"{self.path}: schema {schema}, this exprsim reads {SCHEMA_VERSION}")

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _bump(self, c: sqlite3.Connection) -> None:
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    @property
    def generation(self) -> int:
        """Counter bumped by every write (the ANN cache records the one it was built from)."""
        return int(self._meta("generation") or 0)

    @property
    def model(self) -> str | None:
        """``name@version`` of the embeddings stored here (``None`` while empty)."""
        return self._meta("model")

    @property
    def embedder(self) -> Any:
        """The embedder used by :meth:`add` (loads the default model on first use)."""
        if self._embedder is None:
            from exprsim.models.embedder import load_model

            self._embedder = load_model()
        return self._embedder

    def check_model(self, model: str) -> None:
        """Raise :class:`ModelMismatchError` unless ``model`` may be stored here."""
        current = self.model
        if current is not None and current != model:
            raise ModelMismatchError(
                f"{self.path} holds embeddings of model {current}; refusing to add embeddings of "
                f"{model} (use another database, or re-index everything with one model)"
            )

    def _claim_model(self, c: sqlite3.Connection, model: str) -> None:
        row = c.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None:
            c.execute("INSERT INTO meta VALUES ('model', ?)", (model,))
        elif row[0] != model:
            raise ModelMismatchError(
                f"{self.path} holds embeddings of model {row[0]}; refusing to add {model}"
            )

    # -- writing

    def add(
        self,
        paths: Iterable[str | Path],
        progress: bool = False,
        detector: Any = None,
        retry_failed: bool = False,
    ) -> AddReport:
        """Detect, embed and store every face of every image under ``paths``.

        Incremental and resumable: a file already indexed (same resolved path and same size
        + mtime, or same content hash) is skipped; a changed file is re-indexed; each file
        is committed atomically with its faces, so an interrupted run loses at most the
        file in progress and a re-run completes it without duplicates.

        Args:
            paths: image files and/or folders (searched recursively).
            progress: show a progress bar.
            detector: detector name or instance passed to ``Embedder.embed_images``.
            retry_failed: try again files that failed to decode last time.

        One writer at a time: a second ``add`` on the same database (another process) waits
        for the first to finish, then skips what it stored.

        Returns:
            An :class:`AddReport` (unreadable images are reported, not raised).

        Raises:
            ModelMismatchError: the index holds embeddings of another model.
        """
        from tqdm import tqdm

        from exprsim.io import iter_image_files

        t0 = time.perf_counter()
        files = list(iter_image_files(paths))
        embedder = self.embedder
        model = embedder.config.name_version
        self.check_model(model)
        outcomes: list[FileOutcome] = []
        with self._writer_lock():
            for path in tqdm(files, disable=not progress, desc="index", unit="img"):
                outcomes.append(self._add_one(path, embedder, model, detector, retry_failed))
        report = AddReport(tuple(outcomes), model, time.perf_counter() - t0)
        log.debug("%s: %s", self.path, report.summary())
        return report

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """One :meth:`add` at a time per database (``<db>.lock``, ``flock``): a second
        writer waits, then finds the first one's files done and skips them."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: SQLite's own locking only
            yield
            return
        with open(self.path.with_name(self.path.name + ".lock"), "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s: another process is adding files; waiting for it", self.path)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _add_one(
        self, path: Path, embedder: Any, model: str, detector: Any, retry_failed: bool
    ) -> FileOutcome:
        """Index one file (see :meth:`add`)."""
        from exprsim.io import decode_image

        key = _file_key(path)
        try:
            st = os.stat(key)
        except OSError as exc:  # e.g. a broken link: name it as the user gave it
            return FileOutcome(str(path), "failed", error=f"cannot stat ({exc.strerror})")
        row = self._conn.execute(
            "SELECT id, size, mtime_ns, sha256, status FROM files WHERE path = ?", (key,)
        ).fetchone()
        unchanged = row is not None and row[1] == st.st_size and row[2] == st.st_mtime_ns
        if unchanged and (row[4] == "done" or not retry_failed):
            before = "" if row[4] == "done" else self._file_error(row[0]) or "failed"
            return FileOutcome(key, "skipped", self._n_faces_of(row[0]), before)
        try:
            data = Path(key).read_bytes()
        except OSError as exc:
            return FileOutcome(key, "failed", error=f"cannot read ({exc.strerror})")
        sha = _sha256(data)
        if row is not None and row[3] == sha and row[4] == "done":
            with self._transaction() as c:  # touched but identical: just refresh the stat
                c.execute(
                    "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?",
                    (st.st_size, st.st_mtime_ns, row[0]),
                )
            return FileOutcome(key, "skipped", self._n_faces_of(row[0]))
        status = "updated" if row is not None and row[4] == "done" else "added"
        try:
            image = decode_image(data, key)
            faces = embedder.embed_images([image], detector=detector)
        except ImageError as exc:
            self._store_file(key, st, sha, model, [], error=exc.reason)
            return FileOutcome(key, "failed", error=exc.reason)
        self._store_file(key, st, sha, model, faces)
        return FileOutcome(key, status, len(faces))

    def _file_error(self, file_id: int) -> str:
        row = self._conn.execute("SELECT error FROM files WHERE id = ?", (file_id,)).fetchone()
        return str(row[0]) if row is not None and row[0] else ""

    def _n_faces_of(self, file_id: int) -> int:
        return int(
            self._conn.execute("SELECT n_faces FROM files WHERE id = ?", (file_id,)).fetchone()[0]
        )

    def _store_file(
        self,
        key: str,
        st: os.stat_result | None,
        sha: str | None,
        model: str,
        faces: Sequence[Any],
        error: str | None = None,
    ) -> None:
        """One transaction: replace the file's row and all its faces."""
        size = st.st_size if st is not None else None
        mtime = st.st_mtime_ns if st is not None else None
        with self._transaction() as c:
            if faces:
                self._claim_model(c, model)
            c.execute("DELETE FROM files WHERE path = ?", (key,))  # cascades to its faces
            cur = c.execute(
                "INSERT INTO files (path, size, mtime_ns, sha256, status, error, n_faces, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    size,
                    mtime,
                    sha,
                    "failed" if error else "done",
                    error,
                    len(faces),
                    time.time(),
                ),
            )
            file_id = cur.lastrowid
            c.executemany(
                "INSERT INTO faces (file_id, face_index, x1, y1, x2, y2, score, detector, landmarks,"
                " sharpness, yaw, pitch, roll, quality_ok, reasons, embedding, model, crop)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self._face_row(file_id, fe, model) for fe in faces],
            )
            self._bump(c)

    def _face_row(self, file_id: int | None, fe: Any, model: str) -> tuple[Any, ...]:
        af = fe.aligned
        face, q = af.face, af.quality
        emb = np.asarray(fe.embedding, dtype=EMBEDDING_DTYPE).reshape(-1)
        box = np.asarray(face.box, dtype=float).reshape(4)
        crop = encode_crop(af.crop) if self.store_crops and af.crop is not None else None
        return (
            file_id,
            int(fe.face_index),
            *map(float, box),
            float(face.score),
            getattr(face, "detector", ""),
            _blob(face.landmarks),
            float(q.sharpness),
            float(q.yaw),
            float(q.pitch),
            float(q.roll),
            int(bool(q.ok)),
            ",".join(q.reasons),
            emb.tobytes(),
            model,
            crop,
        )

    def add_faces(self, faces: Iterable[Any], model: str) -> int:
        """Store already-embedded faces (``FaceEmbedding``-like objects), grouped by source.

        Each source is written in its own transaction (its previous faces replaced). Use it
        to index embeddings computed elsewhere; :meth:`add` is the usual entry point.

        Returns:
            Number of faces stored.

        Raises:
            ModelMismatchError: the index holds embeddings of another model.
        """
        self.check_model(model)
        groups: dict[str, list[Any]] = {}
        for fe in faces:
            groups.setdefault(str(fe.source), []).append(fe)
        for source, group in groups.items():
            key = _file_key(source) if Path(source).exists() else source
            st = os.stat(key) if Path(key).exists() else None
            self._store_file(key, st, None, model, group)
        return sum(len(g) for g in groups.values())

    def remove(self, paths: Iterable[str | Path]) -> int:
        """Forget files (a folder: every file under it). Returns the number of files removed."""
        removed = 0
        with self._transaction() as c:
            for p in paths:
                key = _file_key(p)
                prefix = key.rstrip(os.sep) + os.sep
                cur = c.execute(
                    "DELETE FROM files WHERE path = ? OR substr(path, 1, ?) = ?",
                    (key, len(prefix), prefix),
                )
                removed += cur.rowcount
            if removed:
                self._bump(c)
        return removed

    def set_label(self, face_ids: Iterable[int], label: str | None) -> None:
        """Set (or clear, with ``None``) the label of faces."""
        with self._transaction() as c:
            c.executemany(
                "UPDATE faces SET label = ? WHERE id = ?", [(label, int(i)) for i in face_ids]
            )

    def add_tags(self, face_ids: Iterable[int], tags: Iterable[str]) -> None:
        """Add tags to faces (kept sorted, without duplicates)."""
        new = set(tags)
        with self._transaction() as c:
            for fid in face_ids:
                row = c.execute("SELECT tags FROM faces WHERE id = ?", (int(fid),)).fetchone()
                if row is None:
                    continue
                cur = set(json.loads(row[0])) if row[0] else set()
                c.execute(
                    "UPDATE faces SET tags = ? WHERE id = ?",
                    (json.dumps(sorted(cur | new)), int(fid)),
                )

    # -- tag references (used by exprsim.apps.tag)

    def add_tag_reference(
        self,
        name: str,
        embedding: np.ndarray,
        model: str,
        source: str = "",
        face_index: int = 0,
        crop: np.ndarray | None = None,
    ) -> int:
        """Store one reference face for the expression ``name``; returns its id.

        The same embedding stored twice under one name is kept once (the first id is
        returned).
        """
        if not name.strip():
            raise ExprsimError("a tag name must not be empty")
        blob = _blob(np.asarray(embedding, dtype=np.float32).reshape(-1))
        with self._transaction() as c:
            self._claim_model(c, model)
            dup = c.execute(
                "SELECT id FROM tag_refs WHERE name = ? AND embedding = ?", (name, blob)
            ).fetchone()
            if dup is not None:
                return int(dup[0])
            cur = c.execute(
                "INSERT INTO tag_refs (name, source, face_index, embedding, model, crop, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    source,
                    face_index,
                    blob,
                    model,
                    encode_crop(crop) if crop is not None else None,
                    time.time(),
                ),
            )
            return int(cur.lastrowid or 0)

    def tag_references(self) -> list[dict[str, Any]]:
        """Every reference face: ``id, name, source, face_index, embedding, model, crop``."""
        rows = self._conn.execute(
            "SELECT id, name, source, face_index, embedding, model, crop FROM tag_refs ORDER BY id"
        ).fetchall()
        return [
            {
                "id": r[0],
                "name": r[1],
                "source": r[2],
                "face_index": r[3],
                "embedding": np.frombuffer(r[4], dtype=np.float32).copy(),
                "model": r[5],
                "crop": decode_crop(r[6]),
            }
            for r in rows
        ]

    def remove_tag(self, name: str) -> int:
        """Delete every reference face of ``name``; returns how many."""
        with self._transaction() as c:
            return int(c.execute("DELETE FROM tag_refs WHERE name = ?", (name,)).rowcount)

    # -- identity descriptors cache (used by exprsim.apps.search)

    def identity_descriptors(self, face_ids: Sequence[int]) -> dict[int, np.ndarray | None]:
        """Cached identity descriptors of faces (missing ids are absent from the dict)."""
        out: dict[int, np.ndarray | None] = {}
        for fid in face_ids:
            row = self._conn.execute(
                "SELECT descriptor FROM identity WHERE face_id = ?", (int(fid),)
            ).fetchone()
            if row is not None:
                out[int(fid)] = np.frombuffer(row[0], dtype=np.float32).copy() if row[0] else None
        return out

    def store_identity_descriptors(self, descriptors: dict[int, np.ndarray | None]) -> None:
        """Cache identity descriptors (``None``: no descriptor could be computed)."""
        with self._transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO identity (face_id, descriptor) VALUES (?, ?)",
                [(int(k), _blob(v)) for k, v in descriptors.items()],
            )

    # -- reading

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    def info(self) -> IndexInfo:
        """Counts, model and ANN state."""
        c = self._conn
        n_files = c.execute("SELECT COUNT(*) FROM files WHERE status = 'done'").fetchone()[0]
        n_failed = c.execute("SELECT COUNT(*) FROM files WHERE status = 'failed'").fetchone()[0]
        n_faces, n_ok, n_lab = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(quality_ok), 0), COUNT(label) FROM faces"
        ).fetchone()
        names = tuple(r[0] for r in c.execute("SELECT DISTINCT name FROM tag_refs ORDER BY name"))
        n_refs = c.execute("SELECT COUNT(*) FROM tag_refs").fetchone()[0]
        stamp = ann_mod.AnnStamp.load(self.ann_stamp_path)
        fresh = stamp is not None and stamp.generation == self.generation and self.ann_path.exists()
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return IndexInfo(
            path=str(self.path),
            model=self.model,
            n_files=int(n_files),
            n_failed_files=int(n_failed),
            n_faces=int(n_faces),
            n_quality_ok=int(n_ok),
            n_labelled=int(n_lab),
            tag_names=names,
            n_tag_refs=int(n_refs),
            ann_backend=stamp.backend if stamp else None,
            ann_fresh=bool(fresh),
            db_bytes=int(size),
            schema=SCHEMA_VERSION,
        )

    def files(self) -> Any:
        """Every file row as a DataFrame (``path, size, mtime_ns, sha256, status, error, n_faces``)."""
        import pandas as pd

        return pd.read_sql_query(
            "SELECT path, size, mtime_ns, sha256, status, error, n_faces FROM files ORDER BY path",
            self._conn,
        )

    def get(self, face_ids: Iterable[int]) -> list[FaceRecord]:
        """Records of the given face ids, in the order asked (unknown ids are skipped)."""
        out = []
        for fid in face_ids:
            row = self._conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces JOIN files ON files.id = faces.file_id "
                "WHERE faces.id = ?",
                (int(fid),),
            ).fetchone()
            if row is not None:
                out.append(_row_to_record(row))
        return out

    def records(self) -> list[FaceRecord]:
        """Every stored face, ordered by id."""
        rows = self._conn.execute(
            f"SELECT {_FACE_COLUMNS} FROM faces JOIN files ON files.id = faces.file_id "
            "ORDER BY faces.id"
        ).fetchall()
        return [_row_to_record(r) for r in rows]

    def to_frame(self) -> Any:
        """Every stored face (without embeddings) as a DataFrame."""
        import pandas as pd

        cols = list(FaceRecord.__dataclass_fields__)
        rows = [r.to_dict() for r in self.records()]
        return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)

    def crop(self, face_id: int) -> np.ndarray | None:
        """The stored aligned crop of a face, ``(S, S, 3)`` uint8, or ``None``."""
        row = self._conn.execute("SELECT crop FROM faces WHERE id = ?", (int(face_id),)).fetchone()
        return None if row is None else decode_crop(row[0])

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """All face ids ``(N,)`` int64 and embeddings ``(N, 16)`` float32, ordered by id."""
        rows = self._conn.execute("SELECT id, embedding FROM faces ORDER BY id").fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 16), EMBEDDING_DTYPE)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        flat = np.frombuffer(b"".join(r[1] for r in rows), dtype=EMBEDDING_DTYPE)
        return ids, flat.reshape(len(rows), -1).copy()

    # -- nearest neighbours

    @property
    def ann_path(self) -> Path:
        return Path(f"{self.path}.ann")

    @property
    def ann_stamp_path(self) -> Path:
        return Path(f"{self.path}.ann.json")

    def rebuild_ann(self, backend: str | None = None) -> ann_mod.AnnStamp:
        """Rebuild the ANN cache from SQLite and save it beside the database."""
        gen = self.generation
        ids, emb = self.embeddings()
        name = ann_mod.resolve_backend(backend or self.ann_backend, len(ids))
        t0 = time.perf_counter()
        index = ann_mod.build_index(emb, ids, backend=name)
        log.info("built %s index over %d faces in %.2f s", name, len(ids), time.perf_counter() - t0)
        stamp = ann_mod.AnnStamp(gen, self.model or "", name, len(ids))
        try:
            index.save(self.ann_path)
            stamp.save(self.ann_stamp_path)
        except OSError as exc:
            log.warning("could not save the ANN cache %s: %s", self.ann_path, exc)
        self._ann, self._ann_generation = index, gen
        return stamp

    def _ann_index(self) -> Any:
        gen = self.generation
        if self._ann is not None and self._ann_generation == gen:
            return self._ann
        stamp = ann_mod.AnnStamp.load(self.ann_stamp_path)
        wanted = self.ann_backend
        if (
            stamp is not None
            and stamp.generation == gen
            and stamp.model == (self.model or "")
            and (wanted == "auto" or wanted == stamp.backend)
            and self.ann_path.exists()
        ):
            try:
                self._ann, self._ann_generation = ann_mod.load_index(self.ann_path), gen
                return self._ann
            except Exception as exc:  # a corrupt cache is rebuilt, never fatal
                log.warning("ANN cache %s unreadable (%s): rebuilding", self.ann_path, exc)
        self.rebuild_ann()
        return self._ann

    def query(self, embeddings: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest stored faces of each query embedding.

        Args:
            embeddings: ``(16,)`` or ``(Q, 16)`` float32 query embeddings.
            k: neighbours per query.

        Returns:
            ``(Q, k)`` float32 Euclidean distances (ascending) and ``(Q, k)`` int64 face ids
            (``inf`` / ``-1`` padding when the index holds fewer than ``k`` faces).
        """
        return self._ann_index().search(np.atleast_2d(embeddings), k)
