"""Thirteenth robustness round: the crop size a caller asks for changes no verdict."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.faces.align import AlignConfig, align_face
from exprsim.faces.pipeline import ORIENTATION_ALIGN, _orientation_view, analyze_image
from exprsim.samples import sample_path


@pytest.mark.parametrize("name", ["pexels_langer_frame360.jpg", "pexels_langer_frame432.jpg"])
def test_a_tiny_crop_size_changes_no_orientation_verdict(name):
    """Audit: the orientation network read the caller's crop, so `faces --size 8` flagged
    upright faces `upside_down` (9 of 15 verdicts flipped)."""
    path = sample_path(name)
    default = analyze_image(path)
    tiny = analyze_image(path, align_config=AlignConfig(size=8))
    assert [a.quality.reasons for a in tiny] == [a.quality.reasons for a in default]
    assert [a.quality.ok for a in tiny] == [a.quality.ok for a in default]
    for a, b in zip(default, tiny, strict=True):
        np.testing.assert_array_equal(a.face.box, b.face.box)
        assert b.crop.shape[:2] == (8, 8)


def test_the_orientation_view_is_the_default_crop_whatever_the_callers_framing():
    from exprsim.io import load_image

    image = load_image(sample_path("grace_hopper.jpg"))
    (face,) = analyze_image(image)
    own = align_face(image, face.face.landmarks, ORIENTATION_ALIGN)
    assert _orientation_view(image, face.face, face.crop, AlignConfig()) is face.crop
    for cfg in (AlignConfig(size=8), AlignConfig(size=224, eye_distance=70 / 224)):
        crop = align_face(image, face.face.landmarks, cfg)
        np.testing.assert_array_equal(_orientation_view(image, face.face, crop, cfg), own)


def _pasted(width: int) -> tuple[np.ndarray, np.ndarray]:
    """A 4032x3024 photo (a phone's 12 MP) holding Grace Hopper's face ``width`` px wide,
    and that face's box."""
    import cv2

    from exprsim.io import load_image

    src = load_image(sample_path("grace_hopper.jpg"))
    (face,) = analyze_image(src)
    x1, y1, x2, y2 = face.face.box
    s = width / (x2 - x1)
    small = cv2.resize(src, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    canvas = cv2.resize((rng.random((12, 16, 3)) * 120 + 60).astype(np.uint8), (4032, 3024))
    ox, oy = 1500, 1200
    canvas[oy : oy + small.shape[0], ox : ox + small.shape[1]] = small
    return canvas, np.array([ox + x1 * s, oy + y1 * s, ox + x2 * s, oy + y2 * s])


@pytest.mark.slow
def test_a_small_face_in_a_12_megapixel_photo_is_found():
    """Audit: faces under about 260 px in a 12-MP photo were missed (the tiles were 2/3 of
    the shorter side: a 170-px face was 5% of a tile)."""
    from exprsim.faces.detect import box_iou, create_detector

    canvas, box = _pasted(170)
    found = create_detector("mediapipe").detect(canvas)
    assert found and box_iou(box[None], np.stack([f.box for f in found])).max() > 0.5
    before = create_detector("mediapipe", tile_model="short", max_tile=None).detect(canvas)
    assert not before or box_iou(box[None], np.stack([f.box for f in before])).max() < 0.3


@pytest.mark.slow
def test_a_90_px_face_in_a_12_megapixel_photo_is_found():
    """Faces under about 150 px in a 12-MP photo were still missed: the short-range model
    on 320-px tiles saw a 90-px face at 9 px of its 128-px input. The tiles of large images
    now run the full-range model."""
    from exprsim.faces.detect import box_iou, create_detector

    canvas, box = _pasted(90)
    found = create_detector("mediapipe").detect(canvas)
    assert found and box_iou(box[None], np.stack([f.box for f in found])).max() > 0.5
    before = create_detector("mediapipe", tile_model="short", max_tile=320).detect(canvas)
    assert not before or box_iou(box[None], np.stack([f.box for f in before])).max() < 0.3
