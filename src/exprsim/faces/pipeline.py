"""The face front-end in one call: detect -> (landmarks) -> align -> quality.

:func:`analyze_image` handles one image; :func:`analyze_files` runs it over files and
folders and gathers one table row per face (``exprsim faces`` is a thin shell over it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import ExprsimError, ImageError, printable
from exprsim.faces.align import AlignConfig, align_face
from exprsim.faces.detect import DEFAULT_DETECTOR, Detector, create_detector
from exprsim.faces.quality import QualityConfig, assess
from exprsim.faces.types import LANDMARK_NAMES, AlignedFace, Face
from exprsim.io import SHORTENED_TAIL, TEMP_TAIL

log = logging.getLogger(__name__)


class _SharedDetector:
    """A process-wide detector that any thread may call: one image at a time.

    Detectors are not thread-safe (a LiteRT interpreter's buffers, a MediaPipe graph), so
    ``detect`` and ``detect_near`` hold a lock; threads calling at once take turns and get
    the answers they would get one after the other. An uncontended lock costs about
    0.1 us, nothing beside a detection. Other attributes (``name``, ``threads``,
    ``landmarks_kind``, ...) are the detector's own.
    """

    def __init__(self, detector: Detector, build: Callable[[], Detector] | None = None) -> None:
        self._detector = detector
        # re-entrant: a fork inside a detection of the forking thread keeps it (forking)
        self._lock = threading.RLock()
        self.name = detector.name
        #: how to build it again in a forked child (``None``: not rebuilt)
        self._build = build
        self._stale = False
        from exprsim import forking

        forking.track(self)

    def _after_fork_in_child(self) -> None:
        """A parent thread was detecting when the process forked: this child gets a free
        lock and, at its first detection, a detector of its own (the parent's was in the
        middle of an inference)."""
        from exprsim.forking import held_elsewhere

        if held_elsewhere(self._lock):
            self._lock = threading.RLock()
            self._stale = self._build is not None

    def _current(self) -> Detector:
        """The detector, rebuilt first when stale (with the lock held)."""
        if self._stale and self._build is not None:
            self._detector = self._build()
            self._stale = False
        return self._detector

    def detect(self, image: np.ndarray) -> list[Face]:
        with self._lock:
            return self._current().detect(image)

    def _locked(self, attr: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return getattr(self._current(), attr)(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        if attr in ("_detector", "_lock", "_build", "_stale"):  # not set yet (copy, unpickling)
            raise AttributeError(attr)
        value = getattr(self._detector, attr)
        if attr == "detect_near":  # guided video frames: a detection too
            return functools.partial(self._locked, attr)
        return value

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its name: unpickled, it is the shared detector of that name in the
        process that loads it (a lock and native models do not pickle)."""
        return (_shared_detector, (self.name,))

    def close(self) -> None:
        """Nothing: the detector is shared by every caller in the process, and one caller
        closing it would break the others' later calls (it is freed at exit)."""

    def __enter__(self) -> _SharedDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"shared {self._detector!r}"


#: how the crops the orientation network reads are cut (the framing it was trained on)
ORIENTATION_ALIGN = AlignConfig()

#: held while a shared detector is looked up or built: threads asking for one at once
#: wait for the first to build it instead of each building their own
_shared_build_lock = threading.RLock()


def _shared_detector(name: str) -> Detector:
    from exprsim import forking

    forking.in_child(_free_build_lock)
    with _shared_build_lock:
        return _build_shared(name)


def _free_build_lock() -> None:
    """In a forked child: a free :data:`_shared_build_lock` (a parent thread building a
    detector held it)."""
    global _shared_build_lock
    from exprsim.forking import fresh_lock

    _shared_build_lock = fresh_lock(_shared_build_lock)


@functools.lru_cache(maxsize=4)
def _build_shared(name: str) -> Detector:
    from exprsim.faces.litert import inference_threads

    # used one image at a time: its inferences may use every core
    build = functools.partial(create_detector, name, inference_threads=inference_threads())
    return _SharedDetector(build(), build)


def resolve_detector(detector: str | Detector | None = None) -> Detector:
    """A detector instance: ``None`` -> the default, a name -> a shared instance per name.

    Named detectors are created once per process and reused (building MediaPipe graphs
    takes about a second), with every core for their model inferences
    (:func:`exprsim.faces.litert.inference_threads`). Any thread may use them: they
    detect one image at a time (threads take turns); for detections in parallel, give
    each thread its own instance from :func:`exprsim.faces.detect.create_detector`.
    An instance is returned as it is.

    Raises:
        ExprsimError: ``detector`` is neither ``None``, a name, nor an object with a
            ``detect(image)`` method; or an unknown name.
    """
    if detector is None:
        return _shared_detector(DEFAULT_DETECTOR)
    if isinstance(detector, str):
        return _shared_detector(detector)
    if not callable(getattr(detector, "detect", None)):
        raise ExprsimError(
            "detector must be a detector name, an object with a detect(image) method or "
            f"None, got {type(detector).__name__}"
        )
    return detector


def largest_first(face: Face) -> tuple[float, float]:
    """Sort key of faces: the largest box first, then from left to right (the order of
    :func:`analyze_image`'s faces; ``min`` with it picks the largest face)."""
    return (-face.width * face.height, float(face.box[0]))


def usable_face(faces: Sequence[Any], source: str = "") -> int:
    """The face a one-face call takes when none is named: the largest face that passes
    the quality check (faces come largest first), else the largest (face 0). A larger
    face passed over is logged: it is often a false detection (a patterned shirt, a
    spacesuit) that a one-face call silently compared before.

    Args:
        faces: :class:`AlignedFace` objects, or objects with one as ``aligned``
            (``FaceEmbedding``), largest first; at least one.
        source: the image's name, for the log line.
    """

    def ok(face: Any) -> bool:
        aligned = getattr(face, "aligned", face)
        return bool(getattr(getattr(aligned, "quality", None), "ok", True))

    first = next((i for i, f in enumerate(faces) if ok(f)), 0)
    if first:
        q = getattr(faces[0], "aligned", faces[0]).quality
        log.warning(
            "%sface %d used (largest face that passes the quality check): the larger face 0 "
            "fails it (%s); pass face=0 to use it (CLI: --face 0)",
            f"{source}: " if source else "",
            first,
            ", ".join(q.reasons) or "rejected",
        )
    return first


def analyze_image(
    image: np.ndarray,
    detector: str | Detector | None = None,
    align_config: AlignConfig | None = None,
    quality_config: QualityConfig | None = None,
    timings: dict[str, float] | None = None,
) -> list[AlignedFace]:
    """Detect, align and assess every face in one image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, full resolution, or anything
            :func:`exprsim.io.load_image` reads (a path, a file's bytes, an array of another
            dtype or layout).
        detector: a registry name, a detector instance, or ``None`` for
            :data:`~exprsim.faces.detect.DEFAULT_DETECTOR` (MediaPipe).
        align_config: crop size and template (default: 112 px, FER2013 framing).
        quality_config: sharpness and yaw thresholds.
        timings: if given, the seconds spent detecting and aligning (quality included) are
            added to its ``"detect"`` and ``"align"`` entries (the video pipeline's stages).

    Returns:
        One :class:`AlignedFace` per detected face, largest box area first (ties: left to
        right). Rejected faces are included with ``quality.ok`` false. A crop that comes
        out upside down (:mod:`exprsim.faces.orientation`) is made again from the face as
        found in the image turned by 180 degrees, or, when that fails, rejected with the
        reason ``"upside_down"`` (unless ``quality_config.check_orientation`` is off).

    Raises:
        ImageError: the image cannot be read.
        ExprsimError: ``detector`` is not a name, a detector or ``None``.

    Thread safety: with ``detector`` ``None`` or a name, any number of threads may call
    this at once and get the answers of one call after the other: they share one detector
    per name (built once per process) and take turns on its detection, while reading the
    image, aligning and the quality checks run in parallel. For detections in parallel
    too, use :func:`exprsim.faces.stream.analyze_stream` (a detector per worker thread) or
    pass each thread its own :func:`~exprsim.faces.detect.create_detector`. A detector
    *instance* passed here is used as it is: detectors are not thread-safe, so never call
    with one instance from several threads at once.
    """
    from exprsim.io import load_image, pixels_within

    # an array is only read here (the crops are new arrays): no copy of every frame
    image = pixels_within(image) if isinstance(image, np.ndarray) else load_image(image)
    det = resolve_detector(detector)
    align_config = align_config or AlignConfig()
    quality_config = quality_config or QualityConfig()
    t0 = time.perf_counter()
    faces = sorted(det.detect(image), key=largest_first)
    t1 = time.perf_counter()
    aligned = [
        AlignedFace(
            face=f,
            crop=align_face(image, f.landmarks, align_config),
            quality=assess(image, f, quality_config),
        )
        for f in faces
    ]
    second_look: list[float] = []  # seconds of a detection in the turned image
    if quality_config.check_orientation:
        aligned = _upright(image, aligned, det, align_config, quality_config, second_look)
    if timings is not None:
        looked = sum(second_look)
        timings["detect"] = timings.get("detect", 0.0) + (t1 - t0) + looked
        timings["align"] = timings.get("align", 0.0) + (time.perf_counter() - t1 - looked)
    return aligned


def _turned_back(face: Face, width: int, height: int) -> Face:
    """A face found in the image turned by 180 degrees, in the image's own pixels."""
    box = np.asarray(face.box, np.float32)
    pts = np.array(face.landmarks, np.float32)  # pixel centres at integers: x -> W - 1 - x
    pts[..., 0] = width - 1 - pts[..., 0]
    pts[..., 1] = height - 1 - pts[..., 1]
    back = np.array([width - box[2], height - box[3], width - box[0], height - box[1]], np.float32)
    return replace(face, box=back, landmarks=pts)


def _upright(
    image: np.ndarray,
    aligned: list[AlignedFace],
    det: Detector,
    align_config: AlignConfig,
    quality_config: QualityConfig,
    seconds: list[float] | None = None,
) -> list[AlignedFace]:
    """Faces whose crop is upside down: found again in the image turned by 180 degrees
    (the detector then labels eyes as eyes), else rejected as ``"upside_down"``.

    The orientation network runs on every crop; the second detection only for an image
    with a face that looks upside down, with the plain detector (a per-frame wrapper of
    guided video detection offers it as ``unguided``: its hints are in the upright image's
    pixels), and its time is appended to ``seconds``. Each face found again replaces at
    most one flagged face (the one it overlaps most, IoU above 0.3); a face found again
    with non-finite coordinates is ignored.
    """
    from exprsim.faces.orientation import upside_down

    if not aligned:
        return aligned
    views = [_orientation_view(image, a.face, a.crop, align_config) for a in aligned]
    flagged = np.flatnonzero(upside_down(np.stack(views)))
    if not len(flagged):
        return aligned
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    found = getattr(det, "unguided", det).detect(np.ascontiguousarray(image[::-1, ::-1]))
    if seconds is not None:
        seconds.append(time.perf_counter() - t0)
    again = [
        _turned_back(f, w, h)
        for f in found
        if np.isfinite(f.box).all() and np.isfinite(f.landmarks).all()
    ]
    out = list(aligned)
    for i, j in _match(np.array([aligned[i].face.box for i in flagged]), again).items():
        face = again[j]
        crop = align_face(image, face.landmarks, align_config)
        if not upside_down(_orientation_view(image, face, crop, align_config)[None])[0]:
            out[int(flagged[i])] = AlignedFace(face, crop, assess(image, face, quality_config))
    for i in flagged:
        if out[i] is aligned[i]:  # not replaced: rejected, kept in the table
            q = aligned[i].quality
            out[i] = replace(
                aligned[i], quality=replace(q, ok=False, reasons=(*q.reasons, "upside_down"))
            )
    return out


def _orientation_view(
    image: np.ndarray, face: Face, crop: np.ndarray, align_config: AlignConfig
) -> np.ndarray:
    """The crop the orientation network reads (trained on exprsim's default framing): the
    face's own crop when it is aligned that way, else one cut for it, so the verdict does
    not depend on the size or framing the caller asked for (an 8-pixel crop flagged most
    upright faces)."""
    if align_config == ORIENTATION_ALIGN:
        return crop
    return align_face(image, face.landmarks, ORIENTATION_ALIGN)


def _match(boxes: np.ndarray, faces: list[Face], min_iou: float = 0.3) -> dict[int, int]:
    """Greedy one-to-one matching of ``(K, 4)`` boxes to faces by IoU (highest first, each
    pair above ``min_iou``): box index -> face index."""
    from exprsim.faces.detect import box_iou

    if not faces or not len(boxes):
        return {}
    iou = box_iou(boxes, np.stack([f.box for f in faces]))
    pairs: dict[int, int] = {}
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] <= min_iou:
            break
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    return pairs


# ------------------------------------------------------------------ many files -> one table

#: The per-face columns every exprsim table starts with (``exprsim faces``, ``embed``,
#: ``index``, ``search``, ``classify``, ``tag`` share these names): ``source`` is the image
#: file (as given on the command line; ``index`` and ``search`` give the resolved absolute
#: path the index stores, a link's target), ``face`` the face's rank in it (largest box
#: first), ``quality_ok`` whether it passed the quality check. :meth:`FaceTable.to_frame`
#: puts them first, then any others (``crop``, ``model``, ``e0..e15``) in the order the
#: rows hold them.
FACE_COLUMNS: tuple[str, ...] = (
    "source",
    "face",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    *(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in ("x", "y")),
    "sharpness",
    "yaw",
    "pitch",
    "roll",
    "quality_ok",
    "reasons",
    "detector",
)


#: the longest crop-name stem, in UTF-8 bytes: a name (``stem-N_F.png``) stays within the
#: 255 bytes most file systems allow
MAX_CROP_STEM_BYTES = 200


def _crop_stem(stem: str) -> str:
    """``stem``, or when longer than :data:`MAX_CROP_STEM_BYTES` its start and ``~`` and 8
    hex digits of its SHA-1 (two long names that start alike stay apart)."""
    raw = stem.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_CROP_STEM_BYTES:
        return stem
    head = raw[: MAX_CROP_STEM_BYTES - 9].decode("utf-8", "ignore")  # whole characters
    return f"{head}~{hashlib.sha1(raw).hexdigest()[:8]}"


#: the PNG text key of a crop's photo (:func:`crop_owner`): a later run into the same
#: folder does not write over the crops of another photo of the same name
CROP_OWNER_KEY = "exprsim-photo"


def photo_key(source: str | Path) -> str:
    """What a crop of the photo at ``source`` carries to name its photo: 16 hex digits of
    the SHA-256 of its absolute path without links (the same photo through a link or
    another spelling has the same key; the path itself is not written into crops that
    may be shared)."""
    return hashlib.sha256(os.fsencode(os.path.realpath(source))).hexdigest()[:16]


def crop_owner(path: str | Path) -> str | None:
    """The :func:`photo_key` :func:`analyze_files` wrote into the crop at ``path``;
    ``None`` for no such file, a file that is not a readable PNG, or a crop without it
    (written by an exprsim before it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = im.info.get(CROP_OWNER_KEY) if im.format == "PNG" else None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # missing, unreadable, not an image
    return value if isinstance(value, str) else None


def _free_stem(stem: str, used: set[str], taken: Callable[[str], bool] = lambda name: False) -> str:
    """``stem`` (shortened by :func:`_crop_stem`), or ``stem-2``, ``stem-3``, ... : the
    first not in ``used`` (compared without case: ``A.jpg`` and ``a.png`` must not share
    crop files on a case-insensitive disk, and ``x.jpg``, ``x.png`` and ``x-2.jpg`` in one
    album get three names) and not ``taken`` (on disk by another photo's crops); then
    marked used."""
    stem = _crop_stem(stem)
    name, n = stem, 1
    while name.lower() in used or taken(name):
        n += 1
        name = f"{stem}-{n}"
    used.add(name.lower())
    return name


def _taken(
    folder: Path, source: str, faces: int, stem: str, unmarked: dict[Path, None] | None = None
) -> bool:
    """Whether a file where the ``faces`` crops named ``stem`` go in ``folder`` is not this
    photo's (``source`` its :func:`photo_key`): another photo's crop, or a file exprsim
    did not write (a photo of the user's, a crop of an exprsim before the mark). Such a
    file is kept, and the crops take another name.

    A free name is claimed at once (a small file naming the photo, :func:`_claim`,
    created only if none is there): two runs into one folder whose photos share a name
    both found ``x_0.png`` free and the later wrote over the earlier's crop. A claim
    another run made first for another photo is taken; one for this same photo is not (two
    runs over one album gave it two identical crops, ``x_0.png`` and ``x-2_0.png``: both
    now write the one crop, whole each time). Claims of a name given up are removed.
    ``unmarked``: gets each file in the way that carries no mark nor claim (once)."""
    claimed: list[Path] = []
    for j in range(faces):
        path = folder / f"{stem}_{j}.png"
        if os.path.lexists(path):
            owner, claim = crop_owner(path), _claim_of(path)
            if owner == source or claim == source:
                continue  # this photo's own crop (a rerun), or its claim by another run
            if owner is None and claim is None and unmarked is not None:
                unmarked[path] = None
        else:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass  # another run claimed it this instant
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(_claim(source))
                claimed.append(path)
                continue
        for mine in claimed:
            mine.unlink(missing_ok=True)
        return True
    return False


#: what a claim of a crop's name holds before the crop is written (:func:`_taken`)
_CLAIM = b"exprsim crop claim "


def _claim(key: str) -> bytes:
    """The bytes of a claim of a crop's name for the photo of :func:`photo_key` ``key``."""
    return _CLAIM + key.encode("ascii")


def _claim_of(path: Path) -> str | None:
    """The photo key of the claim at ``path`` (:func:`_claim`), else ``None`` (a crop, a
    user's file, a claim of an exprsim before the key was written: an empty file)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_CLAIM) + 17)
    except OSError:
        return None
    if not head.startswith(_CLAIM) or len(head) != len(_CLAIM) + 16:
        return None
    return head[len(_CLAIM) :].decode("ascii", "replace")


def _drop_claims(folder: Path, stem: str, faces: int) -> None:
    """Remove the claims :func:`_taken` made for crops named ``stem`` (a write failed:
    those crops are not there): files still holding a claim, or empty (an earlier
    exprsim's)."""
    for j in range(faces):
        path = folder / f"{stem}_{j}.png"
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0 or _claim_of(path) is not None:
                path.unlink()


def _write_crops(
    out_dir: Path,
    source: Any,
    faces: Any,
    rows: list[dict[str, Any]],
    stems: set[str],
    unmarked: dict[Path, None] | None = None,
) -> None:
    """Write the crops of one photo's ``faces`` into ``out_dir`` under a free name
    (:func:`_free_stem`: ``stems`` are those used so far; ``unmarked`` gets the files
    without a mark that took a name, :func:`_taken`) and set each row's ``crop``.

    Raises:
        OSError: a crop could not be written (its ``filename`` named); each crop is whole
            or not there (an earlier run's crop of that name survives).
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from exprsim.io import replace_atomically

    key = photo_key(source)
    taken = functools.partial(_taken, out_dir, key, len(faces), unmarked=unmarked)
    stem = _free_stem(Path(source).stem, stems, taken)
    mark = PngInfo()
    mark.add_text(CROP_OWNER_KEY, key)  # whose crop: see _taken
    for row, af in zip(rows, faces, strict=True):
        crop_path = out_dir / f"{stem}_{row['face']}.png"
        save = functools.partial(Image.fromarray(af.crop).save, format="PNG", pnginfo=mark)
        try:
            replace_atomically(crop_path, save, ".tmp", False)  # a rerun: made again
        except OSError as exc:
            _drop_claims(out_dir, stem, len(faces))  # no empty file left where a crop goes
            exc.filename = str(crop_path)  # the crop's name, not its temporary's
            raise
        row["crop"] = printable(str(crop_path))  # undecodable bytes: an escape, not a failure


#: the name of a crop: ``<stem>_<face>.png`` (an exprsim before the mark wrote them so)
_CROP_NAME = re.compile(r".+_\d+\.png$", re.IGNORECASE)


def _without_crops(files: list[Path], crops_dir: Path, inputs: list[Any]) -> list[Path]:
    """``files`` less the crops exprsim wrote (they carry :func:`crop_owner`'s mark) into
    ``crops_dir``, or into a folder found inside an input folder (an earlier run's crops
    folder), and less the PNGs of ``crops_dir`` named as crops are (``x_0.png``: an
    exprsim before the mark wrote them without one) unless that folder is named as an
    input: a crops folder walked again by a rerun gave ``x_0_0.png``, then
    ``x_0_0_0.png``, and a table growing at every run. Crops named among ``inputs``, or
    directly inside a folder named there, are read (and not opened here)."""
    try:
        folder = crops_dir.resolve()
    except (OSError, RuntimeError):
        folder = None
    from exprsim.io import as_given

    named = {os.path.realpath(as_given(p)) for p in inputs}
    kept, left = [], {"here": 0, "unmarked": 0, "elsewhere": 0}
    for f in files:
        real = Path(os.path.realpath(f))
        here = real.parent == folder
        named_so = str(real) in named or (not here and str(real.parent) in named)
        # the cheap tests first: crop_owner opens the file
        if f.suffix.lower() != ".png" or real == folder or named_so:
            kept.append(f)
        elif crop_owner(f) is not None:
            left["here" if here else "elsewhere"] += 1
        elif here and str(folder) not in named and _CROP_NAME.match(f.name):
            left["unmarked"] += 1  # a crop of an exprsim before the mark, by its name
        else:
            kept.append(f)
    _say_left_out(left, crops_dir, bool(kept))
    return kept


def _say_left_out(left: dict[str, int], crops_dir: Path, any_kept: bool) -> None:
    """The lines of :func:`_without_crops`: how many crops it left out, and where."""
    where = printable(str(crops_dir))
    if left["here"]:
        log.info("%d crops of %s left out of the inputs", left["here"], where)
    if left["unmarked"]:  # not certainly crops: said where it is seen
        log.warning(
            "%d PNG files named as crops are (NAME_0.png) in the crops folder %s left out "
            "of the inputs: crops of an exprsim before 2026-12-04 (name the folder to read "
            "them as photos)",
            left["unmarked"],
            where,
        )
    if left["elsewhere"]:  # a warning when it leaves nothing to read
        log.log(
            logging.INFO if any_kept else logging.WARNING,
            "%d crops written by an earlier exprsim run left out of the inputs (name them, "
            "or their own folder, to read them as photos)",
            left["elsewhere"],
        )


def _say_unmarked(unmarked: dict[Path, None], out_dir: Path | None) -> None:
    """One warning for the files without exprsim's mark that took crops' names in
    ``out_dir`` (:func:`_taken`): the crops were written beside them, under other names."""
    if unmarked:
        log.warning(
            "%d file(s) in %s carry no exprsim mark (crops of an exprsim before "
            "2026-12-04, or files of yours; kept): this run's crops of those names are "
            "named NAME-2_0.png and so on (first: %s); give a new --crops folder to avoid it",
            len(unmarked),
            printable(str(out_dir)),
            printable(next(iter(unmarked)).name),
        )


#: a crop being written (:func:`exprsim.io.temp_beside` of ``<stem>_<face>.png``, whose
#: name ends in a digest instead when it is long)
CROP_TEMPORARY = rf"\..+(?:\.png|{SHORTENED_TAIL}){TEMP_TAIL}\.tmp"


def face_row(source: str, index: int, aligned: AlignedFace) -> dict[str, Any]:
    """One flat table row for a face (keys :data:`FACE_COLUMNS`).

    Args:
        source: the image file (or any name for an in-memory image).
        index: the face's rank in its image.
        aligned: the face, as :func:`analyze_image` returns it.
    """
    f, q = aligned.face, aligned.quality
    row: dict[str, Any] = {"source": source, "face": index}
    row.update(zip(("x1", "y1", "x2", "y2"), (round(float(v), 2) for v in f.box), strict=True))
    row["score"] = round(float(f.score), 4)
    for name, (x, y) in zip(LANDMARK_NAMES, np.asarray(f.landmarks, dtype=float), strict=True):
        row[f"{name}_x"], row[f"{name}_y"] = round(x, 2), round(y, 2)
    row.update(  # the quality values whole: a filter on them must not tell tables apart
        sharpness=float(q.sharpness),
        yaw=float(q.yaw),
        pitch=float(q.pitch),
        roll=float(q.roll),
        quality_ok=bool(q.ok),
        reasons=",".join(q.reasons),
        detector=f.detector,
    )
    return row


@dataclass(frozen=True)
class FaceTable:
    """Faces of many files, one row per face.

    Attributes:
        rows: one dict per face (keys :data:`FACE_COLUMNS`, then e.g. ``crop`` when crops
            were written, or ``model`` and ``e0..e15`` from
            :func:`exprsim.apps.embed.embed_files`).
        files: number of input files.
        errors: ``(file, message)`` for every file that could not be read.
        stats: ``faces`` (counted even when rows were streamed elsewhere) and
            ``seconds`` (wall time), when the producer records them.
        interrupted: the run was stopped by Ctrl-C (or SIGTERM) before every file was
            read; ``rows`` hold the faces of the files done.
        unwritten: files among ``errors`` that were read but whose crops could not be
            written (a full disk): the output failed, not the input.
        columns: the columns the producer writes, which :meth:`to_frame` has even when no
            row does (a batch without a face has the columns of one with faces, so that
            tables concatenate); empty: those of the rows.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    stats: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    unwritten: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def add_error(
        self,
        source: str,
        error: ExprsimError,
        on_error: Callable[[str, Any], None] | None = None,
    ) -> None:
        """Keep why ``source`` could not be read, and tell ``on_error`` (if given)."""
        self.errors.append((source, str(error)))
        if on_error is not None:
            on_error(source, error)

    @property
    def n_faces(self) -> int:
        """Faces found (rows kept here, or streamed to a sink)."""
        return int(self.stats.get("faces", len(self.rows)))

    def to_frame(self) -> Any:
        """The rows as a ``pandas.DataFrame``: :data:`FACE_COLUMNS`, then the other keys."""
        import pandas as pd

        named = [*self.columns, *(k for r in self.rows for k in r)]
        extra = dict.fromkeys(k for k in named if k not in FACE_COLUMNS)
        return pd.DataFrame(self.rows, columns=[*FACE_COLUMNS, *extra])

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "faces": self.n_faces,
            "errors": self.errors,
            "rows": self.rows,
        }

    def save(self, path: str | Path) -> Path:
        """Write the table with :func:`exprsim.io.save_table` (``.csv``, ``.parquet``,
        ``.jsonl`` or ``.json``, chosen by the suffix), whole or not at all
        (:func:`exprsim.io.replace_table`: an earlier file stays if the disk fills).

        Raises:
            ExprsimError: unknown suffix.
        """
        from exprsim.io import replace_table

        return replace_table(self.to_frame(), path)


def analyze_files(
    paths: Iterable[str | Path],
    detector: str | Detector | None = None,
    align_config: AlignConfig | None = None,
    quality_config: QualityConfig | None = None,
    crops_dir: str | Path | None = None,
    progress: bool = False,
    on_error: Callable[[str, ExprsimError], None] | None = None,
    workers: int | None = None,
    keep_on_interrupt: bool = False,
    named: Iterable[str | Path] | None = None,
) -> FaceTable:
    """Run :func:`analyze_image` over files and folders (recursed).

    Args:
        paths: image files and/or folders (see :func:`exprsim.io.iter_image_files`); a file
            named twice (or through a link) is analysed once.
        detector, align_config, quality_config: as for :func:`analyze_image`.
        crops_dir: if set, aligned crops are written there as PNG (``<stem>_<face>.png``;
            a repeated stem gets ``-2``, ``-3``, ... appended, as does a stem where a file
            that is not this photo's crop stands: another photo's crop from an earlier
            run, :func:`crop_owner`, or any file exprsim did not write, which is never
            replaced) and a ``crop`` column added. A rerun writes its photos' crops again
            in place. Crops found among the inputs (:func:`_without_crops`) are not read
            as photos, unless named (``paths``, or ``named``) or in a folder named.
        progress: show a tqdm progress bar (on stderr).
        on_error: called with ``(file, error)`` for each unreadable file (default: ignored,
            the error is kept in :attr:`FaceTable.errors`).
        workers: front-end threads (:func:`exprsim.faces.stream.analyze_stream`; a detector
            instance always runs in the calling thread).
        keep_on_interrupt: a Ctrl-C (``KeyboardInterrupt``) stops the run and returns the
            faces of the files done, with :attr:`FaceTable.interrupted` set (default: it
            propagates).
        named: the files and folders as the user named them, when ``paths`` is their
            expansion already (the CLI's): what ``crops_dir``'s rule counts as named.

    Returns:
        A :class:`FaceTable`.
    """
    from exprsim.faces.stream import analyze_stream
    from exprsim.io import as_inputs, iter_image_files, sweep_temporaries, unique_files
    from exprsim.progress import progress_bar

    inputs = as_inputs(paths)  # a generator is read once
    files = unique_files(iter_image_files(inputs))  # each file once
    out_dir = Path(crops_dir) if crops_dir is not None else None
    if out_dir is not None:
        files = _without_crops(files, out_dir, inputs if named is None else as_inputs(named))
        out_dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(out_dir, CROP_TEMPORARY)  # the crops a killed run was writing
    unmarked: dict[Path, None] = {}  # files without a mark in the way of crops, once each
    stems: set[str] = set()  # crop-name stems used so far, lower case
    table = FaceTable(files=len(files))
    stream = analyze_stream(
        files, detector, align_config, quality_config, workers=1 if len(files) < 2 else workers
    )
    try:
        for item in progress_bar(
            stream, total=len(files), enabled=progress, desc="faces", unit="img"
        ):
            if item.error is not None:
                table.add_error(item.source, item.error, on_error)
                continue
            rows = [face_row(item.source, j, af) for j, af in enumerate(item.faces)]
            if out_dir is not None and item.faces:
                try:
                    _write_crops(out_dir, item.source, item.faces, rows, stems, unmarked)
                except OSError as exc:  # e.g. a full disk: this file fails, the table stays
                    why = f"cannot write its crop {exc.filename} ({exc.strerror or exc})"
                    table.add_error(item.source, ImageError(item.source, why), on_error)
                    table.unwritten.append(item.source)
                    continue
            table.rows.extend(rows)  # a file's faces all at once: none half-recorded
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            raise
        return replace(table, interrupted=True)
    finally:
        _say_unmarked(unmarked, out_dir)
    return table
