"""``mtcnn`` backend: MTCNN (the student report's detector), only if already installed.

exprsim does not depend on an MTCNN package. If ``facenet_pytorch`` (preferred; ships its
weights, but needs a working ``torchvision``) or ``mtcnn`` (needs TensorFlow) is
importable, this backend wraps it; otherwise it is listed as unavailable. MTCNN gives 5
landmarks itself (image-left eye first, as ours).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from exprsim.errors import BackendUnavailableError
from exprsim.faces.detect import (
    DEFAULT_MAX_SIDE,
    BaseDetector,
    Candidate,
    option_number,
    register_detector,
)

INSTALL = (
    "not a dependency of exprsim; install facenet-pytorch (needs torchvision) or mtcnn yourself"
)


def _probe() -> str | None:
    if importlib.util.find_spec("facenet_pytorch") or importlib.util.find_spec("mtcnn"):
        return None
    return f"missing facenet_pytorch / mtcnn: {INSTALL}"


@register_detector(
    "mtcnn", "MTCNN (facenet_pytorch or mtcnn package), own 5 landmarks", probe=_probe
)
class MTCNNDetector(BaseDetector):
    """MTCNN via ``facenet_pytorch`` or ``mtcnn``.

    Args:
        min_confidence: minimum face probability.
        max_side: longest side used for detection.
    """

    name = "mtcnn"

    def __init__(
        self, min_confidence: float = 0.9, max_side: int | None = DEFAULT_MAX_SIDE
    ) -> None:
        super().__init__(max_side, None, "drop")
        self.min_confidence = option_number("mtcnn", "min_confidence", min_confidence, 0.0, 1.0)
        self._impl: Any = None
        self._kind = ""
        errors = []
        try:
            from facenet_pytorch import MTCNN

            self._impl, self._kind = MTCNN(keep_all=True, device="cpu"), "facenet_pytorch"
        except Exception as exc:  # any import/runtime failure means unavailable
            errors.append(f"facenet_pytorch: {exc}")
            try:
                from mtcnn import MTCNN as TfMTCNN

                self._impl, self._kind = TfMTCNN(), "mtcnn"
            except Exception as exc2:
                errors.append(f"mtcnn: {exc2}")
        if self._impl is None:
            raise BackendUnavailableError(
                f"MTCNN could not be loaded ({'; '.join(errors)}); {INSTALL}"
            )

    def close(self) -> None:
        self._impl = None  # the networks go with the detector
        super().close()

    def propose(self, image: np.ndarray) -> list[Candidate]:
        cands = []
        if self._kind == "facenet_pytorch":
            boxes, probs, points = self._impl.detect(image, landmarks=True)
            if boxes is None:
                return []
            for b, p, lm in zip(boxes, probs, points, strict=True):
                if p is not None and p >= self.min_confidence:
                    cands.append(Candidate(np.asarray(b, float), float(p), np.asarray(lm, float)))
        else:
            for d in self._impl.detect_faces(image):
                if d["confidence"] < self.min_confidence:
                    continue
                x, y, w, h = d["box"]
                k = d["keypoints"]
                lm = np.array(
                    [k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]],
                    float,
                )
                cands.append(
                    Candidate(np.array([x, y, x + w, y + h], float), float(d["confidence"]), lm)
                )
        return cands
