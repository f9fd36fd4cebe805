"""Embed every face of many files into one table (``exprsim embed``).

One row per face: the per-face columns of :data:`exprsim.faces.pipeline.FACE_COLUMNS`
(``source``, ``face``, box, score, 5 landmarks, quality, ``quality_ok``, ``reasons``,
``detector``), then ``model`` (``name@version``), the embedding ``e0..e15``, and the
file's ``size``, ``mtime_ns`` and ``sha256`` (empty for a source that is not a local
file). Save it with :meth:`~exprsim.faces.pipeline.FaceTable.save` (CSV, Parquet, JSON
lines or JSON).

These let ``exprsim index add --from-parquet`` store what ``exprsim index add`` compares
(the files of a loaded table that have not changed since are then skipped instead of
embedded again) and what ``exprsim search`` uses to leave out copies of the query.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError, ImageError
from exprsim.faces.pipeline import FaceTable, face_row

#: the file's identity, as the index stores it (``os.stat``'s ``st_size``, ``st_mtime_ns``,
#: and the SHA-256 of its bytes)
FILE_COLUMNS = ("size", "mtime_ns", "sha256")


def embedding_columns(embedding_dim: int) -> list[str]:
    """The columns of an embedding table, in order: the per-face columns
    (:data:`~exprsim.faces.pipeline.FACE_COLUMNS`), ``model``, ``e0..e{dim-1}``, then
    :data:`FILE_COLUMNS`."""
    from exprsim.faces.pipeline import FACE_COLUMNS

    return [*FACE_COLUMNS, "model", *(f"e{i}" for i in range(embedding_dim)), *FILE_COLUMNS]


def table_schema(columns: Sequence[str], model_digest: str | None = None) -> Any:
    """The Arrow schema of an embedding table with these columns: text for ``source``,
    ``reasons``, ``detector``, ``model`` and ``sha256``, int64 for ``face``, ``size`` and
    ``mtime_ns``, bool for ``quality_ok``, float64 for the rest. Every Parquet table of
    faces is written with it, empty ones included, so that a folder of them reads as one
    dataset. ``model_digest``, the content digest of the model, goes into its metadata
    (:data:`exprsim.models.identity.DIGEST_KEY`): an index of another model of the same name refuses the table."""
    import pyarrow as pa

    def kind(column: str) -> Any:
        if column in ("source", "reasons", "detector", "model", "sha256"):
            return pa.large_string()
        if column in ("face", *FILE_COLUMNS):
            return pa.int64()
        return pa.bool_() if column == "quality_ok" else pa.float64()

    from exprsim.models.identity import DIGEST_KEY

    metadata = {DIGEST_KEY: model_digest.encode()} if model_digest else None
    return pa.schema([pa.field(c, kind(c)) for c in columns], metadata=metadata)


def file_identity(source: str, before: os.stat_result | None = None) -> dict[str, Any]:
    """:data:`FILE_COLUMNS` of a local file (its bytes read once more, from the page cache
    as a rule, for the hash); ``None`` each for anything else (a URI, an in-memory image's
    placeholder, a file gone since, a pipe or device: opened again, a named pipe waits for
    a writer for good, and ``/dev/stdin`` reads as empty).

    ``before``: the file's ``os.stat`` taken before it was decoded
    (:func:`exprsim.io.stat_or_none`).
    When the file read now is not that one (renamed over, rewritten: another inode, size,
    modification or change time), its identity would describe other bytes than the ones
    embedded, and an index loading the table would skip the file for good: ``None`` each.
    """
    from exprsim.io import open_regular

    if source.startswith("<") or "://" in source:
        return dict.fromkeys(FILE_COLUMNS)
    try:
        st = os.stat(source)
        if not stat.S_ISREG(st.st_mode):
            return dict.fromkeys(FILE_COLUMNS)
        with open_regular(source, st) as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
            st = os.fstat(fh.fileno())
    except (OSError, ValueError, ImageError):
        return dict.fromkeys(FILE_COLUMNS)
    if before is not None and _stamps(before) != _stamps(st):
        return dict.fromkeys(FILE_COLUMNS)
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "sha256": sha}


def _stamps(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def embedding_row(face: Any, model: str, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    """One table row for a ``FaceEmbedding``: per-face columns, ``model``, ``e0..e15``,
    the file's identity (``identity``: :func:`file_identity` of ``face.source``, computed
    here when not given)."""
    row = face_row(face.source, face.face_index, face.aligned)
    row["model"] = model
    row.update({f"e{i}": float(v) for i, v in enumerate(face.embedding)})
    row.update(identity if identity is not None else file_identity(str(face.source)))
    return row


def embed_files(
    paths: Iterable[str | Path],
    embedder: Any = None,
    detector: Any = None,
    progress: bool = False,
    on_error: Callable[[str, ImageError], None] | None = None,
    sink: Callable[[list[dict[str, Any]]], None] | None = None,
    workers: int | None = None,
) -> FaceTable:
    """Detect, align and embed every face of the images under ``paths``.

    Files are read lazily and run through the front-end ``workers`` at a time
    (:meth:`~exprsim.models.embedder.Embedder.embed_stream`); with a ``sink`` the rows go
    there as they are made and memory stays bounded for any number of files.

    Args:
        paths: image files and/or folders (recursed; see :func:`exprsim.io.iter_image_files`);
            a file named twice (or through a link) is embedded once, as the CLI does.
        embedder: the model (default: ``exprsim.load_model()``).
        detector: a detector name or instance (default: MediaPipe).
        progress: show a tqdm progress bar (on stderr) with the time left.
        on_error: called with ``(file, error)`` for each unreadable file (the error is kept
            in :attr:`FaceTable.errors` either way).
        sink: if given, called with each image's rows (e.g.
            :meth:`exprsim.io.TableWriter.write`) and the returned table keeps no rows
            (its ``faces`` count is still set).
        workers: front-end threads (default: up to 2).

    Returns:
        A :class:`~exprsim.faces.pipeline.FaceTable` (see the module docstring for columns),
        with ``seconds`` and ``faces`` set.

    Raises:
        ExprsimError: no image file in ``paths``.
    """
    import time

    from exprsim.io import iter_image_files, stat_or_none, unique_files
    from exprsim.progress import progress_bar

    t0 = time.perf_counter()
    files = unique_files(iter_image_files(paths))  # each file once
    if not files:
        raise ExprsimError("no image files found in the given paths")
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    model = embedder.config.name_version
    # the same columns with or without a face (an embedder of the caller's own may not
    # say its dimension: then those of the rows)
    dim = getattr(embedder, "embedding_dim", None)
    columns = embedding_columns(int(dim)) if isinstance(dim, int) else []
    table = FaceTable(files=len(files), stats={"faces": 0}, columns=columns)
    before: dict[int, os.stat_result | None] = {}

    def feed() -> Iterator[Any]:
        for i, f in enumerate(files):  # stamped as the stream takes it, before its read
            before[i] = stat_or_none(f)
            yield f

    stream = embedder.embed_stream(feed(), detector=detector, workers=workers)
    bar = progress_bar(stream, total=len(files), desc="embed", unit="img", enabled=progress)
    for item in bar:
        stamp = before.pop(item.index, None)
        if item.error is not None:
            table.add_error(item.source, item.error, on_error)
            continue
        # the file itself: `source` is its name made printable (control characters escaped)
        identity = file_identity(str(files[item.index]), stamp) if item.faces else {}
        rows = [embedding_row(f, model, identity) for f in item.faces]
        table.stats["faces"] += len(rows)
        if sink is not None:
            sink(rows)
        else:
            table.rows.extend(rows)
        bar.set_postfix(faces=int(table.stats["faces"]), refresh=False)
    table.stats["seconds"] = time.perf_counter() - t0
    return table
