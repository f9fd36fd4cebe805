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

import hashlib
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
        from exprsim.wording import count

        if self.old_model in (None, self.model) and not (self.n_faces or self.n_tag_refs):
            return (
                f"nothing to re-embed: the index holds no face of another model than {self.model}"
            )
        if not (self.n_faces or self.n_tag_refs):
            return f"no face to re-embed: the index now takes model {self.model} (was {self.old_model})"
        refs = f" and {count(self.n_tag_refs, 'tag reference face')}" if self.n_tag_refs else ""
        return (
            f"re-embedded {count(self.n_faces, 'face')}{refs} with {self.model} "
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
    transaction that nothing was written to the faces or references meanwhile. Copies of a
    photo (equal crops) get one embedding. An emptied index of another model takes this one.

    Args:
        index: an open :class:`~exprsim.index.store.FaceIndex` (SQLite or PostgreSQL).
        progress: show a progress bar.
        force: re-embed even when the index is already of the embedder's model (after
            changing the weights of a model without changing its version, say).

    Raises:
        ReembedError: a face or reference without a stored crop (``store_crops=False``, a
            bulk load from a table, ``Tagger.add_embedding``), a crop that does not
            decode, or faces or references written during the run. Nothing is written then.
    """
    from exprsim.index.store import EMBEDDING_SIZE, check_stored_text
    from exprsim.models.identity import embedder_digest, same_model
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
        digest = embedder_digest(embedder)
        same = same_model(old, getattr(index, "model_digest", None), model, digest)
        if same and not force and not _of_other_models(index, model):
            return ReembedReport(old, model, 0, 0, 0.0)
        _refuse_cropless(index)
        generation = index.generation  # every write of faces bumps it: checked when writing
        ids = {t: _ids(index, t) for t in _TABLES}
        total = sum(len(v) for v in ids.values())
        if not total and (old is None or same):  # else an emptied index takes the model
            return ReembedReport(old, model, 0, 0, 0.0)
        seen: dict[bytes, np.ndarray] = {}  # a crop's digest -> its embedding (copies: one)
        digests: dict[str, dict[int, bytes]] = {}
        new: dict[str, np.ndarray] = {}
        with progress_bar(total=total, enabled=progress, desc="re-embed", unit="face") as bar:
            for t in _TABLES:
                new[t], digests[t] = _embed_table(index, t, ids[t], embedder, bar, seen)
        _write(index, _Snapshot(generation, ids, digests["tag_refs"]), new, model, digest)
        index._digests.pop(model, None)  # this object's later writes: the new content's
        if digest is not None:
            index._digests[model] = digest
        if total and index._db.searcher() is None:  # PostgreSQL's HNSW index follows rows
            _drop_ann_cache(index)
    report = ReembedReport(
        old, model, len(ids["faces"]), len(ids["tag_refs"]), time.perf_counter() - t0
    )
    log.debug("%s: %s", printable(str(index.path)), report.summary())
    return report


@dataclass(frozen=True)
class _Snapshot:
    """What was embedded: the index's generation then, the ids of each table, and the
    digest of each tag reference's crop (references are written without the writer lock,
    and SQLite gives a new one the id of one just removed)."""

    generation: int
    ids: dict[str, np.ndarray]
    ref_digests: dict[int, bytes]


def _refuse_cropless(index: Any) -> None:
    """Refuse, before any work, an index with a face or reference that keeps no crop."""
    db = index._db
    n_faces = int(db.execute("SELECT COUNT(*) FROM faces WHERE crop IS NULL").fetchone()[0])
    if n_faces:
        total = len(index)
        raise ReembedError(
            f"{printable(str(index.path))}: {n_faces:,} of {total:,} faces keep no crop "
            "(indexed with store_crops=False, or loaded with `index add --from-parquet`), "
            "so they cannot be re-embedded; index their photos again into a new database "
            "instead (`exprsim index add PHOTOS --db NEW --model M`; labels and tags do not "
            "come along)"
        )
    rows = db.execute("SELECT DISTINCT name FROM tag_refs WHERE crop IS NULL ORDER BY name")
    names = [str(r[0]) for r in rows]
    if names:
        raise ReembedError(
            f"{printable(str(index.path))}: tag {', '.join(printable(n) for n in names)} has "
            "reference faces without a crop (added as embeddings), so they cannot be "
            "re-embedded; remove the tag (exprsim tag remove NAME --db DB) and add its reference "
            "faces again from their photos"
        )


def _of_other_models(index: Any, model: str) -> int:
    """How many faces and reference faces were stored with another model than ``model``
    (another program's edit, or a newer exprsim's rows: "nothing to re-embed" while they
    were ranked with the rest)."""
    return sum(
        int(index._db.execute(f"SELECT COUNT(*) FROM {t} WHERE model <> ?", (model,)).fetchone()[0])
        for t in _TABLES
    )


def _ids(index: Any, table: str) -> np.ndarray:
    rows = index._db.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()
    return np.array([int(r[0]) for r in rows], dtype=np.int64)


def _blobs(index: Any, table: str, ids: np.ndarray) -> Iterator[tuple[np.ndarray, list[bytes]]]:
    """``(ids, crop bytes)`` of ``table``, :data:`CHUNK` rows at a time, in ``ids`` order."""
    for start in range(0, len(ids), CHUNK):
        part = ids[start : start + CHUNK]
        rows = index._db.execute(
            f"SELECT id, crop FROM {table} WHERE id >= ? AND id <= ?", (int(part[0]), int(part[-1]))
        ).fetchall()
        blobs = {int(r[0]): r[1] for r in rows}
        found = [blobs.get(int(i)) for i in part]
        if any(b is None for b in found):  # removed, or its crop cleared, since then
            raise _changed(index)
        yield part, [bytes(b) for b in found if b is not None]


def _decoded(index: Any, table: str, fid: int, blob: bytes) -> np.ndarray:
    from exprsim.index.store import decode_crop
    from exprsim.io import ImageError

    try:
        crop = decode_crop(blob)
    except ImageError as exc:
        crop, why = None, exc.reason
    else:
        why = "empty"
    if crop is None:
        raise ReembedError(
            f"{printable(str(index.path))}: the stored crop of {_TABLES[table]} id {fid} does "
            f"not decode ({why}); nothing was written"
        )
    return crop


def _embed_table(
    index: Any, table: str, ids: np.ndarray, embedder: Any, bar: Any, seen: dict[bytes, Any]
) -> tuple[np.ndarray, dict[int, bytes]]:
    """``(len(ids), D)`` float32: the embeddings of ``table``'s stored crops, in ``ids`` order,
    and each row's crop digest. Equal crops (copies of a photo) get one embedding, taken from
    ``seen`` or added to it: a forward pass is not bit-for-bit the same in another batch,
    and PostgreSQL finds a copy through an equal embedding."""
    from exprsim.models.embedder import embed_aligned

    out = np.zeros((len(ids), embedder.embedding_dim), dtype=np.float32)
    row_digests: dict[int, bytes] = {}
    done = 0
    for part, blobs in _blobs(index, table, ids):
        digests = [hashlib.sha256(b).digest() for b in blobs]
        todo: dict[bytes, np.ndarray] = {}
        for fid, blob, digest in zip(part, blobs, digests, strict=True):
            if digest not in seen and digest not in todo:
                todo[digest] = _decoded(index, table, int(fid), blob)
        shapes: dict[tuple[int, ...], list[bytes]] = {}
        for digest, crop in todo.items():
            shapes.setdefault(crop.shape, []).append(digest)
        for group in shapes.values():
            emb = embed_aligned(embedder, np.stack([todo[d] for d in group]))
            seen.update(zip(group, emb, strict=True))
        if len(part):
            out[done : done + len(part)] = np.stack([seen[d] for d in digests])
        row_digests.update(zip((int(i) for i in part), digests, strict=True))
        done += len(part)
        bar.update(len(part))
    return out, row_digests


def _changed(index: Any) -> ReembedError:
    return ReembedError(
        f"{printable(str(index.path))}: faces or tag reference faces were added, removed or "
        "changed while re-embedding (by a writer that does not wait for it, such as tag add "
        "or index remove); nothing was written: run it again"
    )


def _drop_ann_cache(index: Any) -> None:
    """Delete the ANN cache beside a SQLite index: it holds the old vectors (a re-embedding
    with the same model's name would otherwise look fresh); the next search builds it."""
    for path in (index.ann_path, index.ann_stamp_path):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the old search cache %s (%s)", path, exc)


def _write(
    index: Any, snap: _Snapshot, new: dict[str, np.ndarray], model: str, digest: str | None
) -> None:
    """Write every new embedding and the model in one transaction, after checking that
    nothing was written to the faces or references since ``snap``."""
    from exprsim.index.store import _blob

    # faces hold the engine's vector type (pgvector's in PostgreSQL), references bytes
    encode = {"faces": index._db.vector_param, "tag_refs": _blob}
    with index._transaction() as c:
        # the tags' lock first, then the generation (add_tag_reference's order): a retag
        # matched against the old references commits before, or is told they changed
        c.lock_tags()
        index._bump(c)  # in PostgreSQL, its row lock makes other writers wait
        _check_unchanged(index, c, snap)
        for table, put in encode.items():
            rows = zip(snap.ids[table], new[table], strict=True)
            c.executemany(
                f"UPDATE {table} SET embedding = ?, model = ? WHERE id = ?",
                [(put(e), model, int(i)) for i, e in rows],
            )
        c.after_embeddings_changed()
        c.execute("UPDATE meta SET value = ? WHERE key = 'model'", (model,))
        if c.execute("SELECT 1 FROM meta WHERE key = 'model'").fetchone() is None:
            c.execute("INSERT INTO meta (key, value) VALUES ('model', ?)", (model,))
        # the content re-embedded with, or none known (an embedder built by hand)
        c.execute("DELETE FROM meta WHERE key = 'model_digest'")
        if digest is not None:
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('model_digest', ?)", (f"{model} {digest}",)
            )


def _check_unchanged(index: Any, c: Any, snap: _Snapshot) -> None:
    """Raise :func:`_changed` unless the tables hold what ``snap`` saw (inside the writing
    transaction, after its generation bump)."""
    row = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    if row is not None and int(row[0]) != snap.generation + 1:
        raise _changed(index)
    for table, have in snap.ids.items():
        n, total = c.execute(f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM {table}").fetchone()
        if (int(n), int(total)) != (len(have), int(have.sum())):
            raise _changed(index)
    refs = c.execute("SELECT id, crop FROM tag_refs").fetchall()
    if {int(i): hashlib.sha256(bytes(b or b"")).digest() for i, b in refs} != snap.ref_digests:
        raise _changed(index)
