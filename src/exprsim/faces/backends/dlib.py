"""``dlib`` backend: dlib's HOG + linear SVM face detector with its 68-point predictor.

Needs the ``[dlib]`` extra (``dlib-bin`` and ``face-recognition-models``); without it,
creating the detector raises :class:`~exprsim.errors.BackendUnavailableError` saying
``pip install 'exprsim[dlib]'``. Landmarks: the 68-point shape predictor reduced to our 5
points (dlib's 5-point model has no mouth corners; see :mod:`exprsim.faces.landmarks`).

Score: ``sigmoid(svm_score)``, a monotone proxy for the HOG detector's SVM margin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from exprsim.errors import BackendUnavailableError
from exprsim.faces.detect import (
    DEFAULT_MAX_SIDE,
    BaseDetector,
    Candidate,
    option_choice,
    option_int,
    option_number,
    register_detector,
)
from exprsim.faces.landmarks import DlibLandmarker, dlib_probe


@register_detector(
    "dlib", "dlib HOG detector, 68-point shape predictor landmarks", probe=dlib_probe
)
class DlibDetector(BaseDetector):
    """dlib frontal face detector (HOG).

    Args:
        upsample: times the image is upsampled before detection (1 finds faces down to
            about 40 px, 0 only from about 80 px; each step costs about 4x time).
        threshold: SVM score threshold (dlib's ``adjust_threshold``).
        landmarker: ``"dlib"`` (68-point predictor), ``"mesh"`` or ``"mesh-lite"``.
        max_side: longest side used for detection.
    """

    name = "dlib"

    def __init__(
        self,
        upsample: int = 1,
        threshold: float = 0.0,
        landmarker: str = "dlib",
        max_side: int | None = DEFAULT_MAX_SIDE,
    ) -> None:
        why = dlib_probe()
        if why is not None:
            raise BackendUnavailableError(why)
        # checked before anything is built: a wrong one fails here, not at the first detect
        upsample = option_int("dlib", "upsample", upsample, 0)
        threshold = option_number("dlib", "threshold", threshold)
        landmarker = option_choice("dlib", "landmarker", landmarker, ("dlib", "mesh", "mesh-lite"))
        import dlib

        from exprsim.faces.landmarks import create_landmarker

        lm = DlibLandmarker() if landmarker == "dlib" else create_landmarker(landmarker)
        super().__init__(max_side, lm, "drop")
        self._detector: Any = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.threshold = threshold

    def close(self) -> None:
        self._detector = None  # the HOG detector goes with this one
        super().close()

    def propose(self, image: np.ndarray) -> list[Candidate]:
        rects, scores, _ = self._detector.run(
            np.ascontiguousarray(image), self.upsample, self.threshold
        )
        cands = []
        for r, s in zip(rects, scores, strict=True):
            box = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64)
            cands.append(Candidate(box, 1.0 / (1.0 + math.exp(-float(s)))))
        return cands
