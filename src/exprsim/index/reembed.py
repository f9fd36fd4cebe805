"""Re-embed an index with another model: the way forward after a model upgrade.

Embeddings of two models never mix in one index (:class:`~exprsim.index.store.FaceIndex`
refuses to add a second model's, and searches refuse a query of another model). An index
built before an upgrade would otherwise be usable only with the old weights. Every face
keeps its aligned crop (JPEG, :func:`~exprsim.index.store.encode_crop`), and the model
embeds exactly that crop, so :func:`reembed` re-embeds each stored face, and each tag
reference face, from its crop with the new model, without the photos.

All or nothing: the new embeddings are computed first (``16`` floats a face in memory),
then written in one transaction together with the index's model, so an interrupted run
leaves the index as it was, never half of each model. Labels, tags, quality fields and
files are kept as they are (tags given by reference faces were decided by the old model:
``Tagger.tag_index`` / ``exprsim tag --index`` recomputes them). The ANN cache is of the old model, so it is rebuilt by the
next search (PostgreSQL's HNSW index follows the rows).

The difference from indexing the photos again is the JPEG round trip of the stored crops
(quality 90): docs/robustness.md gives the measured distances.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from exprsim.errors import ExprsimError, printable

log = logging.getLogger(__name__)

#: faces read, decoded and embedded at a time
CHUNK = 1024

#: the tables re-embedded, and what their rows are called in messages
_TABLES = {"faces": "faces", "tag_refs": "tag reference faces"}


class ReembedError(ExprsimError):
    """The index cannot be re-embedded (a face without a stored crop, one that does not
    decode, or the index changed meanwhile); nothing was written."""


@dataclass(frozen=True)
class ReembedReport:
    """What :func:`reembed` did.

    Attributes:
        old_model: ``name@version`` the index held before (``None``: it was empty).
        model: ``name@version`` it holds now.
        n_faces: faces re-embedded.
        n_tag_refs: tag reference faces re-embedded.
        seconds: wall time.
    """

    old_model: str | None
    model: str
    n_faces: int
    n_tag_refs: int
    seconds: float

    def summary(self) -> str:
        if not (self.n_faces or self.n_tag_refs):
            return (
                f"nothing to re-embed: the index holds no face of another model than {self.model}"
            )
        refs = f" and {self.n_tag_refs:,} tag reference faces" if self.n_tag_refs else ""
        return (
            f"re-embedded {self.n_faces:,} faces{refs} with {self.model} "
            f"(was {self.old_model}) in {self.seconds:.1f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_model": self.old_model,
            "model": self.model,
            "n_faces": self.n_faces,
            "n_tag_refs": self.n_tag_refs,
            "seconds": round(self.seconds, 3),
        }


def reembed(index: Any, progress: bool = False, force: bool = False) -> ReembedReport:
    """Re-embed every face and tag reference face of ``index`` from its stored crop with
    ``index.embedder``, and record that model as the index's.

    Holds the index's writer lock (``index add`` waits), and checks in the final
    transaction that no face was added or removed meanwhile.

    Args:
        index: an open :class:`~exprsim.index.store.FaceIndex` (SQLite or PostgreSQL).
        progress: show a progress bar.
        force: re-embed even when the index is already of the embedder's model (after
            changing the weights of a model without changing its version, say).

    Raises:
        ReembedError: a face or reference without a stored crop (``store_crops=False``, a
            bulk load from a table, ``Tagger.add_embedding``), a crop that does not
            decode, or faces added or removed during the run. Nothing is written then.
    """
    from exprsim.index.store import EMBEDDING_SIZE, check_stored_text
    from exprsim.progress import progress_bar

    embedder = index.embedder
    model = check_stored_text(embedder.config.name_version, "a model name")
    if embedder.embedding_dim != EMBEDDING_SIZE:
        raise ReembedError(
            f"model {model} gives {embedder.embedding_dim} values a face; an index stores "
            f"{EMBEDDING_SIZE}"
        )
    t0 = time.perf_counter()
    with index._writer_lock():
        old = index.model
        if old == model and not force:
            return ReembedReport(old, model, 0, 0, 0.0)
        _refuse_cropless(index)
        ids = {t: _ids(index, t) for t in _TABLES}
        total = sum(len(v) for v in ids.values())
        if not total:  # empty: it takes any model as it is
            return ReembedReport(old, model, 0, 0, 0.0)
        bar = progress_bar(total=total, enabled=progress, desc="re-embed", unit="face")
        with bar:
            new = {t: _embed_table(index, t, ids[t], embedder, bar) for t in _TABLES}
        _write(index, ids, new, model)
        if index._db.searcher() is None:  # PostgreSQL's HNSW index follows its rows
            _drop_ann_cache(index)
    report = ReembedReport(
        old, model, len(ids["faces"]), len(ids["tag_refs"]), time.perf_counter() - t0
    )
    log.info("%s: %s", printable(str(index.path)), report.summary())
    return report


def _refuse_cropless(index: Any) -> None:
    """Refuse, before any work, an index with a face or reference that keeps no crop."""
    db = index._db
    n_faces = int(db.execute("SELECT COUNT(*) FROM faces WHERE crop IS NULL").fetchone()[0])
    if n_faces:
        total = len(index)
        raise ReembedError(
            f"{printable(str(index.path))}: {n_faces:,} of {total:,} faces keep no crop "
            "(indexed with store_crops=False, or bulk-loaded from a table), so they cannot "
            "be re-embedded; index their photos again into a new database instead"
        )
    rows = db.execute("SELECT DISTINCT name FROM tag_refs WHERE crop IS NULL ORDER BY name")
    names = [str(r[0]) for r in rows]
    if names:
        raise ReembedError(
            f"{printable(str(index.path))}: tag {', '.join(printable(n) for n in names)} has "
            "reference faces without a crop (added as embeddings), so they cannot be "
            "re-embedded; remove the tag (exprsim tag remove NAME) and add its reference "
            "faces again from their photos"
        )


def _ids(index: Any, table: str) -> np.ndarray:
    rows = index._db.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()
    return np.array([int(r[0]) for r in rows], dtype=np.int64)


def _crops(index: Any, table: str, ids: np.ndarray) -> Iterator[tuple[np.ndarray, list[Any]]]:
    """``(ids, crops)`` of ``table``, :data:`CHUNK` rows at a time, in ``ids`` order."""
    from exprsim.index.store import decode_crop
    from exprsim.io import ImageError

    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = index._db.execute(
            f"SELECT id, crop FROM {table} WHERE id >= ? AND id <= ?", (int(part[0]), int(part[-1]))
        ).fetchall()
        blobs = {int(r[0]): r[1] for r in rows}
        crops = []
        for fid in part:
            try:
                crop = decode_crop(blobs.get(int(fid)))
            except ImageError as exc:
                raise ReembedError(
                    f"{printable(str(index.path))}: the stored crop of {_TABLES[table]} "
                    f"id {fid} does not decode ({exc.reason}); nothing was written"
                ) from exc
            if crop is None:  # removed, or its crop cleared, since the ids were read
                raise _changed(index)
            crops.append(crop)
        yield part, crops


def _embed_table(index: Any, table: str, ids: np.ndarray, embedder: Any, bar: Any) -> np.ndarray:
    """``(len(ids), D)`` float32: the embeddings of ``table``'s stored crops, in ``ids`` order
    (crops of one size are embedded together)."""
    out = np.zeros((len(ids), embedder.embedding_dim), dtype=np.float32)
    done = 0
    for part, crops in _crops(index, table, ids):
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i, crop in enumerate(crops):
            shapes.setdefault(crop.shape, []).append(i)
        for rows in shapes.values():
            out[done + np.asarray(rows)] = embedder.embed_crops(np.stack([crops[i] for i in rows]))
        done += len(part)
        bar.update(len(part))
    return out


def _changed(index: Any) -> ReembedError:
    return ReembedError(
        f"{printable(str(index.path))}: faces were added or removed while re-embedding "
        "(not through exprsim index add, which waits); nothing was written: run it again"
    )


def _drop_ann_cache(index: Any) -> None:
    """Delete the ANN cache beside a SQLite index: it holds the old vectors (a re-embedding
    with the same model's name would otherwise look fresh); the next search builds it."""
    for path in (index.ann_path, index.ann_stamp_path):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the old search cache %s (%s)", path, exc)


def _write(index: Any, ids: dict[str, np.ndarray], new: dict[str, np.ndarray], model: str) -> None:
    """Write every new embedding and the model in one transaction, after checking that the
    tables hold the rows that were embedded."""
    from exprsim.index.store import _blob

    # faces hold the engine's vector type (pgvector's in PostgreSQL), references bytes
    encode = {"faces": index._db.vector_param, "tag_refs": _blob}
    with index._transaction() as c:
        index._bump(c)  # first: in PostgreSQL, its row lock holds other writers' bumps
        for table, have in ids.items():
            n, total = c.execute(f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM {table}").fetchone()
            if (int(n), int(total)) != (len(have), int(have.sum())):
                raise _changed(index)
        for table, put in encode.items():
            c.executemany(
                f"UPDATE {table} SET embedding = ?, model = ? WHERE id = ?",
                [(put(e), model, int(i)) for i, e in zip(ids[table], new[table], strict=True)],
            )
        c.execute("UPDATE meta SET value = ? WHERE key = 'model'", (model,))
        if c.execute("SELECT 1 FROM meta WHERE key = 'model'").fetchone() is None:
            c.execute("INSERT INTO meta VALUES ('model', ?)", (model,))
