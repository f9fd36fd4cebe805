"""Face identity descriptors: dlib's ResNet face descriptor (128-d).

Used to tell people apart, never to compare expressions: expression search drops faces of
the query's person with it (:mod:`exprsim.apps.search`), and the video pipeline groups
faces into persons with it (:mod:`exprsim.video.tracks`). Needs
``pip install 'exprsim[dlib]'``.
"""

from __future__ import annotations

import numpy as np

from exprsim.errors import BackendUnavailableError

#: dlib's decision threshold for "same person" on its 128-d descriptors.
IDENTITY_THRESHOLD = 0.6


class IdentityEncoder:
    """dlib's ResNet face descriptor (128-d; same person when distance < 0.6).

    Raises:
        BackendUnavailableError: dlib or ``face_recognition_models`` is not installed.
    """

    def __init__(self, purpose: str = "identity exclusion") -> None:
        """``purpose``: what needs the encoder, for the message when dlib is missing."""
        from exprsim.faces.landmarks import DLIB_INSTALL, dlib_model_path, dlib_probe

        why = dlib_probe()
        if why is not None:
            raise BackendUnavailableError(f"{purpose} needs dlib: {why}")
        import dlib

        try:
            self._shape = dlib.shape_predictor(
                str(dlib_model_path("shape_predictor_5_face_landmarks.dat"))
            )
            self._net = dlib.face_recognition_model_v1(
                str(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
            )
        except BackendUnavailableError:
            raise
        except Exception as exc:  # pragma: no cover - broken install
            raise BackendUnavailableError(
                f"cannot load dlib's face models ({exc}): {DLIB_INSTALL}"
            ) from exc
        self._dlib = dlib

    def descriptor(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(128,)`` float32 descriptor of the face in ``box`` of an ``(H, W, 3)`` uint8 image."""
        x1, y1, x2, y2 = (round(float(v)) for v in np.asarray(box).reshape(4))
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        img = np.ascontiguousarray(image)
        shape = self._shape(img, rect)
        return np.asarray(self._net.compute_face_descriptor(img, shape), dtype=np.float32)
