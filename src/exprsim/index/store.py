"""FaceIndex: every face of a photo collection in one SQLite file, plus an ANN index beside it.

Layout of ``faces.db`` (WAL mode, ``synchronous=FULL``; all writes in transactions):

* ``meta(key, value)``: ``schema``, ``model`` (``name@version`` of the embedder every stored
  embedding comes from; set by the first add, never mixed), ``generation`` (bumped by
  every write, so a stale ANN file is detected), ``created``;
* ``files``: one row per image file: resolved ``path``, ``size``, ``mtime_ns``, ``sha256``,
  ``ctime_ns`` (the change time; none in rows loaded from a table, and in rows of an index
  made before it until the next ``add`` finds them unchanged), ``status`` (``done`` or
  ``failed`` + ``error``), ``n_faces``;
* ``faces``: one row per face: ``file_id``, ``face_index``, box, detector score,
  landmarks ``(5, 2)`` float32 blob, quality fields, ``embedding`` ``(16,)`` float32 blob,
  ``model``, optional ``label`` and ``tags`` (JSON list), aligned ``crop`` (JPEG);
* ``tag_refs``: reference faces of user-defined expressions (:class:`exprsim.apps.tag.Tagger`);
* ``identity``: cached dlib face descriptors (:mod:`exprsim.apps.search`).

Crash safety: a file's faces and its ``files`` row are written in one transaction, so a
killed ``add`` leaves every file either fully indexed or absent; the next ``add`` skips
what is done (same path, size, mtime and change time, or same SHA-256) and carries on.

The ANN index (``faces.db.ann``, see :mod:`exprsim.index.ann`) is a cache: it records inside
the file (and in ``faces.db.ann.json`` beside it, a copy for people to read) the database,
``generation`` and ``face_log`` position it was built from. When faces were added or
removed since, :meth:`FaceIndex.refresh_ann` (and any query) applies just those changes to
it (``face_log`` is filled by triggers on ``faces``; the entries a saved cache holds are
then deleted) and rebuilds it from SQLite only when it is missing, unreadable, of another
database, or the drift rule (:func:`exprsim.index.ann.needs_retrain`) says so.

Opening an existing index only reads it (a new file, or one of an earlier exprsim that
lacks a table or a column, is set up), and the ANN cache reads the database in WAL snapshots, so
``info``, searches and listings never wait for a writer.

The same tables can live in PostgreSQL instead (``FaceIndex("postgresql://...")``,
:mod:`exprsim.index.pgvector`): the engine-specific parts sit behind
:class:`exprsim.index.backends.StoreBackend`, and search uses pgvector's HNSW index.
Bulk loads of already-embedded faces go through :meth:`FaceIndex.add_table`.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike

from exprsim.equality import array_equality
from exprsim.errors import (
    ArgumentError,
    BackendUnavailableError,
    ExprsimError,
    ImageError,
    IndexDatabaseError,
    ModelError,
    printable,
    real_array,
    require_number,
    require_positive_int,
)
from exprsim.handles import HoldsHandle
from exprsim.index import ann as ann_mod
from exprsim.index.backends import (
    EMBEDDING_BYTES,
    SCHEMA_VERSION,
    StoreBackend,
    check_schema,
    is_postgres_url,
    open_backend,
)
from exprsim.models.identity import embedder_digest, same_model, valid_digest
from exprsim.wording import count

log = logging.getLogger(__name__)

EMBEDDING_DTYPE = np.float32

#: Columns of ``faces`` a bulk load (:meth:`FaceIndex.add_table`) writes.
_BULK_FACE_COLUMNS = (
    "file_id",
    "face_index",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "detector",
    "landmarks",
    "sharpness",
    "yaw",
    "pitch",
    "roll",
    "quality_ok",
    "reasons",
    "embedding",
    "model",
)

_FACE_COLUMNS = (
    "faces.id, files.path, files.sha256, face_index, x1, y1, x2, y2, score, detector, landmarks, "
    "sharpness, yaw, pitch, roll, quality_ok, reasons, embedding, faces.model, label, tags"
)


#: what to do with an index of an older model (after an upgrade)
REEMBED_COMMAND = "`exprsim index reembed --db DB`, with this --model if one was given"


def reembed_hint(them: bool = False) -> str:
    """The way forward for embeddings (``them``: tag references) of another model."""
    its, it = ("their", "them") if them else ("its", "it")
    return (
        f"give {its} model (--model with its folder, or a shipped name such as default; "
        f"Python: FaceIndex(path, embedder=load_model(...))), or re-embed {it} with this "
        f"one: {REEMBED_COMMAND} (Python: index.reembed())"
    )


REEMBED_HINT = reembed_hint()


class ModelMismatchError(ModelError):
    """The index holds embeddings of another model; embeddings of two models never mix."""


class _CopySourceGone(Exception):
    """The indexed file whose faces a copy would take went away (rolls the copy back)."""


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
class _Job:
    """A file :meth:`FaceIndex.add` has read and will embed."""

    key: str
    st: os.stat_result
    sha: str
    status: str
    data: bytes


def _add_report(outcomes: Mapping[int, FileOutcome], model: str, t0: float) -> AddReport:
    """The :class:`AddReport` of the files settled so far, in the order they were given."""
    return AddReport(tuple(outcomes[i] for i in sorted(outcomes)), model, time.perf_counter() - t0)


class TagReferencesChanged(ExprsimError):
    """The reference faces changed between matching and :meth:`FaceIndex.retag`."""

    def __init__(self, db: object) -> None:
        super().__init__(
            f"{db}: the reference faces changed while tagging (another command added or "
            "removed a tag); run it again"
        )


class AddInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped :meth:`FaceIndex.add` once it held the index (its
    ``__cause__`` is the interruption itself). ``report`` is the :class:`AddReport` of the
    files settled before it: each one is stored (or recorded as failed)."""

    def __init__(self, report: AddReport) -> None:
        super().__init__(f"index add interrupted after {len(report.files)} files")
        self.report = report


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
            f"{count(d['added'], 'file')} added, {d['updated']} updated, "
            f"{d['skipped']} skipped, {d['failed']} failed; "
            f"{count(d['added_faces'], 'face')} stored in {d['seconds']:.1f} s"
        )
        if self.seconds > 0 and d["added_faces"]:
            text += f" ({d['added_faces'] / self.seconds:.1f} faces/s)"
        if self.failed_before:
            text += (
                f"; {self.failed_before} of the skipped files failed in an earlier run "
                "(--retry-failed tries them again)"
            )
        return text


@dataclass(frozen=True)
class LoadReport:
    """Result of :meth:`FaceIndex.add_table` (a bulk load)."""

    files_added: int
    files_replaced: int
    files_skipped: int
    faces: int
    model: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_added": self.files_added,
            "files_replaced": self.files_replaced,
            "files_skipped": self.files_skipped,
            "faces": self.faces,
            "model": self.model,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        return (
            f"{count(self.files_added, 'file')} added, {self.files_replaced} replaced, "
            f"{self.files_skipped} skipped; {count(self.faces, 'face')} loaded "
            f"({self.seconds:.1f} s)"
        )


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
    #: the backend chosen for this database (``"auto"``: none); ``ann_backend`` is the one
    #: the ANN cache was built with, ``ann_fresh`` whether the next search can use it
    ann_choice: str = "auto"
    #: the content digest of the model (:attr:`FaceIndex.model_digest`; ``None``: not
    #: recorded)
    model_digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "model": self.model,
            "model_digest": self.model_digest,
            "files": self.n_files,
            "failed_files": self.n_failed_files,
            "faces": self.n_faces,
            "quality_ok_faces": self.n_quality_ok,
            "labelled_faces": self.n_labelled,
            "tags": ", ".join(self.tag_names),
            "tag_references": self.n_tag_refs,
            "ann_choice": self.ann_choice,
            "ann_backend": self.ann_backend,
            "ann_fresh": self.ann_fresh,
            "db_bytes": self.db_bytes,
            "schema": self.schema,
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(list(self.to_dict().items()), columns=["field", "value"])


@array_equality
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
    """How the index names a local file (:func:`exprsim.io.file_key`)."""
    from exprsim.io import file_key

    return str(file_key(path))


#: dimension of the stored embeddings (``e0`` ... ``e15``)
EMBEDDING_SIZE = 16


def _embedding(value: Any, what: str) -> np.ndarray:
    """``value`` as a ``(16,)`` float32 embedding of finite numbers.

    Raises:
        ExprsimError: another size, or NaN / infinite values (stored, they would poison
            every later search or tag).
    """
    try:
        raw = real_array(value, what, EMBEDDING_DTYPE)
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"{what}: not an array of numbers ({exc})") from exc
    if raw.ndim > 1 and max(raw.shape) != raw.size:  # (4, 4) was read as 16 values
        raise ExprsimError(f"{what}: expected {EMBEDDING_SIZE} values in one row, got {raw.shape}")
    emb = raw.reshape(-1)
    if emb.shape != (EMBEDDING_SIZE,):
        raise ExprsimError(f"{what}: expected {EMBEDDING_SIZE} values, got {emb.size}")
    if not np.isfinite(emb).all():
        raise ExprsimError(f"{what}: NaN or infinite values")
    return emb


#: a re-indexed face takes the label and tags of the face it replaces when their boxes
#: overlap by more than this (IoU) and their embeddings are within :data:`CARRY_DISTANCE`
CARRY_IOU = 0.5
#: ... (Euclidean, unit embeddings): another photo saved under the same name, a stranger's
#: face where the old one was, took its label (embeddings 1.3 apart); an edited photo's face
#: stays within 0.2 or so
CARRY_DISTANCE = 0.5
#: what a re-index keeps of the faces it replaces (:func:`_carry_labels`)
_KEPT_COLUMNS = "fa.x1, fa.y1, fa.x2, fa.y2, fa.label, fa.tags, fa.embedding"


#: the columns of a stored face after ``file_id`` (``_face_row`` gives them in this order)
_STORED_COLUMNS = (
    "face_index, x1, y1, x2, y2, score, detector, landmarks, sharpness, yaw, pitch, roll,"
    " quality_ok, reasons, embedding, model, crop"
)


def _carry_labels(c: Any, file_id: int, old: Sequence[Any]) -> None:
    """Give the faces of ``file_id`` the labels and tags of ``old`` rows
    (:data:`_KEPT_COLUMNS`: the faces a re-index replaced) in the same places and of about
    the same look (:data:`CARRY_DISTANCE`), one to one, best overlap first."""
    from exprsim.faces.detect import box_iou

    new = c.execute(
        "SELECT id, x1, y1, x2, y2, embedding FROM faces WHERE file_id = ?", (file_id,)
    ).fetchall()
    if not new or not old:
        return
    iou = box_iou(
        np.array([r[:4] for r in old], np.float64), np.array([r[1:5] for r in new], np.float64)
    )
    iou = np.nan_to_num(iou, nan=0.0)
    old_emb = np.stack([_vector(r[6]) for r in old]).astype(np.float64)
    new_emb = np.stack([_vector(r[5]) for r in new]).astype(np.float64)
    apart = np.linalg.norm(old_emb[:, None, :] - new_emb[None, :, :], axis=2)
    iou[~(apart <= CARRY_DISTANCE)] = 0.0
    while iou.size and iou.max() > CARRY_IOU:
        i, j = (int(v) for v in np.unravel_index(int(iou.argmax()), iou.shape))
        c.execute(
            "UPDATE faces SET label = ?, tags = ? WHERE id = ?",
            (old[i][4], old[i][5], int(new[j][0])),
        )
        iou[i, :] = 0.0
        iou[:, j] = 0.0


def _require_faces(c: Any, ids: Sequence[int]) -> None:
    """Refuse face ids the index does not hold (ids written out earlier, whose faces were
    removed or re-indexed since): labelling them did nothing, without a word."""
    for start in range(0, len(ids), 500):
        part = [int(i) for i in ids[start : start + 500]]
        marks = ", ".join("?" * len(part))
        found = {int(r[0]) for r in c.execute(f"SELECT id FROM faces WHERE id IN ({marks})", part)}
        missing = [i for i in part if i not in found]
        if missing:
            raise ExprsimError(
                f"no face with id {missing[0]} in this index"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + ": face ids change when photos are removed or indexed again; nothing "
                "was changed"
            )


def _carry_all(c: Any, kept: Mapping[str, Sequence[Any]]) -> None:
    """:func:`_carry_labels` for each path of ``kept`` (a bulk load's replaced faces) to the
    faces stored for it now."""
    for path, rows in kept.items():
        found = c.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if found is not None:
            _carry_labels(c, int(found[0]), rows)


def not_utf8(file: bool = False) -> str:
    """Why a name with surrogates (bytes Python could not decode) cannot be stored: a
    name that is not UTF-8 (``file``: rename it), or, when Python decodes names with
    another encoding (a C or Latin-1 locale), that encoding."""
    import codecs
    import sys

    encoding = sys.getfilesystemencoding()
    if codecs.lookup(encoding).name != "utf-8":
        return (
            f"cannot be read as UTF-8: Python decodes names as {encoding} here (run with "
            "PYTHONUTF8=1 or a UTF-8 locale such as LC_ALL=C.UTF-8)"
        )
    return "is not valid UTF-8" + (" (rename the file)" if file else "")


def check_tag_name(name: object) -> None:
    """Refuse a tag name that is not non-empty text UTF-8 can store (a file name's stray
    bytes, which Python keeps as surrogates, cannot be stored).

    Raises:
        ExprsimError: an empty, blank or non-string name, or one that is not valid UTF-8.
    """
    if not isinstance(name, str) or not name.strip():
        raise ExprsimError(f"a tag name must be a non-empty string, got {name!r}")
    if not _utf8(name):
        raise ExprsimError(f"tag name {printable(name)!r} {not_utf8()}")


#: longest name a new tag may have (the web app's form, the CLI and the API alike)
MAX_TAG_NAME = 64

#: first characters that make a spreadsheet read a CSV cell as a formula (OWASP's list)
FORMULA_STARTS = frozenset("=+-@")


def check_new_tag_name(name: object) -> None:
    """The rule for a name a tag is *created* under (a reference face, a tag put on faces),
    the same in the CLI, the web app and the API: :func:`check_tag_name`, and no spaces
    around it (``" happy "`` would look like ``"happy"`` everywhere it is shown), no control
    characters, no line or paragraph separators (U+2028, U+2029: line-based readers split
    tables there), no ``,`` (tables join a face's tags with commas), not ``.`` or ``..`` (a
    browser rewrites such URLs), no ``=``, ``+``, ``-`` or ``@`` first (a spreadsheet
    opening a table of tags would run the cell as a formula), at most :data:`MAX_TAG_NAME`
    characters, and in Unicode's composed form (NFC: ``café`` typed with a combining accent
    would be a second tag that looks the same; the CLI and the web app compose what users
    type, :func:`compose_tag_name`). Names stored by earlier versions still work for
    listing and removal, which only need :func:`check_tag_name`.

    Raises:
        ExprsimError: saying which part of the rule the name breaks.
    """
    import unicodedata

    check_tag_name(name)
    assert isinstance(name, str)
    shown = printable(name)
    if name != name.strip():
        raise ExprsimError(f"tag name '{shown}' has spaces around it")
    if len(name) > MAX_TAG_NAME:
        raise ExprsimError(f"tag name '{shown[:20]}'... is longer than {MAX_TAG_NAME} characters")
    if name in (".", "..") or any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise ExprsimError(f"tag name '{shown}' is '.' or '..' or holds control characters")
    if any(unicodedata.category(ch) in ("Zl", "Zp") for ch in name):
        raise ExprsimError(f"tag name '{shown}' holds a line or paragraph separator")
    if unicodedata.normalize("NFC", name) != name:
        raise ExprsimError(
            f"tag name '{shown}' is not in Unicode's composed form (NFC), so the same name "
            "typed another way would be another tag: pass unicodedata.normalize('NFC', name)"
        )
    if "," in name:
        raise ExprsimError(f"tag name '{shown}' holds a ',' (tables join tags with commas)")
    if name[0] in FORMULA_STARTS:
        raise ExprsimError(
            f"tag name '{shown}' starts with '{name[0]}': a spreadsheet opening a table of "
            "tags would run it as a formula"
        )


def compose_tag_name(name: str, stored: Iterable[str] = ()) -> str:
    """The tag a user means by ``name``: a ``stored`` name equal to it, else one equal to it
    once both are composed (NFC; one stored by an earlier version, which kept names as
    typed), else ``name`` composed."""
    import unicodedata

    names = set(stored)
    if name in names:
        return name
    composed = unicodedata.normalize("NFC", name)
    same = sorted(n for n in names if unicodedata.normalize("NFC", n) == composed)
    return same[0] if same else composed


#: what no stored name (a label, a detector, a model) may hold: control characters (a NUL
#: above all: PostgreSQL cannot store it, and SQLite's C API cuts strings there) and a file
#: name's undecodable bytes (surrogates: not UTF-8)
_BAD_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: what no stored path (a source) may hold: a NUL, undecodable bytes (a file name may hold
#: a tab or a newline)
_BAD_IN_PATH = re.compile("[\x00\ud800-\udfff]")


#: what no index stores as given, and its words: in a path (``True``), in a name
_BAD_TEXT = {
    True: (_BAD_IN_PATH, "a NUL character or bytes that are not UTF-8"),
    False: (_BAD_IN_NAME, "control characters"),
}


def check_stored_text(value: object, what: str, path: bool = False) -> str:
    """``value``, refused unless it is text both engines store as given: without a NUL or
    undecodable bytes, and (a name, not a ``path``) without control characters.

    Raises:
        ExprsimError: naming ``what`` and the text (escaped); nothing was stored.
    """
    if not isinstance(value, str):
        raise ExprsimError(f"{what} must be a string, got {type(value).__name__}")
    pattern, kind = _BAD_TEXT[path]
    if pattern.search(value):
        raise ExprsimError(
            f"{what} {printable(value)[:80]!r} holds {kind}, which the index cannot store"
        )
    return value


#: text columns of a bulk-loaded table, and whether each is a path (else a name)
_TABLE_TEXT = (("source", True), ("detector", False), ("model", False), ("sha256", False))


def _check_table_text(df: Any) -> None:
    """Refuse a bulk-load table whose text cells hold what no index stores as given
    (:func:`check_stored_text`; ``reasons``: a NUL). Nothing is written.

    Raises:
        ExprsimError: naming the first bad row (from 0) and column.
    """
    columns = (*_TABLE_TEXT, ("reasons", True))
    for col, path in columns:
        if col not in df.columns:
            continue
        rows = np.flatnonzero(df[col].notna().to_numpy(bool))
        text = [str(v) for v in df[col].to_numpy(object)[rows]]
        pattern, kind = _BAD_TEXT[path]
        if not pattern.search(" ".join(text)):  # one search in C: the usual case
            continue
        bad = [i for i, v in enumerate(text) if pattern.search(v)]
        raise ExprsimError(
            f"the table has {len(bad)} rows whose {col} holds {kind}, which the index cannot "
            f"store (first: row {int(rows[bad[0]])}, column {col}: "
            f"{printable(text[bad[0]])[:80]!r}); nothing was loaded"
        )


def _checked_frame(table: Any, name: str | None) -> Any:
    """A bulk-load ``table`` as a checked DataFrame (:func:`_check_table`), its embeddings
    of length 1 (:func:`unit_rows`; a copy then: the caller's table is left as it was).

    Raises:
        TypeError: not a DataFrame nor a table with ``to_pandas()``.
        ExprsimError: as :func:`_check_table`, or an all-zero embedding.
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame) and not callable(getattr(table, "to_pandas", None)):
        raise TypeError(
            "add_table needs a pandas DataFrame or a table with to_pandas() (e.g. a "
            f"pyarrow Table), got {type(table).__name__}"
        )
    df = table if isinstance(table, pd.DataFrame) else table.to_pandas()
    _check_table(df, name)
    df = _file_identity_columns(df, name)
    cols = [f"e{i}" for i in range(EMBEDDING_SIZE)]
    emb = df[cols].to_numpy(np.float64)  # real numbers (_check_table_values)
    unit = unit_rows(emb, name or "the table")
    if unit is not emb:
        df = df.assign(**{c: unit[:, i] for i, c in enumerate(cols)})
    return df


def _file_identity_columns(df: Any, name: str | None) -> Any:
    """``df`` with its ``sha256`` column as text: a digest of 32 bytes (a binary Parquet
    column) as its 64 hex digits, where ``str()`` stored the bytes' Python text and a copy
    of the file was no longer known as one; its ``size`` and ``mtime_ns`` as integers (a
    copy if anything changes).

    Raises:
        ExprsimError: a ``sha256`` that is bytes of another length, or a ``size`` /
            ``mtime_ns`` that is not an integer (a timestamp column: "Error binding
            parameter 4"), naming its row and column.
    """
    import pandas as pd

    where = f"{printable(name)}: " if name else ""
    for col in ("size", "mtime_ns"):
        if col not in df.columns or pd.api.types.is_integer_dtype(df[col].dtype):
            continue  # integers (NumPy's or pandas' nullable ones): as they are
        values = df[col].to_numpy(object)
        bad = [i for i, v in enumerate(values) if not (pd.isna(v) or _is_id(v) or _whole(v))]
        if bad:
            v = values[bad[0]]
            raise ExprsimError(
                f"{where}the table's {col} holds {type(v).__name__} values, not integers "
                f"(first: row {bad[0]}: {printable(str(v))[:40]!r}); nothing was loaded"
            )
        # whole floats (an integer column with nulls, as pandas reads it) as integers:
        # PostgreSQL's COPY refused "100.0" for a BIGINT
        ints = [None if pd.isna(v) else int(v) for v in values]
        df = df.assign(**{col: pd.Series(ints, index=df.index, dtype=object)})
    if "sha256" not in df.columns:
        return df
    values = df["sha256"].to_numpy(object)
    if not any(isinstance(v, bytes | bytearray) for v in values):
        return df
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bytes | bytearray):
            if len(v) != 32:
                raise ExprsimError(
                    f"{where}the table's sha256 holds {len(v)} bytes in row {i}, not a "
                    "SHA-256 digest (32 bytes, or 64 hex digits); nothing was loaded"
                )
            v = bytes(v).hex()
        out.append(v)
    return df.assign(sha256=pd.Series(out, index=df.index, dtype=object))


def _whole(value: object) -> bool:
    """A float holding a whole number (pandas reads an integer column with nulls so)."""
    return isinstance(value, float | np.floating) and float(value).is_integer()


def _check_table(df: Any, name: str | None) -> None:
    """Refuse a bulk-load table that lacks a required column, or holds a value no index
    stores (:func:`_check_table_values`, :func:`_check_table_text`); ``name`` (a shard's
    file) starts the message.

    Raises:
        ExprsimError: naming the first bad row and column; nothing was loaded.
    """
    emb_cols = [f"e{i}" for i in range(EMBEDDING_SIZE)]
    try:
        missing = [c for c in ("source", *emb_cols) if c not in df.columns]
        if missing:
            raise ExprsimError(f"the table lacks the columns {', '.join(missing)}")
        _check_table_values(df, emb_cols)
        _check_table_text(df)
    except ExprsimError as exc:
        if name is None:
            raise
        raise ExprsimError(f"{printable(name)}: {exc}") from exc


def _tag_set(
    tags: Iterable[str] | str, check: Callable[[object], None] = check_new_tag_name
) -> set[str]:
    """Tag names given to :meth:`FaceIndex.add_tags` (one string is one tag), each checked
    by ``check`` (:func:`check_new_tag_name`; :meth:`FaceIndex.retag` takes names that may
    exist already, :func:`check_tag_name`, so names stored by earlier versions pass)."""
    names = [tags] if isinstance(tags, str) else list(tags)
    for name in names:
        check(name)
    return set(names)


#: most results :meth:`FaceIndex.query` pads with ``inf`` / ``-1`` when ``k`` is more than
#: the faces indexed (12 bytes each: 120 MB); more is refused
_MAX_PADDED = 10_000_000

#: face ids are SQLite / PostgreSQL 64-bit integers
_ID_RANGE = range(-(2**63), 2**63)


def _face_ids(face_ids: Iterable[Any] | int) -> list[int]:
    """Face ids as ``int`` (a single integer is one id); one outside the 64-bit range
    names no face and is dropped.

    Raises:
        ExprsimError: a value that is not an integer (``2.5``, ``2.0``, ``True``, ``"2"``:
            ``int()`` would cut or read them into another face's id), or text given for the
            ids (``"12"`` would otherwise be read as the faces 1 and 2).
    """
    if isinstance(face_ids, int | np.integer):
        face_ids = [face_ids]  # a bool too: refused below
    if isinstance(face_ids, str | bytes):
        raise ExprsimError(f"face ids must be integers, got the text {face_ids!r} (pass a list)")
    try:
        face_ids = iter(face_ids)
    except TypeError as exc:
        raise ExprsimError(f"face ids must be integers, got {face_ids!r}") from exc
    out = []
    for value in face_ids:
        if not _is_id(value):
            raise ExprsimError(f"a face id must be an integer, got {value!r}")
        if int(value) in _ID_RANGE:
            out.append(int(value))
    return out


def _is_id(value: object) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _tags_of(text: str | None, writing: bool = True) -> list[str]:
    """A face's stored tags (a JSON list); a damaged value is one clear error. Items that
    are not names (another shape: a newer exprsim's, another program's) are refused when
    ``writing`` (they would be written back as Python text), and read as their JSON text
    otherwise (one such face failed every search, listing and export that met it)."""
    if not text:
        return []
    try:
        tags = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExprsimError(f"damaged database: face tags {text[:40]!r} are not JSON") from exc
    if not isinstance(tags, list):
        raise ExprsimError(f"damaged database: face tags {text[:40]!r} are not a list")
    if not writing:
        return [t if isinstance(t, str) else json.dumps(t, ensure_ascii=False) for t in tags]
    if not all(isinstance(t, str) for t in tags):  # str() wrote a dict back as Python text
        raise ExprsimError(
            f"face tags {text[:40]!r} are not a list of names: damaged, or written by a "
            "newer exprsim"
        )
    return tags


#: an embedding whose length is further than this from 1 is normalised, with a warning
UNIT_TOLERANCE = 1e-3
#: an embedding shorter than this is all zeros: it has no direction, and is refused
ZERO_LENGTH = 1e-6


def _unit(emb: np.ndarray, what: str) -> np.ndarray:
    """``emb`` L2-normalised (a warning when its length was not 1; an error for zero): one
    embedding, in its own words (:func:`unit_rows` for many)."""
    norm = float(np.linalg.norm(emb.astype(np.float64)))
    if norm < ZERO_LENGTH:
        raise ExprsimError(
            f"{what}: the embedding is all zeros (an all-zero embedding has no direction to match)"
        )
    if abs(norm - 1.0) > UNIT_TOLERANCE:
        log.warning("%s: embedding of length %.4g normalised to 1", what, norm)
        return (emb / norm).astype(EMBEDDING_DTYPE)
    return emb


def unit_rows(emb: np.ndarray, what: str, warn: bool = True) -> np.ndarray:
    """``(N, D)`` finite embeddings with every row of length 1: rows further than
    :data:`UNIT_TOLERANCE` from it are normalised, with one warning naming how many
    (unless ``warn`` is false: a caller that said so already) (a stored or compared
    embedding of length 10 is 9 away from its own direction, one of length 0.01 about 1
    away from every face).

    Raises:
        ExprsimError: an all-zero row (it has no direction), naming the first.
    """
    norms = np.linalg.norm(np.asarray(emb, dtype=np.float64), axis=-1)
    zero = norms < ZERO_LENGTH
    if zero.any():
        raise ExprsimError(
            f"{what}: row {int(np.flatnonzero(zero)[0])} is all zeros (an all-zero embedding "
            "has no direction to match)"
        )
    off = np.abs(norms - 1.0) > UNIT_TOLERANCE
    if not off.any():
        return emb
    if warn:
        first = int(np.flatnonzero(off)[0])
        log.warning(
            "%s: %d embedding(s) not of length 1 normalised (first: row %d, length %.4g)",
            what, int(off.sum()), first, float(norms[first]),
        )  # fmt: skip
    out = np.array(emb, copy=True)
    out[off] = (out[off] / norms[off, None]).astype(out.dtype)
    return out


def _gone(path: str) -> bool:
    """Whether the stored ``path`` names nothing any more: ``lstat`` says it does not
    exist (or a part of it is not a folder), or it is a symbolic link now (stored paths
    are links resolved: the file indexed there was replaced by a link, whose target is
    indexed under its own path). Permission denied, a stale network handle or an I/O error
    say nothing of the file, so it is not gone (``os.path.lexists`` was false for those
    too, and ``index add --prune`` forgot files behind a folder made unreadable a moment)."""
    import stat

    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return stat.S_ISLNK(st.st_mode)


def _utf8(text: str) -> bool:
    """``text`` encodes as UTF-8 (a file name's undecodable bytes do not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_hand_tag(c: Any, path: Any, name: str) -> None:
    """Refuse the first reference face of a tag ``name`` that faces carry already, set by
    hand (:meth:`FaceIndex.add_tags`): tagging by reference manages the name, and took it
    off every face the reference did not match (the user's own tags, lost)."""
    if c.execute("SELECT 1 FROM tag_refs WHERE name = ? LIMIT 1", (name,)).fetchone():
        return  # the tag is managed by references already
    rows = c.execute("SELECT tags FROM faces WHERE tags IS NOT NULL AND tags <> '[]'")
    n = sum(name in _tags_of(r[0], writing=False) for r in rows.fetchall())
    if n:
        raise ExprsimError(
            f"{path}: {count(n, 'face')} carry the tag {name!r} set by hand; a reference "
            "face of that name would take it off every face it does not match: give the "
            "reference another name, or take the hand-set tag off first "
            f"(FaceIndex.remove_tags; `exprsim tag remove {shlex.quote(name)} --db DB` "
            "takes it off every face)"
        )


def _empty_dir(folder: str) -> bool:
    """Whether ``folder`` is a folder with nothing in it (one that cannot be read is not)."""
    try:
        with os.scandir(folder) as it:
            return next(it, None) is None
    except OSError:
        return False


def _refuse_reference_names(c: Any, path: Any, names: set[str]) -> None:
    """Refuse to set by hand (:meth:`FaceIndex.add_tags`) a tag that reference faces define
    (the same name, or one equal to it once composed: ``café`` typed either way):
    `tag --index` manages such a name, and took it off every face its references did not
    match at its next run (the user's own tags, lost)."""
    import unicodedata

    stored = [str(r[0]) for r in c.execute("SELECT DISTINCT name FROM tag_refs").fetchall()]
    composed = {unicodedata.normalize("NFC", n): n for n in stored}
    hits = sorted(composed[k] for n in names if (k := unicodedata.normalize("NFC", n)) in composed)
    if hits:
        raise ExprsimError(
            f"{path}: the tag {hits[0]!r} is defined by reference faces: `exprsim tag "
            "--index` gives it to the faces they match and takes it off the others, so a "
            "copy set by hand would not stay; give your tag another name, or add a "
            "reference face of it (`exprsim tag add NAME IMAGE... --db DB`)"
        )


def _table_digest(table: Any, given: str | None) -> str | None:
    """The content digest of a table's model: ``given``, or the one an Arrow table's
    metadata records (`exprsim embed -o x.parquet`); a table of another content than the
    one given is refused."""
    from exprsim.models.identity import recorded_digest

    recorded = recorded_digest(getattr(getattr(table, "schema", None), "metadata", None))
    if recorded is None:
        return given
    if valid_digest(given) and given != recorded:
        raise ModelMismatchError(
            f"the table holds embeddings of a model with content {recorded}, not {given}"
        )
    return recorded


def _table_model(df: Any, model: str | None) -> str:
    """The model of a table's embeddings: ``model``, checked against the table's ``model``
    column, or that column's one value."""
    if model is None:
        models = df["model"].dropna().unique() if "model" in df.columns else []
        if not len(models):
            raise ExprsimError(
                "the table names no model (no `model` column): pass model='name@version' "
                "(CLI: --model with the model's folder, or a shipped name such as default)"
            )
        if len(models) != 1:
            raise ExprsimError(
                f"the table names {len(models)} models (its `model` column): an index holds "
                "one; load each model's rows into its own index"
            )
        return str(models[0])
    if "model" in df.columns and (df["model"].dropna() != model).any():
        raise ModelMismatchError(f"the table holds embeddings of another model than {model}")
    return model


def _stored_digest(value: Any, model: str | None) -> str | None:
    """The content digest of a ``model_digest`` meta value (``"name@version digest"``) when
    it was recorded for ``model`` (an older exprsim that changed the model of an emptied
    index left the previous model's), else ``None``."""
    if not isinstance(value, str):
        return None
    name, _, digest = value.rpartition(" ")
    return digest if name == model and valid_digest(digest) else None


def _other_content(path: Any, model: str, stored: str | None, digest: str | None) -> str:
    """Why embeddings of ``model`` with content ``digest`` are refused by an index holding
    embeddings of a model of that name with content ``stored``."""
    return (
        f"{path} holds embeddings of model {model} (content {stored}); refusing to add "
        f"embeddings of another model of that name, with other weights or settings (content "
        f"{digest}) ({REEMBED_HINT}; or give that model another name or version, or use "
        "another database)"
    )


def _refs_of_another_model(path: Any, current: str | None, model: str) -> str:
    """Why embeddings of ``model`` are refused by an index holding no face but tag
    reference faces of model ``current``."""
    return (
        f"{path} holds no face but tag reference faces of model {current}; refusing to add "
        f"embeddings of {model} (re-embed them with this model: {REEMBED_COMMAND}; or remove "
        "them with `exprsim tag remove NAME --db DB`, or use another database)"
    )


def tag_refs_digest(refs: Iterable[Sequence[Any]]) -> str:
    """A digest of reference faces given as ``(id, name, embedding)`` (the embedding as
    stored: float32 bytes, or an array of them), whatever their order."""
    h = hashlib.sha256()
    for rid, name, emb in sorted(refs, key=lambda r: int(r[0])):
        data = np.asarray(emb, np.float32).tobytes() if isinstance(emb, np.ndarray) else emb
        h.update(f"{int(rid)}\0{name}\0".encode())
        h.update(bytes(data))
        h.update(b"\1")
    return h.hexdigest()


def _untag(c: Any, drop: set[str], face_ids: Sequence[int] | None) -> int:
    """Take the tags ``drop`` off faces (``face_ids``, or every face), inside the caller's
    transaction ``c``; returns the faces changed."""
    if face_ids is None:
        rows = c.execute("SELECT id, tags FROM faces WHERE tags IS NOT NULL").fetchall()
    else:
        rows = [
            row
            for i in face_ids
            if (row := c.execute("SELECT id, tags FROM faces WHERE id = ?", (i,)).fetchone())
        ]
    changed = 0
    for fid, text in rows:
        _tags_of(text, writing=False)  # a damaged value: one clear error
        raw = json.loads(text) if text else []
        if not any(isinstance(t, str) and t in drop for t in raw):
            continue  # a face with items of another shape was refused here: left as it is
        if all(isinstance(t, str) for t in raw):
            kept: list[Any] = sorted(set(raw) - drop)
        else:  # items of another shape (a newer exprsim's) kept as they are
            kept = [t for t in raw if not (isinstance(t, str) and t in drop)]
        c.execute("UPDATE faces SET tags = ? WHERE id = ?", (json.dumps(kept), int(fid)))
        changed += 1
    return changed


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stat_columns(st: os.stat_result | None, db: StoreBackend) -> dict[str, int | None]:
    """The columns of a ``files`` row that tell whether the file changed since: ``size``,
    ``mtime_ns``, and ``ctime_ns`` where the store has that column (see
    :data:`~exprsim.index.backends.ADDED_COLUMNS`)."""
    stat = {
        "size": None if st is None else int(st.st_size),
        "mtime_ns": None if st is None else int(st.st_mtime_ns),
    }
    if db.file_ctime:
        stat["ctime_ns"] = None if st is None else int(st.st_ctime_ns)
    return stat


def _same_stat(size: Any, mtime: Any, ctime: Any, st: os.stat_result) -> bool:
    """Whether a ``files`` row's stat still describes the file: the same size and
    modification time, and the same change time where the row has one (a row stored before
    ``ctime_ns`` existed, or loaded from a table, has none: size and time decide)."""
    same = size == st.st_size and mtime == st.st_mtime_ns
    return same and (ctime is None or ctime == st.st_ctime_ns)


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


def _landmarks_of(blob: bytes | None, source: str) -> np.ndarray | None:
    """A face's stored ``(5, 2)`` landmarks; a blob of another size is one clear error."""
    if not blob:
        return None
    pts = np.frombuffer(blob, dtype=np.float32)
    if pts.size != 10:
        raise ExprsimError(f"damaged database: {printable(source)} has {pts.size} landmark values")
    return pts.reshape(5, 2)


def _vector(value: Any) -> np.ndarray:
    """A stored embedding (float32 blob, or pgvector array) -> ``(16,)`` float32."""
    if isinstance(value, bytes | bytearray | memoryview):
        if len(value) != EMBEDDING_BYTES:  # written by another program
            raise ExprsimError(
                f"damaged database: an embedding of {len(value)} bytes, not {EMBEDDING_BYTES} "
                "(16 float32 values)"
            )
        return np.frombuffer(value, dtype=EMBEDDING_DTYPE).copy()
    if hasattr(value, "to_numpy"):  # pgvector.Vector
        value = value.to_numpy()
    return np.array(value, dtype=EMBEDDING_DTYPE).reshape(-1)


def _landmarks_column(df: Any) -> list[Any]:
    """Per row the ``(5, 2)`` landmarks of a bulk-loaded table, or ``None``: a ``landmarks``
    column (nested lists), else the flat per-face columns ``left_eye_x`` ... ``mouth_right_y``
    (:data:`exprsim.faces.pipeline.FACE_COLUMNS`)."""
    from exprsim.faces.types import LANDMARK_NAMES

    if "landmarks" in df.columns:
        return df["landmarks"].where(df["landmarks"].notna(), None).tolist()
    flat = [f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y")]
    if not all(c in df.columns for c in flat):
        return [None] * len(df)
    points = df[flat].to_numpy(np.float32).reshape(-1, len(LANDMARK_NAMES), 2)
    return [None if np.isnan(p).any() else p for p in points]


def _check_table_values(df: Any, emb_cols: list[str]) -> None:
    """Refuse a bulk-load table whose sources are missing or whose embeddings are not finite
    numbers (nothing is written).

    Raises:
        ExprsimError: naming the first bad column.
    """
    if df["source"].isna().any():
        raise ExprsimError(f"the table has {int(df['source'].isna().sum())} rows without a source")
    try:
        emb = real_array(df[emb_cols].to_numpy(), "the embedding columns e0..e15", np.float64)
    except (TypeError, ValueError) as exc:
        raise ExprsimError(f"the embedding columns e0..e15 must hold numbers ({exc})") from exc
    bad = ~np.isfinite(emb)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ExprsimError(
            f"the table has {int(bad.any(axis=1).sum())} rows with NaN, infinite or missing "
            f"embedding values (first: row {int(row)}, column {emb_cols[int(col)]})"
        )
    _check_number_columns(df)


#: columns of a bulk-load table an index stores as numbers (missing values allowed), and
#: whether they must be whole
_NUMBER_COLUMNS: dict[str, bool] = {
    **dict.fromkeys(("x1", "y1", "x2", "y2", "score", "sharpness", "yaw", "pitch", "roll"), False),
    **dict.fromkeys(("face", "size", "mtime_ns"), True),
}

#: whole-number columns that count from 0 (a face's number in its photo, a file's size)
_NOT_NEGATIVE = frozenset({"face", "size"})


def _check_number_columns(df: Any) -> None:
    """Refuse text, infinite or (for counts) fractional values in the table's number columns,
    and a ``quality_ok`` that is not true / false: stored, they broke every later read
    (``could not convert string to float``) and passed quality filters they should fail
    (SQLite ranks text above every number)."""
    import pandas as pd

    for name, whole in _NUMBER_COLUMNS.items():
        if name not in df.columns:
            continue
        raw = df[name]
        values = pd.to_numeric(raw, errors="coerce")
        wrong = (values.isna() & raw.notna()) | np.isinf(values.astype(np.float64))
        if whole:
            wrong |= values.notna() & (values != values.round())
        if name in _NOT_NEGATIVE:
            wrong |= values.notna() & (values < 0)
        if wrong.any():
            row = int(np.flatnonzero(wrong.to_numpy())[0])
            kind = "whole numbers" if whole else "finite numbers"
            kind += " from 0" if name in _NOT_NEGATIVE else ""
            raise ExprsimError(
                f"column {name} must hold {kind} (or nothing), got "
                f"{printable(repr(raw.iloc[row]))[:40]} (first: row {row}); nothing was loaded"
            )
    if "quality_ok" in df.columns:
        flags = df["quality_ok"]
        known = flags.isna() | flags.isin([True, False, 0, 1])
        if not known.all():
            row = int(np.flatnonzero(~known.to_numpy())[0])
            raise ExprsimError(
                f"column quality_ok must hold true / false (or 1 / 0), got "
                f"{printable(repr(flags.iloc[row]))[:40]} (first: row {row}); nothing was loaded"
            )


def _column(df: Any, name: str, default: Any) -> list[Any]:
    """A column of a bulk-loaded table as a list (nulls as ``None``), or ``default``s."""
    if name not in df.columns:
        return [default] * len(df)
    series = df[name].astype(object)  # pandas' string dtype keeps pd.NA under ``where``
    return series.where(series.notna(), None).tolist()


def _removal_keys(path: str | Path) -> list[tuple[str, str]]:
    """The ``(path, folder prefix)`` pairs that find ``path``'s stored files: a local path
    resolved as ``add()`` stores it, and a source stored as given (a URL, a file of another
    machine, from a bulk load) by its own text. A key that is not UTF-8 was never stored
    (see ``_prepare``)."""
    keys = [k for k in dict.fromkeys((_file_key(path), str(path))) if _utf8(k)]
    return [(k, k.rstrip(os.sep) + os.sep) for k in keys]


#: sources :meth:`FaceIndex.add_faces` writes in one transaction
ADD_FACES_BATCH = 500

#: change times :meth:`FaceIndex.add` records in one transaction, for rows stored before
#: ``files.ctime_ns`` existed (once per row: then they have one)
STAMP_BATCH = 500

#: ids in one ``IN (...)`` list (SQLite took at most 999 parameters before 3.32)
_ID_BATCH = 500


def _files_named(
    rows: Sequence[Sequence[Any]], keys: Sequence[Sequence[tuple[str, str]]]
) -> list[list[int]]:
    """The ids of the ``(id, path)`` file ``rows`` each input's ``keys`` (see
    :func:`_removal_keys`) name: the path itself, or every path under it as a folder; a
    file already named by an earlier input is not named again."""
    import bisect

    ordered = sorted((str(path), int(fid)) for fid, path in rows)
    paths = [p for p, _ in ordered]
    by_path = dict(ordered)
    taken: set[int] = set()
    out = []
    for input_keys in keys:
        mine: list[int] = []
        for path, prefix in input_keys:
            found = [by_path[path]] if path in by_path else []
            lo = bisect.bisect_left(paths, prefix)
            hi = lo
            while hi < len(paths) and paths[hi].startswith(prefix):
                hi += 1
            found += [fid for _, fid in ordered[lo:hi]]
            mine += [fid for fid in found if fid not in taken]
            taken.update(found)
        out.append(mine)
    return out


def _check_removable(path: str | Path) -> None:
    """Refuse a :meth:`FaceIndex.remove` input that would name every stored file: an empty
    path (it resolves to the working folder, and its text is a prefix of every path) or
    the root."""
    text = str(path)
    if not text.strip():
        raise ExprsimError("index remove: an empty path names no file; nothing was removed")
    key = Path(_file_key(path))
    if key.parent == key:
        raise ExprsimError(
            f"index remove: {text!r} is the root and would remove every file; nothing was "
            "removed (to start over, use a new index file)"
        )


def _table_key(source: str) -> str:
    """A bulk-loaded source as :meth:`FaceIndex.add` would store it: a local file's resolved
    path (``embed`` writes paths as given, often relative), anything else (a URL, a file of
    another machine) as is."""
    if "://" in source:
        return source
    from exprsim.io import path_exists

    path = Path(source)
    return _file_key(path) if path_exists(path) else source


def _relative_path(source: str) -> bool:
    """A source that reads as a relative local path (not a URL, not absolute)."""
    return "://" not in source and not Path(source).is_absolute()


def _warn_relative_sources(kept: list[str]) -> None:
    """Say that relative sources found no file from here: they are stored as written, so a
    later ``index add`` of those files (stored by their full path) indexes them again."""
    if kept:
        log.warning(
            "%d sources of the table are relative paths with no file from %s (first: %s); "
            "they are stored as written: load the table from the folder `embed` ran in, "
            "or the same photos added later are indexed twice",
            len(kept), os.getcwd(), printable(kept[0]),
        )  # fmt: skip


def _prepared_table(df: Any) -> tuple[Any, np.ndarray, list[str]]:
    """``(df, codes, sources)`` of a bulk load: sources resolved (:func:`_table_key`) and
    factorised, faces numbered per source when the table has no ``face`` column.

    Raises:
        ExprsimError: a (source, face) pair twice, or embedding columns past ``e15``.
    """
    import re

    import pandas as pd

    extra = [
        c for c in df.columns if re.fullmatch(r"e\d+", str(c)) and int(str(c)[1:]) >= EMBEDDING_SIZE
    ]
    if extra:
        raise ExprsimError(
            f"the table has embedding columns past e15 ({', '.join(map(str, extra[:3]))}): "
            f"embeddings of more than {EMBEDDING_SIZE} values"
        )
    src = df["source"].astype(str)
    keys = {s: _table_key(s) for s in pd.unique(src)}
    _warn_relative_sources([s for s, k in keys.items() if s == k and _relative_path(s)])
    codes, uniq = pd.factorize(src.map(keys))
    if "face" not in df.columns:  # one row per face of each source, in table order
        df = df.assign(face=pd.Series(codes).groupby(codes).cumcount().to_numpy())
    pairs = pd.DataFrame({"source": codes, "face": df["face"].to_numpy()})
    dup = pairs.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ExprsimError(
            f"the table has {int(dup.sum())} repeated (source, face) rows (first: row {i}, "
            f"{uniq[codes[i]]} face {pairs['face'].iloc[i]}); was a shard loaded twice?"
        )
    return df, codes, [str(u) for u in uniq]


def _landmarks_blob(value: Any) -> bytes | None:
    """Landmarks as a table holds them (nested lists / arrays, or null) -> float32 blob."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    arr = np.stack([np.asarray(p, dtype=np.float32) for p in value])
    return _blob(arr)


def _row_to_record(row: Any) -> FaceRecord:
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
        landmarks=_landmarks_of(lm, path),
        sharpness=float(sh) if sh is not None else float("nan"),
        yaw=float(yaw) if yaw is not None else float("nan"),
        pitch=float(pitch) if pitch is not None else float("nan"),
        roll=float(roll) if roll is not None else float("nan"),
        quality_ok=bool(ok),
        reasons=tuple(r for r in (reasons or "").split(",") if r),
        embedding=_vector(emb),
        model=model,
        label=label,
        tags=tuple(_tags_of(tags, writing=False)),
    )


def _sweep_temporaries(*paths: Path) -> None:
    """Delete the temporary files that killed writers of ``paths`` left beside them
    (``.<name>.<pid>.<thread>.tmp``, :func:`exprsim.io.temp_beside`): those of processes
    that no longer run (an ANN cache's is as large as the cache)."""
    from exprsim.io import sweep_temporaries, temp_pattern

    for path in paths:
        sweep_temporaries(path.parent, temp_pattern(path))


# ----------------------------------------------------------------------------- the index


def check_ann_backend(backend: str | None, location: str | Path | None = None) -> None:
    """Refuse, before any work or write, an ANN backend an index could not use: an unknown
    name, a faiss backend when faiss cannot be imported, or any but ``"auto"`` for a
    PostgreSQL store (``location``: its URI; it searches with pgvector's HNSW index).
    ``None`` and ``"auto"`` always pass. :class:`FaceIndex` and its :meth:`~FaceIndex.rebuild_ann`
    and :meth:`~FaceIndex.refresh_ann` check with it; a command line calls it before it
    loads a model.

    Raises:
        ExprsimError: an unknown name, or a backend other than ``"auto"`` for PostgreSQL.
        BackendUnavailableError: a faiss backend, and faiss is not installed.
    """
    if backend is None or backend == "auto":
        return
    ann_mod.resolve_backend(backend, 0)  # an unknown name: one line
    if location is not None and is_postgres_url(location):
        from exprsim.index.pgvector import redact

        raise ExprsimError(_pg_ann_message(redact(str(location)), backend))
    if backend.startswith("faiss") and not ann_mod.faiss_available():
        raise BackendUnavailableError(
            f"ANN backend {backend} needs faiss, which is not installed: "
            f"{ann_mod.FAISS_INSTALL}; or choose exact (or auto)"
        )


def _pg_ann_message(where: str, backend: str) -> str:
    return (
        f"{where}: a PostgreSQL index searches with pgvector HNSW; the ANN "
        f"backend {backend!r} is for SQLite indexes (use auto)"
    )


_F = TypeVar("_F", bound=Callable[..., Any])


def _ann_locked(method: _F) -> _F:
    """``method`` of a :class:`FaceIndex` run holding its ANN lock (threads share the
    cache in memory)."""

    @functools.wraps(method)
    def run(self: FaceIndex, *args: Any, **kwargs: Any) -> Any:
        with self._ann_lock:
            return method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


def _quality_where(
    quality_ok_only: bool, min_sharpness: float | None, max_abs_yaw: float | None
) -> tuple[str, list[float]]:
    """The SQL condition (``?`` placeholders) and parameters of the quality filters of a
    search (``TRUE`` when none is on); a face with no value for a filtered column fails."""
    terms, params = ["1 = 1"], []
    if quality_ok_only:
        terms.append("quality_ok <> 0")
    for name, value, term in (
        ("min_sharpness", min_sharpness, "sharpness >= ?"),
        ("max_abs_yaw", max_abs_yaw, "ABS(yaw) <= ?"),
    ):
        if value is None:
            continue
        params.append(require_number(value, name, "a finite number or None"))
        terms.append(term)
    return " AND ".join(terms), params


class FaceIndex(HoldsHandle):
    """A persistent, incremental index of faces and their expression embeddings.

    Args:
        db_path: the SQLite file (created when missing; the ANN cache lives at
            ``<db_path>.ann``), or a PostgreSQL URI ``postgresql://...`` (any libpq form,
            e.g. ``postgresql://user:@/db?host=/run/postgresql``; vectors in pgvector with
            an HNSW index, see :mod:`exprsim.index.pgvector`).
        embedder: the :class:`~exprsim.models.embedder.Embedder` used by :meth:`add`
            (default: ``exprsim.load_model()``, loaded on first use).
        ann_backend: ``"auto"``, ``"exact"``, ``"faiss-hnsw"`` or ``"faiss-ivf"``
            (:mod:`exprsim.index.ann`); ``"auto"`` takes the backend last chosen for this
            database with :meth:`rebuild_ann` or :meth:`refresh_ann`, if any (a faiss
            backend chosen where faiss is installed searches exactly where it is not, with
            one warning). A PostgreSQL store searches with pgvector's HNSW index and takes
            ``"auto"`` only.
        store_crops: keep each aligned crop (JPEG, ~4 KB) for reports.
        create: set up the tables of a PostgreSQL database without an index, create a
            missing SQLite file (``False``: refuse both, for read-only uses; a SQLite file
            removed meanwhile is not re-created).

    Opening an existing index writes nothing (see the module docstring).

    Threads: one ``FaceIndex`` may serve several threads (a service opening it once and
    answering from a thread pool); each statement and each transaction holds the
    connection for one thread at a time, and searches share the ANN cache under a lock.
    After :meth:`close`, every call raises :class:`~exprsim.errors.IndexDatabaseError`
    (``closed``).

    Raises:
        BackendUnavailableError: ``ann_backend`` is a faiss backend and faiss is not
            installed (checked, as the name is, before the database is opened or created).
        ExprsimError: an unknown ``ann_backend``; a file that is not an exprsim index, or an
            index of another schema version (left unchanged); a SQLite name that is another
            index's side file (:func:`exprsim.index.backends.check_db_name`).

    Use as a context manager or call :meth:`close`.
    """

    not_pickled = (
        "a FaceIndex does not pickle (it holds a database connection): pass its path "
        "and open FaceIndex(path) where it is used (each worker its own)"
    )
    not_copied = (
        "a FaceIndex is not copied (a copy would share its database connection, and "
        "closing one would close both): open FaceIndex(path) again"
    )

    def __init__(
        self,
        db_path: str | Path,
        embedder: Any = None,
        ann_backend: str = "auto",
        store_crops: bool = True,
        create: bool = True,
    ) -> None:
        check_ann_backend(ann_backend, db_path)  # before anything is created
        self._no_faiss_warned = False  # the warning of :meth:`_wanted_ann`, once
        self._db: StoreBackend = open_backend(db_path, create=create)
        #: the SQLite file, or the PostgreSQL URI without its password
        self.path: Any = self._db.path
        #: (generation, ids, embeddings) of the last read, for filtered searches
        self._emb_cache: tuple[Any, np.ndarray, np.ndarray] | None = None
        self._embedder = embedder
        #: content digests of the models this object was given to write, by name@version
        #: (:meth:`check_model`): its writing transactions record and compare them
        self._digests: dict[str, str] = {}
        self.ann_backend = ann_backend
        #: opened with "auto": the choice recorded for the database is followed as it
        #: changes (another process's ``index rebuild --ann``), never overwritten
        self._follows_record = ann_backend == "auto"
        self.store_crops = store_crops
        try:
            self._check_ann_choice(ann_backend)
            self._init_meta()
            if ann_backend == "auto":  # the backend chosen by an explicit rebuild, if any
                self.ann_backend = self.recorded_ann_backend
        except BaseException:
            self._db.close()
            raise
        self._ann: Any = None
        #: the :attr:`state_key` the ANN index in memory was checked against (``None``: not
        #: checked since it was set): a restored backup written again reaches the same
        #: generation with other faces
        self._ann_seen: tuple[str, int, str] | None = None
        self._ann_stamp: Any = None
        #: whether the last ANN cache built was saved beside the database (``None``: none
        #: built yet, or PostgreSQL, whose index lives in the database)
        self.ann_saved: bool | None = None
        self._ann_lock = threading.RLock()  # the ANN cache in memory, between threads
        from exprsim import forking

        forking.track(self)

    def _after_fork_in_child(self) -> None:
        """A parent thread held the ANN cache when the process forked (building or
        updating it): this child gets a free lock and builds its own cache at its next
        query."""
        from exprsim.forking import held_elsewhere

        if held_elsewhere(self._ann_lock):
            self._ann_lock = threading.RLock()
            self._ann = None
            self._ann_seen = None
            self._ann_stamp = None

    # -- plumbing

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._db.kind

    def close(self) -> None:
        """Close the database connection; later calls raise
        :class:`~exprsim.errors.IndexDatabaseError` (``closed``)."""
        self._db.close()

    def __enter__(self) -> FaceIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> contextlib.AbstractContextManager[StoreBackend]:
        return self._db.transaction()

    def _init_meta(self) -> None:
        """Refuse an index of another schema version, then write the ``meta`` keys a new
        store lacks; an existing index is only read (opening it never waits for a writer)."""
        schema = self._meta("schema")
        if schema is not None:  # before anything is written
            check_schema(self.path, schema)
        else:
            self._refuse_unversioned()
        defaults = {"schema": str(SCHEMA_VERSION), "generation": "0", "created": str(time.time())}
        missing = [key for key in defaults if self._meta(key) is None]
        if missing and not getattr(self._db, "read_only", False):  # read-only: as it is
            with self._transaction() as c:
                for key in missing:
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                        (key, defaults[key]),
                    )
        self._check_schema()

    def _refuse_unversioned(self) -> None:
        """Refuse an index that holds files but no schema version (every exprsim writes it
        before any file: another program's, or damaged), before writing one into it (a
        read-only command wrote ``schema 1`` into it). Read in one statement: a process
        creating the index at the same moment writes its version before its files."""
        schema, files = self._db.execute(
            "SELECT (SELECT value FROM meta WHERE key = 'schema'), (SELECT COUNT(*) FROM files)"
        ).fetchone()
        if schema is None and files:
            raise IndexDatabaseError(
                self.path,
                "holds files but no schema version: damaged, or made by another program; "
                "left unchanged",
            )

    def _check_schema(self) -> None:
        check_schema(self.path, self._meta("schema") or "0")

    def _check_ann_choice(self, backend: str | None) -> None:
        """Refuse what :func:`check_ann_backend` refuses, and any backend but ``"auto"`` for
        a store that searches with its own index (PostgreSQL: pgvector HNSW)."""
        if backend is None or backend == "auto":
            return
        ann_mod.resolve_backend(backend, 0)  # an unknown name: one line
        if self._db.searcher() is not None:
            raise ExprsimError(_pg_ann_message(self.path, backend))
        check_ann_backend(backend)

    @property
    def recorded_ann_backend(self) -> str:
        """The ANN backend chosen for this database (:meth:`rebuild_ann`,
        :meth:`refresh_ann`), ``"auto"`` when none was."""
        return self._meta("ann_backend") or "auto"

    def _wanted_ann(self) -> str:
        """The backend searches use: :attr:`ann_backend`, or exact search when that is a
        faiss backend recorded for this database and faiss is not installed here (an index
        made on another machine), or a backend this exprsim does not know (recorded by a
        newer one: every search and add failed on it): one warning, which says how to
        record another choice. The record is left as it is."""
        wanted = self.ann_backend
        if wanted != "auto" and wanted not in ann_mod.ANN_BACKENDS:
            if not self._no_faiss_warned:
                self._no_faiss_warned = True
                log.warning(
                    "%s: ANN backend %s, recorded for this index (by a newer exprsim?), is "
                    "not one this exprsim knows: searching exactly; or record exact search: "
                    "exprsim index rebuild --db %s --ann exact",
                    self.path, printable(wanted), shlex.quote(str(self.path)),
                )  # fmt: skip
            return "exact"
        if not wanted.startswith("faiss") or ann_mod.faiss_available():
            return wanted
        if not self._no_faiss_warned:
            self._no_faiss_warned = True
            log.warning(
                "%s: ANN backend %s needs faiss, which is not installed: searching exactly; "
                "install faiss: %s; or record exact search: exprsim index rebuild --db %s "
                "--ann exact",
                self.path, wanted, ann_mod.FAISS_INSTALL, shlex.quote(str(self.path)),
            )  # fmt: skip
        return "exact"

    @contextlib.contextmanager
    def _choosing_ann(self, backend: str) -> Iterator[None]:
        """Use ``backend`` for the work inside, and record it for this database only once
        that work succeeded: a failed build leaves the choice as it was."""
        before, follows = self.ann_backend, self._follows_record
        self.ann_backend = backend
        self._follows_record = False  # the choice being made, not the one recorded
        try:
            yield
        except BaseException:
            self.ann_backend = before
            raise
        finally:
            self._follows_record = follows
        self._remember_ann_backend(backend)

    def _remember_ann_backend(self, backend: str) -> None:
        """Use ``backend`` from now on and record it for this database: later opens with
        ``"auto"`` and catch-ups keep it (``"auto"`` gives the choice back)."""
        self.ann_backend = backend
        if self.recorded_ann_backend == backend:
            return  # recorded already: nothing to write
        with self._transaction() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('ann_backend', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (backend,),
            )

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _bump(self, c: StoreBackend) -> None:
        c.execute(
            "UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
            " WHERE key = 'generation'"
        )
        # a token of this write (:attr:`state_key`): a restored backup written again reaches
        # the same generation, face count and ids with other faces
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('written', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (secrets.token_hex(8),),
        )

    @property
    def generation(self) -> int:
        """Counter bumped by every write (the ANN cache records the one it was built from)."""
        return self._generation_of(self._meta("generation"))

    def _generation_of(self, text: str | None) -> int:
        """A stored ``generation`` as a number (none: 0)."""
        try:
            return int(text or 0)
        except ValueError:  # hand-edited ("12.0"): a traceback at every search
            raise IndexDatabaseError(self.path, f"damaged database (generation {text!r})") from None

    @property
    def model(self) -> str | None:
        """``name@version`` of the embeddings stored here (``None`` while empty)."""
        return self._meta("model")

    @property
    def model_digest(self) -> str | None:
        """Content digest of the model of the embeddings stored here
        (:func:`exprsim.models.embedder.content_digest`), or ``None`` where none was
        recorded (an index written before digests were, or by embedders built by hand): it
        then tells models apart by :attr:`model` alone."""
        return _stored_digest(self._meta("model_digest"), self.model)

    @property
    def embedder(self) -> Any:
        """The embedder used by :meth:`add` (loads the default model on first use)."""
        if self._embedder is None:
            from exprsim.models.embedder import load_model

            self._embedder = load_model()
        return self._embedder

    def check_model(self, model: str, digest: str | None = None) -> None:
        """Raise :class:`ModelMismatchError` unless ``model`` may be stored here: the index's
        own model, or any while it holds no embedding (emptied, it takes a new model).

        ``digest``, the model's content digest (``Embedder.digest``), tells apart two models
        that share a ``name@version``; given, it is recorded with this object's writes."""
        check_stored_text(model, "a model name")
        current = self.model
        stored = self.model_digest if current == model else None
        other = current == model and not same_model(model, stored, model, digest)
        if other and self._holds_embeddings(self._db) is not None:
            raise ModelMismatchError(_other_content(self.path, model, stored, digest))
        held = self._holds_embeddings(self._db) if current not in (None, model) else None
        if held == "faces":
            raise ModelMismatchError(
                f"{self.path} holds embeddings of model {current}; refusing to add embeddings of "
                f"{model} ({REEMBED_HINT}; or use another database)"
            )
        if held == "tag_refs":
            raise ModelMismatchError(_refs_of_another_model(self.path, current, model))
        self._note_digest(model, digest)

    def reembed(self, progress: bool = False, force: bool = False) -> Any:
        """Re-embed every stored face and tag reference face from its stored crop with
        :attr:`embedder`, and make its model the index's: the way forward after a model
        upgrade (:func:`exprsim.index.reembed.reembed`; all or nothing).

        Returns:
            A :class:`~exprsim.index.reembed.ReembedReport`.
        """
        from exprsim.index.reembed import reembed

        return reembed(self, progress=progress, force=force)

    def _note_digest(self, model: str, digest: str | None) -> None:
        """Remember ``digest`` as the content of ``model`` for this object's writes; two
        contents under one name are refused (their embeddings would be stored as one
        model's)."""
        if not valid_digest(digest):
            return
        assert digest is not None
        known = self._digests.setdefault(model, digest)
        if known != digest and self.model_digest == digest:  # re-embedded by another process
            self._digests[model] = digest
        elif known != digest:
            raise ModelMismatchError(
                f"{self.path}: two models named {model} with other weights or settings "
                f"(content {known}, then {digest}) were given to one FaceIndex: their "
                "embeddings do not compare; give one of them another name or version"
            )

    def _claim_digest(self, c: StoreBackend, model: str) -> None:
        """Record the content digest of ``model`` given to :meth:`check_model`, inside a
        writing transaction, unless the index holds embeddings of another content under the
        same name (an index written before digests were takes the first writer's)."""
        digest = self._digests.get(model)
        if digest is None:
            return
        row = c.execute("SELECT value FROM meta WHERE key = 'model_digest'").fetchone()
        stored = _stored_digest(None if row is None else row[0], model)
        if stored == digest:
            return
        if stored is not None and self._holds_embeddings(c) is not None:
            raise ModelMismatchError(_other_content(self.path, model, stored, digest))
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('model_digest', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (f"{model} {digest}",),
        )

    def _claim_model(self, c: StoreBackend, model: str) -> None:
        """Make ``model`` the index's, inside a writing transaction, unless it holds
        embeddings of another (:class:`ModelMismatchError`). The generation's row is
        locked first (PostgreSQL; SQLite has one writer at a time): a second writer waits
        for this one to commit, then sees its faces (two emptied-index writers of two
        models both stored theirs, and a new index's two writers both inserted its
        model)."""
        c.execute("UPDATE meta SET value = value WHERE key = 'generation'")
        row = c.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        if row is None:
            c.execute("INSERT INTO meta (key, value) VALUES ('model', ?)", (model,))
        elif row[0] != model:
            held = self._holds_embeddings(c)
            if held == "faces":
                raise ModelMismatchError(
                    f"{self.path} holds embeddings of model {row[0]}; refusing to add {model} "
                    f"({REEMBED_HINT})"
                )
            if held == "tag_refs":
                raise ModelMismatchError(_refs_of_another_model(self.path, row[0], model))
            c.execute("UPDATE meta SET value = ? WHERE key = 'model'", (model,))
        self._claim_digest(c, model)

    @staticmethod
    def _holds_embeddings(c: Any) -> str | None:
        """Which table still holds embeddings of the stored model: ``"faces"``, else
        ``"tag_refs"`` (tag reference faces), else ``None``."""
        for table in ("faces", "tag_refs"):
            if c.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                return table
        return None

    # -- writing

    def add(
        self,
        paths: Iterable[str | Path],
        progress: bool = False,
        detector: Any = None,
        retry_failed: bool = False,
        workers: int | None = None,
        embedder_lock: contextlib.AbstractContextManager[Any] | None = None,
        wait: float | None = None,
    ) -> AddReport:
        """Detect, embed and store every face of every image under ``paths``.

        Incremental and resumable: a file already indexed (same resolved path, size, mtime
        and change time, or the same content hash: after a chmod it is read, not embedded)
        is skipped; a changed file is re-indexed; a copy of an indexed file under another
        path is stored with a copy of the first one's faces (not embedded again, unless
        ``detector`` is given); each file is committed with its faces, so an interrupted
        run loses at most the file in progress.

        Args:
            paths: image files and/or folders (searched recursively); a single path is
                one input.
            progress: show a progress bar.
            detector: detector name or instance passed to ``Embedder.embed_images``.
            retry_failed: try again files that failed to decode last time.
            workers: front-end threads (default: up to 2); files are decoded, detected and
                embedded in batches across files, and each is committed once embedded.
            embedder_lock: held while the model works, taken once this writer has the
                index (a server's searches sharing the model never wait for other writers).
                One writer at a time: a second ``add`` waits, then skips the first's files.
            wait: seconds to wait at most for another writer (``None``: as long as it
                takes); then :class:`~exprsim.errors.IndexBusyError`, nothing changed (a
                server's request should not wait for an hour-long ``exprsim index add``).

        Returns:
            An :class:`AddReport` (unreadable images are reported, not raised).

        Raises:
            ModelMismatchError: the index holds embeddings of another model.
            IndexBusyError: another writer held the index for over ``wait`` seconds.
            AddInterrupted: Ctrl-C or SIGTERM once this writer held the index (a
                ``KeyboardInterrupt``; its ``report`` says what was stored).
        """
        from exprsim.io import iter_image_files, unique_files
        from exprsim.progress import progress_bar

        t0 = time.perf_counter()
        if wait is not None:
            wait = require_number(wait, "wait", "a number of seconds >= 0", 0, error=ArgumentError)
        files = unique_files(iter_image_files(paths))
        model = self.embedder.config.name_version
        self.check_model(model, embedder_digest(self.embedder))
        outcomes: dict[int, FileOutcome] = {}
        queued: collections.deque[tuple[int, _Job]] = collections.deque()
        stamps: list[tuple[int, ...]] = []  # change times to record (see _prepare)
        bar = progress_bar(total=len(files), enabled=progress, desc="index", unit="img")
        feed = self._feed(files, retry_failed, detector, model, (stamps, outcomes, queued, bar))
        with self._writer_lock(wait), embedder_lock or contextlib.nullcontext():
            try:
                for item in self.embedder.embed_stream(feed, detector=detector, workers=workers):
                    i, job = queued.popleft()
                    outcomes[i] = self._finish_job(job, model, item)
                    bar.update(1)
                    bar.set_postfix(faces=sum(o.n_faces for o in outcomes.values()), refresh=False)
                self._stamp_ctimes(stamps)
            except KeyboardInterrupt as exc:
                raise AddInterrupted(_add_report(outcomes, model, t0)) from exc
            finally:
                bar.close()
        report = _add_report(outcomes, model, t0)
        self._check_still_there(report.summary())
        return report

    def _feed(
        self, files: list[Path], retry_failed: bool, detector: Any, model: str, state: tuple
    ) -> Iterator[tuple[str, bytes]]:
        """The files :meth:`add` embeds, as ``(name, bytes)``; skipped and unreadable files
        are settled here, in the calling thread, without decoding. ``state``: ``add``'s
        change times to record, outcomes by file number, queue of jobs sent, progress bar."""
        stamps, outcomes, queued, bar = state
        for i, path in enumerate(files):
            job = self._prepare(path, retry_failed, stamps)
            if isinstance(job, _Job) and detector is None:  # the same bytes indexed
                job = self._copy(job, model) or job
            if isinstance(job, FileOutcome):
                outcomes[i] = job
                bar.update(1)
                continue
            queued.append((i, replace(job, data=b"")))  # the bytes travel once, below
            yield job.key, job.data

    def _check_still_there(self, stored: str) -> None:
        """Raise :class:`~exprsim.errors.IndexDatabaseError` when the database file was
        deleted or replaced while a writer added to it: SQLite wrote on into the file it
        had open, and nothing of what was ``stored`` is at the name. Logs it otherwise."""
        log.debug("%s: %s", self.path, stored)
        gone = self._db.gone()
        if gone:
            raise IndexDatabaseError(
                self.path,
                f"{gone} while files were added, so what was stored went with the old file "
                f"({stored}); run the command again",
            )

    def _writer_lock(self, wait: float | None = None) -> contextlib.AbstractContextManager[None]:
        """One :meth:`add` at a time per store: a second writer waits (at most ``wait``
        seconds, when given), then finds the first one's files done and skips them
        (``flock`` on ``<db>.lock``; an advisory lock in PostgreSQL)."""
        return self._db.writer_lock(wait)

    def _prepare(
        self, path: Path, retry_failed: bool, stamps: list[tuple[int, ...]] | None = None
    ) -> FileOutcome | _Job:
        """Settle a file that needs no work (skipped, or unreadable), else read it. A row
        unchanged but without a change time (stored before ``ctime_ns`` existed) gets its
        change time put in ``stamps``, for :meth:`_stamp_ctimes`."""
        key = _file_key(path)
        if not _utf8(key):  # a name with bytes that are not UTF-8 cannot be stored
            return FileOutcome(printable(key), "failed", error=f"file name {not_utf8(True)}")
        try:
            st = os.stat(key)
        except OSError as exc:  # e.g. a broken link: name it as the user gave it
            from exprsim.io import stat_problem

            return FileOutcome(str(path), "failed", error=stat_problem(exc))
        row = self._db.execute(
            "SELECT id, size, mtime_ns, sha256, status,"
            f" {'ctime_ns' if self._db.file_ctime else 'NULL'} FROM files WHERE path = ?",
            (key,),
        ).fetchone()
        unchanged = row is not None and _same_stat(row[1], row[2], row[5], st)
        if unchanged and row[5] is None and self._db.file_ctime and stamps is not None:
            stamps.append((int(st.st_ctime_ns), row[0], row[1], row[2]))
            if len(stamps) >= STAMP_BATCH:
                self._stamp_ctimes(stamps)
        if unchanged and (row[4] == "done" or not retry_failed):
            before = "" if row[4] == "done" else self._file_error(row[0]) or "failed"
            return FileOutcome(key, "skipped", self._n_faces_of(row[0]), before)
        try:  # refused from its stat first: never a device, never 1 GB of junk
            from exprsim.io import read_whole

            data, st = read_whole(key, st)
        except ImageError as exc:
            return FileOutcome(key, "failed", error=exc.reason)
        sha = _sha256(data)
        if row is not None and row[3] == sha and row[4] == "failed" and not retry_failed:
            # the same bytes failed before (a chmod or a hard link moved the change time):
            # skipped again, as when nothing moved
            self._refresh_stat(row[0], st)
            return FileOutcome(key, "skipped", 0, self._file_error(row[0]) or "failed")
        if row is not None and row[3] == sha and row[4] == "done":
            self._refresh_stat(row[0], st)  # touched but identical
            return FileOutcome(key, "skipped", self._n_faces_of(row[0]))
        status = "updated" if row is not None and row[4] == "done" else "added"
        return _Job(key, st, sha, status, data)

    def _stamp_ctimes(self, stamps: list[tuple[int, ...]]) -> None:
        """Record the change time of rows stored before ``ctime_ns`` existed, found
        unchanged by size and modification time (``(ctime_ns, id, size, mtime_ns)``;
        emptied): from then on a ``cp -p`` rewrite of those files is noticed too. One
        transaction; a row changed meanwhile is left alone."""
        if not stamps:
            return
        with self._transaction() as c:
            c.executemany(
                "UPDATE files SET ctime_ns = ? WHERE id = ? AND ctime_ns IS NULL"
                " AND size = ? AND mtime_ns = ?",
                stamps,
            )
        stamps.clear()

    def _refresh_stat(self, file_id: int, st: os.stat_result) -> None:
        """Record the file's stat again (its bytes are those indexed)."""
        stat = _stat_columns(st, self._db)
        with self._transaction() as c:
            c.execute(
                f"UPDATE files SET {', '.join(f'{k} = ?' for k in stat)} WHERE id = ?",
                (*stat.values(), file_id),
            )

    def _add_one(
        self, path: Path, embedder: Any, model: str, detector: Any, retry_failed: bool
    ) -> FileOutcome:
        """Index one file in the calling thread (see :meth:`add`)."""
        job = self._prepare(path, retry_failed)
        if isinstance(job, _Job) and detector is None:
            job = self._copy(job, model) or job
        if isinstance(job, FileOutcome):
            return job
        (item,) = embedder.embed_stream([(job.key, job.data)], detector=detector, workers=1)
        return self._finish_job(job, model, item)

    def _finish_job(self, job: _Job, model: str, item: Any) -> FileOutcome:
        """Store one embedded file (or its failure) in its own transaction."""
        if item.error is not None:
            if job.status == "updated":  # a good version is indexed: keep it, say so
                kept = f"{item.error.reason}; its faces indexed before are kept"
                return FileOutcome(job.key, "failed", error=kept)
            self._store_file(job.key, job.st, job.sha, model, [], error=item.error.reason)
            return FileOutcome(job.key, "failed", error=item.error.reason)
        self._store_file(job.key, job.st, job.sha, model, list(item.faces))
        return FileOutcome(job.key, job.status, len(item.faces))

    def _file_error(self, file_id: int) -> str:
        row = self._db.execute("SELECT error FROM files WHERE id = ?", (file_id,)).fetchone()
        return str(row[0]) if row is not None and row[0] else ""

    def _n_faces_of(self, file_id: int) -> int:
        return int(
            self._db.execute("SELECT n_faces FROM files WHERE id = ?", (file_id,)).fetchone()[0]
        )

    def _store_file(
        self,
        key: str,
        st: os.stat_result | None,
        sha: str | None,
        model: str,
        faces: Sequence[Any],
        error: str | None = None,
        copy_of: int | None = None,
    ) -> int | None:
        """One transaction: replace the file's row and all its faces. The labels and tags of
        the faces it replaces go to the new faces in the same places (box IoU > 0.5).
        ``copy_of``: the file id of an indexed file with the same bytes (``sha``), whose
        faces are copied instead of ``faces``.

        Returns:
            The number of faces stored, or ``None`` (nothing written) when the file of
            ``copy_of`` is gone or changed (another process removed or re-indexed it
            meanwhile): the caller embeds the file instead.
        """
        try:
            with self._transaction() as c:
                return self._write_file(c, key, st, sha, model, faces, error, copy_of)
        except _CopySourceGone:
            log.info("%s: the indexed file with the same bytes went away; embedding it", key)
            return None

    def _write_file(
        self,
        c: StoreBackend,
        key: str,
        st: os.stat_result | None,
        sha: str | None,
        model: str,
        faces: Sequence[Any],
        error: str | None,
        copy_of: int | None,
    ) -> int:
        """The body of :meth:`_store_file`, inside its transaction."""
        # the tags' lock, then the generation, as every writer takes them: in PostgreSQL
        # the generation's row lock orders the writers (a file's delete and insert take the
        # twins' lock, which a remove takes after the generation: taken the other way round,
        # the two deadlocked); the tags' lock keeps a tag set while the file's faces are
        # read for their labels and tags from being lost when they are replaced
        # (add_tag_reference takes the same two in this order)
        c.lock_tags()
        self._bump(c)
        stat = _stat_columns(st, self._db)
        n_faces = len(faces)
        if copy_of is not None:  # checked in this transaction: not removed since the lookup
            row = c.execute(
                "SELECT n_faces FROM files WHERE id = ? AND sha256 = ? AND status = 'done'",
                (copy_of, sha),
            ).fetchone()
            if row is None:
                raise _CopySourceGone
            n_faces = int(row[0])
        if faces:
            self._claim_model(c, model)
        kept = c.execute(
            f"SELECT {_KEPT_COLUMNS} FROM faces fa"
            " JOIN files f ON fa.file_id = f.id WHERE f.path = ?"
            " AND (fa.label IS NOT NULL OR fa.tags IS NOT NULL)",
            (key,),
        ).fetchall()
        c.execute("DELETE FROM files WHERE path = ?", (key,))  # cascades to its faces
        cur = c.execute(
            f"INSERT INTO files (path, {', '.join(stat)}, sha256, status, error, n_faces,"
            f" added_at) VALUES (?, {'?, ' * len(stat)}?, ?, ?, ?, ?) RETURNING id",
            (
                key,
                *stat.values(),
                sha,
                "failed" if error else "done",
                error,
                n_faces,
                time.time(),
            ),
        )
        file_id = int(cur.fetchone()[0])
        if copy_of is not None:
            # labels and tags too: the same photo under another name (a rename, then
            # `--prune`, lost them with the old name's row)
            copied = c.execute(
                f"INSERT INTO faces (file_id, {_STORED_COLUMNS}, label, tags)"
                f" SELECT ?, {_STORED_COLUMNS}, label, tags"
                " FROM faces WHERE file_id = ? ORDER BY face_index",
                (file_id, copy_of),
            ).rowcount
            if copied != n_faces:  # removed by a writer that did not wait for this one
                raise _CopySourceGone
        c.executemany(
            f"INSERT INTO faces (file_id, {_STORED_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [self._face_row(file_id, fe, model) for fe in faces],
        )
        if kept and n_faces:
            _carry_labels(c, file_id, kept)
        return n_faces

    def _copy(self, job: _Job, model: str) -> FileOutcome | None:
        """Index ``job`` by copying the faces of an indexed file with the same bytes (a copy
        of a photo under another path: same pixels, same faces), or ``None`` when there is
        none (or it went away before the copy was made). Only faces the default detector
        found are copied (this runs for an ``add`` without ``detector``): a copy of a photo
        indexed with ``--detector haar`` gets its own faces."""
        from exprsim.faces.detect import DEFAULT_DETECTOR

        row = self._db.execute(
            "SELECT id FROM files WHERE sha256 = ? AND status = 'done' AND path <> ?"
            " AND NOT EXISTS (SELECT 1 FROM faces WHERE faces.file_id = files.id"
            " AND faces.detector <> ?) ORDER BY id LIMIT 1",
            (job.sha, job.key, DEFAULT_DETECTOR),
        ).fetchone()
        if row is None:
            return None
        n_faces = self._store_file(job.key, job.st, job.sha, model, [], copy_of=int(row[0]))
        return None if n_faces is None else FileOutcome(job.key, job.status, n_faces)

    def _face_row(self, file_id: int | None, fe: Any, model: str) -> tuple[Any, ...]:
        af = fe.aligned
        face, q = af.face, af.quality
        what = f"{fe.source} face {fe.face_index}"
        emb = _embedding(fe.embedding, what)
        emb = unit_rows(emb[None], what, warn=False)[0]  # add_faces said so, for them all
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
            self._db.vector_param(emb),
            model,
            crop,
        )

    def add_faces(self, faces: Iterable[Any], model: str, model_digest: str | None = None) -> int:
        """Store already-embedded faces (``FaceEmbedding``-like objects), grouped by source.

        Sources are written :data:`ADD_FACES_BATCH` at a time, each batch in one
        transaction (a source's previous faces replaced). Use it to index embeddings
        computed elsewhere (:meth:`add_table` loads a table of them faster); :meth:`add` is
        the usual entry point.

        ``model_digest``, the content digest of ``model`` (``Embedder.digest``), when known,
        tells it from another model of that name.

        Returns:
            Number of faces stored.

        Raises:
            ModelMismatchError: the index holds embeddings of another model.
            ExprsimError: a face's source is a placeholder such as ``"<array>"`` (an image
                given as pixels: two of them would overwrite each other); nothing is stored.
        """
        self.check_model(model, model_digest)
        groups: dict[str, list[Any]] = {}
        embs = []
        for fe in faces:  # all checked before anything is stored
            embs.append(_embedding(fe.embedding, f"{fe.source} face {fe.face_index}"))
            source = check_stored_text(str(fe.source), "a face's source", path=True)
            face = getattr(getattr(fe, "aligned", None), "face", None)
            check_stored_text(getattr(face, "detector", "") or "", f"the detector of {source}")
            if source.startswith("<") and source.endswith(">"):
                raise ExprsimError(
                    f"a face of an in-memory image (source {source}) names no file to store it "
                    "under: embed files or (name, bytes) pairs, or give each face a source"
                )
            groups.setdefault(source, []).append(fe)
        if embs:  # all zeros refused, other lengths normalised (again in _face_row)
            unit_rows(np.stack(embs), "add_faces")
        items = list(groups.items())
        # sources in batches, each batch one transaction (one commit a source, each synced
        # to disk, took 127 s for 50,000 faces); a batch is whole or absent
        for start in range(0, len(items), ADD_FACES_BATCH):
            with self._transaction() as c:
                for source, group in items[start : start + ADD_FACES_BATCH]:
                    key = _table_key(source)
                    try:  # a source too long for the file system (or gone) has no stat
                        st: os.stat_result | None = os.stat(key)
                    except (OSError, ValueError):
                        st = None
                    self._write_file(c, key, st, None, model, group, None, None)
        n = sum(len(g) for g in groups.values())
        self._check_still_there(f"{count(n, 'face')} of {count(len(items), 'file')}")
        return n

    def add_table(
        self,
        table: Any,
        model: str | None = None,
        replace: bool = False,
        chunk: int = 5000,
        name: str | None = None,
        model_digest: str | None = None,
    ) -> LoadReport:
        """Bulk-load faces embedded elsewhere, e.g. the Parquet of ``exprsim embed``.

        Args:
            table: a ``pandas.DataFrame`` (or anything with ``to_pandas()``, such as a
                ``pyarrow.Table``) with columns ``source``, ``e0`` ... ``e15`` and optionally
                ``face``, ``x1, y1, x2, y2``, ``score``, ``detector``, landmarks (a
                ``landmarks`` column, or ``left_eye_x`` ... ``mouth_right_y``),
                ``sharpness, yaw, pitch, roll``, ``quality_ok``, ``reasons``, ``model``, and
                the file's identity ``sha256``, ``size``, ``mtime_ns``.
            model: ``name@version`` of the embeddings (default: the ``model`` column).
            model_digest: the content digest of that model (``Embedder.digest``), when
                known: a model of that name with other weights is then refused.
            replace: without a ``sha256`` column, replace sources already stored (default:
                skip them, so reloading a shard is a no-op).
            chunk: sources looked up per statement.
            name: what a refusal of the table's values calls it (e.g. its shard file).

        Upserts are keyed by file: a source already stored is skipped when its ``sha256``
        matches (without ``sha256``: when it is stored at all, unless ``replace``) and
        replaced otherwise. The whole table is one transaction (``COPY`` in PostgreSQL), so
        an interrupted load leaves nothing half-written and a rerun completes it.

        Returns:
            A :class:`LoadReport`.

        Raises:
            ExprsimError: required columns are missing, the model is not given, or a value
                cannot be stored (NaN embeddings, a NUL in a source, control characters in
                a detector name...: the first bad row and column named, nothing loaded).
            ModelMismatchError: the index holds embeddings of another model.
        """
        import pandas as pd

        t0 = time.perf_counter()
        model_digest = _table_digest(table, model_digest)
        df = _checked_frame(table, name)
        model = _table_model(df, model)
        self.check_model(model, model_digest)
        if not len(df):
            return LoadReport(0, 0, 0, 0, model, time.perf_counter() - t0)
        df, codes, uniq = _prepared_table(df)
        first = np.unique(codes, return_index=True)[1]  # first row of each source
        sha = None
        if "sha256" in df.columns:  # a null hash is no hash (NaN never equals itself)
            sha = np.array(
                [None if pd.isna(v) else str(v) for v in df["sha256"].to_numpy()[first]], object
            )
        with self._writer_lock():
            n_existing = len(self)
            with self._db.bulk_load(len(df), n_existing), self._transaction() as c:
                c.lock_tags()  # first, then the generation, as every writer (_write_file)
                self._bump(c)
                kept: dict[str, list[Any]] = {}
                keep, n_replaced = self._upsert_plan(c, uniq, sha, replace, chunk, kept)
                if keep.any():  # before the copy: an emptied index takes the new model
                    self._claim_model(c, model)
                n_faces = self._copy_table(c, df, codes, uniq, first, keep, sha, model)
                _carry_all(c, kept)
        n_new = int(keep.sum())
        self._check_still_there(f"{count(n_faces, 'face')} of {count(n_new, 'file')}")
        return LoadReport(
            n_new - n_replaced,
            n_replaced,
            len(uniq) - n_new,
            n_faces,
            model,
            time.perf_counter() - t0,
        )

    def _upsert_plan(
        self,
        c: StoreBackend,
        uniq: list[str],
        sha: np.ndarray | None,
        replace: bool,
        chunk: int,
        kept: dict[str, list[Any]],
    ) -> tuple[np.ndarray, int]:
        """Which sources of a bulk load to write (``keep``); deletes the stored files they
        replace and returns how many. The labelled or tagged faces of those files go into
        ``kept`` by path (:data:`_KEPT_COLUMNS`), for :func:`_carry_all` (a reload dropped
        every label and tag of the photos it replaced)."""
        keep = np.ones(len(uniq), bool)
        if not c.execute("SELECT COUNT(*) FROM files").fetchone()[0]:
            return keep, 0
        where = {u: i for i, u in enumerate(uniq)}
        drop: list[int] = []
        for start in range(0, len(uniq), chunk):
            part = uniq[start : start + chunk]
            marks = ", ".join("?" * len(part))
            for fid, path, old_sha, status in c.execute(
                f"SELECT id, path, sha256, status FROM files WHERE path IN ({marks})", part
            ).fetchall():
                i = where[path]
                same = sha[i] == old_sha if sha is not None else not replace
                if same and status == "done":
                    keep[i] = False
                else:
                    drop.append(int(fid))
        for start in range(0, len(drop), chunk):
            gone = drop[start : start + chunk]
            marks = ", ".join("?" * len(gone))
            for row in c.execute(
                f"SELECT f.path, {_KEPT_COLUMNS} FROM faces fa JOIN files f ON fa.file_id = f.id"
                f" WHERE f.id IN ({marks}) AND (fa.label IS NOT NULL OR fa.tags IS NOT NULL)",
                gone,
            ).fetchall():
                kept.setdefault(str(row[0]), []).append(tuple(row[1:]))
            c.execute(f"DELETE FROM files WHERE id IN ({marks})", gone)
        return keep, len(drop)

    def _copy_table(
        self,
        c: StoreBackend,
        df: Any,
        codes: np.ndarray,
        uniq: list[str],
        first: np.ndarray,
        keep: np.ndarray,
        sha: np.ndarray | None,
        model: str,
    ) -> int:
        """Append the kept sources of ``df`` (files, then faces) with explicit file ids."""
        base = int(c.execute("SELECT COALESCE(MAX(id), 0) FROM files").fetchone()[0]) + 1
        file_id = np.full(len(uniq), -1, np.int64)
        file_id[keep] = base + np.arange(int(keep.sum()))
        counts = np.bincount(codes, minlength=len(uniq))
        size, mtime = _column(df, "size", None), _column(df, "mtime_ns", None)
        now = time.time()
        c.copy_rows(
            "files",
            ("id", "path", "size", "mtime_ns", "sha256", "status", "n_faces", "added_at"),
            (
                (
                    int(file_id[i]),
                    uniq[i],
                    size[first[i]],
                    mtime[first[i]],
                    None if sha is None else sha[i],
                    "done",
                    int(counts[i]),
                    now,
                )
                for i in np.flatnonzero(keep).tolist()
            ),
        )
        c.after_explicit_ids("files")
        return self._copy_faces(c, df, np.flatnonzero(keep[codes]), file_id[codes], model)

    def _copy_faces(
        self, c: StoreBackend, df: Any, rows: np.ndarray, file_id: np.ndarray, model: str
    ) -> int:
        """Append the faces of the given rows of ``df`` (``file_id``: per row)."""
        col = functools.partial(_column, df)
        emb = df[[f"e{i}" for i in range(16)]].to_numpy(np.float32)
        face = col("face", 0)
        box = [col(k, None) for k in ("x1", "y1", "x2", "y2")]
        score, det, lm = col("score", None), col("detector", ""), _landmarks_column(df)
        qual = [col(k, None) for k in ("sharpness", "yaw", "pitch", "roll")]
        ok, reasons = col("quality_ok", True), col("reasons", "")
        vec = self._db.vector_param
        return c.copy_rows(
            "faces",
            _BULK_FACE_COLUMNS,
            (
                (
                    int(file_id[r]),
                    int(face[r] or 0),
                    box[0][r],
                    box[1][r],
                    box[2][r],
                    box[3][r],
                    score[r],
                    det[r] or "",
                    _landmarks_blob(lm[r]),
                    qual[0][r],
                    qual[1][r],
                    qual[2][r],
                    qual[3][r],
                    int(bool(ok[r])),
                    reasons[r] or "",
                    vec(emb[r]),
                    model,
                )
                for r in rows.tolist()
            ),
        )

    def remove(
        self,
        paths: Iterable[str | Path] | str | Path,
        missed: list[Any] | None = None,
        stored: bool = False,
    ) -> int:
        """Forget files (a folder: every file under it). Returns the number of files removed.

        ``paths``: files and/or folders; a single path is one (not its characters).
        ``missed``: if given, the paths that removed nothing are appended to it (not
        indexed, or only files an earlier path of the same call removed).
        ``stored``: ``paths`` are stored paths (as :meth:`missing_under` gives them), each
        forgetting that one file only: never resolved (a stored path that is a link now
        would name its target's row) nor read as a folder.

        Raises:
            ExprsimError: an empty path, or the file system's root (which would name every
                file); nothing is removed then.
        """
        from exprsim.io import as_inputs

        inputs = as_inputs(paths)
        for p in inputs:  # all checked before anything is deleted
            _check_removable(p)
        # a stored path: its own text, and a folder prefix no path starts with (no NUL)
        keys = [[(str(p), "\0")] if stored else _removal_keys(p) for p in inputs]
        with self._transaction() as c:
            # one read of the stored paths, matched here (a query per path scanned the
            # whole table each time: 29 ms a path at 200,000 files, minutes for --prune)
            chosen = _files_named(c.execute("SELECT id, path FROM files").fetchall(), keys)
            if missed is not None:
                missed.extend(p for p, ids in zip(inputs, chosen, strict=True) if not ids)
            gone = [i for ids in chosen for i in ids]
            if not gone:
                return 0
            # the generation first, as reembed takes it: a remove that held the faces' rows
            # while it waited for the generation could deadlock with a reembed (PostgreSQL)
            self._bump(c)
            for start in range(0, len(gone), _ID_BATCH):
                part = gone[start : start + _ID_BATCH]
                marks = ", ".join("?" * len(part))
                c.execute(f"DELETE FROM files WHERE id IN ({marks})", part)
        return len(gone)

    def set_label(self, face_ids: Iterable[int] | int, label: str | None) -> None:
        """Set (or clear, with ``None``) the label of faces.

        Raises:
            ExprsimError: a label that is not a string, or holds control characters (a
                NUL: no engine stores it as given), or a face id the index does not hold
                (:func:`_require_faces`); nothing is changed.
        """
        if label is not None:
            check_stored_text(label, "a label")
        ids = _face_ids(face_ids)
        with self._transaction() as c:
            c.lock_tags()  # labels are carried with tags when a file is indexed again
            _require_faces(c, ids)
            c.executemany("UPDATE faces SET label = ? WHERE id = ?", [(label, i) for i in ids])

    def remove_tags(
        self, tags: Iterable[str] | str, face_ids: Iterable[int] | int | None = None
    ) -> int:
        """Take tags off faces (``face_ids``, or every face when ``None``); one string is
        one tag. Returns the number of faces changed."""
        drop = {tags} if isinstance(tags, str) else set(tags)
        with self._transaction() as c:
            c.lock_tags()
            return _untag(c, drop, None if face_ids is None else _face_ids(face_ids))

    def retag(
        self,
        tags_by_face: Mapping[int, Iterable[str]],
        managed: Iterable[str],
        references: str | None = None,
    ) -> int:
        """In one transaction, give each face of ``tags_by_face`` its new tags among the
        ``managed`` names (the others it carries stay). Returns the faces changed.

        ``references``: the :func:`tag_refs_digest` of the reference faces the tags were
        matched against; when given, the transaction first checks they are still exactly
        the stored ones (ids alone repeat: SQLite gives a removed reference's id to the next).

        Raises:
            TagReferencesChanged: another process added or removed a reference face since
                (nothing is changed: match again).
        """
        if not isinstance(tags_by_face, Mapping):
            raise ExprsimError(
                f"retag needs a mapping of face ids to tags, got {type(tags_by_face).__name__}"
            )
        managed = _tag_set(managed, check_tag_name)
        wanted = {fid: _tag_set(new, check_tag_name) for fid, new in tags_by_face.items()}
        changed = 0
        with self._transaction() as c:
            c.lock_tags()
            if references is not None:
                now = c.execute("SELECT id, name, embedding FROM tag_refs").fetchall()
                if tag_refs_digest(now) != references:
                    raise TagReferencesChanged(self.path)
            for fid, new in wanted.items():
                if not _face_ids([fid]):
                    continue  # outside the id range: no such face
                row = c.execute("SELECT tags FROM faces WHERE id = ?", (int(fid),)).fetchone()
                if row is None:
                    continue
                cur = set(_tags_of(row[0]))
                after = (cur - managed) | set(new)
                if after != cur:
                    c.execute(
                        "UPDATE faces SET tags = ? WHERE id = ?",
                        (json.dumps(sorted(after)), int(fid)),
                    )
                    changed += 1
        return changed

    def add_tags(self, face_ids: Iterable[int] | int, tags: Iterable[str] | str) -> None:
        """Add tags to faces (kept sorted, without duplicates); one string is one tag.

        Raises:
            ExprsimError: a tag that is not a non-empty UTF-8 string (:func:`check_tag_name`),
                a face id that is not an integer or that the index does not hold
                (:func:`_require_faces`), or a tag that reference faces define (managed by
                `tag --index`: :func:`_refuse_reference_names`); nothing is changed.
        """
        new = _tag_set(tags)
        ids = _face_ids(face_ids)
        with self._transaction() as c:
            c.lock_tags()
            _refuse_reference_names(c, self.path, new)
            _require_faces(c, ids)
            for fid in ids:
                row = c.execute("SELECT tags FROM faces WHERE id = ?", (fid,)).fetchone()
                if row is None:
                    continue
                cur = set(_tags_of(row[0]))
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
        model_digest: str | None = None,
    ) -> int:
        """Store one reference face for the expression ``name``; returns its id.

        The same embedding stored twice under one name is kept once (the first id is
        returned). Tags are matched by the distance between unit vectors, so a reference
        is stored L2-normalised (with a warning when its length was not 1).

        Raises:
            ExprsimError: an empty name, or an embedding that is not 16 finite numbers or
                is all zeros (it has no direction), or faces carry ``name`` as a tag set
                by hand and no reference defines it yet (take it off first:
                :meth:`remove_tags`, or `exprsim tag remove NAME --db DB`).
            ModelMismatchError: ``model`` (or ``model_digest``) is not the index's model.
        """
        check_new_tag_name(name)
        source = source or ""  # None stored NULL: `tag list` and /api/tags failed on it
        check_stored_text(source, "a reference's source", path=True)
        self.check_model(model, model_digest)
        blob = _blob(_unit(_embedding(embedding, f"tag {name!r}"), f"tag {name!r}"))
        with self._transaction() as c:
            c.lock_tags()
            self._claim_model(c, model)
            _refuse_hand_tag(c, self.path, name)
            dup = c.execute(
                "SELECT id FROM tag_refs WHERE name = ? AND embedding = ?", (name, blob)
            ).fetchone()
            if dup is not None:
                return int(dup[0])
            cur = c.execute(
                "INSERT INTO tag_refs (name, source, face_index, embedding, model, crop, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
            return int(cur.fetchone()[0])

    def tag_references(self) -> list[dict[str, Any]]:
        """Every reference face: ``id, name, source, face_index, embedding, model, crop``."""
        rows = self._db.execute(
            "SELECT id, name, source, face_index, embedding, model, crop FROM tag_refs ORDER BY id"
        ).fetchall()
        return [
            {
                "id": r[0],
                "name": r[1],
                "source": r[2] if r[2] is not None else "",  # another program's NULL
                "face_index": r[3],
                "embedding": np.frombuffer(r[4], dtype=np.float32).copy(),
                "model": r[5],
                "crop": decode_crop(r[6]),
            }
            for r in rows
        ]

    def remove_tag(self, name: str) -> int:
        """Delete every reference face of ``name``; returns how many. Faces keep the tag
        (see :meth:`remove_tags`, and :meth:`delete_tag` for both at once), as a tag of
        their own: no reference manages it any more, so a later reference face of that name
        is refused while faces carry it (it would take the tag off the faces it does not
        match; :meth:`add_tag_reference`)."""
        check_tag_name(name)
        with self._transaction() as c:
            c.lock_tags()
            return int(c.execute("DELETE FROM tag_refs WHERE name = ?", (name,)).rowcount)

    def delete_tag(self, name: str) -> tuple[int, int]:
        """Delete the tag ``name`` in one transaction: its reference faces, and the name
        from every face's tags (a crash, or another command, between the two steps left
        faces tagged with a name no reference defines: a user tag for ever). Returns
        ``(references deleted, faces untagged)``."""
        check_tag_name(name)
        with self._transaction() as c:
            c.lock_tags()
            n = int(c.execute("DELETE FROM tag_refs WHERE name = ?", (name,)).rowcount)
            return n, _untag(c, {name}, None)

    # -- identity descriptors cache (used by exprsim.apps.search)

    def identity_descriptors(self, face_ids: Sequence[int]) -> dict[int, np.ndarray | None]:
        """Cached identity descriptors of faces (missing ids are absent from the dict;
        ``None``: dlib found no face there). A row without a descriptor at all (``NULL``)
        is absent too: exprsim before round 13 wrote it for an image it could not read,
        which may be back; "no face" is an empty descriptor since."""
        out: dict[int, np.ndarray | None] = {}
        for fid in face_ids:
            row = self._db.execute(
                "SELECT descriptor FROM identity WHERE face_id = ?", (int(fid),)
            ).fetchone()
            if row is not None and row[0] is not None:
                blob = bytes(row[0])
                out[int(fid)] = np.frombuffer(blob, dtype=np.float32).copy() if blob else None
        return out

    def store_identity_descriptors(self, descriptors: dict[int, np.ndarray | None]) -> None:
        """Cache identity descriptors (``None``: no descriptor could be computed); skipped
        while another process writes (SQLite), or for faces no longer in the index."""
        if not isinstance(descriptors, Mapping):
            raise TypeError(
                "identity descriptors must be a mapping of face id to descriptor, "
                f"got {type(descriptors).__name__}"
            )
        # a cache: never waits for another writer, and skips faces removed meanwhile (a
        # search must not fail on it)
        self._db.try_write(
            "INSERT INTO identity (face_id, descriptor) SELECT ?, ?"
            " WHERE EXISTS (SELECT 1 FROM faces WHERE id = ?)"
            " ON CONFLICT (face_id) DO UPDATE SET descriptor = excluded.descriptor",
            # "no face" is an empty descriptor (NULL: unknown, asked again)
            [(int(k), _blob(v) or b"", int(k)) for k, v in descriptors.items()],
            many=True,
        )

    # -- reading

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    def info(self) -> IndexInfo:
        """Counts, model and ANN state."""
        c = self._db
        n_files = c.execute("SELECT COUNT(*) FROM files WHERE status = 'done'").fetchone()[0]
        n_failed = c.execute("SELECT COUNT(*) FROM files WHERE status = 'failed'").fetchone()[0]
        n_faces, n_ok, n_lab = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(quality_ok), 0), COUNT(label) FROM faces"
        ).fetchone()
        names = tuple(r[0] for r in c.execute("SELECT DISTINCT name FROM tag_refs ORDER BY name"))
        n_refs = c.execute("SELECT COUNT(*) FROM tag_refs").fetchone()[0]
        backend, fresh = self._ann_state()
        return IndexInfo(
            path=str(self.path),
            model=self.model,
            model_digest=self.model_digest,
            n_files=int(n_files),
            n_failed_files=int(n_failed),
            n_faces=int(n_faces),
            n_quality_ok=int(n_ok),
            n_labelled=int(n_lab),
            tag_names=names,
            n_tag_refs=int(n_refs),
            ann_backend=backend,
            ann_fresh=bool(fresh),
            db_bytes=int(self._db.db_bytes()),
            schema=SCHEMA_VERSION,
            ann_choice=self.recorded_ann_backend,
        )

    def files(self) -> Any:
        """Every file row as a DataFrame (``path, size, mtime_ns, sha256, status, error,
        n_faces``)."""
        return self._db.frame(
            "SELECT path, size, mtime_ns, sha256, status, error, n_faces FROM files ORDER BY path"
        )

    def missing_under(self, folders: Iterable[str | Path]) -> list[str]:
        """The indexed files under ``folders`` (existing folders of this machine; others
        are skipped, so a share that is offline names nothing) that are no longer there:
        deleted or renamed since they were added (:func:`_gone`: a file in a folder that
        cannot be read just now, or on a failing disk, is not named). Nothing is changed
        (:meth:`remove` forgets them; leave out :meth:`vanished_under`'s folders first, as
        `index add --prune` does, or an unmounted drive's labels and tags go with them)."""
        from exprsim.io import as_inputs

        out: dict[str, None] = {}
        for folder in as_inputs(folders):  # one folder is one, not its characters
            if not isinstance(folder, str | Path) or not os.path.isdir(folder):
                continue
            key = _file_key(folder)
            prefix = key.rstrip(os.sep) + os.sep
            rows = self._db.execute(
                "SELECT path FROM files WHERE substr(path, 1, ?) = ? ORDER BY path",
                (len(prefix), prefix),
            ).fetchall()
            out.update((r[0], None) for r in rows if _gone(r[0]))
        return list(out)

    def vanished_under(self, gone: Iterable[str]) -> list[tuple[str, int, int]]:
        """Of the indexed files ``gone`` (:meth:`missing_under`), the folders that look like
        a drive or share that is not there: the nearest existing folder of a gone file is
        empty, the index holds no file under it that is there, and some faces of its files
        carry labels or tags (a mount point stays as an empty folder when its drive is
        unmounted: forgetting its files would lose what adding the photos again cannot
        bring back); or, when that folder is not empty, the gone folder under it that held
        the file (automounters and desktops remove a drive's mount point on unmounting:
        ``/media/user/DRIVE``). Faces indexed elsewhere, in a file that is there, with
        their label and tags (a folder renamed, its photos indexed again) do not count.
        ``(folder, indexed files, faces with labels or tags found nowhere else)`` each."""
        candidates: dict[str, None] = {}
        for path in gone:
            folder, top = os.path.dirname(path), None
            while folder and not os.path.isdir(folder) and os.path.dirname(folder) != folder:
                folder, top = os.path.dirname(folder), folder
            candidates.setdefault(folder if top is None or _empty_dir(folder) else top, None)
        out: list[tuple[str, int, int]] = []
        for folder in candidates:
            if os.path.isdir(folder) and not _empty_dir(folder):
                continue  # not empty: its own files say what is gone
            prefix = folder.rstrip(os.sep) + os.sep
            under = "substr(f.path, 1, ?) = ?"
            rows = self._db.execute(
                f"SELECT path FROM files f WHERE {under}", (len(prefix), prefix)
            ).fetchall()
            if not rows or not all(_gone(r[0]) for r in rows):
                continue
            marked = self._db.execute(
                f"SELECT f.sha256, fa.face_index, fa.label, fa.tags FROM faces fa JOIN files f"
                f" ON fa.file_id = f.id WHERE {under} AND (fa.label IS NOT NULL OR (fa.tags "
                "IS NOT NULL AND fa.tags <> '[]'))",
                (len(prefix), prefix),
            ).fetchall()
            # a folder renamed or moved: its photos are indexed where they are now, with
            # their labels and tags (carried by content), and nothing is lost; a copy of a
            # photo elsewhere without them (a backup) does not count
            kept = sum(not self._carried_elsewhere(row, prefix) for row in marked)
            if kept:
                out.append((folder, len(rows), kept))
        return out

    def _carried_elsewhere(self, face: Sequence[Any], prefix: str) -> bool:
        """Whether the face ``(sha256, face_index, label, tags)`` of a file under ``prefix``
        is indexed outside it, in a file that is there, with its label and tags."""
        sha, face_index, label, tags = face
        try:
            mine = set(_tags_of(tags, writing=False))
        except ExprsimError:
            return False
        if not sha:
            return False
        rows = self._db.execute(
            "SELECT f.path, fa.label, fa.tags FROM faces fa JOIN files f ON fa.file_id = f.id"
            " WHERE f.sha256 = ? AND fa.face_index = ? AND substr(f.path, 1, ?) <> ?",
            (sha, face_index, len(prefix), prefix),
        ).fetchall()
        try:
            return any(
                lab == label and mine <= set(_tags_of(t, writing=False)) and not _gone(path)
                for path, lab, t in rows
            )
        except ExprsimError:  # damaged tags: not known to be carried, so kept
            return False

    def get(self, face_ids: Iterable[int] | int, chunk: int = 500) -> list[FaceRecord]:
        """Records of the given face ids, in the order asked (unknown ids are skipped, an
        id asked twice is given twice). One query per ``chunk`` distinct ids (was one per
        id: a round trip each on PostgreSQL)."""
        ids = _face_ids(face_ids)
        wanted = list(dict.fromkeys(ids))
        found: dict[int, FaceRecord] = {}
        chunk = require_positive_int(chunk, "chunk")
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            marks = ", ".join("?" * len(part))
            for row in self._db.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces JOIN files ON files.id = faces.file_id "
                f"WHERE faces.id IN ({marks})",
                part,
            ).fetchall():
                rec = _row_to_record(row)
                found[rec.id] = rec
        return [found[i] for i in ids if i in found]

    def faces_of_file(self, path: str | None = None, sha256: str | None = None) -> list[FaceRecord]:
        """Records of the faces of the indexed file stored as ``path`` and of every indexed
        file whose content is ``sha256`` (a copy), ordered by id; none when both are None."""
        terms = [t for t, v in (("files.path = ?", path), ("files.sha256 = ?", sha256)) if v]
        if not terms:
            return []
        rows = self._db.execute(
            f"SELECT {_FACE_COLUMNS} FROM faces JOIN files ON files.id = faces.file_id "
            f"WHERE {' OR '.join(terms)} ORDER BY faces.id",
            [v for v in (path, sha256) if v],
        ).fetchall()
        return [_row_to_record(r) for r in rows]

    def records(self) -> list[FaceRecord]:
        """Every stored face, ordered by id."""
        rows = self._db.execute(
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
        ids = _face_ids([face_id])
        if not ids:
            return None
        row = self._db.execute("SELECT crop FROM faces WHERE id = ?", (ids[0],)).fetchone()
        return None if row is None else decode_crop(row[0])

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """All face ids ``(N,)`` int64 and embeddings ``(N, 16)`` float32, ordered by id."""
        return self._db.all_embeddings()

    def nearest_passing(
        self,
        query: np.ndarray,
        k: int,
        quality_ok_only: bool = False,
        min_sharpness: float | None = None,
        max_abs_yaw: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` faces nearest ``query`` (``(16,)``) among those passing the quality
        filters, exactly whatever the ANN backend: ids ``(n,)`` int64 and distances
        ``(n,)`` float64, nearest first (ties: lower id); ``n < k`` when fewer pass. SQLite
        reads the passing faces' embeddings; PostgreSQL scans them in the server."""
        k = require_positive_int(k, "k")
        queries = ann_mod.as_queries(query, EMBEDDING_SIZE)
        if len(queries) != 1:
            raise ExprsimError(f"nearest_passing takes one (16,) query, got {np.shape(query)}")
        where, params = _quality_where(quality_ok_only, min_sharpness, max_abs_yaw)
        q = queries[0]
        if self._db.searcher() is not None:  # PostgreSQL: a scan in the server
            return self._db.nearest_where(q, int(k), where, params)
        # SQLite: the passing ids from the database, their embeddings from a copy of all of
        # them kept while no write happens (reading 80,000 embeddings per search: 0.15 s)
        ids, emb = self._embeddings_now()
        rows = self._db.execute(f"SELECT id FROM faces WHERE {where}", params).fetchall()
        passing = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        pos = np.searchsorted(ids, passing)  # ids are sorted (ORDER BY id)
        pos = pos[(pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == passing)]
        if not len(pos):
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        dist = ann_mod.exact_distances(q, emb[pos])
        order = np.lexsort((ids[pos], dist))[: int(k)]
        return ids[pos][order], dist[order]

    def _embeddings_now(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`embeddings`, read again only after a write (by :attr:`state_key`: the
        generation counter, which every writer bumps, this process or another, and the
        last write's token: a restored backup written again reaches the same generation)."""
        gen = self.state_key
        cached = self._emb_cache
        if cached is None or cached[0] != gen:
            ids, emb = self._db.all_embeddings()
            cached = self._emb_cache = (gen, ids, emb)
        return cached[1], cached[2]

    @property
    def searches_exactly(self) -> bool:
        """Whether :meth:`query` is exact (the ``exact`` ANN backend of the embedded
        store; PostgreSQL's HNSW and faiss are approximate)."""
        if self._db.searcher() is not None:
            return False
        with self._ann_lock:
            return getattr(self._ann_index(), "name", None) == "exact"

    def count_passing(
        self,
        quality_ok_only: bool = False,
        min_sharpness: float | None = None,
        max_abs_yaw: float | None = None,
    ) -> int:
        """How many faces pass the quality filters (see :meth:`nearest_passing`)."""
        where, params = _quality_where(quality_ok_only, min_sharpness, max_abs_yaw)
        row = self._db.execute(f"SELECT COUNT(*) FROM faces WHERE {where}", params).fetchone()
        return int(row[0])

    # -- nearest neighbours

    @property
    def ann_path(self) -> Path:
        return Path(f"{self.path}.ann")

    @property
    def ann_stamp_path(self) -> Path:
        return Path(f"{self.path}.ann.json")

    def _ann_state(self) -> tuple[str | None, bool]:
        """ANN backend name and whether it matches the stored faces and can serve the next
        search (by the stamp saved inside the cache file: the JSON beside it is only a
        copy)."""
        searcher = self._db.searcher()
        if searcher is not None:  # the database's own vector index: fresh while it exists
            return searcher.name, bool(searcher.fresh())
        try:
            stamp = ann_mod.read_cache_stamp(self.ann_path)
        except Exception:  # missing or damaged: rebuilt by the next query
            return None, False
        if stamp is None:
            return None, False
        fresh = stamp.generation == self.generation and self._serves(stamp)
        return stamp.backend, fresh and self._ids_hold(stamp)

    def _id_count_and_sum(self) -> tuple[int, int]:
        """How many faces the database holds, and the sum of their ids."""
        n, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(id), 0) FROM faces").fetchone()
        return int(n), int(total)

    def _ids_hold(self, stamp: ann_mod.AnnStamp) -> bool:
        """Whether the cache of ``stamp`` holds as many faces as the database, with the same
        sum of ids (a restored backup written again can reach the cache's generation and
        keep its highest ids, :meth:`_probe_holds`, with other faces below them)."""
        if stamp.id_sum is None:  # saved by an earlier version: cannot tell, rebuilt
            return False
        if (stamp.count, stamp.id_sum) == self._id_count_and_sum():
            return True
        log.info("ANN cache: holds other faces than the database, rebuilding")
        return False

    @property
    def state_key(self) -> tuple[str, int, str]:
        """The index's state, for answers kept while it holds: ``(store_id, generation,
        token of the last write)``. The token tells apart the states of a restored backup
        written again, which reach the same generation (and face count and ids). One query
        (a quality-filtered search reads it each time)."""
        rows = dict(
            self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('created', 'generation', 'written')"
            ).fetchall()
        )
        generation = self._generation_of(rows.get("generation"))
        return str(rows.get("created") or ""), generation, str(rows.get("written") or "")

    @property
    def store_id(self) -> str:
        """This database's identity: its ``created`` stamp (a database deleted and built
        again, or another database's file copied over this one, has another). With
        :attr:`generation` it names the index's state: answers computed from the index can
        be kept under both (the ANN cache's stamp, the web app's album summary)."""
        return self._meta("created") or ""

    def _log_seq(self) -> int | None:
        """The last ``face_log`` entry; ``None`` when there is no log (an index of an
        exprsim before it, opened read-only, so not given one: caches are rebuilt, never
        caught up)."""
        tables = self._db.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('face_log', 'sqlite_sequence')"
        ).fetchall()
        if len(tables) < 2:
            return None
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'face_log'").fetchone()
        return int(row[0]) if row else 0

    @_ann_locked
    def rebuild_ann(self, backend: str | None = None) -> ann_mod.AnnStamp:
        """Rebuild the nearest-neighbour index from scratch: the ANN cache beside a SQLite
        file (saved there), or the HNSW index of a PostgreSQL store.

        ``backend``: a name chosen explicitly is recorded for this database once the index
        is built (later catch-ups, rebuilds and ``"auto"`` opens keep it); ``"auto"`` gives
        the choice back.

        Raises:
            ExprsimError: an unknown backend, or one other than ``"auto"`` for PostgreSQL.
            BackendUnavailableError: a faiss backend, and faiss is not installed (checked
                before any work; the choice recorded before stays).
        """
        self._check_ann_choice(backend)
        searcher = self._db.searcher()
        if searcher is not None:
            searcher.rebuild()
            return ann_mod.AnnStamp(self.generation, self.model or "", searcher.name, len(self))
        if backend is None:
            self._follow_record()
            return self._build_ann()
        with self._choosing_ann(backend):
            return self._build_ann()

    def _follow_record(self) -> None:
        """Opened with ``"auto"``: use the backend now recorded for the database (another
        process may have chosen one since), before a cache is looked at or built. Read
        when the database changed, not at every query."""
        if self._follows_record:
            self.ann_backend = self.recorded_ann_backend

    def _build_ann(self) -> ann_mod.AnnStamp:
        """Build the ANN cache of the backend wanted (:meth:`_wanted_ann`) and save it."""
        with self._db.snapshot():  # one consistent state, read without waiting for a writer
            gen, seq = self.generation, self._log_seq()
            ids, emb = self.embeddings()
        name = ann_mod.resolve_backend(self._wanted_ann(), len(ids))
        t0 = time.perf_counter()
        index = ann_mod.build_index(emb, ids, backend=name)
        log.info("built %s index over %d faces in %.2f s", name, len(ids), time.perf_counter() - t0)
        imbalance = index.imbalance() if hasattr(index, "imbalance") else 0.0
        stamp = ann_mod.AnnStamp(
            gen,
            self.model or "",
            name,
            len(ids),
            seq,
            len(ids),
            imbalance,
            self.store_id,
            ann_mod.probe_of(ids, emb),
            int(np.asarray(ids, dtype=np.int64).sum()),
        )
        if self._save_ann(index, stamp) and seq is not None:
            self._trim_log(seq)
        return stamp

    def _trim_log(self, seq: int) -> None:
        """Delete the ``face_log`` entries up to ``seq``, which the saved cache holds (skipped
        while another process writes: it is housekeeping)."""
        self._db.try_write("DELETE FROM face_log WHERE seq <= ?", (seq,))

    def _save_ann(self, index: Any, stamp: ann_mod.AnnStamp) -> bool:
        """Keep ``index`` in memory and save it with ``stamp`` inside, as one atomic file (a
        JSON copy of the stamp goes beside it for people to read). Returns whether it was
        saved (not: a read-only store, or the file system refused)."""
        self._ann, self._ann_seen, self._ann_stamp = index, None, stamp
        self.ann_saved = False
        if getattr(self._db, "read_only", False):  # kept in memory only
            return False
        _sweep_temporaries(self.ann_path, self.ann_stamp_path)
        try:
            ann_mod.save_cache(index, stamp, self.ann_path)
        except OSError as exc:
            log.warning("could not save the ANN cache %s: %s", self.ann_path, exc)
            return False
        self.ann_saved = True
        try:
            stamp.save(self.ann_stamp_path)
        except OSError as exc:
            log.debug("could not save %s: %s", self.ann_stamp_path, exc)
        return True

    @_ann_locked
    def refresh_ann(self, backend: str | None = None) -> ann_mod.AnnStamp:
        """Bring the nearest-neighbour index up to date with the stored faces, cheaply.

        The ANN cache of a SQLite store takes the faces added and removed since it was
        saved (from the ``face_log`` table) without being rebuilt, unless the drift rule
        (:func:`exprsim.index.ann.needs_retrain`) says its training is out of date, the
        backend asked for differs, or the cache is missing, unreadable or of another
        database: then it is rebuilt. A PostgreSQL store's HNSW index is always current
        (nothing to do).

        ``backend``: ``"auto"`` or ``None`` keeps the backend chosen before for this
        database, if any; another name is used and recorded once the index is up to date,
        as :meth:`rebuild_ann` does.

        Raises:
            ExprsimError: an unknown backend, or one other than ``"auto"`` for PostgreSQL.
            BackendUnavailableError: a faiss backend, and faiss is not installed (checked
                before any work; the choice recorded before stays).
        """
        self._check_ann_choice(backend)
        if backend == "auto":  # as when the store was opened: an explicit choice stays
            self.ann_backend = self.recorded_ann_backend
        if backend is None or backend == "auto":
            self._ann_index()
        else:
            with self._choosing_ann(backend):
                self._ann_index()
        searcher = self._db.searcher()
        if searcher is not None:
            return ann_mod.AnnStamp(self.generation, self.model or "", searcher.name, len(self))
        return self._ann_stamp

    def _ann_index(self) -> Any:
        searcher = self._db.searcher()
        if searcher is not None:
            return searcher
        state = self.state_key
        if self._ann is not None and self._ann_seen == state:
            wanted = self._wanted_ann()  # refresh_ann may have chosen another backend
            if wanted in ("auto", self._ann_stamp.backend):
                return self._ann
        index = self._current_ann(state[1])
        self._ann_seen = state  # the state seen before: a write meanwhile is seen next time
        return index

    def _current_ann(self, gen: int) -> Any:
        """The ANN index of generation ``gen``: the cache file's when it serves it, caught
        up with the log when it can be, else built again."""
        self._follow_record()
        cached = self._cached_ann()
        if cached is not None:
            index, stamp = cached
            if stamp.generation == gen and self._probe_holds(stamp) and self._ids_hold(stamp):
                self._ann, self._ann_stamp = index, stamp
                return index
            if stamp.generation < gen and self._caught_up(index, stamp):
                return self._ann
        self.rebuild_ann()
        return self._ann

    def _serves(self, stamp: ann_mod.AnnStamp) -> bool:
        """Whether a cache with ``stamp`` can serve this database (:meth:`_why_not_served`)."""
        return not self._why_not_served(stamp)

    def _why_not_served(self, stamp: ann_mod.AnnStamp) -> str:
        """Why a cache with ``stamp`` cannot serve this database ("" when it can): it must
        be built from this database (not one deleted and made again, nor another index's
        file copied here), of its model, with the backend wanted, and readable here."""
        if stamp.store != self.store_id:
            return "not built from this database"
        if stamp.model != (self.model or ""):
            return f"built with model {stamp.model}, not {self.model}"
        wanted = self._wanted_ann()
        if wanted != "auto" and wanted != stamp.backend:
            return f"built as {stamp.backend}, not {wanted}"
        if stamp.backend.startswith("faiss") and not ann_mod.faiss_available():
            return f"built as {stamp.backend}, and faiss is not installed"
        return ""

    def _cached_ann(self) -> tuple[Any, ann_mod.AnnStamp] | None:
        """The ANN cache file and the stamp saved inside it, when it can serve this database
        (:meth:`_serves`) and holds what its stamp says; else ``None`` (rebuild it)."""
        if not self.ann_path.exists():
            return None
        try:
            stamp = ann_mod.read_cache_stamp(self.ann_path)  # reads the stamp only
            why = "no stamp inside" if stamp is None else self._why_not_served(stamp)
            if why:
                log.info("ANN cache %s: %s; rebuilding", self.ann_path, why)
                return None
            if self._ann is not None and self._ann_stamp == stamp:
                index = self._ann  # what this process saved: not read again
            else:
                index, stamp = ann_mod.load_cache(self.ann_path)  # one open: a matching pair
        except Exception as exc:  # a corrupt cache is rebuilt, never fatal
            log.warning("ANN cache %s unreadable (%s): rebuilding", self.ann_path, exc)
            return None
        if stamp is None or not self._serves(stamp):
            return None
        dim = int(getattr(index, "dim", EMBEDDING_SIZE))
        if len(index) != stamp.count or dim != EMBEDDING_SIZE:
            log.warning(
                "ANN cache %s holds %d vectors of %d values, its stamp %d of %d: rebuilding",
                self.ann_path, len(index), dim, stamp.count, EMBEDDING_SIZE,
            )  # fmt: skip
            return None
        return index, stamp

    def _probe_holds(self, stamp: ann_mod.AnnStamp, gone: set[int] | None = None) -> bool:
        """Whether the faces ``stamp`` probes still hold the embeddings the cache was built
        with (a restored backup written again reuses generations and face ids for other
        faces). ``gone``: faces the log says changed since (a catch-up replays them)."""
        for fid, digest in stamp.probe:
            if gone and fid in gone:
                continue
            row = self._db.execute("SELECT embedding FROM faces WHERE id = ?", (fid,)).fetchone()
            if row is None or ann_mod.embedding_digest(_vector(row[0])) != digest:
                log.info("ANN cache: built from another history of the database, rebuilding")
                return False
        return True

    def _caught_up(self, index: Any, stamp: ann_mod.AnnStamp) -> bool:
        """:meth:`_catch_up`; a catch-up stopped part-way (a Ctrl-C) forgets the index it
        was changing, which is read from its file again at the next query (the log then
        blamed the file, "holds 6 vectors, its stamp 4")."""
        try:
            return self._catch_up(index, stamp)
        except BaseException:
            if index is self._ann:
                self._ann = self._ann_stamp = None
            raise

    def _catch_up(self, index: Any, stamp: ann_mod.AnnStamp) -> bool:
        """Apply the faces added/removed since ``stamp`` to ``index`` and save it; ``False``
        when it cannot (log incomplete, backend cannot remove) or should not (drift)."""
        if stamp.log_seq is None or not hasattr(index, "add"):
            return False
        if not getattr(index, "trained", True):  # e.g. IVF built while the index was empty
            return False
        t0 = time.perf_counter()
        with self._db.snapshot():  # log, faces and generation of one moment, without waiting
            gen, last = self.generation, self._log_seq()
            if last is None:  # no log to replay
                return False
            rows = self._db.execute(
                "SELECT face_id, op FROM face_log WHERE seq > ? ORDER BY seq", (stamp.log_seq,)
            ).fetchall()
            if len(rows) != last - stamp.log_seq:  # entries missing: cannot replay
                return False
            final: dict[int, int] = {}
            removed: set[int] = set()
            for fid, op in rows:
                final[int(fid)] = int(op)
                if op < 0:
                    removed.add(int(fid))
            added = sorted(f for f, op in final.items() if op > 0)
            vectors = self._vectors_of(added)
            n_now, id_sum = self._id_count_and_sum()
            if not self._probe_holds(stamp, gone=set(final)):
                return False
        if removed and not getattr(index, "can_remove", True):
            return False
        if removed:
            index.remove(np.fromiter(removed, dtype=np.int64))
        if added:
            index.add(vectors, np.asarray(added, dtype=np.int64))
        why = ann_mod.needs_retrain(stamp, index, self._wanted_ann(), n_now)
        if why or len(index) != n_now:
            log.info("ANN cache: retraining (%s)", why or "count mismatch")
            return False
        new = ann_mod.AnnStamp(
            gen,
            stamp.model,
            stamp.backend,
            n_now,
            last,
            stamp.trained_count,
            stamp.imbalance,
            stamp.store,
            ann_mod.probe_of(
                np.asarray(added, np.int64),
                vectors,
                tuple(p for p in stamp.probe if p[0] not in removed),
            ),
            id_sum,
        )
        if self._save_ann(index, new):
            self._trim_log(last)  # the log would grow by every face ever added or removed
        log.info(
            "ANN cache caught up: +%d -%d faces in %.2f s",
            len(added),
            len(removed),
            time.perf_counter() - t0,
        )
        return True

    def _vectors_of(self, face_ids: Sequence[int], chunk: int = 500) -> np.ndarray:
        """Embeddings ``(len(face_ids), 16)`` float32 in the order of ``face_ids``."""
        got: dict[int, np.ndarray] = {}
        for start in range(0, len(face_ids), chunk):
            part = face_ids[start : start + chunk]
            marks = ", ".join("?" * len(part))
            for fid, emb in self._db.execute(
                f"SELECT id, embedding FROM faces WHERE id IN ({marks})", part
            ).fetchall():
                got[int(fid)] = _vector(emb)
        if not face_ids:
            return np.zeros((0, 16), EMBEDDING_DTYPE)
        return np.stack([got[int(f)] for f in face_ids])

    def query(self, embeddings: ArrayLike, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Nearest stored faces of each query embedding.

        Args:
            embeddings: ``(16,)`` or ``(Q, 16)`` float32 query embeddings.
            k: neighbours per query.

        Returns:
            ``(Q, k)`` float32 Euclidean distances (ascending) and ``(Q, k)`` int64 face ids
            (``inf`` / ``-1`` padding when the index holds fewer than ``k`` faces).

        Raises:
            ExprsimError: ``k`` is not an integer >= 1 (a NumPy integer is one), or the
                queries are not ``(Q, 16)`` finite numbers, or one is all zeros.

        Queries not of length 1 are normalised first, with a warning (stored faces are: a
        query of length 5 was 4 away from every face).
        """
        k = require_positive_int(k, "k")
        queries = unit_rows(ann_mod.as_queries(embeddings, EMBEDDING_SIZE, k), "query embeddings")
        with self._ann_lock:  # a catch-up of another thread changes the index searched
            index = self._ann_index()
            rows = queries.shape[0]
            if k > len(index) and rows * k > _MAX_PADDED:
                raise ExprsimError(
                    f"k = {k} neighbours per query, but the index holds {len(index)} faces: "
                    f"ask for at most {len(index)} (the padding of {rows} x {k} results would "
                    "not fit in memory)"
                )
            return index.search(queries, k)
