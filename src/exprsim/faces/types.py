"""Typed face results shared by every detector, landmarker and the aligner.

Landmark order (5 points, pixel coordinates ``(x, y)`` in the source image), the
same order insightface/RetinaFace use:

    0: left eye centre   (the eye on the image's left, i.e. the subject's right eye)
    1: right eye centre  (image right)
    2: nose tip
    3: left mouth corner (image left)
    4: right mouth corner (image right)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exprsim.equality import array_equality

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@array_equality
@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(4,)`` float32 ``x1, y1, x2, y2`` in pixels of the full-resolution image.
        score: detector confidence in ``[0, 1]`` (Haar: a monotone proxy).
        landmarks: ``(5, 2)`` float32 pixel coordinates in :data:`LANDMARK_NAMES` order.
        detector: name of the backend that found the face.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    detector: str = ""

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "x1": float(self.box[0]),
            "y1": float(self.box[1]),
            "x2": float(self.box[2]),
            "y2": float(self.box[3]),
            "score": float(self.score),
            "landmarks": np.asarray(self.landmarks, dtype=float).round(2).tolist(),
            "detector": self.detector,
        }


@dataclass(frozen=True)
class Quality:
    """Quality of one face (see :mod:`exprsim.faces.quality`).

    Attributes:
        sharpness: FEENet eye-patch sharpness (mean |patch - blurred patch|, 0-255 scale).
        yaw, pitch, roll: head pose in degrees (yaw > 0: subject turns to the image's right).
        ok: passes the configured sharpness and yaw thresholds.
        reasons: why it was rejected (empty when ``ok``), e.g. ``("blur",)`` or ``("yaw",)``.
    """

    sharpness: float
    yaw: float
    pitch: float
    roll: float
    ok: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)


@array_equality
@dataclass(frozen=True)
class AlignedFace:
    """A face with its canonical crop and quality.

    Attributes:
        face: the detection.
        crop: ``(S, S, 3)`` uint8 RGB aligned crop (S = ``AlignConfig.size``).
        quality: sharpness and head pose.
    """

    face: Face
    crop: np.ndarray
    quality: Quality
