"""Face crops framed by someone else, framed again like the model's aligned crops.

The expression networks were trained on FER2013's framing (exprsim's aligner reproduces it
with :data:`~exprsim.faces.align.FER2013_TEMPLATE`). A crop cut by another tool or lab
often shows more: hair, neck, background. Such a crop, resized to 48 px as it is, costs
the embedding a lot (validation, v8, triplets + kNN11: 1.641 as is, 1.524 padded to 140%,
1.142 padded to 200%; re-framed as below: 1.642, 1.604, 1.529; docs/model-card.md, "loosely
framed crops framed again"). :func:`reframe_crops` finds the face inside each crop
with a detector and cuts it again with the model's template, but only when the crop is
framed *looser* than FER2013's own crops (:data:`LOOSE_FRAMING`): a tight crop is left as
it is, since the detector often misses faces cut at the chin and forehead, and a data set
half re-framed, half not, scores worse than one left alone (``runs/autoframe.rule.txt``,
``runs/autoframe2.rule.txt``).

**Framing** ``r`` of a crop: its longer side in units of the aligned crop, that is the side
times the scale of the alignment's similarity transform, divided by the aligned crop's
side. ``r`` is about 1 for a crop framed like FER2013, 1.4 for one padded to 140% of that,
under 1 for a tighter one; it does not depend on the crop's pixel size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from exprsim.equality import array_equality
from exprsim.errors import ArgumentError, require_number
from exprsim.faces.align import AlignConfig, LandmarkError, alignment_matrix, warp_affine
from exprsim.io import looks_like_one_colour_crop

log = logging.getLogger(__name__)

#: Crops with both sides at most this many pixels are never re-framed (FER2013's 48 px
#: crops, the networks' own input size, and the speed floor's input).
MAX_UNTOUCHED_SIDE = 64
#: A crop is re-framed when its framing ``r`` is at least this: the 95th percentile of ``r``
#: over the 26,575 FER+ training faces as they are (upscaled to 144 px, faces found),
#: measured by the probe of ``runs/autoframe2.rule.txt`` (docs/model-card.md).
LOOSE_FRAMING = 1.338


@array_equality
@dataclass(frozen=True)
class Reframed:
    """What :func:`reframe_crops` made of a batch of ``N`` crops.

    Attributes:
        crops: ``(N, S, S, 3)`` uint8 RGB at the aligned crop's side ``S``, in input order:
            a re-framed crop where ``reframed`` is true, the crop as it is (resized to
            ``S x S``, area averaging) elsewhere, so that every crop of the batch reaches
            the network through the same resampling.
        reframed: ``(N,)`` bool: which crops were cut again.
        framing: ``(N,)`` float64: each crop's framing ``r``; NaN where no face was found.
    """

    crops: np.ndarray
    reframed: np.ndarray
    framing: np.ndarray


def framing(landmarks5: np.ndarray, crop_shape: tuple[int, ...], config: AlignConfig) -> float:
    """The framing ``r`` (module docstring) of a crop of shape ``(H, W, ...)`` whose face
    has the 5 landmarks ``landmarks5`` (pixels), aligned by ``config``.

    Raises:
        LandmarkError: landmarks that cannot align a face.
        ArgumentError: ``crop_shape`` names fewer than two sides.
    """
    if len(crop_shape) < 2:
        raise ArgumentError(f"crop_shape must be (H, W, ...), got {tuple(crop_shape)}")
    return _framing(alignment_matrix(landmarks5, config), crop_shape, config.size)


def _framing(matrix: np.ndarray, crop_shape: tuple[int, ...], size: int) -> float:
    """:func:`framing` from the alignment's ``(2, 3)`` similarity ``matrix``."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return max(int(crop_shape[0]), int(crop_shape[1])) * scale / size


def reframe_crops(
    crops: np.ndarray,
    config: AlignConfig,
    detector: Any = None,
    threshold: float | None = None,
) -> Reframed:
    """Re-frame the crops of ``crops`` that are framed looser than FER2013's.

    Args:
        crops: uint8 ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB crops, one face each, with
            ``max(H, W)`` above :data:`MAX_UNTOUCHED_SIDE` (callers leave smaller crops
            alone).
        config: the model's alignment (size and template); crops are re-cut with
            replicated border pixels whatever its ``border``, since the crop's edge is not
            the scene's.
        detector: a detector name or instance (:func:`exprsim.faces.pipeline.resolve_detector`);
            ``None``: the default (about 3.5 ms a crop at 144 px on two cores).
        threshold: re-frame when the framing is at least this (default
            :data:`LOOSE_FRAMING`).

    Returns:
        A :class:`Reframed`. In a crop with several faces the largest counts. Crops without
        a face and crops framed tighter than ``threshold`` are kept as they are.

    Raises:
        ArgumentError: ``crops`` is not a batch of uint8 gray or RGB crops (one ``(H, W, 3)``
            crop is refused: pass ``crop[None]``), or ``threshold`` is not a positive number.
    """
    import cv2

    from exprsim.faces.pipeline import largest_first, resolve_detector
    from exprsim.io import as_rgb8

    arr = _crop_batch(crops)
    limit = LOOSE_FRAMING if threshold is None else _threshold(threshold)
    n, side = arr.shape[0], config.size
    out = np.empty((n, side, side, 3), np.uint8)
    reframed = np.zeros(n, bool)
    r = np.full(n, np.nan)
    if n == 0:  # no detector built for nothing
        return Reframed(out, reframed, r)
    cut = replace(config, border="replicate")
    det = resolve_detector(detector)
    for i in range(n):
        rgb = as_rgb8(arr[i])
        faces = det.detect(rgb)
        if faces:
            face = min(faces, key=largest_first)
            try:
                m = alignment_matrix(face.landmarks, cut)
            except LandmarkError:
                pass
            else:
                r[i] = _framing(m, rgb.shape, side)
                if r[i] >= limit:
                    out[i] = warp_affine(rgb, m, side, border=cut.border)
                    reframed[i] = True
                    continue
        out[i] = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA)
    log.debug("re-framed %d of %d crops framed looser than FER2013's", int(reframed.sum()), n)
    return Reframed(out, reframed, r)


def _crop_batch(crops: Any) -> np.ndarray:
    """``crops`` as a uint8 ``(N, H, W)`` / ``(N, H, W, 1)`` / ``(N, H, W, 3)`` batch with
    ``H, W > 0``; :class:`~exprsim.errors.ArgumentError` otherwise."""
    arr = np.asarray(crops)
    shape_ok = arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] in (1, 3))
    if arr.dtype != np.uint8 or not shape_ok or (arr.shape[0] > 0 and 0 in arr.shape[1:3]):
        raise ArgumentError(
            "crops must be a uint8 (N, H, W), (N, H, W, 1) or (N, H, W, 3) batch of "
            f"non-empty crops, got shape {arr.shape} and dtype {arr.dtype}"
        )
    if looks_like_one_colour_crop(arr):
        raise ArgumentError(
            f"crops of shape {arr.shape} look like one (H, W, {arr.shape[2]}) colour crop: "
            "pass a batch, crop[None]"
        )
    return arr


def _threshold(value: Any) -> float:
    """``threshold`` of :func:`reframe_crops` as a positive finite float."""
    rule = "a positive number"
    return require_number(value, "threshold", rule, 0, low_open=True, error=ArgumentError)
