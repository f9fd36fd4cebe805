"""``haar`` backend: OpenCV's Viola-Jones frontal-face cascade (as in the student report).

The cascade gives boxes only; the 5 landmarks come from the landmark stage (MediaPipe
face mesh by default, or dlib) run on a full-resolution crop around each box. If that
stage finds no face, the box is kept with landmarks placed at fixed fractions of the box
(:data:`HAAR_BOX_LANDMARKS`), unless ``on_landmark_failure="drop"``.

Score: the cascade has no probability; ``score = sigmoid(level_weight / 2)`` from
``detectMultiScale3(..., outputRejectLevels=True)`` is a monotone proxy for confidence.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from exprsim.errors import BackendUnavailableError
from exprsim.faces.detect import (
    DEFAULT_MAX_SIDE,
    BaseDetector,
    Candidate,
    DetectorOptionError,
    landmarks_from_box,
    modules_probe,
    option_choice,
    option_int,
    option_number,
    register_detector,
)

#: landmark stages a box-only detector can use (:func:`exprsim.faces.landmarks.create_landmarker`)
LANDMARKERS = ("mesh", "mesh-lite", "dlib")

#: Mean landmark positions inside a Haar box, as fractions of the box side: face-mesh
#: landmarks of the 9 bundled sample photos in their Haar boxes, averaged and made
#: left-right symmetric (per-point std 0.02-0.06). Used only when the landmark stage fails.
HAAR_BOX_LANDMARKS = np.array(
    [[0.311, 0.405], [0.689, 0.405], [0.500, 0.616], [0.333, 0.785], [0.667, 0.785]],
    dtype=np.float64,
)


@register_detector(
    "haar",
    "OpenCV Viola-Jones frontal-face cascade, face-mesh landmarks",
    probe=modules_probe("cv2", install="pip install opencv-contrib-python==4.11.0.86"),
)
class HaarDetector(BaseDetector):
    """OpenCV cascade detector.

    Args:
        cascade: file name in ``cv2.data.haarcascades`` (or a path).
        scale_factor: pyramid step of ``detectMultiScale``.
        min_neighbors: overlapping hits needed to accept a box.
        min_size: smallest face side in pixels of the detection image.
        landmarker: ``"mesh"``, ``"mesh-lite"`` or ``"dlib"``.
        max_side: longest side used for detection.
        on_landmark_failure: ``"approximate"`` or ``"drop"``.
    """

    name = "haar"

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        landmarker: str = "mesh",
        max_side: int | None = DEFAULT_MAX_SIDE,
        on_landmark_failure: str = "approximate",
    ) -> None:
        import cv2

        from exprsim.faces.landmarks import create_landmarker

        if not isinstance(cascade, str | Path):
            raise DetectorOptionError(
                f"detector 'haar': cascade must be a file name or path, got {cascade!r}"
            )
        # checked before anything is built: a wrong one fails here, not at the first detect
        scale_factor = option_number("haar", "scale_factor", scale_factor, 1.0, low_open=True)
        min_neighbors = option_int("haar", "min_neighbors", min_neighbors, 0)
        min_size = option_int("haar", "min_size", min_size, 1)
        landmarker = option_choice("haar", "landmarker", landmarker, LANDMARKERS)
        folder = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        path = Path(cascade)
        if not path.is_file():
            path = folder / cascade
        if not path.is_file():
            raise BackendUnavailableError(f"Haar cascade {cascade!r} not found in {folder}")
        self._cascade: Any = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise BackendUnavailableError(f"could not load Haar cascade {path}")
        super().__init__(max_side, create_landmarker(landmarker), on_landmark_failure)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def close(self) -> None:
        self._cascade = None  # the cascade goes with the detector
        super().close()

    def propose(self, image: np.ndarray) -> list[Candidate]:
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(gray)
        rects, _levels, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        cands = []
        for (x, y, w, h), wt in zip(
            np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=True
        ):
            box = np.array([x, y, x + w, y + h], dtype=np.float64)
            score = 1.0 / (1.0 + math.exp(-float(wt) / 2.0))
            cands.append(Candidate(box, score, None, landmarks_from_box(box, HAAR_BOX_LANDMARKS)))
        cands.sort(key=lambda c: -c.score)
        return cands
