"""Quality: FEENet sharpness (vs a naive reference) and head pose on known rotations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from exprsim.faces.align import transform_points
from exprsim.faces.quality import FACE_MODEL_3D, QualityConfig, assess, head_pose, sharpness
from exprsim.faces.types import Face

from .conftest import HAND_CHECKED


def naive_gaussian_blur(patch: np.ndarray, sigma: float) -> np.ndarray:
    """Reference blur: explicit loops over a normalised Gaussian kernel, mirrored borders."""
    r = math.ceil(4 * sigma)
    k = np.array([math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-r, r + 1)])
    k /= k.sum()
    padded = np.pad(patch, r, mode="symmetric")
    h, w = patch.shape
    out = np.zeros_like(patch, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            acc = 0.0
            for i in range(2 * r + 1):
                for j in range(2 * r + 1):
                    acc += k[i] * k[j] * padded[y + i, x + j]
            out[y, x] = acc
    return out


def test_sharpness_matches_naive_reference():
    """Eyes 70 px apart, level, on integer pixels: patches are plain cut-outs."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (200, 300)).astype(np.float32), (0, 0), 0.8)
    img = np.clip(img, 0, 255).astype(np.uint8)
    rgb = np.repeat(img[:, :, None], 3, axis=2)
    lm = np.array([[100, 100], [170, 100], [135, 130], [110, 160], [160, 160]], float)
    cfg = QualityConfig()
    m = round(cfg.patch_size * cfg.reference_eye_distance)  # 35
    pad = math.ceil(3 * cfg.blur_sigma)
    ref, gained = [], []
    for ex, ey in lm[:2].astype(int):
        half = (m + 2 * pad - 1) // 2
        patch = img[ey - half : ey + half + 1, ex - half : ex + half + 1].astype(np.float64)
        blurred = naive_gaussian_blur(patch, cfg.blur_sigma)
        score = np.abs(patch - blurred)[pad:-pad, pad:-pad].mean()
        ref.append(score)
        # the contrast floor: the patch's spread brought up to 32 gray levels, at most 4x
        spread = patch[pad:-pad, pad:-pad].std()
        gained.append(score * min(4.0, max(1.0, 32.0 / spread)))
    assert np.mean(gained) > np.mean(ref)  # this patch is under the floor: the gain counts
    assert sharpness(rgb, lm, cfg) == pytest.approx(float(np.mean(gained)), rel=2e-3)
    feenet = QualityConfig(contrast_floor=0.0)  # FEENet's score as published
    assert sharpness(rgb, lm, feenet) == pytest.approx(float(np.mean(ref)), rel=2e-3)


def test_sharpness_threshold_separates_blur(load_sample, mp_detector):
    name = "pexels_langer_frame000.jpg"
    image = load_sample(name)
    lm = HAND_CHECKED[name]
    sharp = sharpness(image, lm)
    assert sharp > 4.0
    assert sharpness(cv2.GaussianBlur(image, (0, 0), 2.0), lm) < 3.0
    assert sharpness(cv2.GaussianBlur(image, (0, 0), 4.0), lm) < sharpness(
        cv2.GaussianBlur(image, (0, 0), 2.0), lm
    )


def test_sharpness_is_scale_invariant(load_sample):
    name = "grace_hopper.jpg"
    image = load_sample(name)
    lm = HAND_CHECKED[name]
    big = cv2.resize(image, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    assert sharpness(big, (lm + 0.5) * 2 - 0.5) == pytest.approx(sharpness(image, lm), rel=0.05)


def project(yaw=0.0, pitch=0.0, roll=0.0, shape=(480, 640)):
    """Project FACE_MODEL_3D with a known rotation (applied as roll @ pitch @ yaw)."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    # yaw: the face's forward vector (0, 0, -1) turns towards +x
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    # pitch: forward turns towards -y (up in the image)
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    # roll: the eye axis (1, 0, 0) turns towards +y (clockwise on screen)
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rot = rz @ rx @ ry
    h, w = shape
    f = float(max(h, w))
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    rvec, _ = cv2.Rodrigues(rot)
    pts, _ = cv2.projectPoints(FACE_MODEL_3D, rvec, np.array([0.0, 0.0, 700.0]), k, None)
    return pts.reshape(5, 2)


@pytest.mark.parametrize(
    ("yaw", "pitch", "roll"),
    [
        (0, 0, 0),
        (25, 0, 0),
        (-40, 0, 0),
        (0, 15, 0),
        (0, -20, 0),
        (0, 0, 30),
        (0, 0, -45),
        (30, 10, -20),
    ],
)
def test_head_pose_recovers_synthetic_rotation(yaw, pitch, roll):
    # the camera known: exact
    est = head_pose(project(yaw, pitch, roll), (480, 640), focal=640.0)
    assert est == pytest.approx((yaw, pitch, roll), abs=0.5)
    # the default camera, centred on the face at 10 face sizes (this one sees it at ~11)
    est = head_pose(project(yaw, pitch, roll), (480, 640))
    assert est == pytest.approx((yaw, pitch, roll), abs=2.5)


def test_head_pose_sign_conventions_on_synthetic_points():
    lm = project(yaw=20)
    # subject turned to the image's right: the nose tip moves right of the eye midpoint
    assert lm[2, 0] > lm[:2, 0].mean()
    # clockwise roll: the eye line descends to the right
    lm = project(roll=15)
    assert lm[1, 1] > lm[0, 1]


def test_head_pose_frontal_and_mirror(load_sample):
    name = "pexels_langer_frame000.jpg"  # the subject is turned towards the image's left
    image = load_sample(name)
    lm = HAND_CHECKED[name]
    yaw, pitch, roll = head_pose(lm, image.shape)
    assert yaw < -8.0
    w = image.shape[1]
    mirrored = lm[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = w - 1 - mirrored[:, 0]
    myaw, mpitch, mroll = head_pose(mirrored, image.shape)
    assert myaw > 8.0
    assert myaw == pytest.approx(-yaw, abs=2.0)
    assert mpitch == pytest.approx(pitch, abs=2.0)
    assert mroll == pytest.approx(-roll, abs=2.0)
    gy, _, _ = head_pose(HAND_CHECKED["grace_hopper.jpg"], load_sample("grace_hopper.jpg").shape)
    assert abs(gy) < 10.0  # Grace Hopper faces the camera


def test_in_plane_rotation_shows_up_as_roll(load_sample):
    name = "grace_hopper.jpg"
    image = load_sample(name)
    lm = HAND_CHECKED[name]
    h, w = image.shape[:2]
    base = head_pose(lm, image.shape)
    for angle in (-30.0, 20.0):
        rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)  # counter-clockwise on screen
        yaw, pitch, roll = head_pose(transform_points(lm, rot), image.shape)
        # rotating about the principal point changes only the roll
        assert roll - base[2] == pytest.approx(-angle, abs=0.5)
        assert (yaw, pitch) == pytest.approx(base[:2], abs=0.5)


def test_head_pose_accepts_mesh(load_sample, mesh_detector):
    from exprsim.faces.landmarks import face_mesh

    image = load_sample("grace_hopper.jpg")
    face = mesh_detector.detect(image)[0]
    mesh = face_mesh(image, face)
    assert mesh is not None and mesh.shape == (478, 3)
    assert head_pose(mesh, image.shape) == pytest.approx(
        head_pose(face.landmarks, image.shape), abs=1e-3
    )


def test_assess_flags_blur_and_yaw(load_sample):
    name = "grace_hopper.jpg"
    image = load_sample(name)
    lm = HAND_CHECKED[name].astype(np.float32)
    face = Face(box=np.array([170, 140, 370, 340], np.float32), score=0.9, landmarks=lm)
    q = assess(image, face)
    assert q.ok and q.reasons == () and q.sharpness > 3.0
    q = assess(cv2.GaussianBlur(image, (0, 0), 5.0), face)
    assert not q.ok and q.reasons == ("blur",)
    side = Face(box=face.box, score=0.9, landmarks=project(yaw=70).astype(np.float32))
    q = assess(np.full((480, 640, 3), 128, np.uint8), side, QualityConfig(sharpness_threshold=0.0))
    assert q.reasons == ("yaw",) and q.yaw == pytest.approx(70.0, abs=3.0)
