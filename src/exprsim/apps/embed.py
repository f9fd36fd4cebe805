"""Embed every face of many files into one table (``exprsim embed``).

One row per face: the per-face columns of :data:`exprsim.faces.pipeline.FACE_COLUMNS`
(``source``, ``face``, box, score, 5 landmarks, quality, ``quality_ok``, ``reasons``,
``detector``), then ``model`` (``name@version``) and the embedding ``e0..e15``. Save it
with :meth:`~exprsim.faces.pipeline.FaceTable.save` (CSV, Parquet, JSON lines or JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError, ImageError
from exprsim.faces.pipeline import FaceTable, face_row


def embedding_row(face: Any, model: str) -> dict[str, Any]:
    """One table row for a ``FaceEmbedding``: per-face columns, ``model``, ``e0..e15``."""
    row = face_row(face.source, face.face_index, face.aligned)
    row["model"] = model
    row.update({f"e{i}": float(v) for i, v in enumerate(face.embedding)})
    return row


def embed_files(
    paths: Iterable[str | Path],
    embedder: Any = None,
    detector: Any = None,
    progress: bool = False,
    on_error: Callable[[str, ImageError], None] | None = None,
) -> FaceTable:
    """Detect, align and embed every face of the images under ``paths``.

    Args:
        paths: image files and/or folders (recursed; see :func:`exprsim.io.iter_image_files`).
        embedder: the model (default: ``exprsim.load_model()``).
        detector: a detector name or instance (default: MediaPipe).
        progress: show a tqdm progress bar (on stderr).
        on_error: called with ``(file, error)`` for each unreadable file (the error is kept
            in :attr:`FaceTable.errors` either way).

    Returns:
        A :class:`~exprsim.faces.pipeline.FaceTable` (see the module docstring for columns).

    Raises:
        ExprsimError: no image file in ``paths``.
    """
    from tqdm import tqdm

    from exprsim.io import iter_image_files

    files = list(iter_image_files(paths))
    if not files:
        raise ExprsimError("no image files found in the given paths")
    if embedder is None:
        from exprsim.models.embedder import load_model

        embedder = load_model()
    model = embedder.config.name_version
    table = FaceTable(files=len(files))
    for path in tqdm(files, desc="embed", unit="img", disable=not progress):
        try:
            faces = embedder.embed_images([path], detector=detector)
        except ImageError as exc:
            table.errors.append((str(path), str(exc)))
            if on_error is not None:
                on_error(str(path), exc)
            continue
        table.rows.extend(embedding_row(f, model) for f in faces)
    return table
