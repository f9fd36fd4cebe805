"""Drawing detections on images (boxes, 5 landmarks, labels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from exprsim.faces.types import Face

#: landmark colours in LANDMARK_NAMES order (RGB)
_POINT_COLOURS = ((255, 64, 64), (64, 160, 255), (255, 220, 0), (0, 220, 120), (220, 0, 220))


def draw_faces(
    image: np.ndarray, faces: Sequence[Face], labels: Sequence[str] | None = None
) -> np.ndarray:
    """Copy of ``(H, W, 3)`` uint8 RGB ``image`` with each face's box, landmarks and label."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    thick = max(1, round(max(image.shape[:2]) / 400))
    for n, face in enumerate(faces):
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), thick)
        for (x, y), colour in zip(face.landmarks, _POINT_COLOURS, strict=False):
            cv2.circle(out, (round(float(x)), round(float(y))), thick + 2, colour, -1)
        text = labels[n] if labels is not None else f"#{n} {face.score:.2f}"
        cv2.putText(
            out,
            text,
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick,
            (0, 255, 0),
            thick,
        )
    return out
