"""Aligned face crops for the FEC triplets, stored in memory-mappable shards.

For every unique face (image URL + box) of the given FEC CSVs whose image was fetched:

1. the box (fractions of the image size, see :mod:`exprsim.data.fec`) is enlarged by
   ``margin`` x its width/height on every side and cut out;
2. faces are detected in that region with exprsim's detector
   (:func:`exprsim.faces.detect.create_detector`); the detection with the highest IoU with
   the FEC box (at least ``min_iou``) gives the 5 landmarks (method ``"detected"``);
3. **fallback** (method ``"box"``, counted in the report): when nothing is detected there,
   or ``detector="none"``, the 5 landmarks are placed at fixed fractions
   (:data:`FEC_BOX_LAYOUT`, ``CropConfig.box_layout``) of the square box centred on the FEC
   box with side ``max(w, h)`` (:func:`exprsim.faces.detect.landmarks_from_box`) -- the
   face is aligned by its box alone. The layout is approximate: FEC's boxes come from
   Google's own detector, whose box convention is not published; :data:`FEC_BOX_LAYOUT`
   was measured on MediaPipe (also Google's) boxes. Check ``n_box_fallback`` in the report;
   a high share means many faces are framed by this approximation;
4. the face is aligned on the *full* image with :func:`exprsim.faces.align.align_face`
   and :class:`~exprsim.faces.align.AlignConfig` ``(size=S)``: exprsim's canonical template,
   the framing :meth:`exprsim.models.embedder.Embedder.embed_images` uses at inference
   (so a model trained on these crops sees user photos framed the same way; the papers'
   55 px / 70 px inter-ocular framings are not used).

**Layout** of the crops folder (default ``FETCH_DIR/crops``)::

    shard-00000.npy ...   uint8 (n, S, S, 3) RGB crops (np.load(..., mmap_mode="r"))
    index.sqlite          faces(key, url, left, right, top, bottom, shard, offset, method,
                          score, error), shards(id, file, count), meta(key, value)
    .lock                 held (flock) by the run writing the store: a second is refused

A face's key is :func:`face_key` (URL + box rounded to 6 decimals). Shards are written
atomically and indexed in the same transaction; an interrupted run loses at most the
unflushed faces of its last shard, and a re-run crops only faces not yet indexed. A re-run
also crops again the faces of a shard file that is missing or damaged; reading such a store
(:class:`CropStore`) raises :class:`~exprsim.errors.DataError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import DataError, ExprsimError, printable
from exprsim.faces.detect import DEFAULT_DETECTOR
from exprsim.io import write_json

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite"
CROPS_DIR = "crops"
METHODS = ("detected", "box")
#: largest :attr:`CropConfig.margin` (box sizes of context on every side); the region is
#: clipped to the image, so at this margin a face wider than 1/21 of the image gets it whole
MAX_MARGIN = 10.0
#: :attr:`CropConfig.size` range: the FEC configs train on 112 px (at 1024 px a shard of
#: 4096 crops was 13 GB, held twice in memory while it was written)
MIN_SIZE, MAX_SIZE = 16, 512
#: a shard is written once its crops reach this many bytes, even below ``shard_size``
MAX_SHARD_BYTES = 512 * 1024 * 1024
#: the lock file of a crops folder
LOCK_NAME = ".lock"

#: most crop processes a :class:`CropConfig` starts
MAX_CROP_WORKERS = 64

#: 5-point layout (``LANDMARK_NAMES`` order) as fractions of the square box on an FEC box's
#: centre, side ``max(w, h)``. Measured with ``create_detector("mediapipe")`` (face-mesh
#: landmarks then; ``mediapipe-mesh`` now) on the nine bundled sample photos: mean landmark
#: position relative to the square around each detected box, averaged with its mirror image
#: (per-point std 0.04-0.09 of the side; the default's mesh-lite points differ from the
#: mesh's by a median 0.035 eye distances, about 0.015 of the side).
FEC_BOX_LAYOUT: tuple[tuple[float, float], ...] = (
    (0.284, 0.226),
    (0.716, 0.226),
    (0.500, 0.469),
    (0.309, 0.657),
    (0.691, 0.657),
)


@dataclass(frozen=True)
class CropConfig:
    """How faces are cut and aligned.

    Attributes:
        size: side ``S`` of the aligned crops, ``MIN_SIZE`` to ``MAX_SIZE`` (the
            registered FEC models take 112).
        margin: context added around the FEC box on every side before detection, as a
            fraction of the box width/height.
        detector: detector registry name, or ``"none"`` to align every face by its box.
        min_iou: minimum IoU between a detection and the FEC box.
        shard_size: crops per shard file (fewer when they would pass ``MAX_SHARD_BYTES``).
        workers: processes (each with its own detector); 1 = in this process.
        box_layout: fallback landmark layout in the square box (:data:`FEC_BOX_LAYOUT`).

    Raises:
        ValueError: a size or count below its minimum, ``margin`` not a finite number in
            ``[0, MAX_MARGIN]`` or ``min_iou`` not one in ``[0, 1]`` (NaN included).
    """

    size: int = 112
    margin: float = 0.5
    detector: str = DEFAULT_DETECTOR
    min_iou: float = 0.3
    shard_size: int = 4096
    workers: int = 1
    box_layout: tuple[tuple[float, float], ...] = FEC_BOX_LAYOUT

    def __post_init__(self) -> None:
        from exprsim.errors import ArgumentError, require_int

        for name in ("size", "shard_size", "workers"):  # 112.5 px failed on every face
            require_int(getattr(self, name), name, 1, ArgumentError)
        if self.workers > MAX_CROP_WORKERS:  # one process each
            raise ArgumentError(
                f"workers must be at most {MAX_CROP_WORKERS} processes, got {self.workers}"
            )
        try:
            layout = np.asarray(self.box_layout, np.float64)
        except (TypeError, ValueError):
            layout = np.zeros(0)
        if layout.shape != (5, 2) or not np.isfinite(layout).all():
            raise ArgumentError(
                "box_layout must be the 5 landmarks (x, y) of a face in its box's unit square, "
                f"got {self.box_layout!r}"
            )
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ArgumentError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}] pixels, got {self.size}")
        # `not lo <= x <= hi` also refuses NaN, for which every comparison is false
        if not 0 <= self.margin <= MAX_MARGIN:
            raise ArgumentError(f"margin must be in [0, {MAX_MARGIN:g}], got {self.margin}")
        if not 0 <= self.min_iou <= 1:
            raise ArgumentError(f"min_iou must be in [0, 1], got {self.min_iou}")
        if self.shard_size < 1 or self.workers < 1:
            raise ArgumentError("shard_size and workers must be >= 1")


@dataclass(frozen=True)
class CropReport:
    """What :func:`build_crops` did.

    Attributes:
        out_dir: the crops folder.
        n_faces: unique faces in the CSVs.
        n_indexed: faces with a crop in the store (all runs).
        n_new: crops written by this run.
        n_detected / n_box_fallback: of the new crops, how they were aligned.
        n_no_image: faces whose image is not available (not fetched / failed).
        n_failed: faces whose image could not be read or cropped (see ``errors``).
        n_skipped: faces already cropped before this run (failed ones are tried again).
        seconds: wall time.
    """

    out_dir: str
    n_faces: int
    n_indexed: int
    n_new: int
    n_detected: int
    n_box_fallback: int
    n_no_image: int
    n_failed: int
    n_skipped: int
    errors: dict[str, int]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        new = max(self.n_new, 1)
        return (
            f"crops: {self.n_indexed}/{self.n_faces} faces in {printable(self.out_dir)}; "
            f"this run {self.n_new} new "
            f"({self.n_detected} detected, {self.n_box_fallback} box fallback = "
            f"{self.n_box_fallback / new:.1%}), {self.n_skipped} already there, "
            f"{self.n_no_image} without image, {self.n_failed} failed, {self.seconds:.1f} s"
        )

    def __str__(self) -> str:
        return self.to_text()


def face_key(url: str, box: Sequence[float]) -> str:
    """Store key of a face: URL + box ``(left, right, top, bottom)`` rounded to 6 decimals."""
    return url + "|" + ",".join(f"{float(v):.6f}" for v in box)


def resolve_crops_dir(path: str | Path, source: str | None = None) -> Path:
    """A crops folder, or a fetch folder holding ``crops/`` (either may be given).

    Args:
        path: the folder.
        source: where ``path`` came from, named in the error line after it (e.g.
            ``"crops_dir of runs/x/train_config.json"``).

    Raises:
        DataError: no such folder (a relative path says the working folder it was looked
            up in), a file, or a folder without crops.
    """
    p = Path(path)
    if (p / INDEX_NAME).is_file():
        return p
    if (p / CROPS_DIR / INDEX_NAME).is_file():
        return p / CROPS_DIR
    raise DataError(_no_crops_line(p, source))


def _from_working_folder(p: Path) -> str:
    """`` (relative to the working folder W)`` for a relative path, else nothing."""
    try:
        return "" if p.is_absolute() else f" (relative to the working folder {Path.cwd()})"
    except OSError:  # the working folder was deleted
        return " (relative to the working folder, which no longer exists)"


def _no_crops_line(p: Path, source: str | None) -> str:
    """Why ``p`` is no crops folder, in one line (``source``: where ``p`` came from)."""
    name = printable(str(p))
    given = f"{name} ({source})" if source else name
    if p.is_symlink() and not p.exists():
        return f"{given}: a symbolic link to nothing{_from_working_folder(p)}"
    if not p.exists():
        return (
            f"{given}: no such folder{_from_working_folder(p)}; give the folder of "
            "`exprsim fec crop --out`, or the fetch folder holding crops/"
        )
    if not p.is_dir():
        return f"{given}: a file, not a crops folder (the folder of `exprsim fec crop --out`)"
    return f"{given}: no FEC crops here (no {INDEX_NAME}; run `exprsim fec crop` first)"


def _read_index(index: Path, query: str) -> list[Any]:
    """Rows of ``query`` on the crop index ``index``, opened read-only (nothing created).

    Raises:
        DataError: the index cannot be read (named in one line).
    """
    with _index_errors(index):
        conn = sqlite3.connect(f"{index.absolute().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            return conn.execute(query).fetchall()
        finally:
            conn.close()


def store_settings(path: str | Path, source: str | None = None) -> dict[str, Any]:
    """The crop settings recorded in a crops folder (:class:`CropConfig` as a dict, tuples as
    lists; ``{}`` for a store that records none), without opening its shards.

    Args:
        path: a crops folder or a fetch folder holding ``crops/``.
        source: where ``path`` came from, named in an error line.

    Raises:
        DataError: no crops there, or a damaged index.
    """
    folder = resolve_crops_dir(path, source)
    meta = dict(_read_index(folder / INDEX_NAME, "SELECT key, value FROM meta"))
    return _stored_config(meta, folder)


def count_crops(path: str | Path) -> int | None:
    """Crops indexed in a crops folder (or a fetch folder holding ``crops/``): what an
    interrupted run kept; ``None`` when there is no store or it cannot be read."""
    try:
        folder = resolve_crops_dir(path)
        rows = _read_index(folder / INDEX_NAME, "SELECT COUNT(*) FROM faces WHERE shard >= 0")
    except DataError:
        return None
    return int(rows[0][0])


# --------------------------------------------------------------------------- one face


def crop_face(
    image: np.ndarray, box: Sequence[float], detector: Any, config: CropConfig
) -> tuple[np.ndarray, str, float]:
    """Align one FEC face.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, the whole fetched image.
        box: ``(left, right, top, bottom)`` fractions (the CSV order).
        detector: a detector instance, or ``None`` for box-only alignment.
        config: margin, size, IoU threshold.

    Returns:
        ``(crop, method, score)``: ``(S, S, 3)`` uint8, ``"detected"`` or ``"box"``, and the
        detection score (0 for the box fallback).
    """
    from exprsim.faces.align import AlignConfig, align_face
    from exprsim.faces.detect import box_iou, landmarks_from_box

    h, w = image.shape[:2]
    left, right, top, bottom = (float(v) for v in box)
    x1, x2, y1, y2 = left * w, right * w, top * h, bottom * h
    bw, bh = x2 - x1, y2 - y1
    if bw < 1 or bh < 1:
        raise ExprsimError(f"box {box} is smaller than a pixel in a {w}x{h} image")
    align = AlignConfig(size=config.size)
    if detector is not None:
        m = config.margin
        cx1, cy1 = max(0, math.floor(x1 - m * bw)), max(0, math.floor(y1 - m * bh))
        cx2, cy2 = min(w, math.ceil(x2 + m * bw)), min(h, math.ceil(y2 + m * bh))
        region = image[cy1:cy2, cx1:cx2]
        target = (x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1)
        best, best_iou = None, config.min_iou
        for f in detector.detect(region):
            iou = float(box_iou(f.box, np.asarray(target))[0, 0])
            if iou >= best_iou:
                best, best_iou = f, iou
        if best is not None:
            lm = np.asarray(best.landmarks, np.float64) + np.array([cx1, cy1], np.float64)
            return align_face(image, lm, align), "detected", float(best.score)
    side = max(bw, bh)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    square = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    layout = np.asarray(config.box_layout, np.float64).reshape(5, 2)
    return align_face(image, landmarks_from_box(square, layout), align), "box", 0.0


# --------------------------------------------------------------------------- store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS faces (
    key TEXT PRIMARY KEY, url TEXT NOT NULL,
    left REAL, right REAL, top REAL, bottom REAL,
    shard INTEGER NOT NULL, offset INTEGER NOT NULL,
    method TEXT NOT NULL, score REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS shards (id INTEGER PRIMARY KEY, file TEXT NOT NULL, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


#: what an error line on a damaged crop store suggests
_STORE_HINT = "delete the crops folder and run `exprsim fec crop` again, or crop into a new --out"
#: what an error line on a damaged shard suggests (build_crops re-crops such shards)
_SHARD_HINT = "run `exprsim fec crop` on this fetch folder again: it crops those faces again"


def _index_errors(path: Path) -> AbstractContextManager[None]:
    """SQLite errors on the crop index ``path`` as one :class:`DataError` line naming it."""
    from exprsim.fec.fetch import database_errors

    return database_errors(path, "FEC crop index", _STORE_HINT)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0)
    try:
        with _index_errors(path):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            conn.commit()
    except DataError:
        conn.close()
        raise
    return conn


def _stored_config(meta: dict[str, Any], where: Path) -> dict[str, Any]:
    """The crop settings recorded in a store's ``meta`` table (``{}`` when none).

    Raises:
        DataError: they are not a JSON object (a damaged store).
    """
    try:
        cfg = json.loads(meta.get("config") or "{}")
    except (TypeError, ValueError, RecursionError):
        cfg = None
    if not isinstance(cfg, dict):
        raise DataError(
            f"{where}: damaged crop store (its recorded crop settings are not a JSON object); "
            + _STORE_HINT
        )
    return cfg


def _shard_problem(path: Path, count: int, size: int) -> str | None:
    """Why the shard file ``path`` does not hold its ``count`` uint8 crops of ``size`` px
    (missing, not a ``.npy`` file, another shape, truncated), or ``None`` when it does.

    Reads the ``.npy`` header and the file size only.

    Raises:
        OSError: the file exists but cannot be read (permissions, I/O): not a reason to
            crop its faces again.
    """
    fmt = np.lib.format
    try:
        want = (int(count), int(size), int(size), 3)
    except (TypeError, ValueError):
        return f"recorded crop count {count!r} is not a number"
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                return f"not a NumPy array file of a known version ({version})"
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(fh)
            start = fh.tell()
        n_bytes = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except (ValueError, EOFError) as exc:
        return f"not a NumPy array file ({exc})"
    if tuple(shape) != want or dtype != np.uint8:
        return f"holds {dtype} {tuple(shape)}, expected uint8 {want}"
    need = start + int(np.prod(want))
    if n_bytes < need:
        return f"truncated ({n_bytes} of {need} bytes)"
    return None


class CropStore:
    """Read access to a crops folder: look faces up by key, gather crops by row.

    Global rows number the crops of all shards in shard order (``shard`` start + offset).

    Args:
        path: a crops folder or a fetch folder holding ``crops/``.
        source: where ``path`` came from (e.g. ``"crops_dir of CONFIG"``), named when
            there are no crops there.
    """

    def __init__(self, path: str | Path, source: str | None = None) -> None:
        self.dir = resolve_crops_dir(path, source)
        index = self.dir / INDEX_NAME
        conn = sqlite3.connect(str(index), timeout=30.0)
        try:
            with _index_errors(index):
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                shards = conn.execute("SELECT id, file, count FROM shards ORDER BY id").fetchall()
                faces = conn.execute(
                    "SELECT key, shard, offset, method FROM faces WHERE shard >= 0"
                ).fetchall()
        finally:
            conn.close()
        self.config = _stored_config(meta, self.dir)
        self.size = self._checked_size(bool(shards))
        self._files = [self.dir / f for _, f, _ in shards]
        for file, (_, _, count) in zip(self._files, shards, strict=True):
            problem = _shard_problem(file, count, self.size)
            if problem:  # found now, not as a traceback in the middle of training
                raise DataError(f"{file}: crop shard {problem}; {_SHARD_HINT}")
        ids = [i for i, _, _ in shards]
        counts = np.array([c for _, _, c in shards], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pos = {sid: k for k, sid in enumerate(ids)}
        self._row: dict[str, int] = {}
        self.methods: dict[str, str] = {}
        for key, shard, offset, method in faces:
            k = pos.get(int(shard))
            if k is None:
                continue
            self._row[key] = int(self._starts[k] + offset)
            self.methods[key] = method
        self._maps: dict[int, np.ndarray] = {}

    def _checked_size(self, has_shards: bool) -> int:
        """The crop side recorded in :attr:`config` (0 for a store without crops)."""
        size = self.config.get("size", 0)
        if isinstance(size, bool) or not isinstance(size, int) or (has_shards and size < 8):
            raise DataError(
                f"{self.dir}: damaged crop store (recorded crop size {size!r}); {_STORE_HINT}"
            )
        return size

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __contains__(self, key: object) -> bool:
        return key in self._row

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """``(N,)`` int64 global rows of face keys; ``-1`` where a face has no crop."""
        return np.array([self._row.get(k, -1) for k in keys], np.int64)

    def _shard(self, k: int) -> np.ndarray:
        arr = self._maps.get(k)
        if arr is None:
            file = self._files[k]
            try:
                arr = np.load(file, mmap_mode="r")
            except (ValueError, EOFError, OSError) as exc:  # changed since it was opened
                raise DataError(
                    f"{file}: cannot read this crop shard ({exc}); {_SHARD_HINT}"
                ) from exc
            want = (int(self._starts[k + 1] - self._starts[k]), self.size, self.size, 3)
            if arr.shape != want or arr.dtype != np.uint8:
                raise DataError(
                    f"{file}: crop shard holds {arr.dtype} {arr.shape}, expected uint8 {want}; "
                    + _SHARD_HINT
                )
            self._maps[k] = arr
        return arr

    def get(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """Crops of global rows: ``(N,)`` -> ``(N, S, S, 3)`` uint8 (a copy)."""
        r = np.asarray(rows, np.int64).reshape(-1)
        if r.size and (r.min() < 0 or r.max() >= len(self)):
            raise IndexError("crop row out of range")
        out = np.empty((len(r), self.size, self.size, 3), np.uint8)
        shard = np.searchsorted(self._starts, r, side="right") - 1
        for k in np.unique(shard):
            m = shard == k
            out[m] = self._shard(int(k))[r[m] - self._starts[k]]
        return out

    def get_keys(self, keys: Sequence[str]) -> np.ndarray:
        """Crops of face keys (all must be present): ``(N, S, S, 3)`` uint8."""
        rows = self.rows(keys)
        if (rows < 0).any():
            missing = [k for k, r in zip(keys, rows, strict=True) if r < 0][:3]
            raise DataError(f"no crop for {len(missing)} face(s), e.g. {missing}")
        return self.get(rows)


# --------------------------------------------------------------------------- building


def _init_worker(detector_name: str) -> None:
    global _WORKER_DETECTOR
    from exprsim.workers import init_worker

    init_worker()  # Ctrl-C ignored (the parent stops the pool), ends with its parent
    _WORKER_DETECTOR = _make_detector(detector_name)


_WORKER_DETECTOR: Any = None


def _make_detector(name: str) -> Any:
    if name == "none":
        return None
    from exprsim.faces.detect import create_detector

    return create_detector(name)


def check_detector_name(name: str) -> None:
    """Fail now, before any download or crop, unless ``name`` is ``"none"`` or a detector
    that can run here.

    Raises:
        ExprsimError: unknown name; :class:`~exprsim.errors.BackendUnavailableError`: its
            libraries or model files are missing.
    """
    if name != "none":
        from exprsim.faces.detect import check_detector

        check_detector(name)


def _process_image(
    path: str, faces: list[tuple[str, tuple[float, ...]]], config: CropConfig, detector: Any
) -> list[tuple[str, str, tuple[float, ...], np.ndarray | None, str, float, str | None]]:
    """Crop every face of one image: ``(key, url, box, crop | None, method, score, error)``."""
    from exprsim.io import load_image

    out: list[tuple[str, str, tuple[float, ...], np.ndarray | None, str, float, str | None]] = []
    try:
        image = load_image(path)
    except ExprsimError as exc:
        return [(face_key(u, b), u, b, None, "failed", 0.0, str(exc)[:300]) for u, b in faces]
    for u, b in faces:
        try:
            crop, method, score = crop_face(image, b, detector, config)
            out.append((face_key(u, b), u, b, crop, method, score, None))
        except (ExprsimError, ValueError) as exc:
            out.append((face_key(u, b), u, b, None, "failed", 0.0, str(exc)[:300]))
    return out


def _worker_job(
    jobs: list[tuple[str, list[tuple[str, tuple[float, ...]]]]], config: CropConfig
) -> list[Any]:
    res = []
    for path, faces in jobs:
        res.extend(_process_image(path, faces, config, _WORKER_DETECTOR))
    return res


def _write_npy_atomic(path: Path, arr: np.ndarray) -> None:
    """Write ``arr`` as ``path`` whole or not at all; a short write (numpy's "N requested
    and M written", no errno: a full disk) is said as such."""
    from exprsim.io import write_atomically

    try:
        # ".part": what a crashed run leaves is cleaned up on the next (``.*.part``)
        write_atomically(path, lambda fh: np.save(fh, arr), suffix=".part")
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise OSError(
            errno.EIO, f"cut short, is the disk full? ({exc.strerror or exc})", str(path)
        ) from exc


class _ShardWriter:
    def __init__(self, out: Path, conn: sqlite3.Connection, config: CropConfig) -> None:
        self.out, self.conn, self.config = out, conn, config
        row = conn.execute("SELECT MAX(id) FROM shards").fetchone()
        self.next_id = 0 if row[0] is None else int(row[0]) + 1
        self.crops: list[np.ndarray] = []
        self.rows: list[tuple[Any, ...]] = []
        self.failed: list[tuple[Any, ...]] = []

    def add(
        self, item: tuple[str, str, tuple[float, ...], np.ndarray | None, str, float, str | None]
    ) -> None:
        key, url, box, crop, method, score, err = item
        if crop is None:
            self.failed.append((key, url, *box, -1, -1, method, score, err))
        else:
            self.rows.append((key, url, *box, self.next_id, len(self.crops), method, score, None))
            self.crops.append(crop)
        size = self.config.size
        n = len(self.crops)
        if n >= self.config.shard_size or n * size * size * 3 >= MAX_SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        with self.conn:
            if self.crops:
                name = f"shard-{self.next_id:05d}.npy"
                _write_npy_atomic(self.out / name, np.stack(self.crops).astype(np.uint8))
                self.conn.execute(
                    "INSERT OR REPLACE INTO shards (id, file, count) VALUES (?, ?, ?)",
                    (self.next_id, name, len(self.crops)),
                )
                self.conn.executemany(
                    "INSERT OR REPLACE INTO faces VALUES (?,?,?,?,?,?,?,?,?,?,?)", self.rows
                )
                self.next_id += 1
            if self.failed:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO faces VALUES (?,?,?,?,?,?,?,?,?,?,?)", self.failed
                )
        self.crops, self.rows, self.failed = [], [], []


def build_crops(
    csv_paths: str | Path | Sequence[str | Path],
    fetch_dir: str | Path,
    out_dir: str | Path | None = None,
    config: CropConfig | None = None,
    progress: bool = True,
) -> CropReport:
    """Crop and align every fetched face of FEC CSVs into shards (resumable).

    A run also repairs the store: a shard file that is missing or damaged (truncated,
    another shape) is forgotten with a warning naming it, and its faces are cropped again.

    Args:
        csv_paths: FEC CSV(s), as given to :func:`exprsim.fec.fetch.fetch_fec`.
        fetch_dir: the fetch folder (its ``manifest.sqlite`` maps URLs to files).
        out_dir: the crops folder (default ``fetch_dir/crops``).
        config: size, margin, detector, shard size, worker processes.
        progress: show a tqdm bar.

    Returns:
        A :class:`CropReport` (also written to ``OUT/crop_report.json``).

    Raises:
        DataError: no manifest in ``fetch_dir``, a folder given is a file, the store was
            built with another size, its index or manifest is damaged, or another run is
            writing this crops folder.
        ExprsimError: unknown detector, or ``workers > 1`` asked by a worker process that
            is still starting (a script without an ``if __name__ == "__main__":`` guard),
            or a worker process died.
        BackendUnavailableError: the detector cannot run here.
    """
    from exprsim.fec.fetch import MANIFEST_NAME, require_folder
    from exprsim.workers import refuse_in_starting_worker

    cfg = config or CropConfig()
    if cfg.workers > 1:  # its workers would start more workers, each running the script
        refuse_in_starting_worker(f"build_crops(workers={cfg.workers})")
    check_detector_name(cfg.detector)
    fdir = require_folder(fetch_dir, "a fetch folder (from `exprsim fec fetch --out`)")
    if not (fdir / MANIFEST_NAME).is_file():
        raise DataError(f"{fdir}: no {MANIFEST_NAME} (run `exprsim fec fetch` first)")
    out = fdir / CROPS_DIR if out_dir is None else Path(out_dir)
    require_folder(out, "a crops folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    paths = [csv_paths] if isinstance(csv_paths, str | Path) else list(csv_paths)
    with _store_lock(out):
        report = _build_crops(paths, fdir, out, cfg, progress)
        if made and report.n_faces == 0:  # a CSV without a valid triplet: no empty store
            shutil.rmtree(out, ignore_errors=True)
    return report


class StoreBusyError(DataError):
    """Another run is writing to the crops folder ``folder`` (it holds its lock); the line
    ends with ``advice``; ``holder`` names the other run (:func:`~exprsim.lockholder.lock_holder`)."""

    def __init__(self, folder: Path, advice: str, holder: str = "") -> None:
        super().__init__(
            f"{printable(str(folder))}: another `exprsim fec crop`{holder} is writing to this "
            f"crops folder; {advice}"
        )
        self.folder, self.holder = folder, holder


#: what the line of a busy crops folder advises, by command
BUSY_ADVICE = {
    "crop": "wait for it to end, or crop into another --out",
    "fetch": "wait for it to end, or fetch without --crop and crop into another folder "
    "with `exprsim fec crop --out DIR`",
}


def _store_lock(
    out: Path, advice: str = BUSY_ADVICE["crop"]
) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the crops folder ``out`` (:func:`exprsim.io.folder_lock`):
    two runs into one store took the same shard numbers and wrote over each other's crops,
    silently.

    Raises:
        StoreBusyError: another process holds it (the line ends with ``advice``).
    """
    from exprsim.io import folder_lock

    return folder_lock(out, lambda held: StoreBusyError(out, advice, held), "crops folder")


def check_store_free(out: str | Path, advice: str = BUSY_ADVICE["crop"]) -> None:
    """Fail now when another run is writing to the crops folder ``out`` (nothing held
    after; a folder that does not exist yet is free).

    Raises:
        StoreBusyError: another process holds its lock.
    """
    out = Path(out)
    if (out / LOCK_NAME).is_file():
        with _store_lock(out, advice):
            pass


def _build_crops(
    paths: list[str | Path], fdir: Path, out: Path, cfg: CropConfig, progress: bool
) -> CropReport:
    """:func:`build_crops` once its arguments are checked and the store locked."""
    from exprsim.fec.fetch import open_manifest

    t0 = time.perf_counter()
    with open_manifest(fdir) as man:
        ok_paths = man.ok_paths()
    faces = _faces_of_csvs(paths)
    conn = _connect(out / INDEX_NAME)
    try:
        with _index_errors(out / INDEX_NAME):
            _claim_store(conn, out, cfg)
            _forget_damaged_shards(conn, out, cfg.size)
            # faces that failed last time are tried again (their image may have been fixed)
            done = {k for (k,) in conn.execute("SELECT key FROM faces WHERE shard >= 0")}
        by_image: dict[str, list[tuple[str, tuple[float, ...]]]] = {}
        n_no_image = n_skipped = 0
        for key, (url, box) in faces.items():
            if key in done:
                n_skipped += 1
                continue
            rel = ok_paths.get(url)
            if rel is None or not (fdir / rel).is_file():
                n_no_image += 1
                continue
            by_image.setdefault(str(fdir / rel), []).append((url, box))
        counts, errors = _crop_all(by_image, _ShardWriter(out, conn, cfg), cfg, progress)
        n_indexed = conn.execute("SELECT COUNT(*) FROM faces WHERE shard >= 0").fetchone()[0]
    finally:
        conn.close()
    report = CropReport(
        out_dir=str(out),
        n_faces=len(faces),
        n_indexed=int(n_indexed),
        n_new=counts["detected"] + counts["box"],
        n_detected=counts["detected"],
        n_box_fallback=counts["box"],
        n_no_image=n_no_image,
        n_failed=counts["failed"],
        n_skipped=n_skipped,
        errors=errors,
        seconds=round(time.perf_counter() - t0, 3),
    )
    write_json(out / "crop_report.json", report.to_dict())  # whole or not at all
    log.debug("%s", report.to_text())
    return report


def _faces_of_csvs(paths: list[str | Path]) -> dict[str, tuple[str, tuple[float, ...]]]:
    """Every distinct face (URL + box) of the CSVs: :func:`face_key` -> ``(url, box)``."""
    from exprsim.fec.fetch import read_fec_csv

    faces: dict[str, tuple[str, tuple[float, ...]]] = {}
    for p in paths:
        _, flist = read_fec_csv(p).face_ids()
        for f_url, f_box in flist:
            faces.setdefault(face_key(f_url, f_box), (f_url, f_box))
    return faces


#: :class:`CropConfig` fields that change a crop's pixels: one store holds crops of one setting
PIXEL_FIELDS: tuple[str, ...] = ("size", "margin", "detector", "min_iou", "box_layout")


def _claim_store(conn: sqlite3.Connection, out: Path, cfg: CropConfig) -> None:
    """Refuse a store whose crops were made with other pixel settings (:data:`PIXEL_FIELDS`),
    record ``cfg``, drop unfinished shard files.

    A store without crops takes any setting. Its recorded config so always describes every
    crop in it (a second run with another margin used to record its margin over crops of
    the first, even when it cropped nothing).
    """
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    old = _stored_config(meta, out)
    new = json.loads(json.dumps(asdict(cfg)))  # tuples as JSON lists, like the stored one
    if old.get("size", cfg.size) != cfg.size:
        raise DataError(
            f"{out} holds {old.get('size')} px crops; use another --out for size {cfg.size}"
        )
    n_crops = conn.execute("SELECT COUNT(*) FROM faces WHERE shard >= 0").fetchone()[0]
    differ = [f for f in PIXEL_FIELDS if f in old and old[f] != new[f]]
    if n_crops and differ:
        was = ", ".join(f"{f} {old[f]!r}" for f in differ if f != "box_layout")
        raise DataError(
            f"{out} holds {n_crops} crops made with other settings "
            f"({was or 'another box_layout'}); use the same settings or another --out"
        )
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('config', ?)", (json.dumps(new),)
        )
    for f in out.glob(".*.part"):
        f.unlink(missing_ok=True)


def _forget_damaged_shards(conn: sqlite3.Connection, out: Path, size: int) -> int:
    """Forget every shard whose file is missing or damaged (:func:`_shard_problem`), and
    faces indexed in no shard, so that their faces are cropped again; one warning line per
    shard. A damaged shard file is deleted. Returns the number of faces forgotten."""
    forgotten = 0
    for sid, name, count in conn.execute("SELECT id, file, count FROM shards").fetchall():
        file = out / str(name)
        problem = _shard_problem(file, count, size)
        if problem is None:
            continue
        with conn:
            n = conn.execute("DELETE FROM faces WHERE shard = ?", (sid,)).rowcount
            conn.execute("DELETE FROM shards WHERE id = ?", (sid,))
        if Path(str(name)).name == str(name):  # a file of this folder, nothing else
            file.unlink(missing_ok=True)
        log.warning("%s: crop shard %s; its %d face(s) will be cropped again", file, problem, n)
        forgotten += n
    with conn:
        orphans = conn.execute(
            "DELETE FROM faces WHERE shard >= 0 AND shard NOT IN (SELECT id FROM shards)"
        ).rowcount
    if orphans:
        log.warning("%s: %d face(s) indexed in no shard will be cropped again", out, orphans)
    return forgotten + orphans


def _crop_all(
    by_image: dict[str, list[tuple[str, tuple[float, ...]]]],
    writer: _ShardWriter,
    cfg: CropConfig,
    progress: bool,
) -> tuple[dict[str, int], dict[str, int]]:
    """Crop every face of ``by_image`` into ``writer``; returns the counts by method
    (``detected``, ``box``, ``failed``) and the failures by reason."""
    from exprsim.progress import progress_bar

    n_todo = sum(len(v) for v in by_image.values())
    counts = {"detected": 0, "box": 0, "failed": 0}
    errors: dict[str, int] = {}
    bar = progress_bar(total=n_todo, desc="crop", unit="face", enabled=progress and bool(n_todo))
    try:
        for item in _run_jobs(by_image, cfg):
            writer.add(item)
            counts[item[4]] = counts.get(item[4], 0) + 1
            if item[6]:
                reason = item[6].split(": ", 1)[-1][:60]
                errors[reason] = errors.get(reason, 0) + 1
            bar.update(1)
    finally:
        writer.flush()
        bar.close()
    return counts, errors


def _run_jobs(
    by_image: dict[str, list[tuple[str, tuple[float, ...]]]], cfg: CropConfig
) -> Iterator[Any]:
    items = list(by_image.items())
    if cfg.workers <= 1 or len(items) < 2:
        detector = _make_detector(cfg.detector)
        for path, faces in items:
            yield from _process_image(path, faces, cfg, detector)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from exprsim.workers import running_pool

    chunk = max(1, min(64, len(items) // (cfg.workers * 4) or 1))
    jobs = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    ctx = mp.get_context("spawn")  # detectors (MediaPipe) are not fork-safe
    ex = ProcessPoolExecutor(
        cfg.workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg.detector,)
    )
    died = (
        "a crop worker process died ({exc}); when build_crops runs from a script, put the "
        'script\'s code under `if __name__ == "__main__":`, else try --crop-workers 1 '
        "(workers=1 in Python; out of memory?); the crops made so far are kept"
    )
    with running_pool(ex, died):  # Ctrl-C, an error: workers stopped now, queued jobs dropped
        for res in ex.map(_worker_job, jobs, [cfg] * len(jobs)):
            yield from res
