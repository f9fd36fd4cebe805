"""Bulk-load Parquet shards of embeddings into a FaceIndex (SQLite or PostgreSQL).

The shards are what ``exprsim embed -o faces.parquet`` or :func:`exprsim.scale.embed_with_ray`
write: one row per face, columns ``source, face, x1, y1, x2, y2, score, landmarks,
detector, sharpness, yaw, pitch, roll, quality_ok, e0 ... e15, model``, and the file's
``size``, ``mtime_ns`` and ``sha256`` (what ``exprsim index add`` compares to skip an
unchanged file).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from exprsim.errors import ExprsimError, printable
from exprsim.index.store import FaceIndex, LoadReport, ModelMismatchError
from exprsim.progress import progress_bar

log = logging.getLogger(__name__)


def parquet_shards(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The ``.parquet`` files named, or found (sorted, recursively; linked folders are not
    entered) in the folders named.

    Raises:
        ExprsimError: a name that is no file or folder, no shard found, or a folder (the
            one named, or one inside it) that cannot be listed: its shards would have been
            left out without a word.
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(_shards_under(p))
        elif p.is_file():
            out.append(p)
        else:
            raise ExprsimError(f"{p}: no such file or folder")
    if not out:
        raise ExprsimError(f"no .parquet files in {', '.join(map(str, items))}")
    return out


def _shards_under(folder: Path) -> list[Path]:
    """The ``*.parquet`` files (not hidden) under ``folder``, sorted.

    Raises:
        ExprsimError: a folder that cannot be listed (``Path.rglob`` skipped it silently).
    """
    import os

    problems: list[OSError] = []
    found: list[Path] = []
    other: list[Path] = []  # not hidden, not a writer's marker (`_SUCCESS`), not .parquet
    for root, dirs, files in os.walk(folder, onerror=problems.append):
        dirs.sort()
        for f in files:
            if f.endswith(".parquet") and not f.startswith("."):
                found.append(Path(root, f))
            elif not f.startswith((".", "_")):
                other.append(Path(root, f))
    if other:  # `.parq` shards were skipped without a word
        log.warning(
            "%d file(s) under %s not loaded: not named *.parquet (first: %s)",
            len(other),
            printable(str(folder)),
            printable(str(min(other))),
        )
    if problems:
        exc = problems[0]
        raise ExprsimError(
            f"{printable(str(exc.filename or folder))}: cannot list this folder "
            f"({exc.strerror or exc}); no shard was loaded: make it readable, or name the "
            "folders to load"
        )
    return sorted(found)


def _read_shard(path: Path, columns: list[str] | None = None) -> Any:
    """The shard's table (only ``columns`` when given; a column it lacks is skipped).

    Raises:
        ExprsimError: not a readable Parquet file (pyarrow raises several types).
    """
    import pyarrow.parquet as pq

    try:
        if columns is not None:
            names = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in names]
        return pq.read_table(path, columns=columns)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ExprsimError(f"{path}: not a readable Parquet file ({exc})") from exc


def _shard_models(path: Path) -> list[str]:
    """The distinct values of a shard's ``model`` column (none without one)."""
    table = _read_shard(path, ["model"])
    if "model" not in table.column_names:
        return []
    column = table.column("model")
    return sorted({str(v) for v in column.unique().to_pylist() if v is not None})


def _check_one_model(files: list[Path], model: str | None) -> None:
    """Refuse shards of several models (or of another than ``model``) before any is loaded:
    loaded one by one, those of the first model went in and the next were refused as the
    index's, a folder half loaded."""
    by_model: dict[str, list[Path]] = {}
    for path in files:
        for name in _shard_models(path):
            by_model.setdefault(name, []).append(path)
    _refuse_several(by_model, model, ("{}", "of {}"), "models", ExprsimError)


def _refuse_several(
    groups: dict[str, list[Path]],
    given: str | None,
    shown: tuple[str, str],
    what: str,
    error: type[Exception],
) -> None:
    """Refuse shards (``groups``: by model name or content digest) of another model than
    ``given`` (``error``), or, without one, of several (``what``: how the message names
    them; ``shown``: how it names a shard's model and the one given, ``{}`` the key)."""
    if given is not None:
        others = {k: v for k, v in groups.items() if k != given}
        if others:
            key, paths = next(iter(sorted(others.items())))
            raise error(
                f"{paths[0]}: holds embeddings of {shown[0].format(key)}, "
                f"not {shown[1].format(given)}"
                f"{f' ({len(paths)} shards)' if len(paths) > 1 else ''}; no shard was loaded"
            )
    elif len(groups) > 1:
        said = "; ".join(
            f"{key}: {paths[0].name}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
            for key, paths in sorted(groups.items())
        )
        raise ExprsimError(
            f"the shards hold embeddings of {len(groups)} {what} ({said}): an index holds "
            "one; load each model's shards into its own index. No shard was loaded"
        )


def _shard_digest(path: Path) -> str | None:
    """The content digest a shard's schema metadata records (`exprsim embed -o x.parquet`),
    or ``None``: read from its footer alone."""
    import pyarrow.parquet as pq

    from exprsim.models.identity import recorded_digest

    try:
        metadata = pq.read_schema(path).metadata
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ExprsimError(f"{path}: not a readable Parquet file ({exc})") from exc
    return recorded_digest(metadata)


def _check_one_digest(files: list[Path], given: str | None) -> None:
    """Refuse shards embedded by models of one name but another content (their metadata's
    digests differ, or differ from ``given``) before any is loaded: the first went in and
    the next was refused, a folder half loaded."""
    from exprsim.models.identity import valid_digest

    by_digest: dict[str, list[Path]] = {}
    for path in files:
        digest = _shard_digest(path)
        if digest is not None:
            by_digest.setdefault(digest, []).append(path)
    _refuse_several(
        by_digest,
        given if valid_digest(given) else None,
        ("a model with content {}", "{}"),
        "models of one name and other contents",
        ModelMismatchError,
    )


def _stamped_digest(shards: Any) -> str | None:
    """The content digest an `exprsim embed --engine ray` folder's stamp records for its
    shards (``_embed.json``, ``"content"``), when ``shards`` is such a folder."""
    import json

    from exprsim.models.identity import valid_digest

    if not isinstance(shards, str | Path) or not Path(shards).is_dir():
        return None
    try:
        stamp = json.loads((Path(shards) / "_embed.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = stamp.get("content") if isinstance(stamp, dict) else None
    return digest if valid_digest(digest) else None


def load_parquet(
    shards: str | Path | Iterable[str | Path],
    db: str | Path | FaceIndex,
    model: str | None = None,
    replace: bool = False,
    progress: bool = False,
    model_digest: str | None = None,
) -> LoadReport:
    """Load every shard into the index ``db``, one transaction per shard.

    Args:
        shards: a folder of ``.parquet`` shards, one file, or a list of either.
        db: a SQLite path, a ``postgresql://`` URI, or an open :class:`FaceIndex`.
        model: ``name@version`` (default: the shards' ``model`` column).
        replace: reload sources already stored (default: skip them; see
            :meth:`FaceIndex.add_table`).
        progress: show a progress bar over shards.
        model_digest: the content digest of the model (``Embedder.digest``; default: the
            one an `exprsim embed --engine ray` folder's stamp records, if any): an index of
            another model of that name is refused. The digests the shards' metadata record
            are compared with each other, with this one and with the index's before any
            shard is loaded.

    Resumable: a shard is committed whole or not at all, and sources already stored are
    skipped, so rerunning after an interruption loads only what is missing.

    Returns:
        The totals over all shards, as a :class:`~exprsim.index.store.LoadReport`.

    Raises:
        ExprsimError: shards of several models (by name, or by content under one name),
            or a shard that is not Parquet; nothing is loaded.
        ModelMismatchError: shards of another model than ``model`` / ``model_digest`` /
            the index's; nothing is loaded.
    """
    import time

    files = parquet_shards(shards)
    _check_one_model(files, model)  # before any shard is written
    if model_digest is None:
        model_digest = _stamped_digest(shards)
    _check_one_digest(files, model_digest)
    t0 = time.perf_counter()
    totals = [0, 0, 0, 0]
    seen_model = model
    index = db if isinstance(db, FaceIndex) else FaceIndex(db)
    try:
        # the index's own content too: a folder of shards without one but one of another
        # content was loaded up to that one
        _check_one_digest(files, model_digest or index.model_digest)
        for path in progress_bar(files, enabled=progress, desc="load", unit="shard"):
            table = _read_shard(path)
            if table.num_rows == 0:
                continue
            rep = index.add_table(
                table, model=model, replace=replace, name=str(path), model_digest=model_digest
            )
            seen_model = rep.model
            for i, v in enumerate((rep.files_added, rep.files_replaced, rep.files_skipped)):
                totals[i] += v
            totals[3] += rep.faces
            log.debug("%s: %s", path, rep.summary())
    finally:
        if not isinstance(db, FaceIndex):
            index.close()
    return LoadReport(*totals, seen_model or "", time.perf_counter() - t0)  # type: ignore[arg-type, call-arg]
