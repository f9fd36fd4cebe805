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
the cluster of this machine, ``"ray://host:10001"`` a remote one.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exprsim.errors import BackendUnavailableError, ExprsimError, ImageError
from exprsim.io import replace_atomically, write_json
from exprsim.progress import progress_bar

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
    text file (one per line)."""
    import pandas as pd

    if path.suffix.lower() == ".txt":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
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
            ``uri`` or ``file``, else the first) or ``.txt`` (one per line). fsspec URIs
            (``s3://...``) are kept as they are and read by the workers.
    """
    from exprsim.io import iter_image_files

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
        elif any(ch in s for ch in "*?["):
            out.extend(sorted(glob.glob(s, recursive=True)))
        else:
            out.append(s)
    return sorted(dict.fromkeys(out))


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
        errors: if given, one ``"<path>: <reason>"`` line is appended per unreadable image.
        failed_paths: if given, the path of every unreadable image is appended.

    Returns:
        The rows (one per face) and the number of images that could not be read.
    """
    import dataclasses

    from exprsim.apps.embed import embedding_row, file_identity
    from exprsim.io import decode_image

    model = embedder.config.name_version
    rows: list[dict[str, Any]] = []
    failed = 0
    for path in paths:
        s = str(path)
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
                faces = embedder.embed_images([path], detector=detector)
        except (ImageError, OSError) as exc:
            failed += 1
            log.warning("embed: %s: %s", s, exc)
            if errors is not None:
                errors.append(f"{s}: {exc}" if s not in str(exc) else str(exc))
            if failed_paths is not None:
                failed_paths.append(s)
            continue
        identity = file_identity(s) if faces else {}
        rows.extend(embedding_row(f, model, identity) for f in faces)
    return rows, failed


def shard_name(index: int, paths: Sequence[str]) -> str:
    """``part-NNNNN-<digest>.parquet``: the digest names the shard's inputs, so a changed
    input list never passes for a finished shard."""
    digest = hashlib.sha1("\n".join(paths).encode()).hexdigest()[:12]
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
    """A Ray actor: loads the model once, then embeds and writes whole shards."""

    def __init__(self, model: str, detector: Any, out_dir: str, device: str) -> None:
        from exprsim.models.embedder import load_model

        self.embedder = load_model(model, device=device)
        self.detector = detector
        self.out_dir = Path(out_dir)
        self.columns = shard_columns(self.embedder.embedding_dim)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import json

        out: dict[str, list[Any]] = {
            "name": [],
            "images": [],
            "faces": [],
            "failed": [],
            "errors": [],
        }
        for name, paths_json, retry in zip(
            batch["name"], batch["paths"], batch["retry"], strict=True
        ):
            paths = json.loads(str(paths_json))
            errors: list[str] = []
            bad: list[str] = []
            rows, failed = embed_rows(self.embedder, paths, self.detector, errors, bad)
            shard = self.out_dir / str(name)
            if retry:  # paths: the shard's unreadable images; its other rows stay
                _merge_retry(shard, set(paths), rows, bad, self.columns)
            else:
                if bad:
                    _write_failed_list(shard, bad)
                write_shard(rows, shard, self.columns)
                if not bad:
                    _drop_failed_lists(shard)
            for key, value in (("name", name), ("images", len(paths))):
                out[key].append(value)
            out["faces"].append(len(rows))
            out["failed"].append(failed)
            out["errors"].append(json.dumps(errors))
        return out


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

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        retried = f" ({self.shards_retried} to retry unreadable images)" * bool(self.shards_retried)
        return (
            f"{self.shards - self.shards_skipped} shards embedded{retried}, "
            f"{self.shards_skipped} already done; {self.faces} faces from {self.images} images "
            f"({self.failed} unreadable) in {self.seconds:.1f} s -> {self.out_dir}"
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
        address: ``None`` (start a local Ray), ``"auto"`` or ``"ray://host:port"``.
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
        A :class:`RayEmbedReport` (images/faces count the shards embedded by this run).

    Raises:
        BackendUnavailableError: Ray is not installed (checked before anything is written).
        ExprsimError: no inputs, or ``out_dir`` holds shards of another model or detector.
    """

    paths = list_inputs(inputs)
    if not paths:
        raise ExprsimError(f"no images found in {inputs}")
    _ray()  # installed? before the output folder is made
    stamp = _stamp(model, detector, shard_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards = [paths[i : i + shard_size] for i in range(0, len(paths), shard_size)]
    names = [shard_name(i, s) for i, s in enumerate(shards)]
    if _holds_shards(out):
        _check_stamp(out, stamp)
    else:  # the stamp of a run that failed before its first shard stamps nothing
        write_json(out / STAMP_NAME, stamp)

    todo, retried = _work(out, names, shards, retry_failed)
    t0 = time.perf_counter()
    counts = [0, 0, 0]
    errors: list[str] = []
    if todo:
        actor_kwargs = {
            "model": str(model),
            "detector": detector,
            "out_dir": str(out.resolve()),
            "device": device,
        }
        counts = _run_on_ray(todo, actor_kwargs, address, num_workers, num_cpus, progress, errors)
    _remove_stale_shards(out, names)
    images, faces, failed = counts
    return RayEmbedReport(
        str(out),
        len(shards),
        len(shards) - len(todo),
        images,
        faces,
        failed,
        time.perf_counter() - t0,
        tuple(errors),
        retried,
        len(paths),
    )


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
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        log.warning("embed: %s: damaged shard (%s); embedding it again", shard, exc)
        return False
    return True


def _stamp(model: str | Path, detector: Any, shard_size: int) -> dict[str, Any]:
    """The folder's stamp: what its shards were embedded with."""
    from exprsim.faces.detect import DEFAULT_DETECTOR
    from exprsim.models.embedder import model_identity

    # the default by name is the default: ``None`` and "mediapipe" embed alike
    det = DEFAULT_DETECTOR if detector is None else detector
    det = det if isinstance(det, str) else type(det).__name__

    return {"model": model_identity(model), "detector": det, "shard_size": shard_size}


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
    if isinstance(old, dict):
        if old.get("detector", "") is None:  # stamped before the default was named
            from exprsim.faces.detect import DEFAULT_DETECTOR

            old["detector"] = DEFAULT_DETECTOR
        for key in ("model", "detector"):
            if key in old and old[key] != stamp[key]:
                raise ExprsimError(
                    f"{out} holds shards embedded with {key} {old[key]}, not {stamp[key]}: "
                    "use a new output folder, or delete it"
                )
    if old != stamp:
        write_json(path, stamp)


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
) -> list[int]:
    """Embed the shards ``todo`` on an actor pool; returns images, faces, unreadable (and
    appends the unreadable images' lines to ``errors``)."""
    import json

    ray = _ray()
    level = _ray_log_level()
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": level,
        }
        if address is None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
    counts = [0, 0, 0]
    data_log = logging.getLogger("ray.data")  # the execution plan, "progress bars disabled"
    data_level = data_log.level
    data_log.setLevel(level)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            _EmbedShards,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(num_workers, len(todo)))),
            num_cpus=1,
            fn_constructor_kwargs=actor_kwargs,
        )
        with progress_bar(
            enabled=progress, total=len(todo), desc="embed (ray)", unit="shard"
        ) as bar:
            for row in ds.iter_rows():
                for i, key in enumerate(("images", "faces", "failed")):
                    counts[i] += int(row[key])
                errors.extend(json.loads(str(row["errors"])))
                bar.update(1)
    finally:
        data_log.setLevel(data_level)
        if started:
            ray.shutdown()
    return counts


def _ray_log_level() -> int:
    """Ray's log level: its INFO and WARNING lines (start-up, execution plan) when this
    module logs debug messages (``exprsim -v``), else errors only."""
    return logging.INFO if log.isEnabledFor(logging.DEBUG) else logging.ERROR
