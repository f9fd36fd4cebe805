"""Distributed embedding on Ray Data: photos in, sharded Parquet out.

:func:`embed_with_ray` splits the sorted input list into shards of ``shard_size`` images and
runs them through ``Dataset.map_batches`` over an actor pool: each actor loads the model
once and embeds whole shards, writing ``part-NNNNN-<digest>.parquet`` (atomically: a
temporary file renamed when complete). The rows and columns are those of
``exprsim embed -o faces.parquet`` (:func:`embed_rows`), so ``exprsim index add
--from-parquet`` (:func:`exprsim.scale.load_parquet`) loads either.

Idempotent and resumable: a shard's name carries a digest of its list of inputs, a rerun
skips every shard whose file exists, and a killed job loses only the shards in flight. A
shard with unreadable images also leaves ``_part-NNNNN-<digest>.failed.json`` (their paths);
a rerun tries those images again (``retry_failed``), since an image may have been fixed or
a network read may have failed for a moment, adds their rows to the shard (its other rows
are kept as they are), and removes the file once all are read. (Lists written beside the
shard without the ``_`` by earlier versions are read too.)

The output folder is a Parquet dataset (``pandas.read_parquet(folder)``, pyarrow, DuckDB,
Spark): the failure lists start with ``_``, a name dataset readers skip, and a shard of
images without faces has the columns of the others (and no rows).

Ray's own log lines (start-up, execution plan) are shown only when this module logs debug
messages (``exprsim -v``); otherwise Ray logs errors only.

Needs ``pip install 'exprsim[ray]'``; ``address=None`` starts a local Ray, ``"auto"`` joins
the cluster of this machine, ``"host:6379"`` (a head's address) or ``"ray://host:10001"``
(Ray Client: ``pip install 'ray[client]'``) a remote one. The address and the model are
checked in this process before Ray starts (:func:`check_address`, ``load_model``): a head
where nothing answers, a port where something else does (a web server, Redis), or a
damaged checkpoint, is one error, not a wait or a worker's traceback. A file name that is
not valid UTF-8 is refused, that file alone, as ``exprsim index add`` refuses it; an image
on which the detector or model raises an unexpected error fails alone (its type and
message in the report, the traceback in the worker's log).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from exprsim.errors import BackendUnavailableError, ExprsimError, ImageError, printable
from exprsim.io import (
    FOLDER_LOCK,
    TABLE_SUFFIXES,
    folder_lock,
    replace_atomically,
    split_path_list,
    write_json,
)
from exprsim.progress import progress_bar
from exprsim.wording import count

if TYPE_CHECKING:
    from exprsim.interrupts import Held

log = logging.getLogger(__name__)

RAY_INSTALL = "pip install 'exprsim[ray]'"
LIST_SUFFIXES = (".parquet", ".csv", ".txt")
PATH_COLUMNS = ("path", "source", "uri", "file")
#: the folder's stamp: the model and detector its shards were embedded with
STAMP_NAME = "_embed.json"
#: the files this engine writes per shard: the shard and its failure list (either name)
_SHARD_FILE = re.compile(r"_?(part-\d{5}-[0-9a-f]{12})(\.parquet|\.failed\.json)")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(f"Ray is not installed: {RAY_INSTALL}") from exc
    try:
        import ray.data
    except ImportError as exc:  # installed, but its data library cannot load (its pyarrow)
        raise BackendUnavailableError(f"Ray Data cannot be imported: {exc}") from exc
    return ray


def _is_uri(s: str) -> bool:
    return "://" in s and not s.startswith("file://")


def _read_list(path: Path) -> list[str]:
    """Paths from a Parquet/CSV table (column path/source/uri/file, else the first) or a
    text file (:func:`exprsim.io.split_path_list`)."""
    import pandas as pd

    if path.suffix.lower() == ".txt":  # a name's bytes that are not UTF-8: refused later
        return split_path_list(path.read_text(encoding="utf-8", errors="surrogateescape"))
    frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    if frame.empty:
        return []
    col = next((c for c in PATH_COLUMNS if c in frame.columns), frame.columns[0])
    return [str(v) for v in frame[col].dropna().tolist()]


def list_inputs(inputs: str | Path | Iterable[str | Path]) -> list[str]:
    """Every image named by ``inputs``, sorted and without duplicates.

    Args:
        inputs: folders (searched recursively), globs (``photos/**/*.jpg``), image files,
            or lists of paths/URIs in ``.parquet``, ``.csv`` (column ``path``, ``source``,
            ``uri`` or ``file``, else the first) or ``.txt`` (one per line, or NUL-separated:
            as ``--files-from`` reads a list, :func:`exprsim.io.split_path_list`). fsspec URIs
            (``s3://...``) are kept as they are and read by the workers.
    """
    from exprsim.io import file_key, iter_image_files, path_exists

    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    out: list[str] = []
    for item in items:
        s = str(item)
        p = Path(s)
        if _is_uri(s):
            out.append(s)
        elif p.is_dir():
            out.extend(str(f) for f in iter_image_files([p]))
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            out.extend(_read_list(p))
        elif any(ch in s for ch in "*?[") and not path_exists(p):  # photo[1].jpg is a name
            found = sorted(glob_without_links(s))
            if not found:
                log.warning("%s: the pattern matches no file", printable(s))
            out.extend(found)
        else:
            out.append(s)
    # one file named twice (./a.jpg and a.jpg, or through a link) is embedded once
    seen: set[Any] = set()
    unique = []
    for name in sorted(dict.fromkeys(out)):
        key = name if _is_uri(name) else file_key(name)
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique


def glob_without_links(pattern: str) -> list[str]:
    """The files a shell-style ``pattern`` matches (``*``, ``?``, ``[...]`` within one
    name, ``**`` for any number of folders), as :func:`glob.glob` with ``recursive=True``
    finds them, except that ``**`` does not enter linked folders: two links to a parent
    folder made ``glob.glob`` run for ever (and one gave every photo 40 times). Names
    starting with a dot match only a pattern part that starts with one."""
    import fnmatch
    import os

    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    base = os.path.join(*parts[:first]) if first else "."
    found: list[str] = []

    def names(folder: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError:  # unreadable, gone: glob skips it too
            return []

    def walk(folder: str, rest: tuple[str, ...]) -> None:
        part = rest[0]
        if part == "**":
            if len(rest) == 1:  # "**" last: every file below (glob also lists folders)
                rest = (*rest, "*")
            walk(folder, rest[1:])  # no folder
            for e in names(folder):
                if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                    walk(e.path, rest)  # one folder more
            return
        for e in names(folder):
            if e.name.startswith(".") and not part.startswith("."):
                continue
            if not fnmatch.fnmatchcase(e.name, part):
                continue
            if len(rest) == 1:
                if e.is_file():
                    found.append(e.path if first else os.path.relpath(e.path))
            elif e.is_dir():
                walk(e.path, rest[1:])

    if os.path.isdir(base):
        walk(base, parts[first:])
    return list(dict.fromkeys(found))


def embed_rows(
    embedder: Any,
    paths: Sequence[str | Path],
    detector: Any = None,
    errors: list[str] | None = None,
    failed_paths: list[str] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Embed images one by one into rows: the rows of ``exprsim embed``
    (:func:`exprsim.apps.embed.embedding_row`), fsspec URIs included.

    Args:
        errors: if given, one ``"<path>: <reason>"`` line is appended per unreadable image
            (or per image on which the detector or model raised an unexpected error: the
            reason is ``"<type>: <message>"``, and its traceback is logged).
        failed_paths: if given, the path of every unreadable image is appended.

    Raises:
        ExprsimError: other than :class:`ImageError` (a detector that cannot run, say):
            not the image's fault, so the work stops. ``MemoryError`` likewise.

    Returns:
        The rows (one per face) and the number of images that could not be read.
    """
    import dataclasses

    from exprsim.apps.embed import embedding_row, file_identity
    from exprsim.io import decode_image, stat_or_none

    model = embedder.config.name_version
    rows: list[dict[str, Any]] = []
    failed = 0
    for path in paths:
        s = str(path)
        before = None
        try:
            if _is_uri(s):
                import fsspec

                with fsspec.open(s, "rb") as fh:
                    image = decode_image(fh.read(), s)
                faces = [
                    dataclasses.replace(f, source=s)
                    for f in embedder.embed_images([image], detector=detector)
                ]
            else:
                before = stat_or_none(s)  # the identity must describe the bytes embedded
                faces = embedder.embed_images([path], detector=detector)
            identity = file_identity(s, before) if faces else {}
        except (ImageError, OSError) as exc:
            reason = str(exc)
            log.warning("embed: %s: %s", s, exc)
        except MemoryError:
            raise
        except ExprsimError:  # not the image's fault (a detector that cannot run): stop
            raise
        except Exception as exc:  # a bug (a detector plug-in's, say): this image fails
            reason = f"{type(exc).__name__}: {exc}"
            _log_unexpected(s, reason)
        else:
            rows.extend(embedding_row(f, model, identity) for f in faces)
            continue
        failed += 1
        if errors is not None:
            errors.append(f"{s}: {reason}" if s not in reason else reason)
        if failed_paths is not None:
            failed_paths.append(s)
    return rows, failed


class _Traced:
    """Whether this process has logged the traceback of an unexpected error yet."""

    done = False


def _log_unexpected(path: str, reason: str) -> None:
    """Log an image's unexpected error (called in its ``except``): one warning line, with
    the traceback the first time in this process (a bug must not hide), at debug after."""
    log.warning("embed: %s: unexpected error %s", path, reason, exc_info=not _Traced.done)
    if _Traced.done:
        log.debug("embed: %s: traceback", path, exc_info=True)
    _Traced.done = True


def shard_name(index: int, paths: Sequence[str]) -> str:
    """``part-NNNNN-<digest>.parquet``: the digest names the shard's inputs, so a changed
    input list never passes for a finished shard."""
    # valid UTF-8 names hash as they always did (resumption depends on it); a name's
    # undecodable bytes (surrogates) no longer crash
    digest = hashlib.sha1("\n".join(paths).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"part-{index:05d}-{digest}.parquet"


def failed_list_path(shard: Path) -> Path:
    """``_part-NNNNN-<digest>.failed.json`` beside ``shard``: its unreadable images (the
    ``_`` makes Parquet dataset readers skip the file)."""
    return shard.with_name("_" + shard.name.removesuffix(".parquet") + ".failed.json")


def _old_failed_list_path(shard: Path) -> Path:
    """``part-NNNNN-<digest>.failed.json``: where earlier versions kept the list (a name
    that dataset readers take for a shard)."""
    return shard.with_name(shard.name.removesuffix(".parquet") + ".failed.json")


def _recorded_failed_list(shard: Path) -> Path | None:
    """The shard's list of unreadable images, where this or an earlier version wrote it;
    ``None`` when it has none."""
    for path in (failed_list_path(shard), _old_failed_list_path(shard)):
        if path.exists():
            return path
    return None


def _drop_failed_lists(shard: Path) -> None:
    """Remove the shard's list of unreadable images (either name): all were read."""
    for path in (failed_list_path(shard), _old_failed_list_path(shard)):
        path.unlink(missing_ok=True)


def _write_failed_list(shard: Path, paths: list[str]) -> None:
    """Record ``paths`` (atomically) before the shard is written; a crash in between leaves
    the list, so the shard is embedded again rather than its failures forgotten. A list of
    an earlier version's name is removed (this one replaces it)."""
    import json

    text = json.dumps(paths, indent=1) + "\n"
    replace_atomically(failed_list_path(shard), lambda tmp: tmp.write_text(text))
    _old_failed_list_path(shard).unlink(missing_ok=True)


def _merge_retry(
    shard: Path,
    retried: set[str],
    rows: list[dict[str, Any]],
    bad: list[str],
    columns: Sequence[str] | None = None,
) -> None:
    """Add the rows of a shard's retried images to it, then record those still unreadable.

    The shard's rows of the retried sources are dropped first, so a rerun after a crash
    between the two writes does not add them twice; its other rows are never touched (an
    image read the first time keeps its rows whatever happens to it since).
    """
    import pandas as pd

    old = pd.read_parquet(shard)
    if "source" in old.columns:
        old = old[~old["source"].isin(retried)]
    kept = old.to_dict("records") if len(old.columns) else []
    write_shard([*kept, *rows], shard, columns)
    if bad:
        _write_failed_list(shard, bad)
    else:
        _drop_failed_lists(shard)


def _retry_list(shard: Path) -> list[str] | None:
    """The unreadable images a finished shard recorded, ``None`` when its list is damaged
    (the whole shard is then embedded again)."""
    import json

    recorded = _recorded_failed_list(shard)
    if recorded is None:
        return None
    try:
        paths = json.loads(recorded.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(paths, list) and all(isinstance(p, str) for p in paths)
    return paths if ok else None


def shard_columns(embedding_dim: int) -> list[str]:
    """The columns of a shard: those of ``exprsim embed``
    (:func:`exprsim.apps.embed.embedding_columns`)."""
    from exprsim.apps.embed import embedding_columns

    return embedding_columns(embedding_dim)


def write_shard(
    rows: list[dict[str, Any]], path: Path, columns: Sequence[str] | None = None
) -> None:
    """Write one shard atomically (a hidden temporary file, then a rename).

    Args:
        columns: the shard's columns (:func:`shard_columns`), written with the types of
            :func:`exprsim.apps.embed.table_schema` (a shard of faceless images too);
            ``None``: those of the rows.
    """
    import pandas as pd

    if columns is None:
        frame = pd.DataFrame(rows)
        replace_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    from exprsim.apps.embed import table_schema

    frame = pd.DataFrame(rows, columns=list(columns))
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(table_schema(columns))
    replace_atomically(path, lambda tmp: pq.write_table(table, tmp))


class _EmbedShards:
    """A Ray actor: loads the model once, then embeds and writes whole shards.

    An :class:`ExprsimError` or ``OSError`` that stops a shard (a model this worker cannot
    load, a detector that cannot run, a full disk) comes back as the row's ``fatal`` (see
    :func:`_fatal`) rather than raised: Ray would retry the actor without end, or wrap the
    error in its own traceback; the driver raises it again, one line."""

    def __init__(self, model: str, detector: Any, out_dir: str, device: str) -> None:
        from exprsim.models.embedder import load_model

        self.detector = detector
        self.out_dir = Path(out_dir)
        self.setup_error = ""
        try:
            self.embedder = load_model(model, device=device)
        except ExprsimError as exc:  # every shard reports it
            self.setup_error = _fatal(exc)
            return
        self.columns = shard_columns(self.embedder.embedding_dim)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        keys = ("name", "images", "faces", "failed", "errors", "fatal")
        out: dict[str, list[Any]] = {key: [] for key in keys}
        for name, paths_json, retry in zip(
            batch["name"], batch["paths"], batch["retry"], strict=True
        ):
            row = {"name": name, "images": 0, "faces": 0, "failed": 0, "errors": "[]"}
            try:
                if self.setup_error:
                    row["fatal"] = self.setup_error
                else:
                    row.update(self._shard(str(name), str(paths_json), bool(retry)), fatal="")
            except (ExprsimError, OSError) as exc:
                row["fatal"] = _fatal(exc)
            for key in keys:
                out[key].append(row[key])
        return out

    def _shard(self, name: str, paths_json: str, retry: bool) -> dict[str, Any]:
        """Embed and write one shard; its counts and unreadable images' lines."""
        import json

        paths = json.loads(paths_json)
        errors: list[str] = []
        bad: list[str] = []
        rows, failed = embed_rows(self.embedder, paths, self.detector, errors, bad)
        shard = self.out_dir / name
        if retry:  # paths: the shard's unreadable images; its other rows stay
            _merge_retry(shard, set(paths), rows, bad, self.columns)
        else:
            if bad:
                _write_failed_list(shard, bad)
            write_shard(rows, shard, self.columns)
            if not bad:
                _drop_failed_lists(shard)
        return {
            "images": len(paths),
            "faces": len(rows),
            "failed": failed,
            "errors": json.dumps(errors),
        }


def _fatal(exc: BaseException) -> str:
    """``exc`` (an :class:`ExprsimError` or ``OSError``) as JSON text that survives the trip
    from a Ray worker to the driver (:func:`_raise_fatal`)."""
    import json

    doc: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, OSError):
        doc.update(type="OSError", errno=exc.errno, strerror=exc.strerror)
        doc["filename"] = None if exc.filename is None else str(exc.filename)
    return json.dumps(doc)


def _raise_fatal(text: str) -> NoReturn:
    """Raise again, in the driver, the error a worker sent as :func:`_fatal`'s text: the
    same class for those of :mod:`exprsim.errors` (else :class:`ExprsimError`), an
    ``OSError`` with its number and file name."""
    import json

    from exprsim import errors as error_classes

    doc = json.loads(text)
    if doc["type"] == "OSError":
        if doc.get("errno") is None:
            raise OSError(doc["message"])
        raise OSError(doc["errno"], doc["strerror"], doc["filename"])
    cls = getattr(error_classes, str(doc["type"]), None)
    if not (isinstance(cls, type) and issubclass(cls, ExprsimError)):
        cls = ExprsimError
    try:
        exc = cls(doc["message"])
    except TypeError:  # a class made from more than a message (ImageError's path, reason)
        exc = ExprsimError(doc["message"])
    raise exc


@dataclass(frozen=True)
class RayEmbedReport:
    """What :func:`embed_with_ray` did."""

    out_dir: str
    shards: int
    shards_skipped: int
    images: int
    faces: int
    failed: int
    seconds: float
    errors: tuple[str, ...] = ()  # one "<path>: <reason>" per unreadable image (this run)
    shards_retried: int = 0  # finished shards whose unreadable images were tried again
    inputs: int = 0  # images of the whole input list (``images``: those read by this run)
    #: "SIGINT"/"SIGTERM" that came while Ray stopped, after the last shard: held so that
    #: Ray's processes stop (nothing was left undone), and told here
    held: tuple[str, ...] = ()

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        retried = f" ({self.shards_retried} to retry unreadable images)" * bool(self.shards_retried)
        return (
            f"{count(self.shards - self.shards_skipped, 'shard')} embedded{retried}, "
            f"{self.shards_skipped} already done; {count(self.faces, 'face')} from "
            f"{count(self.images, 'image')} ({self.failed} unreadable) in {self.seconds:.1f} s "
            f"-> {self.out_dir}"
        )


def embed_with_ray(
    inputs: str | Path | Iterable[str | Path],
    out_dir: str | Path,
    address: str | None = None,
    model: str = "default",
    detector: Any = None,
    num_workers: int = 2,
    shard_size: int = 256,
    num_cpus: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    retry_failed: bool = True,
) -> RayEmbedReport:
    """Embed every face of ``inputs`` on Ray, into Parquet shards under ``out_dir``.

    Args:
        inputs: see :func:`list_inputs` (folder, glob, list of paths/URIs).
        out_dir: the shard folder (created); shards already there are skipped.
        address: ``None`` (start a local Ray), ``"auto"``, ``"host:port"`` (a head) or
            ``"ray://host:port"`` (Ray Client); checked first (:func:`check_address`).
        model: model name or checkpoint folder, loaded once per actor.
        detector: face detector name (default: the model's).
        num_workers: actors in the pool (each takes one CPU).
        shard_size: images per shard (the unit of work, of output and of resumption).
        num_cpus: CPUs of a local Ray (default: all).
        device: ``"cpu"`` or ``"cuda"`` for the actors.
        progress: show a progress bar over shards.
        retry_failed: try again the unreadable images finished shards recorded (their
            ``_part-*.failed.json``), adding the rows of those now read to the shard (its other
            rows are kept as they are); ``False`` skips every finished shard.

    Returns:
        A :class:`RayEmbedReport` (images/faces count the shards embedded by this run; a
        name that is not valid UTF-8 counts as an image that failed, one line in ``errors``).

    Raises:
        BackendUnavailableError: Ray (or Ray Client, for ``ray://``) is not installed.
        ModelError: the model does not load (checked here, before Ray starts).
        ExprsimError: no inputs, an address that is not Ray's form or where no Ray cluster
            answers, or ``out_dir`` holds shards of another model or detector. All of
            these are checked before anything is written.
        RayEmbedInterrupted: Ctrl-C or SIGTERM (a :class:`KeyboardInterrupt`); the finished
            shards are kept, and a rerun continues from them.
    """

    paths, refused = _utf8_names(list_inputs(inputs))
    if not paths and not refused:
        raise ExprsimError(f"no images found in {inputs}")
    _check_before_ray(address, model)  # before the output folder is made
    t0 = time.perf_counter()
    if not paths:  # every name refused: nothing to embed, no folder made
        n = len(refused)
        return RayEmbedReport(str(out_dir), 0, 0, n, 0, n, 0.0, tuple(refused), 0, n)
    out = Path(out_dir)
    _warn_table_name(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(model, detector, shard_size, address, num_workers, num_cpus, device, progress)
    with folder_lock(out, lambda held: _busy(out, held), "shard folder"):
        try:
            return _embed_locked(out, made, paths, refused, run, retry_failed, t0)
        except BaseException:  # only the run that holds the folder undoes it (a run
            _undo_new_folder(out, made)  # refused as busy removed the other's folder)
            raise


@dataclass(frozen=True)
class _Run:
    """What :func:`embed_with_ray` was asked to run with."""

    model: str | Path
    detector: Any
    shard_size: int
    address: str | None
    num_workers: int
    num_cpus: int | None
    device: str
    progress: bool


def _busy(out: Path, holder: str = "") -> ExprsimError:
    return ExprsimError(
        f"{printable(str(out))}: another `exprsim embed --engine ray`{holder} is writing to "
        "this shard folder; wait for it to end, or write another folder"
    )


def _embed_locked(
    out: Path,
    made: bool,
    paths: list[str],
    refused: list[str],
    run: _Run,
    retry_failed: bool,
    t0: float,
) -> RayEmbedReport:
    """:func:`embed_with_ray` once the shard folder ``out`` is made and locked."""
    _prepare_folder(out, _stamp(run.model, run.detector, run.shard_size))
    shard_size = run.shard_size
    shards = [paths[i : i + shard_size] for i in range(0, len(paths), shard_size)]
    names = [shard_name(i, s) for i, s in enumerate(shards)]
    todo, retried = _work(out, names, shards, retry_failed)
    counts = [0, 0, 0]
    errors: list[str] = list(refused)
    held: list[str] = []
    if todo:
        actor_kwargs = _actor_kwargs(run.model, run.detector, out, run.device)
        try:
            counts = _run_on_ray(
                todo, actor_kwargs, run.address, run.num_workers, run.num_cpus, run.progress,
                errors, held,
            )  # fmt: skip
        except KeyboardInterrupt as exc:
            raise RayEmbedInterrupted.of(out, names, shards) from exc
    _remove_stale_shards(out, names)
    images, faces, failed = counts  # the refused names count as images that failed
    n = len(refused)
    return RayEmbedReport(
        str(out), len(shards), len(shards) - len(todo), images + n, faces, failed + n,
        time.perf_counter() - t0, tuple(errors), retried, len(paths) + n, tuple(held),
    )  # fmt: skip


def _warn_table_name(out: Path) -> None:
    """One warning line when the output folder is named as a table (``-o faces.csv``): this
    engine writes a folder of Parquet shards whatever its name."""
    suffix = out.suffix.lower()
    if suffix in TABLE_SUFFIXES and suffix != ".parquet":
        log.warning(
            "embed: the Ray engine writes a folder of Parquet shards named %s, not a %s table "
            "(load it with exprsim index add --from-parquet, or pandas.read_parquet)",
            printable(out.name),
            suffix,
        )


def _actor_kwargs(model: str | Path, detector: Any, out: Path, device: str) -> dict[str, Any]:
    """What each worker's :class:`_EmbedShards` is made with."""
    return {
        "model": str(model),
        "detector": detector,
        "out_dir": str(out.resolve()),
        "device": device,
    }


def _prepare_folder(out: Path, stamp: dict[str, Any]) -> None:
    """Refuse the folder ``out`` if its shards come from another model or detector, else
    stamp it."""
    if _holds_shards(out):
        _check_stamp(out, stamp)
    else:  # the stamp of a run that failed before its first shard stamps nothing
        write_json(out / STAMP_NAME, stamp)


def _undo_new_folder(out: Path, made: bool) -> None:
    """Remove the folder this run made when it holds nothing but the stamp (the run failed
    before its first shard: an unreachable cluster, say)."""
    import os

    with contextlib.suppress(OSError):
        if made and set(os.listdir(out)) <= {STAMP_NAME, FOLDER_LOCK}:
            (out / STAMP_NAME).unlink(missing_ok=True)
            (out / FOLDER_LOCK).unlink(missing_ok=True)  # held by this run until it returns
            out.rmdir()


class RayEmbedInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped :func:`embed_with_ray` (its ``__cause__`` is the
    interruption itself, a :class:`exprsim.interrupts.Terminated` for SIGTERM). The shards
    finished before it are kept; a rerun embeds only the others."""

    def __init__(self, out_dir: str, shards_kept: int, shards: int, images_kept: int) -> None:
        super().__init__(f"{shards_kept} of {shards} shards kept in {out_dir}")
        self.out_dir = out_dir
        self.shards_kept = shards_kept
        self.shards = shards
        self.images_kept = images_kept

    @classmethod
    def of(
        cls, out: Path, names: Sequence[str], shards: Sequence[Sequence[str]]
    ) -> RayEmbedInterrupted:
        """What ``out`` holds of the shards ``names`` (inputs ``shards``) now."""
        kept = [len(s) for n, s in zip(names, shards, strict=True) if (out / n).is_file()]
        return cls(str(out), len(kept), len(names), sum(kept))


def _utf8_names(paths: list[str]) -> tuple[list[str], list[str]]:
    """``paths`` split into those that can be embedded and one line per path refused: a
    name that is not valid UTF-8 (its bytes, kept by Python as surrogates, cannot be
    written to Parquet), as ``exprsim index add`` refuses it."""
    from exprsim.index.store import _utf8, not_utf8

    good = [path for path in paths if _utf8(path)]
    refused = [f"{printable(p)}: file name {not_utf8(True)}" for p in paths if not _utf8(p)]
    return good, refused


def _check_before_ray(address: str | None, model: str | Path) -> None:
    """What would fail on every worker, in many lines of Ray's, or make Ray wait without
    end, checked in this process first: Ray installed, its address, the model."""
    from exprsim.models.embedder import load_model

    _ray()
    running = getattr(sys.modules.get("ray"), "is_initialized", lambda: False)()
    if not running:  # else the address is not used
        check_address(address)
    load_model(str(model))  # a damaged checkpoint: its ModelError, in one line


#: the port of a Ray Client server where ``ray://HOST`` names none
RAY_CLIENT_PORT = 10001
#: how long :func:`check_address` waits for a Ray head to answer
CONNECT_TIMEOUT = 5.0


def check_address(address: str | None, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse, at once and in one line, a Ray address that ``ray.init`` would refuse with a
    traceback or wait on for ever: not ``auto``, ``local``, ``HOST:PORT`` or
    ``ray://HOST[:PORT]`` (the scheme in any case); ``ray://`` without Ray Client installed;
    a host where nothing accepts a connection on that port within ``timeout`` seconds, or
    where what answers is not a gRPC server (:func:`_grpc_problem`: a Ray head's GCS and a
    Ray Client server are). ``None`` and ``"auto"`` check ``RAY_ADDRESS`` if set (Ray uses
    it then). Another scheme is left to Ray if it names a Python module (a Ray plug-in's).

    Raises:
        BackendUnavailableError: ``ray://`` without ``ray[client]``.
        ExprsimError: any other address refused.
    """
    import os

    if address is None or address == "auto":
        address = os.environ.get("RAY_ADDRESS") or None
    if address is None or address in ("auto", "local"):
        return
    scheme, sep, rest = address.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        raise ExprsimError(
            f"Ray address {printable(address)!r} is a web address (the dashboard's?): give "
            "the head's HOST:PORT (port 6379) or ray://HOST:10001"
        )
    if sep and scheme.lower() != "ray":
        _require_module(scheme, address)
        return  # a scheme of a Ray plug-in: Ray's to judge
    if sep:
        _require_ray_client(address)
    host, port = _host_port(rest if sep else address, RAY_CLIENT_PORT if sep else None)
    if not host or port is None:
        raise ExprsimError(
            f"Ray address {printable(address)!r} is not auto, local, HOST:PORT or ray://HOST:PORT"
        )
    _require_listening(host, port, address, timeout)


def _host_port(text: str, default_port: int | None) -> tuple[str, int | None]:
    """``("host", port)`` of ``host:port`` or ``[v6]:port`` (``default_port`` when no port
    is given); port ``None`` when it is not a number from 1 to 65535 (or a bare IPv6
    address makes it ambiguous)."""
    text = text.rstrip("/")
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, after = text[1:].partition("]")
        port_text = after.removeprefix(":")
        if after and after == port_text:  # junk after "]"
            return host, None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
        elif ":" in host:  # a bare IPv6 address: where would its port be?
            return text, None
    if not port_text:
        return host, default_port
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
    return host, port if 0 < port < 65536 else None


def _require_module(scheme: str, address: str) -> None:
    """Refuse a scheme that names no Ray plug-in: Ray imports it and wants its
    ``ClientBuilder`` (``Module: X does not exist`` / ``does not have ClientBuilder``, a
    traceback). The module is imported here as Ray would import it."""
    import importlib

    try:
        named = all(part.isidentifier() for part in scheme.split("."))
        found = named and hasattr(importlib.import_module(scheme), "ClientBuilder")
    except Exception:  # a module that cannot be imported is no plug-in
        found = False
    if not found:
        raise ExprsimError(
            f"Ray address {printable(address)!r} is not auto, local, HOST:PORT or "
            f"ray://HOST:PORT (its scheme {printable(scheme)!r} names no Ray plug-in)"
        )


def _ray_address(address: str | None) -> str | None:
    """``address`` as ``ray.init`` takes it: a ``ray://`` scheme written in another case
    (``RAY://``) lower-cased (Ray would import a module ``RAY``)."""
    if address is None:
        return None
    scheme, sep, rest = address.partition("://")
    return f"ray://{rest}" if sep and scheme.lower() == "ray" else address


def _require_ray_client(address: str) -> None:
    """``ray://`` needs Ray Client (``ray[client]``, its ``grpc``): Ray's own test."""
    try:
        import grpc  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Ray address {printable(address)!r} needs Ray Client, which is not installed: "
            "pip install 'ray[client]'"
        ) from exc


def _require_listening(host: str, port: int, address: str, timeout: float) -> None:
    """Refuse an address where nothing accepts a TCP connection, or where what does is not
    a gRPC server (a web server, Redis): ``ray.init`` would retry either without end. With
    ``RAY_USE_TLS`` set the cluster speaks TLS first, and only the connection is tested."""
    import os
    import socket

    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        timed_out = isinstance(exc, TimeoutError)
        why = f"no answer within {timeout:g} s" if timed_out else (exc.strerror or str(exc))
        raise ExprsimError(
            f"no Ray cluster answers at {printable(address)} ({why}): start one there "
            "(ray start --head), or give no address to start a local Ray"
        ) from None
    with sock:
        tls = os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")
        problem = None if tls else _grpc_problem(sock, timeout)
    if problem is not None:
        raise ExprsimError(
            f"nothing at {printable(address)} answers as a Ray cluster ({problem}): give the "
            "port of a head's GCS (ray start --head; 6379 by default) or ray://HOST:10001"
        )


#: what an HTTP/2 (gRPC) client sends first: the connection preface, then its SETTINGS
#: frame (empty: a 9-byte frame header of length 0, type 4, no flags, stream 0)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
#: the type of an HTTP/2 SETTINGS frame: the 4th byte of a frame header
_HTTP2_SETTINGS = 0x04


def _grpc_problem(sock: Any, timeout: float) -> str | None:
    """Why the server on ``sock`` is not a gRPC server, ``None`` if it is: sent an HTTP/2
    client preface, a gRPC server answers with a SETTINGS frame within ``timeout`` seconds;
    an HTTP/1 server, Redis and the like answer otherwise, close, or say nothing."""
    deadline = time.monotonic() + timeout
    head = b""
    try:
        sock.sendall(_HTTP2_PREFACE)
        while len(head) < 9 and not (len(head) > 3 and head[3] != _HTTP2_SETTINGS):
            sock.settimeout(max(deadline - time.monotonic(), 1e-3))
            chunk = sock.recv(64)
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        if not head:
            return f"no answer within {timeout:g} s to a gRPC client"
    except OSError as exc:
        return f"{exc.strerror or exc} when spoken to as a gRPC client"
    if len(head) >= 9 and head[3] == _HTTP2_SETTINGS:
        return None
    if not head:
        return "it closed the connection when spoken to as a gRPC client"
    first = head.splitlines()[0][:40].decode("latin-1")
    return f"it answers '{printable(first)}', not as a gRPC server"


def _work(
    out: Path, names: list[str], shards: list[list[str]], retry_failed: bool
) -> tuple[list[dict[str, Any]], int]:
    """The shards to embed (``name``, ``paths`` as JSON, ``retry``: only the unreadable
    images of a finished shard) and how many of them are retries."""
    import json

    todo: list[dict[str, Any]] = []
    retried = 0
    for n, paths in zip(names, shards, strict=True):
        shard = out / n
        if shard.exists() and not _readable_shard(shard):
            _drop_failed_lists(shard)  # the whole shard is embedded again
            shard.unlink(missing_ok=True)
        if not shard.exists():
            todo.append({"name": n, "paths": json.dumps(paths), "retry": False})
        elif retry_failed and _recorded_failed_list(shard) is not None:
            again = _retry_list(shard)
            todo.append(
                {"name": n, "paths": json.dumps(again or paths), "retry": again is not None}
            )
            retried += 1
    return todo, retried


def _readable_shard(shard: Path) -> bool:
    """Whether the shard's Parquet footer reads (a truncated or empty file does not); a
    damaged shard is reported in one warning line."""
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(shard)
    except (OSError, ValueError) as exc:  # ArrowInvalid (a ValueError): truncated, empty
        # pyarrow says "Couldn't deserialize thrift" of a garbled footer as an OSError
        # without an errno: damage; one with an errno (permission denied, an I/O error of a
        # network disk) is trouble of the moment, and the shard is kept
        if not isinstance(exc, OSError) or exc.errno is None:
            log.warning("embed: %s: damaged shard (%s); embedding it again", shard, exc)
            return False
        raise ExprsimError(
            f"{printable(str(shard))}: cannot be read now ({exc}); it was kept: run the command "
            "again once it reads (a shard deleted as damaged is embedded again from its "
            "photos, which may be gone)"
        ) from exc
    return True


def _stamp(model: str | Path, detector: Any, shard_size: int) -> dict[str, Any]:
    """The folder's stamp: what its shards were embedded with."""
    from exprsim.errors import ModelError
    from exprsim.faces.detect import DEFAULT_DETECTOR
    from exprsim.models.embedder import content_digest, model_identity

    # the default by name is the default: ``None`` and "mediapipe" embed alike
    det = DEFAULT_DETECTOR if detector is None else detector
    det = det if isinstance(det, str) else type(det).__name__
    try:  # weights and settings ("model" digests the weights alone)
        digest: str | None = content_digest(model)
    except ModelError:
        digest = None  # loading it says why
    return {
        "model": model_identity(model), "content": digest, "detector": det,
        "shard_size": shard_size,
    }  # fmt: skip


def _holds_shards(out: Path) -> bool:
    """Whether ``out`` holds a file this engine writes per shard (a shard or its list of
    unreadable images)."""
    return any(_SHARD_FILE.fullmatch(f.name) and f.is_file() for f in out.iterdir())


def _check_stamp(out: Path, stamp: dict[str, Any]) -> None:
    """Refuse a folder whose shards come from another model or detector (before any work);
    otherwise write the run's stamp (``_embed.json``: dataset readers skip ``_`` names)."""
    import json

    path = out / STAMP_NAME
    try:
        old = json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError):
        old = None  # damaged: rewritten below
    if old is None:  # a version that wrote no stamp: the rows name their model
        _check_rows_model(out, stamp)
    if isinstance(old, dict):
        if old.get("detector", "") is None:  # stamped before the default was named
            from exprsim.faces.detect import DEFAULT_DETECTOR

            old["detector"] = DEFAULT_DETECTOR
        for key in ("model", "content", "detector"):  # a stamp without a key: not known
            if old.get(key) is not None and stamp.get(key) is not None and old[key] != stamp[key]:
                raise ExprsimError(
                    f"{out} holds shards embedded with {key} {old[key]}, not {stamp[key]}: "
                    "use a new output folder, or delete it"
                )
    if old != stamp:
        write_json(path, stamp)


def _check_rows_model(out: Path, stamp: dict[str, Any]) -> None:
    """Refuse a folder stamped by no version whose first shard's rows name another model
    than the stamp's (``name@version``): resuming would mix two models' embeddings."""
    import pyarrow.parquet as pq

    shards = sorted(f for f in out.glob("part-*.parquet") if _SHARD_FILE.fullmatch(f.name))
    if not shards:
        return
    try:
        names = set(pq.read_table(shards[0], columns=["model"]).column("model").to_pylist())
    except (OSError, ValueError, KeyError):  # unreadable, or no model column: embedded again
        return
    want = str(stamp["model"]).split(" (weights ")[0]
    other = sorted(str(n) for n in names if n is not None and n != want)
    if other:
        raise ExprsimError(
            f"{printable(str(out))} holds shards embedded with model {other[0]} (written "
            f"by an earlier exprsim, without a stamp), not {want}: use a new output folder, "
            "or delete it"
        )


def _remove_stale_shards(out: Path, names: Sequence[str]) -> None:
    """Remove the shards (and failure lists) of another input list or shard size, so the
    folder holds each face once; only files of this engine's naming are touched."""
    keep = {n.removesuffix(".parquet") for n in names}
    stale = [
        f
        for f in sorted(out.iterdir())
        if (m := _SHARD_FILE.fullmatch(f.name)) and m.group(1) not in keep and f.is_file()
    ]
    for f in stale:
        f.unlink(missing_ok=True)
    if stale:
        n = sum(f.suffix == ".parquet" for f in stale)
        log.warning(
            "embed: removed %d shards (%d files) of another input list or shard size from %s",
            n,
            len(stale),
            out,
        )


def _run_on_ray(
    todo: list[dict[str, str]],
    actor_kwargs: dict[str, Any],
    address: str | None,
    num_workers: int,
    num_cpus: int | None,
    progress: bool,
    errors: list[str],
    held: list[str],
) -> list[int]:
    """Embed the shards ``todo`` on an actor pool; returns images, faces, unreadable (and
    appends the unreadable images' lines to ``errors``, and to ``held`` the signals held
    while Ray stopped). An :class:`ExprsimError` a worker raised comes back as itself, not
    wrapped in Ray's errors (one line for the CLI)."""
    ray = _ray()
    level = _ray_log_level()
    started = not ray.is_initialized()
    data_log = logging.getLogger("ray.data")  # the execution plan, "progress bars disabled"
    data_level = data_log.level
    try:
        if started:
            _start_ray(ray, address, num_cpus, level)
        data_log.setLevel(level)
        return _embed_on_pool(ray, todo, actor_kwargs, num_workers, progress, errors)
    except Exception as exc:
        cause = _exprsim_cause(exc, ray.exceptions.RayError)
        if cause is None:
            raise
        raise cause from None
    finally:
        data_log.setLevel(data_level)
        if started:
            # a cluster of this command's own leaves its session folder (logs, sockets:
            # ~0.3 MB a run) in Ray's temp folder for good; one it joined (an address, or
            # Ray's own finding of RAY_ADDRESS or a `ray start --head` here) is not ours
            session = _session_dir(ray)
            try:  # a host's handler re-raised after the hold (SystemExit) still leaves it clean
                held += _stop_ray(ray).signals
            finally:
                _remove_session(session)


def _start_ray(ray: Any, address: str | None, num_cpus: int | None, level: int) -> None:
    """``ray.init``, keeping exprsim's SIGTERM handler: Ray's makes SIGTERM end the driver
    at once (``sys.exit(15)``, and its C++ core prints a stack dump), where the ``exprsim``
    command keeps and reports the shards done (exit code 143); a SIGTERM while Ray starts
    is :class:`~exprsim.interrupts.Terminated` too. A library caller's own handler is left
    to Ray, as it always was."""
    import signal

    from exprsim.interrupts import Terminated

    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": level,
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus
    before = _sigterm_handler()
    ours = getattr(before, "__module__", None) == "exprsim.interrupts"
    try:
        with _driver_without_failure_handler(ours):
            ray.init(address=_ray_address(address), **kwargs)
    except SystemExit as exc:  # Ray's own handler while it starts: sys.exit(SIGTERM)
        if ours and exc.code == signal.SIGTERM:
            raise Terminated from None
        raise
    finally:
        if ours:
            signal.signal(signal.SIGTERM, before)  # Ray's Python handler replaced


@contextlib.contextmanager
def _driver_without_failure_handler(active: bool) -> Iterator[None]:
    """While ``ray.init`` runs, tell Ray's C++ core not to install its failure-signal
    handler in this driver (``active``; Ray's workers, other processes, keep theirs).
    That handler takes SIGTERM and, worse, ``ray.shutdown`` later resets SIGTERM to the
    default at the kernel while Python still names exprsim's handler: a SIGTERM in the
    last second of the shutdown then killed the command without its summary or its
    "terminated" line. Ray reads the flag from ``ray._private.ray_constants`` when the
    driver's core worker starts; where a Ray version has no such flag nothing changes."""
    constants = sys.modules.get("ray._private.ray_constants")
    flag = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
    if not active or constants is None or not hasattr(constants, flag):
        yield
        return
    before = getattr(constants, flag)
    setattr(constants, flag, True)
    try:
        yield
    finally:
        setattr(constants, flag, before)


def _sigterm_handler() -> Any:
    """The Python handler of SIGTERM, ``None`` where it cannot be read."""
    import signal

    with contextlib.suppress(ValueError, OSError, AttributeError):
        return signal.getsignal(signal.SIGTERM)
    return None


def _session_dir(ray: Any) -> Path | None:
    """The session folder (``<temp>/ray/session_<date>_<pid>``) of the Ray cluster this
    driver started itself (its head node is in this process); ``None`` for a cluster it
    joined, whose folder belongs to a running cluster, or where this Ray version does not
    say."""
    with contextlib.suppress(Exception):  # a private API: any Ray version may lack it
        node = ray._private.worker._global_node
        if getattr(node, "head", False) is not True:
            return None
        folder = Path(node.get_session_dir_path())
        if folder.name.startswith("session_") and folder.is_dir():
            return folder
    return None


def _remove_session(folder: Path | None) -> None:
    """Delete a stopped local session's folder, and Ray's ``session_latest`` link to it."""
    if folder is None:
        return
    import shutil

    latest = folder.parent / "session_latest"
    with contextlib.suppress(OSError):
        if latest.is_symlink() and latest.resolve() == folder.resolve():
            latest.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    if folder.exists():  # a Ray process still writing there: said, not an error
        log.debug("Ray's session folder %s could not be removed whole", folder)


def _stop_ray(ray: Any) -> Held:
    """``ray.shutdown``: a first Ctrl-C or SIGTERM meanwhile is held (and returned), so
    that the local Ray's processes are stopped rather than left behind."""
    from exprsim.interrupts import hold_interrupts

    with hold_interrupts("stopping Ray") as held:
        ray.shutdown()
    return held


def _embed_on_pool(
    ray: Any,
    todo: list[dict[str, str]],
    actor_kwargs: dict[str, Any],
    num_workers: int,
    progress: bool,
    errors: list[str],
) -> list[int]:
    """Run the shards ``todo`` through ``map_batches`` over an actor pool (Ray is up)."""
    import json

    counts = [0, 0, 0]
    ray.data.DataContext.get_current().enable_progress_bars = False
    ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
        _EmbedShards,
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=max(1, min(num_workers, len(todo)))),
        num_cpus=1,
        fn_constructor_kwargs=actor_kwargs,
    )
    with progress_bar(enabled=progress, total=len(todo), desc="embed (ray)", unit="shard") as bar:
        for row in ds.iter_rows():
            if row["fatal"]:  # the other shards done stay; the rest are not worth trying
                _raise_fatal(str(row["fatal"]))
            for i, key in enumerate(("images", "faces", "failed")):
                counts[i] += int(row[key])
            errors.extend(json.loads(str(row["errors"])))
            bar.update(1)
    return counts


def _exprsim_cause(exc: BaseException, wrapper: type) -> ExprsimError | None:
    """The :class:`ExprsimError` a Ray worker raised, found inside the errors Ray wraps it
    in (``RayTaskError.cause``, chained exceptions; ``wrapper``: Ray's error class, whose
    subclasses may pose as the cause's class); ``None`` if there is none."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue:
        e = queue.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ExprsimError) and not isinstance(e, wrapper):
            return e
        linked = (getattr(e, "cause", None), e.__cause__, e.__context__)
        queue += [c for c in linked if isinstance(c, BaseException)]
    return None


def _ray_log_level() -> int:
    """Ray's log level: its INFO and WARNING lines (start-up, execution plan) when this
    module logs debug messages (``exprsim -v``), else errors only."""
    return logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.ERROR
