"""Face quality (FEENet's FaceQA): eye-region sharpness and head pose.

Sharpness (FEENet, "Automatic Face Quality Assessment"): for a patch ``P`` around each eye,
``mean(|P - P * G|)`` with ``G`` a Gaussian blur, on 0-255 gray values, averaged over the
two eyes; blurry faces have little high-frequency content and score low. FEENet measures it
on faces aligned to a 70 px inter-ocular distance and rejects scores below 3.0. To make the
score independent of image resolution, each eye patch is resampled (area-averaged when
shrinking, bilinear when enlarging) into that same frame: the eye distance becomes
``reference_eye_distance`` (70) pixels, roll is undone, and the patch is a square of side
``patch_size * reference_eye_distance`` (0.5 -> 35 px) centred on the eye centre, blurred
with ``sigma = blur_sigma`` (1.0) pixels of that frame (FEENet does not give its kernel;
OpenCV's default sigma for a 5x5 kernel is 1.1). Small faces are enlarged into the frame
and therefore score low, as in FEENet.

Measured on the bundled photos (``mediapipe`` landmarks): the sharp Pexels video frames
score 4.8-7.3, Grace Hopper 10.7, the astronaut (45 px eye distance) 4.1; blurring the
Pexels frames with a Gaussian of sigma 1 / 2 / 4 source pixels (eye distance about 100 px)
gives about 2.8-4.0 / 1.6-2.0 / 0.8-1.0, so the 3.0 threshold rejects anything blurrier
than about a 1-pixel Gaussian at that resolution. For faces with an eye distance above 70 px
the score changes by under 1% when the image is upscaled 2x (Pexels frames) and by 4% for
Grace Hopper (84 px); the astronaut (43 px, enlarged into the frame) goes from 4.1 to 4.7.

FEENet's score is in absolute gray levels: the same sharp face in half the light scores half
(the astronaut 4.3 -> 2.2, rejected), though the network, which standardises each crop,
embeds it as when lit. So an eye patch whose gray standard deviation is under
``contrast_floor`` (32 levels; well-lit patches of the bundled photos have 43-51) is scaled
up to it, by at most ``max_contrast_gain`` (4), before its score is taken
(:func:`contrast_gain`): at half and a quarter of the light the bundled faces now score
3.1-7.1 (all accepted), while a Gaussian blur of sigma 2 scores 0.8-2.8 lit or dimmed (all
rejected, as before). ``contrast_floor=0`` gives FEENet's score as published.

Head pose: ``cv2.solvePnP`` (SQPnP) of the 5 landmarks against :data:`FACE_MODEL_3D`, a
generic face, seen by a pinhole camera centred on the face with a focal length of
:data:`POSE_FOCAL_FACES` face sizes, no distortion: the pose is the face's turn away from
the line of sight, the same wherever the face sits in the image and whatever the canvas
(:func:`head_pose`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from exprsim.faces.types import Face, Quality

#: Generic 3-D positions (millimetres) of the 5 landmarks, in :data:`LANDMARK_NAMES`
#: order, for a face looking straight into the camera. Axes follow the OpenCV camera:
#: ``x`` to the image's right, ``y`` down, ``z`` away from the camera; origin at the nose
#: tip. Obtained as the mean MediaPipe face-mesh geometry of the same 5 points (eye-contour
#: means, mesh points 1, 61, 291) on the bundled sample photos, with roll removed, made
#: left-right symmetric and scaled to a 63 mm eye distance.
FACE_MODEL_3D = np.array(
    [
        [-31.5, -35.5, 39.0],  # left eye centre (image left)
        [31.5, -35.5, 39.0],  # right eye centre
        [0.0, 0.0, 0.0],  # nose tip
        [-28.0, 27.0, 35.0],  # left mouth corner
        [28.0, 27.0, 35.0],  # right mouth corner
    ],
    dtype=np.float64,
)


#: the largest ``max_abs_yaw`` a quality check takes, in degrees (``|yaw|`` is at most 180)
MAX_YAW = 180.0


@dataclass(frozen=True)
class QualityConfig:
    """Quality thresholds and how sharpness is measured.

    Attributes:
        sharpness_threshold: faces with sharpness below this are rejected (``"blur"``).
        max_abs_yaw: faces with ``|yaw|`` above this many degrees are rejected (``"yaw"``).
        patch_size: side of each eye patch as a fraction of the eye distance.
        reference_eye_distance: eye distance (pixels) of the frame sharpness is measured in.
        blur_sigma: Gaussian sigma (pixels of that frame) of the blurred copy.
        contrast_floor: a dim or low-contrast eye patch (gray standard deviation below
            this many levels) is scaled up to it before its sharpness is measured, by at
            most ``max_contrast_gain``: FEENet's score is in absolute gray levels, so a
            sharp face in half the light scored half and was rejected as ``"blur"`` (the
            network, which standardises each crop, embeds it as when lit). 0 measures
            FEENet's score as published.
        max_contrast_gain: the largest factor ``contrast_floor`` may scale a patch by (a
            near-uniform patch, such as dark glasses, is not made sharp).
        check_orientation: look for crops aligned upside down
            (:mod:`exprsim.faces.orientation`, in :func:`exprsim.faces.pipeline.analyze_image`;
            about 0.65 ms per face, 7-8% of the default pipeline's throughput). ``False``
            leaves such crops as the alignment made them.
    """

    sharpness_threshold: float = 3.0
    max_abs_yaw: float = 50.0
    patch_size: float = 0.5
    reference_eye_distance: float = 70.0
    blur_sigma: float = 1.0
    contrast_floor: float = 32.0
    max_contrast_gain: float = 4.0
    check_orientation: bool = True

    def __post_init__(self) -> None:
        """Refuse values that crashed deep inside (a ``patch_size`` of 1e5 allocated 147 TB,
        an eye distance of 0 divided by zero) or silently changed every verdict (a NaN
        threshold: every face blurred, or none turned)."""
        from exprsim.errors import ArgumentError, require_number

        ranges = {
            "sharpness_threshold": (0.0, math.inf, "a finite number >= 0"),
            "max_abs_yaw": (0.0, MAX_YAW, f"a number in [0, {MAX_YAW:g}]"),
            "patch_size": (0.05, 2.0, "a fraction of the eye distance in [0.05, 2]"),
            "reference_eye_distance": (8.0, 1000.0, "a number of pixels in [8, 1000]"),
            "blur_sigma": (0.1, 20.0, "a number of pixels in [0.1, 20]"),
            "contrast_floor": (0.0, 255.0, "a number of gray levels in [0, 255]"),
            "max_contrast_gain": (1.0, 100.0, "a factor in [1, 100]"),
        }
        for name, (low, high, rule) in ranges.items():
            require_number(
                getattr(self, name), f"QualityConfig.{name}", rule, low, high, error=ArgumentError
            )
        if not isinstance(self.check_orientation, bool | np.bool_):
            raise ArgumentError(
                f"QualityConfig.check_orientation must be True or False, got "
                f"{self.check_orientation!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    if rgb.ndim == 2:
        return rgb
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def eye_patches(
    image: np.ndarray, landmarks5: np.ndarray, config: QualityConfig | None = None, pad: int = 0
) -> list[np.ndarray]:
    """The two eye patches in the normalised frame (see module docstring).

    Returns:
        Two ``(M + 2 pad, M + 2 pad)`` float32 gray patches (``M = round(patch_size *
        reference_eye_distance)``), image-left eye first.
    """
    from exprsim.faces.align import warp_affine

    config = config or QualityConfig()
    lm = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    v = lm[1] - lm[0]
    dist = float(np.hypot(v[0], v[1]))
    if dist < 1e-6:
        raise ValueError("eye landmarks coincide")
    m_side = max(3, round(config.patch_size * config.reference_eye_distance))
    side = m_side + 2 * pad
    s = config.reference_eye_distance / dist
    c, sn = v[0] / dist, v[1] / dist  # rotation that levels the eye line
    rot = s * np.array([[c, sn], [-sn, c]])
    patches = []
    for eye in lm[:2]:
        t = (side - 1) / 2.0 - rot @ eye
        m = np.hstack([rot, t[:, None]])
        patches.append(_luma(warp_affine(np.ascontiguousarray(image), m, side, border="replicate")))
    return patches


def sharpness(
    image: np.ndarray, landmarks5: np.ndarray, config: QualityConfig | None = None
) -> float:
    """FEENet eye-region sharpness, 0-255 scale (higher is sharper).

    Args:
        image: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` gray), full resolution.
        landmarks5: ``(5, 2)`` pixel landmarks (only the eyes are used).
        config: patch size, reference frame and blur (see module docstring).

    Returns:
        Mean over both eyes of ``g * mean(|P - GaussianBlur(P)|)``, with ``g`` the gain
        that brings a patch's gray standard deviation up to ``contrast_floor`` (1 for a
        patch at least that contrasted, at most ``max_contrast_gain``).
    """
    import cv2

    config = config or QualityConfig()
    pad = math.ceil(3 * config.blur_sigma)
    scores = []
    for patch in eye_patches(image, landmarks5, config, pad=pad):
        blurred = cv2.GaussianBlur(patch, (0, 0), config.blur_sigma, borderType=cv2.BORDER_REFLECT)
        inner = slice(pad, patch.shape[0] - pad)
        gain = contrast_gain(patch[inner, inner], config)
        scores.append(gain * float(np.abs(patch[inner, inner] - blurred[inner, inner]).mean()))
    return float(np.mean(scores))


def contrast_gain(patch: np.ndarray, config: QualityConfig) -> float:
    """The factor :func:`sharpness` scales an eye ``patch`` (gray levels) by: up to
    ``config.contrast_floor`` standard deviations, never down, at most
    ``config.max_contrast_gain``. Measured on the bundled photos: well-lit eye patches have
    a standard deviation of 43-51 levels (gain 1); the same photos at half brightness 21-26
    (gain 1.2-1.5), at a quarter 11-13; a Gaussian blur of sigma 2 keeps 32-42, so blurred
    faces stay rejected (their score relative to contrast is a third of a sharp face's)."""
    floor = config.contrast_floor
    if floor <= 0:
        return 1.0
    std = float(np.std(patch))
    return float(min(config.max_contrast_gain, max(1.0, floor / max(std, 1e-6))))


#: Focal length of the camera :func:`head_pose` places in front of each face, in face sizes
#: (the larger of the eye distance and the eye-centre-to-mouth-centre distance, both about
#: 63 mm on :data:`FACE_MODEL_3D`): the face seen from about 10 x 63 mm = 63 cm
POSE_FOCAL_FACES = 10.0


def head_pose(
    landmarks: np.ndarray, image_shape: tuple[int, ...] | None = None, focal: float | None = None
) -> tuple[float, float, float]:
    """Head pose in degrees from 5 landmarks (or a MediaPipe mesh) by ``cv2.solvePnP``.

    The pose is the face's turn away from the line of sight: how turned it *looks*. The
    camera is centred on the face (the mean of its 5 points) with a focal length of
    :data:`POSE_FOCAL_FACES` face sizes, so the pose depends on the landmarks' shape alone,
    not on where the face sits in the image, on the canvas around it, or on the image's
    size (a face at the edge of a group photo, the same photo padded or cropped: the same
    pose). Faces looking straight at a wide-angle camera from the image's edge therefore
    read as frontal, as they look. Error against a true perspective projection: 1.3
    degrees on average, under 4 at most (faces seen from 40 cm to 1.5 m, yaw up to 60
    degrees).

    Sign convention (camera view, image ``y`` down):

    * ``yaw > 0``: the subject turns towards the image's right (their nose points right);
      a mirrored image flips the sign;
    * ``pitch > 0``: the subject looks up;
    * ``roll > 0``: the face is rotated clockwise in the image (for an upright frontal
      face turned clockwise, the line from the image-left eye to the image-right eye
      descends to the right).

    The rotation from the model (:data:`FACE_MODEL_3D`) to the camera is decomposed as
    ``Rz(roll) @ Rx(pitch) @ Ry(yaw)``: yaw about the camera's vertical axis, then pitch
    about its horizontal axis, then roll about the optical axis. Rotating the image
    therefore changes only the roll.

    Args:
        landmarks: ``(5, 2)`` pixel landmarks, or a ``(468|478, 2|3)`` face mesh (reduced to
            the 5 points with :func:`exprsim.faces.landmarks.mesh_to_five`).
        image_shape: ``(H, W, ...)`` of the image the landmarks are in; used only with
            ``focal``.
        focal: a known camera's focal length in pixels, its principal point at the centre
            of ``image_shape``: the pose is then relative to the camera's optical axis,
            not to the line of sight (a face off the axis looking at the camera reads as
            turned by the angle it is seen under).

    Returns:
        ``(yaw, pitch, roll)`` in degrees; NaNs if PnP fails (or the points coincide).

    Raises:
        ValueError: ``focal`` without ``image_shape``.
    """
    import cv2

    pts = _five_points(landmarks)
    if focal is not None:
        if image_shape is None:
            raise ValueError("head_pose: focal needs image_shape")
        h, w = int(image_shape[0]), int(image_shape[1])
        f, cx, cy = float(focal), (w - 1) / 2.0, (h - 1) / 2.0
    else:
        f = POSE_FOCAL_FACES * _face_size(pts)
        cx, cy = (float(v) for v in pts.mean(axis=0))
    if not (math.isfinite(f) and f > 0 and math.isfinite(cx) and math.isfinite(cy)):
        return (math.nan, math.nan, math.nan)
    k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    try:
        ok, rvec, _tvec = cv2.solvePnP(FACE_MODEL_3D, pts, k, np.zeros(4), flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:
        ok = False
    if not ok:
        return (math.nan, math.nan, math.nan)
    rot, _ = cv2.Rodrigues(rvec)
    # rot = Rz(roll) @ Rx(pitch) @ Ry(yaw) in the conventions of the docstring
    roll = math.atan2(-rot[0, 1], rot[1, 1])
    cr, sr = math.cos(roll), math.sin(roll)
    a = np.array([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]]) @ rot  # Rz(roll)^T rot
    yaw = math.degrees(math.atan2(-a[0, 2], a[0, 0]))
    pitch = math.degrees(math.atan2(-a[2, 1], a[1, 1]))
    roll = math.degrees(roll)
    return (yaw, pitch, roll)


def _face_size(pts: np.ndarray) -> float:
    """The larger of the eye distance and the eye-centre-to-mouth-centre distance of 5
    points, in pixels (turning the head shrinks one of them, rarely both)."""
    eyes = float(np.hypot(*(pts[1] - pts[0])))
    mouth = (pts[3] + pts[4]) / 2.0 - (pts[0] + pts[1]) / 2.0
    return max(eyes, float(np.hypot(*mouth)))


def _five_points(landmarks: np.ndarray) -> np.ndarray:
    """``(5, 2)`` float64 points from 5 landmarks or a ``(468|478, 2|3)`` face mesh
    (:func:`exprsim.faces.landmarks.mesh_to_five`)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim == 2 and pts.shape[0] >= 468:
        from exprsim.faces.landmarks import mesh_to_five

        pts = mesh_to_five(pts).astype(np.float64)
    return pts.reshape(5, 2)


def assess(image: np.ndarray, face: Face, config: QualityConfig | None = None) -> Quality:
    """Sharpness, pose and the accept/reject decision for one face.

    Args:
        image: ``(H, W, 3)`` uint8 RGB, full resolution (the image ``face`` was found in).
        face: the detection (its landmarks are used).
        config: thresholds.

    Returns:
        :class:`Quality` with ``ok`` false and ``reasons`` among ``"blur"``, ``"yaw"``,
        ``"pose"`` (pose could not be estimated), ``"edge"`` (an eye, the nose, a mouth
        corner, the chin or the brows lie outside the image: the face is cut off, and its
        aligned crop is partly padding; :func:`cut_off`). :func:`exprsim.faces.pipeline.analyze_image` may add ``"upside_down"``
        (judged on the aligned crop, :mod:`exprsim.faces.orientation`).
    """
    config = config or QualityConfig()
    sharp = sharpness(image, face.landmarks, config)
    yaw, pitch, roll = head_pose(face.landmarks, image.shape)
    reasons = []
    if not sharp >= config.sharpness_threshold:
        reasons.append("blur")
    if math.isnan(yaw):
        reasons.append("pose")
    elif abs(yaw) > config.max_abs_yaw:
        reasons.append("yaw")
    if cut_off(face.landmarks, image.shape):
        reasons.append("edge")
    return Quality(sharp, yaw, pitch, roll, not reasons, tuple(reasons))


#: how far (in eye distances) a landmark may lie outside the image before the face counts
#: as cut off (landmark estimates of a face touching the border stray a little)
EDGE_TOLERANCE = 0.1

#: where the chin (MediaPipe mesh point 152) lies at the least, below the mouth centre, in
#: eye-centre-to-mouth-centre distances: just under the 1st percentile (0.41) over 621 FER+
#: Training faces, 80 per majority emotion, meshed at 192 px (``scripts/face_extent.py``;
#: median 0.59)
CHIN_BELOW_MOUTH = 0.4
#: where the brows (mesh points 105, 334) lie at the least, above the eye centre, in the same
#: unit: just under the 1st percentile (0.23) of the same faces (median 0.34)
BROWS_ABOVE_EYES = 0.22


def face_extent(landmarks: np.ndarray) -> np.ndarray:
    """``(2, 2)`` float64 conservative estimates of the chin and of the brows' centre from
    the 5 landmarks (:data:`CHIN_BELOW_MOUTH`, :data:`BROWS_ABOVE_EYES`): points that any
    usual face reaches at least, along the line from the eyes' to the mouth's centre."""
    pts = _five_points(landmarks)
    eyes, mouth = pts[:2].mean(axis=0), pts[3:].mean(axis=0)
    down = mouth - eyes
    return np.stack([mouth + CHIN_BELOW_MOUTH * down, eyes - BROWS_ABOVE_EYES * down])


def cut_off(landmarks: np.ndarray, image_shape: tuple[int, ...]) -> bool:
    """Whether any of the 5 landmarks, or the chin or the brows (:func:`face_extent`), lies
    outside the image by more than :data:`EDGE_TOLERANCE` eye distances (a face cut by the
    image border: a photo cut at the chin keeps all 5 landmarks inside, yet its aligned crop
    is partly padding)."""
    pts = _five_points(landmarks)
    if not np.isfinite(pts).all():
        return False
    margin = EDGE_TOLERANCE * float(np.linalg.norm(pts[0] - pts[1]))
    pts = np.concatenate([pts, face_extent(pts)])
    h, w = int(image_shape[0]), int(image_shape[1])
    x, y = pts[:, 0], pts[:, 1]
    return bool(
        (x < -margin).any() or (x > w - 1 + margin).any() or (y < -margin).any()
        or (y > h - 1 + margin).any()
    )  # fmt: skip
