"""Landmark stage: 5 alignment points (and the full mesh) for a face box.

Three landmarkers, all working on full-resolution crops around a detector box:

* :class:`LiteMeshLandmarker` (``"mesh-lite"``, the default detector's when LiteRT is
  installed): MediaPipe's 468-point face landmark model run directly with LiteRT on the
  region MediaPipe itself derives from a BlazeFace detection (box scaled 1.5x, squared,
  rotated so the eyes are level), without the face mesh's second face detector;
* :class:`MeshLandmarker` (``"mesh"``): MediaPipe face mesh with iris refinement (478
  points; it runs its own face detector inside the crop, then the attention mesh model);
* :class:`DlibLandmarker`: dlib's 68-point shape predictor (``pip install 'exprsim[dlib]'``).
  dlib's 5-point model marks eye corners and the base of the nose but no mouth corners,
  so the 68-point model is used and reduced to our 5 points.

Mesh indices used for the 5 points (MediaPipe canonical face mesh; MediaPipe's "right"
is the subject's right, which is the image's left for an upright unmirrored face):

* image-left eye centre: mean of the 16 contour points of the subject's right eye
  :data:`MESH_RIGHT_EYE` (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159,
  158, 157, 173). The contour mean does not move with gaze, unlike the iris centre (468);
* image-right eye centre: mean of :data:`MESH_LEFT_EYE` (263, 249, 390, 373, 374, 380,
  381, 382, 362, 466, 388, 387, 386, 385, 384, 398);
* nose tip: 1;
* mouth corners: 61 (image left) and 291 (image right), the outer lip corners.

dlib 68-point indices: eyes 36-41 and 42-47 (means), mouth corners 48 and 54, and for the
nose the midpoint of 30 (tip) and 33 (base): dlib's point 30 sits 0.12 eye distances above
the mesh's point 1 on the bundled photos, the midpoint within 0.01, so both landmarkers
feed the aligner (and its mesh-measured FER2013 template) the same nose point.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from exprsim.errors import BackendUnavailableError

log = logging.getLogger(__name__)

MESH_RIGHT_EYE: tuple[int, ...] = (
    33,
    7,
    163,
    144,
    145,
    153,
    154,
    155,
    133,
    246,
    161,
    160,
    159,
    158,
    157,
    173,
)
MESH_LEFT_EYE: tuple[int, ...] = (
    263,
    249,
    390,
    373,
    374,
    380,
    381,
    382,
    362,
    466,
    388,
    387,
    386,
    385,
    384,
    398,
)
MESH_NOSE_TIP = 1
MESH_MOUTH_CORNERS: tuple[int, int] = (61, 291)
#: Iris centres (subject's right, subject's left); present with iris refinement.
MESH_IRIS_CENTERS: tuple[int, int] = (468, 473)
MESH_POINTS = 478

DLIB_INSTALL = "pip install 'exprsim[dlib]'  (dlib-bin + face-recognition-models)"


class Landmarker(Protocol):
    """Anything that marks the 5 points of a face given its box."""

    name: str

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """``(5, 2)`` float32 pixel landmarks, or ``None`` when no face is found in the box."""
        ...


def mesh_to_five(mesh: np.ndarray) -> np.ndarray:
    """Reduce a MediaPipe mesh (``(468 or 478, 2 or 3)``) to ``(5, 2)`` float32 landmarks."""
    m = np.asarray(mesh, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 468 or m.shape[1] < 2:
        raise ValueError(f"expected a (468|478, 2|3) face mesh, got {m.shape}")
    xy = m[:, :2]
    return np.stack(
        [
            xy[list(MESH_RIGHT_EYE)].mean(axis=0),
            xy[list(MESH_LEFT_EYE)].mean(axis=0),
            xy[MESH_NOSE_TIP],
            xy[MESH_MOUTH_CORNERS[0]],
            xy[MESH_MOUTH_CORNERS[1]],
        ]
    ).astype(np.float32)


def crop_transform(box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """``(2, 3)`` affine mapping image pixels to a square ``size`` crop around ``box``.

    The crop is centred on the box centre, with side ``max(w, h) * (1 + 2 * margin)``.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    s = size / side
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    # image edge coordinate (cx - side/2) -> crop edge 0; pixel centres: u = s*(x+0.5 - left) - 0.5
    return np.array(
        [[s, 0.0, s * (0.5 - cx + side / 2.0) - 0.5], [0.0, s, s * (0.5 - cy + side / 2.0) - 0.5]]
    )


def crop_points_to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map a mesh found in a crop back to the image.

    Args:
        points: ``(N, 3)``: ``x, y`` in crop pixels, ``z`` in the crop's pixel scale.
        matrix: the ``(2, 3)`` forward affine (image -> crop) the crop was made with (a
            similarity: scale, rotation, shift).

    Returns:
        ``(N, 3)`` float32: ``x, y`` in image pixels, ``z`` in the image's pixel scale.
    """
    import cv2

    from exprsim.faces.align import transform_points

    inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    pts = np.asarray(points, dtype=np.float64)
    out = np.empty_like(pts)
    out[:, :2] = transform_points(pts[:, :2], inv)
    out[:, 2] = pts[:, 2] * math.hypot(inv[0, 0], inv[1, 0])  # the inverse's scale
    return out.astype(np.float32)


class MeshLandmarker:
    """MediaPipe face mesh (478 points, iris refinement) on a crop around the box.

    The crop is square, centred on the box, ``margin`` of the box side added on each side,
    resampled to ``crop_size`` pixels (area-averaged when shrinking), and padded with black
    where it leaves the image. The mesh's own detector runs inside the crop; of the faces
    it finds, the one nearest the crop centre is kept. Not thread-safe (one MediaPipe graph
    per instance).

    Args:
        margin: context added on each side, as a fraction of the box side.
        crop_size: side of the crop fed to MediaPipe.
        min_confidence: MediaPipe ``min_detection_confidence``.
    """

    name = "mesh"

    def __init__(self, margin: float = 0.25, crop_size: int = 256, min_confidence: float = 0.5):
        if importlib.util.find_spec("mediapipe") is None:
            raise BackendUnavailableError(
                "the face mesh needs mediapipe: pip install mediapipe==0.10.21"
            )
        self.margin = margin
        self.crop_size = crop_size
        self.min_confidence = min_confidence
        self._mesh: Any = None

    def _graph(self) -> Any:
        if self._mesh is None:
            from exprsim.faces.backends.native_log import quiet_native_stderr, warmup_face

            with quiet_native_stderr():  # graph start-up logs (absl, TFLite) stay off the terminal
                import mediapipe as mp

                mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True,
                    max_num_faces=2,
                    refine_landmarks=True,
                    min_detection_confidence=self.min_confidence,
                )
                mesh.process(warmup_face())  # the first run with a face logs too
            self._mesh = mesh
        return self._mesh

    def mesh(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """Full face mesh of the face in ``box``.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, full resolution.
            box: ``(4,)`` ``x1, y1, x2, y2`` pixels.

        Returns:
            ``(478, 3)`` float32: ``x, y`` in image pixels, ``z`` relative depth in the same
            pixel scale (MediaPipe's: smaller is nearer the camera, origin near the head
            centre); ``None`` if the mesh finds no face in the crop.
        """

        from exprsim.faces.align import warp_affine

        m = crop_transform(box, self.margin, self.crop_size)
        crop = warp_affine(np.ascontiguousarray(image), m, self.crop_size, border="constant")
        result = self._graph().process(crop)
        if not result.multi_face_landmarks:
            return None
        n = self.crop_size
        best, best_d = None, np.inf
        for face in result.multi_face_landmarks:
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) * n
            pts[:, :2] -= 0.5  # normalised edge coordinates -> pixel centres
            d = float(np.linalg.norm(pts[:, :2].mean(axis=0) - (n - 1) / 2.0))
            if d < best_d:
                best, best_d = pts, d
        assert best is not None
        return crop_points_to_image(best, m)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """``(5, 2)`` float32 landmarks (see module docstring), or ``None``."""
        mesh = self.mesh(image, box)
        return None if mesh is None else mesh_to_five(mesh)

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None


def dlib_model_path(filename: str) -> Path:
    """Path of a model file shipped by ``face_recognition_models`` (without importing it:
    its ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ship).

    Raises:
        BackendUnavailableError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailableError(f"dlib models missing: {DLIB_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise BackendUnavailableError(f"dlib model file {path} missing: {DLIB_INSTALL}")
    return path


def dlib_probe() -> str | None:
    """``None`` when dlib and its models are installed, else how to install them."""
    if importlib.util.find_spec("dlib") is None:
        return f"missing dlib: {DLIB_INSTALL}"
    try:
        dlib_model_path("shape_predictor_68_face_landmarks.dat")
    except BackendUnavailableError as exc:
        return str(exc)
    return None


class DlibLandmarker:
    """dlib 68-point shape predictor reduced to our 5 points (see module docstring)."""

    name = "dlib"

    def __init__(self) -> None:
        why = dlib_probe()
        if why is not None:
            raise BackendUnavailableError(why)
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(
            str(dlib_model_path("shape_predictor_68_face_landmarks.dat"))
        )

    def points68(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(68, 2)`` float32 dlib landmarks for the face in ``box``."""
        x1, y1, x2, y2 = (round(float(v)) for v in np.asarray(box).reshape(4))
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        shape = self._predictor(np.ascontiguousarray(image), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        p = self.points68(image, box).astype(np.float64)
        nose = (p[30] + p[33]) / 2.0
        five = [p[36:42].mean(axis=0), p[42:48].mean(axis=0), nose, p[48], p[54]]
        return np.stack(five).astype(np.float32)


#: MediaPipe's face landmark model, inside the mediapipe wheel (never downloaded).
LITE_MESH_MODEL = "modules/face_landmark/face_landmark.tflite"
#: Side of the landmark model's square input, pixels.
LITE_MESH_INPUT = 192


def lite_mesh_model_path() -> Path:
    """The face landmark model file shipped in the mediapipe package.

    Raises:
        BackendUnavailableError: mediapipe (or the file) is missing.
    """
    from exprsim.faces.litert import mediapipe_model_file

    return mediapipe_model_file(LITE_MESH_MODEL, "mesh-lite")


def lite_mesh_probe() -> str | None:
    """``None`` when :class:`LiteMeshLandmarker` can run here, else what is missing."""
    from exprsim.faces.litert import litert_probe

    return litert_probe(LITE_MESH_MODEL, "mesh-lite")


class LiteMeshLandmarker:
    """MediaPipe's 468-point face landmark model, run directly with LiteRT.

    The model sees the region MediaPipe's own face-mesh graph derives from a BlazeFace
    detection: the box centre, side 1.5x the box's longer side, rotated so that the two eye
    keypoints are level (``hint``; no rotation without it), resampled to 192x192 and scaled
    to ``[0, 1]``. One inference and no second face detector, so it takes a fraction of
    :class:`MeshLandmarker`'s time (docs/benchmarks.md); on the five hand-checked photos its
    5 points are off by 2.4 px on average (4.5 px at most) against the face mesh's 1.7
    (3.9). Not thread-safe (one interpreter per instance).

    Args:
        scale: ROI side as a multiple of the box's longer side (MediaPipe: 1.5).
        min_presence: below this face-presence probability the mesh is refused (``None``).
        threads: LiteRT threads per inference.
    """

    name = "mesh-lite"
    #: :meth:`landmarks` takes the detector's approximate 5 points (their eyes set the roll).
    takes_hint = True

    def __init__(self, scale: float = 1.5, min_presence: float = 0.5, threads: int = 1) -> None:
        why = lite_mesh_probe()
        if why is not None:
            raise BackendUnavailableError(f"landmarker 'mesh-lite' is unavailable: {why}")
        self.scale = scale
        self.min_presence = min_presence
        self.threads = threads
        self._interp: Any = None
        self._io: tuple[int, int, int] = (0, 0, 0)

    def _interpreter(self) -> Any:
        if self._interp is None:
            from exprsim.faces.litert import open_interpreter

            interp = open_interpreter(lite_mesh_model_path(), self.threads)
            outs = {int(np.prod(o["shape"])): o["index"] for o in interp.get_output_details()}
            self._io = (interp.get_input_details()[0]["index"], outs[468 * 3], outs[1])
            self._interp = interp
        return self._interp

    def roi_transform(self, box: np.ndarray, hint: np.ndarray | None = None) -> np.ndarray:
        """``(2, 3)`` affine from image pixels to the model's 192x192 input (pixel centres)."""
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
        centre = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
        side = max(x2 - x1, y2 - y1, 1.0) * self.scale
        angle = 0.0
        if hint is not None:
            eyes = np.asarray(hint, dtype=np.float64).reshape(-1, 2)
            dx, dy = eyes[1] - eyes[0]
            angle = math.atan2(dy, dx)
        s = LITE_MESH_INPUT / side
        c, si = math.cos(-angle) * s, math.sin(-angle) * s
        rot = np.array([[c, -si], [si, c]])
        half = (LITE_MESH_INPUT - 1) / 2.0
        return np.hstack([rot, (np.array([half, half]) - rot @ centre)[:, None]])

    def mesh(
        self, image: np.ndarray, box: np.ndarray, hint: np.ndarray | None = None
    ) -> np.ndarray | None:
        """``(468, 3)`` float32 mesh (``x, y`` image pixels, ``z`` relative depth in the same
        scale), or ``None`` when the model says there is no face in the region."""

        from exprsim.faces.align import warp_affine

        interp = self._interpreter()
        m = self.roi_transform(box, hint)
        crop = warp_affine(np.ascontiguousarray(image), m, LITE_MESH_INPUT, border="constant")
        x = crop.astype(np.float32)[None] * np.float32(1.0 / 255.0)
        i_in, i_mesh, i_flag = self._io
        interp.set_tensor(i_in, x)
        interp.invoke()
        presence = 1.0 / (1.0 + math.exp(-float(interp.get_tensor(i_flag).reshape(-1)[0])))
        if presence < self.min_presence:
            return None
        pts = interp.get_tensor(i_mesh).reshape(468, 3).astype(np.float64)
        pts[:, :2] -= 0.5  # the model's edge coordinates -> pixel centres
        return crop_points_to_image(pts, m)

    def landmarks(
        self, image: np.ndarray, box: np.ndarray, hint: np.ndarray | None = None
    ) -> np.ndarray | None:
        """``(5, 2)`` float32 landmarks (see module docstring), or ``None``."""
        mesh = self.mesh(image, box, hint)
        return None if mesh is None else mesh_to_five(mesh)

    def close(self) -> None:
        self._interp = None


_LANDMARKERS = {"mesh": MeshLandmarker, "mesh-lite": LiteMeshLandmarker, "dlib": DlibLandmarker}


def create_landmarker(name: str = "mesh", **kwargs: Any) -> Landmarker:
    """Build a landmarker: ``"mesh"`` (MediaPipe face mesh), ``"mesh-lite"`` (its landmark
    model alone, LiteRT) or ``"dlib"``."""
    if name not in _LANDMARKERS:
        raise ValueError(f"unknown landmarker {name!r}; known: {', '.join(_LANDMARKERS)}")
    return _LANDMARKERS[name](**kwargs)


_DEFAULT_MESH: MeshLandmarker | None = None
_DEFAULT_MESH_LOCK = threading.RLock()


def _free_default_mesh() -> None:
    """In a forked child: when a parent thread was using the shared mesh landmarker, a
    free lock and a landmarker of the child's own (the parent's graph was mid-run)."""
    global _DEFAULT_MESH, _DEFAULT_MESH_LOCK
    from exprsim.forking import held_elsewhere

    if held_elsewhere(_DEFAULT_MESH_LOCK):
        _DEFAULT_MESH_LOCK = threading.RLock()
        _DEFAULT_MESH = None


def face_mesh(
    image: np.ndarray, face_or_box: Any, landmarker: MeshLandmarker | None = None
) -> np.ndarray | None:
    """The full 478-point MediaPipe mesh of one face.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, full resolution.
        face_or_box: a :class:`~exprsim.faces.types.Face` or a ``(4,)`` box.
        landmarker: reuse this landmarker (default: a shared module-level one, used by
            one thread at a time; give each thread its own for meshes in parallel).

    Returns:
        ``(478, 3)`` float32 (see :meth:`MeshLandmarker.mesh`), or ``None``.
    """
    global _DEFAULT_MESH
    box = np.asarray(getattr(face_or_box, "box", face_or_box), dtype=np.float64)
    if landmarker is not None:
        return landmarker.mesh(image, box)
    # MediaPipe's graph is not thread-safe: threads sharing it got one another's meshes,
    # "Packet timestamp mismatch", a graph broken for good, or a segfault
    from exprsim import forking

    forking.in_child(_free_default_mesh)
    with _DEFAULT_MESH_LOCK:
        if _DEFAULT_MESH is None:
            _DEFAULT_MESH = MeshLandmarker()
        return _DEFAULT_MESH.mesh(image, box)
