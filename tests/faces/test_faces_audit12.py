"""Twelfth robustness round: the same face must give the same answers wherever it sits.

Head pose from the landmarks' shape alone (not the canvas), 16-bit PGM read as 16-bit,
RGBA arrays laid over white like RGBA files, and detection boxes scaled back as edges.
Guards that pass on the code before: the mirror, the recovery within 4 degrees, the
coincident points, the 8-bit PGM and the opaque RGBA array.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from PIL import Image

from exprsim.faces.detect import Candidate
from exprsim.faces.quality import FACE_MODEL_3D, head_pose
from exprsim.io import as_rgb8, load_image


def project(yaw=0.0, pitch=0.0, roll=0.0, f=640.0, d=700.0, centre=(319.5, 239.5), off=(0, 0)):
    """The 5 model points seen by a pinhole camera (conventions of ``head_pose``)."""
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    k = np.array([[f, 0, centre[0]], [0, f, centre[1]], [0, 0, 1]])
    rvec, _ = cv2.Rodrigues(rz @ rx @ ry)
    t = np.array([off[0], off[1], d], dtype=np.float64)
    pts, _ = cv2.projectPoints(FACE_MODEL_3D, rvec, t, k, None)
    return pts.reshape(5, 2)


POSES = [(0, 0, 0), (25, 0, 0), (-40, 0, 0), (0, 15, 0), (0, -20, 0), (30, 10, -20), (55, 5, 0)]


@pytest.mark.parametrize(("yaw", "pitch", "roll"), POSES)
def test_pose_is_the_same_wherever_the_face_sits(yaw, pitch, roll):
    lm = project(yaw, pitch, roll)
    base = head_pose(lm, (480, 640))
    for shift, shape in [((-250.0, 0.0), (480, 640)), ((900.0, 400.0), (1080, 1920)),
                         ((-150.0, -100.0), (200, 180))]:  # fmt: skip
        moved = head_pose(lm + np.array(shift), shape)
        assert moved == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), POSES)
def test_pose_does_not_depend_on_the_face_size(yaw, pitch, roll):
    lm = project(yaw, pitch, roll)
    base = head_pose(lm, (480, 640))
    assert head_pose(lm * 3.0, (1440, 1920)) == pytest.approx(base, abs=1e-6)
    assert head_pose(lm * 0.25, (120, 160)) == pytest.approx(base, abs=1e-6)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), POSES)
def test_pose_of_a_mirrored_face_is_mirrored_exactly(yaw, pitch, roll):
    lm = project(yaw, pitch, roll)
    mirrored = lm[[1, 0, 2, 4, 3]].copy()
    mirrored[:, 0] = 639 - mirrored[:, 0]
    y, p, r = head_pose(lm, (480, 640))
    my, mp, mr = head_pose(mirrored, (480, 640))
    assert (my, mp, mr) == pytest.approx((-y, p, -r), abs=1e-6)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), POSES)
def test_pose_recovers_rotations_seen_from_any_distance(yaw, pitch, roll):
    """The camera's real focal length and distance are unknown: the pose stays within a
    few degrees of the truth for faces seen from 40 cm to 1.5 m."""
    for d in (400.0, 700.0, 1500.0):
        est = head_pose(project(yaw, pitch, roll, d=d), (480, 640))
        assert est == pytest.approx((yaw, pitch, roll), abs=4.0)


def test_off_axis_face_looking_at_the_camera_reads_frontal():
    """A face at the edge of a wide-angle photo, turned to face the camera (its line of
    sight), looks frontal: the pose is relative to the line of sight."""
    off = (-350.0, 0.0)
    look = math.degrees(math.atan2(-off[0], 700.0))  # turned by the angle it is seen under
    lm = project(yaw=look, off=off)  # turned towards the camera: nose to the image's right
    yaw, _, _ = head_pose(lm, (480, 640))
    assert abs(yaw) < 2.0
    # with the camera known, the pose relative to its optical axis is that turn
    axis_yaw, _, _ = head_pose(lm, (480, 640), focal=640.0)
    assert axis_yaw == pytest.approx(look, abs=0.5)


def test_known_camera_pose_needs_the_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        head_pose(project(), None, focal=640.0)


def test_coincident_points_give_nan_pose():
    assert all(math.isnan(v) for v in head_pose(np.full((5, 2), 10.0), (100, 100)))


def test_padding_or_cropping_a_photo_keeps_its_yaw(load_sample, mp_detector):
    """The bundled frame144 read yaw -22.8 as it is, -40.6 or -3.2 padded to 1920 px wide
    (photo on the right / left), -5.6 cropped around the face: the verdict depended on
    the canvas. Now only the detector's own jitter moves it."""
    from exprsim.faces.pipeline import analyze_image

    img = load_sample("pexels_langer_frame144.jpg")
    h, w = img.shape[:2]
    yaws = [analyze_image(img, mp_detector)[0].quality.yaw]
    for dx in (0, 1920 - w):
        canvas = np.full((h, 1920, 3), 128, np.uint8)
        canvas[:, dx : dx + w] = img
        yaws.append(analyze_image(canvas, mp_detector)[0].quality.yaw)
    b = analyze_image(img, mp_detector)[0].face.box.astype(int)
    crop = np.ascontiguousarray(img[max(0, b[1] - 40) : b[3] + 40, max(0, b[0] - 40) : b[2] + 40])
    yaws.append(analyze_image(crop, mp_detector)[0].quality.yaw)
    assert max(yaws) - min(yaws) < 8.0, yaws


def _pgm(path, values, maxval=65535):
    with open(path, "wb") as fh:
        fh.write(f"P5\n{values.shape[1]} {values.shape[0]}\n{maxval}\n".encode())
        fh.write(values.astype(">u2").tobytes())


def test_16bit_pgm_is_read_as_16_bit_whatever_its_largest_pixel(tmp_path):
    """A 16-bit PGM opens as Pillow mode "I"; its depth was guessed from the largest pixel,
    so one pixel going from 255 to 256 made the whole image 257 times darker."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, (20, 30)).astype(np.uint16) * 200  # 0..51000
    low = (values // 200).astype(np.uint16)  # 0..255 stored in 16 bits: a dark capture
    _pgm(tmp_path / "low.pgm", low)
    bumped = low.copy()
    bumped[0, 0] = 256
    _pgm(tmp_path / "bumped.pgm", bumped)
    _pgm(tmp_path / "bright.pgm", values)
    expect = ((low.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    got = load_image(tmp_path / "low.pgm")[:, :, 0]
    np.testing.assert_array_equal(got, expect)
    assert np.array_equal(load_image(tmp_path / "bumped.pgm")[1:, :, 0], expect[1:])
    bright = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    np.testing.assert_array_equal(load_image(tmp_path / "bright.pgm")[:, :, 0], bright)
    # the same values as a 16-bit PNG are read the same way
    Image.fromarray(low).save(tmp_path / "low.png")
    np.testing.assert_array_equal(load_image(tmp_path / "low.png")[:, :, 0], expect)


def test_8bit_pgm_unchanged(tmp_path):
    values = np.random.default_rng(1).integers(0, 256, (10, 12)).astype(np.uint8)
    Image.fromarray(values).save(tmp_path / "g.pgm")
    np.testing.assert_array_equal(load_image(tmp_path / "g.pgm")[:, :, 0], values)


@pytest.mark.parametrize("alpha", ["transparent-background", "half", "opaque"])
def test_rgba_array_reads_like_the_rgba_file(tmp_path, load_sample, alpha):
    rgb = load_sample("grace_hopper.jpg")[:120, :100]
    a = np.full(rgb.shape[:2], 255, np.uint8)
    if alpha == "transparent-background":
        a[:, :30] = 0
        a[:20] = 60
    elif alpha == "half":
        a[:] = 128
    rgba = np.dstack([rgb, a])
    path = tmp_path / "x.png"
    Image.fromarray(rgba, "RGBA").save(path)
    from_file = load_image(path)
    from_array = as_rgb8(np.asarray(Image.open(path)))
    np.testing.assert_array_equal(from_array, from_file)
    if alpha == "opaque":
        np.testing.assert_array_equal(from_array, rgb)
    else:
        assert from_array[:, :, :].mean() > rgb.mean() + 5  # laid over white
    # float RGBA in 0..1 too
    as_float = as_rgb8(rgba.astype(np.float32) / 255.0)
    assert np.abs(as_float.astype(int) - from_file).max() <= 1


def test_boxes_scaled_back_as_edges():
    """A box over the whole downscaled image covers the whole image, not [1.5, 1.5, ...]."""
    c = Candidate(box=np.array([0.0, 0.0, 1280.0, 720.0]), score=0.9)
    np.testing.assert_allclose(c.rescaled(0.25).box, [0, 0, 5120, 2880])
    lm = np.array([[0.0, 0.0], [1279.0, 719.0]])
    c = Candidate(box=np.array([10.0, 20.0, 30.0, 40.0]), score=0.9, landmarks=lm)
    r = c.rescaled(0.5)
    np.testing.assert_allclose(r.box, [20, 40, 60, 80])
    # landmarks are pixel centres: the first and last pixel centres map to the full image's
    np.testing.assert_allclose(r.landmarks, [[0.5, 0.5], [2558.5, 1438.5]])


def test_a_fully_transparent_rgba_array_is_blank_with_a_warning(caplog):
    """Review finding: an RGBX buffer (alpha 0 everywhere) became a white image silently."""
    import logging

    rgbx = np.zeros((8, 8, 4), np.uint8)
    rgbx[..., :3] = 90
    with caplog.at_level(logging.WARNING, logger="exprsim"):
        out = as_rgb8(rgbx)
    assert (out == 255).all() and "alpha 0 everywhere" in caplog.text
