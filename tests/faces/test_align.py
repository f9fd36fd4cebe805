"""Alignment geometry: similarity estimation, points landing on the template, roll undone."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from exprsim.faces.align import (
    ARCFACE_TEMPLATE,
    FER2013_TEMPLATE,
    AlignConfig,
    align_face,
    alignment_matrix,
    estimate_similarity,
    template_points,
    transform_points,
    warp_affine,
)

from .conftest import HAND_CHECKED


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array(
        [
            [scale * math.cos(a), -scale * math.sin(a), tx],
            [scale * math.sin(a), scale * math.cos(a), ty],
        ]
    )


def naive_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Reference: linear least squares over (a, b, tx, ty) with x' = a x - b y + tx, y' = b x + a y + ty."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, -y, 1.0, 0.0])
        rhs.append(u)
        rows.append([y, x, 0.0, 1.0])
        rhs.append(v)
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def blob_image(points: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """RGB image with one Gaussian blob per point, each in its own colour channel pattern."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3), np.float64)
    for k, (x, y) in enumerate(points):
        img[..., k % 3] += 250.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return np.clip(img, 0, 255).astype(np.uint8)


def blob_centres(crop: np.ndarray, approx: np.ndarray, radius: float) -> np.ndarray:
    """Intensity-weighted centroid of each blob near its expected position."""
    h, w = crop.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for k, (x, y) in enumerate(approx):
        ch = crop[..., k % 3].astype(np.float64)
        mask = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
        wgt = ch * mask
        out.append([(wgt * xx).sum() / wgt.sum(), (wgt * yy).sum() / wgt.sum()])
    return np.array(out)


def test_template_is_fer_framing_and_symmetric():
    t = np.asarray(FER2013_TEMPLATE)
    assert t.shape == (5, 2)
    assert np.allclose(t[0, 0] + t[1, 0], 1.0) and t[0, 1] == t[1, 1]
    assert 0.33 < np.linalg.norm(t[1] - t[0]) < 0.38  # tight crop: eyes 0.355 of the side
    pts = template_points(AlignConfig(size=112))
    assert np.allclose(pts, t * 112 - 0.5)


def test_eye_distance_scales_about_centre():
    cfg = AlignConfig(size=200, eye_distance=0.25)
    pts = template_points(cfg)
    assert np.linalg.norm(pts[1] - pts[0]) == pytest.approx(50.0)
    base = template_points(AlignConfig(size=200))
    # scaling about the crop centre keeps directions from the centre
    c = 99.5
    cross = (pts[:, 0] - c) * (base[:, 1] - c) - (pts[:, 1] - c) * (base[:, 0] - c)
    assert np.abs(cross).max() < 1e-6


@pytest.mark.parametrize("seed", range(5))
def test_estimate_similarity_matches_naive_least_squares(seed):
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 300, size=(5, 2))
    true = similarity(rng.uniform(-180, 180), rng.uniform(0.2, 4.0), *rng.uniform(-50, 50, 2))
    dst = transform_points(src, true) + rng.normal(0, 2.0, size=(5, 2))
    m = estimate_similarity(src, dst)
    assert np.allclose(m, naive_similarity(src, dst), atol=1e-8)
    noiseless = estimate_similarity(src, transform_points(src, true))
    assert np.allclose(noiseless, true, atol=1e-9)


def test_estimate_similarity_never_reflects():
    src = np.asarray(FER2013_TEMPLATE) * 100
    mirrored = src.copy()
    mirrored[:, 0] = 100 - mirrored[:, 0]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_estimate_similarity_rejects_bad_input():
    with pytest.raises(ValueError):
        estimate_similarity(np.zeros((5, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError):
        estimate_similarity(np.zeros((5, 2)), np.ones((4, 2)))


@pytest.mark.parametrize(
    ("angle", "scale", "size"),
    [(0.0, 1.0, 112), (30.0, 2.5, 112), (-65.0, 0.6, 96), (170.0, 9.0, 112), (12.0, 1.7, 48)],
)
def test_landmarks_land_on_template(angle, scale, size):
    """Points drawn in an image at a similarity image of the template come out on it (< 1 px)."""
    cfg = AlignConfig(size=size)
    target = template_points(cfg)
    # place the face in a source image: source = A(target), A a similarity
    a = similarity(angle, scale, 0.0, 0.0)
    src = transform_points(target, a)
    src += 40 * scale - src.min(axis=0)
    shape = (int(src[:, 1].max() + 40 * scale), int(src[:, 0].max() + 40 * scale))
    image = blob_image(src, shape, sigma=2.5 * scale)
    m = alignment_matrix(src, cfg)
    assert np.abs(transform_points(src, m) - target).max() < 1e-6
    crop = align_face(image, src, cfg)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    found = blob_centres(crop, target, radius=6.0)
    # required: < 1 px; measured about 0.02 px, so 0.1 also catches half-pixel convention slips
    assert np.abs(found - target).max() < 0.1


def test_rotated_photo_comes_out_upright(load_sample):
    name = "grace_hopper.jpg"
    image = load_sample(name)
    lm = HAND_CHECKED[name]
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 30.0, 1.0)  # 30 deg counter-clockwise
    rotated = cv2.warpAffine(image, rot, (w, h))
    lm_rot = transform_points(lm, rot)
    cfg = AlignConfig(size=112)
    upright = align_face(image, lm, cfg).astype(np.float64)
    from_rotated = align_face(rotated, lm_rot, cfg).astype(np.float64)
    inner = slice(10, 102)  # skip the border that the rotation filled with black
    assert np.abs(upright[inner, inner] - from_rotated[inner, inner]).mean() < 4.0
    # the transform undid exactly the 30 degrees (angles in image coordinates, y down)
    m = alignment_matrix(lm_rot, cfg)
    m0 = alignment_matrix(lm, cfg)
    turn = math.degrees(math.atan2(m[1, 0], m[0, 0]) - math.atan2(m0[1, 0], m0[0, 0]))
    assert turn == pytest.approx(30.0, abs=1e-6)
    # eyes level in the crop
    eyes = transform_points(lm_rot[:2], m)
    assert abs(eyes[1, 1] - eyes[0, 1]) < 1.0


def test_warp_affine_antialiases_large_downscale():
    # a 1-px checkerboard shrunk 10x must become flat grey, not an aliasing pattern
    board = ((np.indices((1000, 1000)).sum(axis=0) % 2) * 255).astype(np.uint8)
    img = np.repeat(board[:, :, None], 3, axis=2)
    m = np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0]])
    out = warp_affine(img, m, 100).astype(np.float64)
    assert abs(out[5:95, 5:95].mean() - 127.5) < 3
    assert out[5:95, 5:95].std() < 3


def test_align_config_validation_and_roundtrip():
    with pytest.raises(ValueError):
        AlignConfig(size=4)
    with pytest.raises(ValueError):
        AlignConfig(template=((0.1, 0.2),))
    with pytest.raises(ValueError):
        AlignConfig(eye_distance=1.5)
    with pytest.raises(ValueError):
        AlignConfig(border="wrap")
    cfg = AlignConfig(size=64, template=ARCFACE_TEMPLATE, eye_distance=0.3, border="replicate")
    assert AlignConfig.from_dict(cfg.to_dict()) == cfg
    hash(cfg)  # frozen and hashable


def test_align_face_rejects_bad_landmarks(load_sample):
    image = load_sample("grace_hopper.jpg")
    with pytest.raises(ValueError):
        align_face(image, np.zeros((4, 2)))
    with pytest.raises(ValueError):
        align_face(image, np.full((5, 2), np.nan))
