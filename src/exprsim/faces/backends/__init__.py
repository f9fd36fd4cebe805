"""Detector backends; importing this package registers them (no heavy imports here).

Each module registers one backend with :func:`exprsim.faces.detect.register_detector`
and imports its library (mediapipe, cv2, dlib, ...) only when a detector is created.
"""

from exprsim.faces.backends import dlib, haar, mediapipe, mtcnn

__all__ = ["dlib", "haar", "mediapipe", "mtcnn"]
