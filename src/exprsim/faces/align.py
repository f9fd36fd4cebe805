"""Alignment: one similarity transform from 5 landmarks to a canonical template, one warp.

Like insightface's ``norm_crop``: estimate the least-squares similarity transform
(rotation, uniform scale, translation; no reflection, Umeyama 1991) that maps the 5
detected points onto the template, then warp the image once. Roll is undone, scale and
position normalised.

The default template, :data:`FER2013_TEMPLATE`, reproduces the framing of FER2013 (tight
48x48 face crops, the expression training data): it is the mean position of the 5
MediaPipe-mesh landmarks on FER2013 Training crops (how it was measured is documented on
the constant). Aligned crops therefore show the face the way the embedding network saw
faces during training. :data:`ARCFACE_TEMPLATE` (insightface's, looser framing) is also
provided.

Coordinates: pixel centres at integer coordinates (OpenCV convention). Templates are
normalised to the crop: ``(0, 0)`` is the top-left *edge* and ``(1, 1)`` the bottom-right
edge, so a template point ``t`` lands on pixel coordinate ``t * size - 0.5``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from exprsim.errors import ArgumentError, ExprsimError

Template = tuple[tuple[float, float], ...]


class LandmarkError(ExprsimError, ValueError):
    """Landmarks a face cannot be aligned by: not 5 finite ``(x, y)`` points, or all at one
    place. A :class:`ValueError` too, as :func:`align_face` always raised."""


#: FER2013 framing, normalised to the crop side (order: :data:`exprsim.faces.types.LANDMARK_NAMES`).
#:
#: Measured with ``.venv/bin/python benchmarks/fer_template.py --n 5000 --seed 0``: 5000
#: random FER2013 Training crops (``exprsim.data.fer.load_ferplus("Training")``), each
#: upscaled 48 -> 192 px (bicubic), gray -> RGB, landmarked by
#: :class:`exprsim.faces.landmarks.MeshLandmarker` with the whole crop as the box. The mesh
#: found the face in 4918 of 5000 crops (98.4%). The template is the mean normalised
#: position of each point over those 4918 crops (per-point std 0.07-0.11 of the side: FER2013
#: framing varies), averaged with its left-right mirror image so that it is symmetric
#: (level eyes, centred nose). Eye distance: 0.355 of the crop side (40 px at 112).
FER2013_TEMPLATE: Template = (
    (0.3224, 0.3809),
    (0.6776, 0.3809),
    (0.5000, 0.6156),
    (0.3579, 0.7637),
    (0.6421, 0.7637),
)

#: insightface's ArcFace template (112 x 112 pixels, normalised): a looser framing.
ARCFACE_TEMPLATE: Template = (
    (38.2946 / 112, 51.6963 / 112),
    (73.5318 / 112, 51.5014 / 112),
    (56.0252 / 112, 71.7366 / 112),
    (41.5493 / 112, 92.3655 / 112),
    (70.7299 / 112, 92.2041 / 112),
)


#: largest aligned crop side (a 4096 x 4096 crop is 50 MB; larger ones are typos)
MAX_CROP_SIZE = 4096


@dataclass(frozen=True)
class AlignConfig:
    """How faces are aligned.

    Attributes:
        size: side ``S`` of the square output crop in pixels.
        template: 5 ``(x, y)`` points normalised to the crop (default: FER2013 framing).
        eye_distance: if set, the template is scaled about the crop centre so that the
            distance between the two eye points is this fraction of ``size`` (e.g.
            ``70 / 224`` reproduces FEENet's 70 px inter-ocular distance in a 224 crop).
            ``None`` keeps the template's own scale (0.355 for FER2013).
        border: how pixels outside the source image are filled: ``"constant"`` (black),
            ``"replicate"`` or ``"reflect"``.
    """

    size: int = 112
    template: Template = FER2013_TEMPLATE
    eye_distance: float | None = None
    border: str = "constant"

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise ArgumentError(f"AlignConfig.size must be a whole number of pixels, got {size!r}")
        if not 8 <= size <= MAX_CROP_SIZE:
            raise ArgumentError(f"AlignConfig.size must be in [8, {MAX_CROP_SIZE}], got {size}")
        object.__setattr__(self, "size", int(size))  # an np.int64 is no JSON
        try:
            t = np.asarray(self.template, dtype=float)
        except (TypeError, ValueError):
            raise ArgumentError("AlignConfig.template must hold 5 (x, y) points") from None
        if t.shape != (5, 2):
            raise ArgumentError("AlignConfig.template must hold 5 (x, y) points")
        if not np.isfinite(t).all() or float(np.linalg.norm(t[1] - t[0])) < 1e-3:
            raise ArgumentError("AlignConfig.template must be finite, with the two eyes apart")
        # kept as a tuple of float pairs whatever was given (an array, lists): configs
        # compare, hash and save alike (an array made `==` raise on every aligned face)
        object.__setattr__(self, "template", as_template(t))
        if self.eye_distance is not None and not 0.0 < self.eye_distance < 1.0:
            raise ArgumentError(
                f"AlignConfig.eye_distance must be in (0, 1), got {self.eye_distance}"
            )
        if self.border not in _BORDERS:
            raise ArgumentError(f"AlignConfig.border must be one of {sorted(_BORDERS)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["template"] = [list(p) for p in self.template]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignConfig:
        d = dict(d)
        if "template" in d:
            d["template"] = as_template(d["template"])
        return cls(**d)


def as_template(points: Any) -> Template:
    """A template from JSON-style nested lists ``[[x, y], ...]``."""
    return tuple((float(x), float(y)) for x, y in points)


_BORDERS = {"constant": 0, "replicate": 1, "reflect": 4}  # cv2.BORDER_* values


def template_points(config: AlignConfig | None = None) -> np.ndarray:
    """Template in output-pixel coordinates.

    Returns:
        ``(5, 2)`` float64 pixel coordinates in the ``(S, S)`` crop.
    """
    config = config or AlignConfig()
    t = np.asarray(config.template, dtype=np.float64)
    if config.eye_distance is not None:
        current = float(np.linalg.norm(t[1] - t[0]))
        t = 0.5 + (t - 0.5) * (config.eye_distance / current)
    return t * config.size - 0.5


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform ``dst ~ s R src + t`` (Umeyama; no reflection).

    Args:
        src: ``(N, 2)`` source points, ``N >= 2``.
        dst: ``(N, 2)`` destination points.

    Returns:
        ``(2, 3)`` float64 affine matrix ``[s R | t]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two (N, 2) arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = float((sc**2).sum()) / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


#: The smallest image side OpenCV's ``warpAffine`` refuses (its remap asserts sides under
#: ``SHRT_MAX``): :func:`warp_affine` cuts such an image to the region its output reads
MAX_WARP_SIDE = 32767


def _source_region(
    m: np.ndarray, out_w: int, out_h: int, shape: tuple[int, ...], pad: float
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the source pixels the ``out_w x out_h`` output of the forward
    affine ``m`` reads, ``pad`` pixels more on every side, within an image of ``shape``."""
    import cv2

    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [out_w, 0, 1], [0, out_h, 1], [out_w, out_h, 1]], float)
    src = corners @ inv.T
    h, w = shape[:2]
    x0 = int(max(0, math.floor(src[:, 0].min() - pad)))
    y0 = int(max(0, math.floor(src[:, 1].min() - pad)))
    x1 = int(min(w, math.ceil(src[:, 0].max() + pad)))
    y1 = int(min(h, math.ceil(src[:, 1].max() + pad)))
    return x0, y0, x1, y1


def warp_affine(
    image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int], border: str = "constant"
) -> np.ndarray:
    """Warp ``image`` by a forward affine ``matrix`` (source -> output pixels), anti-aliased.

    When the transform shrinks by more than 2x, only the needed region is first reduced
    with area averaging (``cv2.INTER_AREA``) and the matrix adjusted, so that large faces
    do not alias; the output is still produced by a single ``cv2.warpAffine``. An image
    with a side of :data:`MAX_WARP_SIDE` or more (a stitched panorama) is first cut to the
    region the output reads.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` uint8 image.
        matrix: ``(2, 3)`` forward affine.
        size: output side, or ``(width, height)``.
        border: ``"constant"`` (0), ``"replicate"`` or ``"reflect"``.

    Returns:
        ``(h, w[, C])`` warped image, same dtype.
    """
    import cv2

    out_w, out_h = (size, size) if isinstance(size, int) else size
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    scale = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        x0, y0, x1, y1 = _source_region(m, out_w, out_h, image.shape[:2], 2.0 / scale)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            f = 2.0 * scale  # reduce to twice the output resolution, then warp
            roi = image[y0:y1, x0:x1]
            rw, rh = max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f))
            small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
            fx, fy = rw / (x1 - x0), rh / (y1 - y0)
            # small-pixel centre u  <->  source x = (u + 0.5) / fx - 0.5 + x0
            back = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0]])
            m = m @ np.vstack([back, [0.0, 0.0, 1.0]])
            image = small
    if max(image.shape[:2]) >= MAX_WARP_SIDE:  # OpenCV's remap refuses such a source
        x0, y0, x1, y1 = _source_region(m, out_w, out_h, image.shape[:2], 2.0)
        x0, y0 = min(x0, image.shape[1] - 1), min(y0, image.shape[0] - 1)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)  # an output beside the image: its edge
        image = image[y0:y1, x0:x1]
        m = m.copy()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(
        image,
        m,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=_BORDERS[border],
        borderValue=(0.0, 0.0, 0.0, 0.0),
    )


def alignment_matrix(landmarks5: np.ndarray, config: AlignConfig | None = None) -> np.ndarray:
    """``(2, 3)`` similarity matrix mapping image pixels to aligned-crop pixels.

    Raises:
        LandmarkError: ``landmarks5`` is not 5 finite points, or its points all coincide.
    """
    try:
        if landmarks5 is None:
            raise TypeError("no landmarks")
        lm = np.asarray(landmarks5, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # None, strings, ragged lists
        raise LandmarkError(
            f"landmarks5 must be a finite (5, 2) array of numbers, got {type(landmarks5).__name__}"
        ) from exc
    if lm.shape != (5, 2):
        raise LandmarkError(f"landmarks5 must be a finite (5, 2) array, got shape {lm.shape}")
    if not np.isfinite(lm).all():
        raise LandmarkError("landmarks5 must be a finite (5, 2) array, got NaN or infinite points")
    try:
        return estimate_similarity(lm, template_points(config))
    except ValueError as exc:  # the points coincide: no scale, no angle
        raise LandmarkError(f"landmarks5 cannot align a face: {exc}") from exc


def align_face(
    image: np.ndarray, landmarks5: np.ndarray, config: AlignConfig | None = None
) -> np.ndarray:
    """Cut the canonical crop of one face.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, full resolution (other dtypes and layouts are
            converted as :func:`exprsim.io.as_rgb8` does).
        landmarks5: ``(5, 2)`` pixel coordinates in ``LANDMARK_NAMES`` order.
        config: output size, template, eye distance, border.

    Returns:
        ``(S, S, 3)`` uint8 RGB crop, upright (roll undone), framed like the template.

    Raises:
        ImageError: an image :func:`exprsim.io.as_rgb8` cannot read.
        LandmarkError: landmarks that are not 5 finite points, or all at one place (an
            :class:`~exprsim.errors.ExprsimError` and a ``ValueError``).
    """
    from exprsim.io import as_rgb8

    config = config or AlignConfig()
    m = alignment_matrix(landmarks5, config)
    return warp_affine(as_rgb8(image), m, config.size, border=config.border)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine to ``(N, 2)`` points; returns ``(N, 2)`` float64."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]
