"""Face detectors: one protocol, one registry.

Every backend returns :class:`exprsim.faces.types.Face` results (box, score, 5 landmarks
in full-resolution pixels). Backends live in :mod:`exprsim.faces.backends` and register
themselves with :func:`register_detector`; they are imported only when a detector is
listed or created, and import their heavy libraries only when instantiated.

Backends (see ``exprsim detectors``):

* ``mediapipe`` (default): MediaPipe BlazeFace short- and full-range models plus one of
  them on overlapping tiles (small faces), landmarks from MediaPipe's
  468-point landmark model (LiteRT); ``mediapipe-mesh`` takes them from the face-mesh graph;
* ``haar``: OpenCV Viola-Jones cascade, landmarks from the face mesh;
* ``dlib``: dlib HOG detector with its 68-point shape predictor (``pip install 'exprsim[dlib]'``);
* ``mtcnn``: only when ``facenet_pytorch`` or ``mtcnn`` happens to be installed (not a
  dependency).

Large images are downscaled so that their longer side is at most ``max_side`` pixels
(default 1280) for detection; boxes are mapped back to full resolution and landmarks are
computed on full-resolution crops.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import (
    BackendUnavailableError,
    ExprsimError,
    printable,
    require_int,
    require_number,
)
from exprsim.faces.types import Face

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "mediapipe"
#: Longer image side used for detection by default; larger images are downscaled.
DEFAULT_MAX_SIDE = 1280


class DetectorOptionError(ExprsimError, ValueError):
    """A detector option of the wrong type or outside its range, refused when the detector
    is created (not at its first :meth:`~BaseDetector.detect`). A :class:`ValueError` too,
    as these options always were."""


#: Most inference threads a detector takes (``threads``, ``inference_threads``): LiteRT's
#: XNNPACK thread pool fails to start with 100,000, at the first detection
MAX_INFERENCE_THREADS = 256


def option_int(
    detector: str, key: str, value: object, minimum: int, maximum: int | None = None
) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum`` (and <=
    ``maximum`` when given), else :class:`DetectorOptionError` naming ``detector`` and
    ``key`` (:func:`~exprsim.errors.require_int`)."""
    what = f"detector {detector!r}: {key}"
    return require_int(value, what, minimum, DetectorOptionError, maximum)


def option_number(
    detector: str,
    key: str,
    value: object,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    """``value`` as a ``float`` if it is a real number (not a bool) in ``[low, high]``
    (``(low, high]`` with ``low_open``), else :class:`DetectorOptionError`
    (:func:`~exprsim.errors.require_number`)."""
    what = f"detector {detector!r}: {key}"
    return require_number(
        value, what, None, low, high, low_open=low_open, error=DetectorOptionError
    )


def option_choice(detector: str, key: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``, else :class:`DetectorOptionError`."""
    if not isinstance(value, str) or value not in choices:
        known = ", ".join(repr(c) for c in choices)
        raise DetectorOptionError(
            f"detector {detector!r}: {key} must be one of {known}, got {value!r}"
        )
    return value


def option_bool(detector: str, key: str, value: object) -> bool:
    """``value`` if it is a bool (Python or NumPy), else :class:`DetectorOptionError`."""
    if not isinstance(value, bool | np.bool_):
        raise DetectorOptionError(
            f"detector {detector!r}: {key} must be True or False, got {value!r}"
        )
    return bool(value)


def option_max_side(detector: str, value: object) -> int | None:
    """A ``max_side`` option: ``None`` (never downscale) or an integer >= 1."""
    return None if value is None else option_int(detector, "max_side", value, 1)


@runtime_checkable
class Detector(Protocol):
    """Anything that finds faces.

    Attributes:
        name: registry name of the backend.
    """

    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """Find faces in an ``(H, W, 3)`` uint8 RGB image (full-resolution coordinates)."""
        ...


@dataclass(frozen=True)
class DetectorSpec:
    """A registered backend.

    Attributes:
        name: registry name.
        description: one line for ``exprsim detectors``.
        factory: builds the detector from keyword arguments.
        probe: returns ``None`` when the backend can run here, else why not and how to
            install it (cheap: checks that modules/files exist, imports nothing heavy).
        threads: the factory takes ``threads=`` (inference threads per call).
    """

    name: str
    description: str
    factory: Callable[..., Detector]
    probe: Callable[[], str | None]
    threads: bool = False


@dataclass(frozen=True)
class DetectorInfo:
    """Availability of one backend (a row of ``exprsim detectors``)."""

    name: str
    description: str
    available: bool
    install: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "description": self.description,
            "install": self.install,
        }


_REGISTRY: dict[str, DetectorSpec] = {}


def modules_probe(*modules: str, install: str) -> Callable[[], str | None]:
    """A probe that passes when every module in ``modules`` is importable."""

    def probe() -> str | None:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        return f"missing {', '.join(missing)}: {install}" if missing else None

    return probe


def register_detector(
    name: str,
    description: str,
    probe: Callable[[], str | None] | None = None,
    threads: bool = False,
) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator registering a detector class or factory function under ``name``.

    Args:
        name: registry name (lower case).
        description: one-line description.
        probe: availability check (see :class:`DetectorSpec`); default: always available.
        threads: the factory takes ``threads=``, the inference threads per call (see
            :func:`create_detector`'s ``inference_threads``).
    """

    def deco(factory: Callable[..., Detector]) -> Callable[..., Detector]:
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"detector {name!r} is already registered")
        _REGISTRY[name] = DetectorSpec(name, description, factory, probe or (lambda: None), threads)
        return factory

    return deco


def _ensure_backends() -> None:
    importlib.import_module("exprsim.faces.backends")


def list_detectors(available_only: bool = False) -> list[str]:
    """Registered detector names (sorted), optionally only those that can run here."""
    _ensure_backends()
    names = sorted(_REGISTRY)
    if available_only:
        names = [n for n in names if _REGISTRY[n].probe() is None]
    return names


def detector_info() -> list[DetectorInfo]:
    """Name, description, availability and install hint of every registered backend."""
    _ensure_backends()
    rows = []
    for name in sorted(_REGISTRY):
        spec = _REGISTRY[name]
        why = spec.probe()
        rows.append(DetectorInfo(name, spec.description, why is None, why or ""))
    return rows


def check_detector(name: str) -> None:
    """Fail now, without building anything, if ``name`` cannot be created here.

    Raises:
        ExprsimError: unknown name.
        BackendUnavailableError: the backend's libraries or model files are missing.
    """
    _ensure_backends()
    if not isinstance(name, str):
        raise ExprsimError(f"a detector name is a string, got {type(name).__name__}")
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ExprsimError(f"unknown detector {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    why = spec.probe()
    if why is not None:
        raise BackendUnavailableError(f"detector {name!r} is unavailable: {why}")


def create_detector(
    name: str = DEFAULT_DETECTOR, *, inference_threads: int | None = None, **kwargs: Any
) -> Detector:
    """Build a detector by registry name.

    Args:
        name: registry name (:func:`list_detectors`).
        inference_threads: threads each model inference may use, for a detector that runs
            alone (one image at a time, no other front-end thread beside it); ignored by
            backends without the option. ``None``: the backend's default (1 for the
            MediaPipe detectors; the front end's worker threads keep that).
        **kwargs: backend options (e.g. ``max_side``, ``min_confidence``; see each backend).

    Raises:
        ExprsimError: unknown name, an option the backend does not have, or a confidence
            (``min_confidence``, ``tile_min_confidence``) outside ``[0, 1]``;
            :class:`DetectorOptionError` (also a ``ValueError``): an option of the wrong
            type or out of its range (``threads=0``, ``max_side="big"``).
        BackendUnavailableError: the backend's libraries or model files are missing
            (the message says how to install them).
    """
    check_detector(name)
    spec = _REGISTRY[name]
    if inference_threads is not None:
        threads = option_int(name, "inference_threads", inference_threads, 1, MAX_INFERENCE_THREADS)
        if spec.threads and "threads" not in kwargs:
            kwargs["threads"] = threads
    _check_options(name, spec.factory, kwargs)
    detector = spec.factory(**kwargs)
    with contextlib.suppress(AttributeError, TypeError):  # how to build it again (pickle)
        setattr(detector, "_made_by", (name, dict(kwargs)))  # noqa: B010 - not every Detector
    return detector


def _rebuild_detector(name: str, kwargs: dict[str, Any], closed: bool) -> Detector:
    """A detector unpickled or deep-copied: built again from its name and options (its
    native models, MediaPipe graphs and LiteRT interpreters, do not pickle)."""
    detector = create_detector(name, **kwargs)
    close = getattr(detector, "close", None)
    if closed and close is not None:
        close()
    return detector


def _check_options(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """Refuse an option ``factory`` does not take, and a confidence outside ``[0, 1]`` (2
    found no face, -1 found 80 that were not faces), in one line each."""
    import inspect

    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a factory without a readable signature
        params = {}
    if params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ExprsimError(
                f"detector {name!r} has no option {', '.join(unknown)} "
                f"(its options: {', '.join(params) or 'none'})"
            )
    for key, value in kwargs.items():
        if key.endswith("confidence"):
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not ok or not 0.0 <= float(value) <= 1.0:
                raise DetectorOptionError(
                    f"detector {name!r}: {key} must be in [0, 1], got {value!r}"
                )
        elif key == "max_side":
            option_max_side(name, value)


# ----------------------------------------------------------------------------- helpers


#: shortest side a downscaled image keeps (see :func:`downscale_for_detection`)
MIN_SHORT_SIDE = 480
#: longest side a detector is ever given: OpenCV's warps refuse images of ``SHRT_MAX``
#: (32,767) pixels or more, whatever ``max_side`` says
MAX_DETECT_SIDE = 32766


def downscale_for_detection(
    image: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE
) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so that its longer side is at most ``max_side`` (area averaging),
    but never its shorter side under :data:`MIN_SHORT_SIDE` (a 720 x 5120 panorama would
    otherwise be 180 pixels high: too low for the tiled pass, and every face lost). In
    any case the longer side ends at most :data:`MAX_DETECT_SIDE` (a 70 x 40,000 strip is
    shrunk even with ``max_side=None``).

    Returns:
        ``(small, factor)``: the (possibly unchanged) image and ``small / full`` scale.
    """
    h, w = image.shape[:2]
    longest = max(h, w)
    if (not max_side or longest <= max_side) and longest <= MAX_DETECT_SIDE:
        return image, 1.0
    import cv2

    factor = min(1.0, MIN_SHORT_SIDE / max(1, min(h, w)))
    if max_side:
        factor = max(max_side / longest, factor)
    factor = min(factor, MAX_DETECT_SIDE / longest)
    if factor >= 1.0:
        return image, 1.0
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / w


def scale_points(points: np.ndarray, factor: float) -> np.ndarray:
    """Map pixel coordinates from an image resized by ``factor`` back to the original.

    Uses pixel-centre coordinates: ``x_full = (x_small + 0.5) / factor - 0.5``.
    """
    return ((np.asarray(points, dtype=np.float64) + 0.5) / factor - 0.5).astype(np.float32)


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas ``(N, M)`` of ``(N, 4)`` and ``(M, 4)`` boxes, and the
    boxes' areas ``(N, 1)`` and ``(1, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    iy = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return ix * iy, area_a[:, None], area_b[None, :]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between ``(N, 4)`` and ``(M, 4)`` ``x1, y1, x2, y2`` boxes; returns ``(N, M)``."""
    inter, area_a, area_b = _overlaps(a, b)
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def box_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)``: the share of each ``(M, 4)`` box ``b`` that lies inside each ``(N, 4)``
    box ``a`` (intersection over ``b``'s area; 1 when ``b`` lies inside ``a``)."""
    inter, _, area_b = _overlaps(a, b)
    return inter / np.maximum(area_b, 1e-12)


#: a box whose area lies this much inside a better-scored box is part of the same face
#: (:func:`nms`; a detection of the eyes-and-nose part of a tilted face had IoU 0.25 with
#: the face's box but lay 87% inside it)
NESTED = 0.8


def nms(
    boxes: np.ndarray,
    scores: np.ndarray | Sequence[float],
    iou_threshold: float = 0.3,
    nested: float | None = NESTED,
) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best score first.

    A box is dropped when its IoU with a kept (better-scored) box is above
    ``iou_threshold``, or when more than ``nested`` of its own area lies inside a kept box
    (:func:`box_inside`; ``None``: IoU only): a second detection of part of that face. A
    bigger box is never dropped for a smaller, better-scored one inside it (a small face
    held in front of a bigger one keeps both).
    """
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    keep: list[int] = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if order:
            stays = box_iou(boxes[i], boxes[order])[0] <= iou_threshold
            if nested is not None:
                stays &= box_inside(boxes[i], boxes[order])[0] <= nested
            order = [j for j, s in zip(order, stays, strict=True) if s]
    return keep


@array_equality
@dataclass(frozen=True)
class Candidate:
    """A raw detection, before the landmark stage.

    Attributes:
        box: ``(4,)`` ``x1, y1, x2, y2`` pixels (of whatever image the backend saw).
        score: confidence in ``[0, 1]``.
        landmarks: ``(5, 2)`` landmarks from the detector itself, or ``None``.
        fallback: ``(5, 2)`` approximate landmarks used when the landmark stage fails.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None
    fallback: np.ndarray | None = None

    def shifted(self, dx: float, dy: float) -> Candidate:
        """The same detection in an image where this one's origin sits at ``(dx, dy)``."""
        if dx == 0 and dy == 0:
            return self
        off = np.array([dx, dy], dtype=np.float64)
        return replace(
            self,
            box=np.asarray(self.box, dtype=np.float64) + np.tile(off, 2),
            landmarks=None if self.landmarks is None else np.asarray(self.landmarks) + off,
            fallback=None if self.fallback is None else np.asarray(self.fallback) + off,
        )

    def rescaled(self, factor: float) -> Candidate:
        if factor == 1.0:
            return self
        # box edges scale as they are (the image's edge 0 stays 0, its far edge maps to the
        # full size); landmarks are pixel centres (:func:`scale_points`)
        return replace(
            self,
            box=np.asarray(self.box, dtype=np.float64).reshape(4) / factor,
            landmarks=None if self.landmarks is None else scale_points(self.landmarks, factor),
            fallback=None if self.fallback is None else scale_points(self.fallback, factor),
        )


def cut_by_region(
    box: np.ndarray, region: tuple[int, int, int, int], size: tuple[int, int], tol: float = 2.0
) -> bool:
    """Whether ``box`` touches an edge of ``region`` that is not also the image's edge."""
    x1, y1, x2, y2 = (float(v) for v in box)
    rx0, ry0, rx1, ry1 = region
    w, h = size
    return (
        (rx0 > 0 and x1 <= rx0 + tol)
        or (ry0 > 0 and y1 <= ry0 + tol)
        or (rx1 < w and x2 >= rx1 - tol)
        or (ry1 < h and y2 >= ry1 - tol)
    )


class BaseDetector:
    """Shared machinery: downscale, propose boxes, map back, run the landmark stage.

    Subclasses set ``name`` and implement :meth:`propose` on the (downscaled) image. A
    detector is a context manager: ``with create_detector() as det:`` closes it at the end
    (:meth:`close`); a closed detector refuses :meth:`detect` and :meth:`detect_near`.

    Args:
        max_side: longest image side used for detection (``None``: never downscale).
        landmarker: landmark stage run on full-resolution crops for candidates without
            detector landmarks (an object with ``landmarks(image, box) -> (5, 2) | None``),
            or ``None``.
        on_landmark_failure: ``"approximate"`` keeps the face with the backend's
            approximate landmarks, ``"drop"`` discards it.
    """

    name: str = ""
    #: set by :meth:`close` (a class default: subclasses need not call ``__init__``)
    _closed: bool = False

    def __init__(
        self,
        max_side: int | None = DEFAULT_MAX_SIDE,
        landmarker: Any = None,
        on_landmark_failure: str = "approximate",
    ) -> None:
        name = self.name or type(self).__name__
        self.max_side = option_max_side(name, max_side)
        self.on_landmark_failure = option_choice(
            name, "on_landmark_failure", on_landmark_failure, ("approximate", "drop")
        )
        self.landmarker = landmarker

    def check_open(self) -> None:
        """Raise :class:`ExprsimError` (one line) when the detector was closed."""
        if self._closed:
            raise ExprsimError(
                f"{printable(self.name or type(self).__name__)} detector is closed; create another"
            )

    def propose(self, image: np.ndarray) -> list[Candidate]:
        """Raw detections on ``image`` (already downscaled), in its pixel coordinates."""
        raise NotImplementedError

    def detect(self, image: np.ndarray) -> list[Face]:
        """Find faces; see :class:`Detector`. Order: as the backend reports them."""
        from exprsim.io import as_rgb8

        self.check_open()
        image = as_rgb8(image)
        small, factor = downscale_for_detection(image, self.max_side)
        return self._faces(image, [c.rescaled(factor) for c in self.propose(small)])

    def detect_near(
        self, image: np.ndarray, hints: np.ndarray, margin: float = 0.5
    ) -> list[Face] | None:
        """Faces searched only around ``hints``, the ``(K, 4)`` boxes of faces seen just
        before (the previous video frame): each region is its hint grown by ``margin`` x
        the hint's size on every side, and the backend's :meth:`propose` runs on it alone.

        Returns ``None`` (the caller then runs :meth:`detect`) when a region holds no face,
        or only one cut by the region's edge (the face moved away): a face that was there
        is never dropped by this shortcut. Faces outside every region are not searched
        for: callers run a full :meth:`detect` now and then to find new ones.
        """
        from exprsim.io import as_rgb8

        self.check_open()
        image = as_rgb8(image)
        h, w = image.shape[:2]
        hints = np.asarray(hints, dtype=np.float64).reshape(-1, 4)
        if len(hints) == 0:
            return None
        cands: list[Candidate] = []
        for hb in hints:
            bw, bh = hb[2] - hb[0], hb[3] - hb[1]
            x0, y0 = int(max(0, hb[0] - margin * bw)), int(max(0, hb[1] - margin * bh))
            x1, y1 = int(min(w, hb[2] + margin * bw + 1)), int(min(h, hb[3] + margin * bh + 1))
            if x1 - x0 < 16 or y1 - y0 < 16:
                return None
            small, factor = downscale_for_detection(image[y0:y1, x0:x1], self.max_side)
            found = [c.rescaled(factor).shifted(x0, y0) for c in self.propose(small)]
            whole = [c for c in found if not cut_by_region(c.box, (x0, y0, x1, y1), (w, h))]
            if not whole:
                return None
            cands += whole
        if len(cands) > 1:
            keep = nms(np.stack([c.box for c in cands]), [c.score for c in cands], 0.3)
            cands = [cands[i] for i in keep]
        return self._faces(image, cands)

    def _faces(self, image: np.ndarray, cands: list[Candidate]) -> list[Face]:
        """Candidates in ``image``'s pixels -> faces, through the landmark stage."""
        faces: list[Face] = []
        h, w = image.shape[:2]
        for c in cands:
            box = np.asarray(c.box, dtype=np.float32)
            box = np.array(
                [max(box[0], 0), max(box[1], 0), min(box[2], w), min(box[3], h)], np.float32
            )
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            lm = c.landmarks
            if lm is None and self.landmarker is not None:
                if getattr(self.landmarker, "takes_hint", False):  # eyes set the roll
                    lm = self.landmarker.landmarks(image, c.box, hint=c.fallback)
                else:
                    lm = self.landmarker.landmarks(image, c.box)
                if lm is None:
                    log.debug("%s: landmark stage failed on box %s", self.name, box.round(1))
            if lm is None:
                if self.on_landmark_failure == "drop" or c.fallback is None:
                    continue
                lm = c.fallback
            faces.append(
                Face(
                    box=box,
                    score=float(np.clip(c.score, 0.0, 1.0)),
                    landmarks=np.asarray(lm, dtype=np.float32).reshape(5, 2),
                    detector=self.name,
                )
            )
        return faces

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled (and deep-copied) as its name and options, when it was made by
        :func:`create_detector`: the copy builds its own native models (a detector that
        had run held a LiteRT interpreter or a MediaPipe graph, which do not pickle).
        Attributes changed after :func:`create_detector` are not kept; a subclass with a
        ``__reduce__`` of its own is pickled by it."""
        made = getattr(self, "_made_by", None)
        if made is None or type(self).__reduce__ is not object.__reduce__:  # a subclass's own
            return super().__reduce_ex__(protocol)
        return (_rebuild_detector, (made[0], made[1], self._closed))

    def close(self) -> None:
        """Release native resources (MediaPipe graphs, LiteRT interpreters) and the
        landmark stage; afterwards :meth:`detect` and :meth:`detect_near` raise
        :class:`ExprsimError`. Closing twice is harmless."""
        self._closed = True
        close = getattr(getattr(self, "landmarker", None), "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_side={self.max_side})"


def landmarks_from_box(box: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """Approximate ``(5, 2)`` landmarks from a box.

    Args:
        box: ``(4,)`` ``x1, y1, x2, y2``.
        layout: ``(5, 2)`` landmark positions as fractions of the box width and height.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    return np.column_stack([x1 + layout[:, 0] * (x2 - x1), y1 + layout[:, 1] * (y2 - y1)]).astype(
        np.float32
    )
