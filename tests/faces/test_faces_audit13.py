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
