"""Round 30: a dim but sharp face is not "blur" (docs/robustness.md, "thirtieth round")."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from exprsim.faces.pipeline import analyze_image
from exprsim.faces.quality import QualityConfig, contrast_gain, sharpness
from exprsim.io import load_image
from exprsim.samples import sample_dir

NAMES = ["astronaut_eileen_collins.jpg", "pexels_langer_frame288.jpg", "grace_hopper.jpg"]


@pytest.mark.parametrize("name", NAMES)
def test_a_dim_sharp_face_passes_and_a_blurred_one_still_fails(name: str) -> None:
    """The audit: the astronaut at half brightness scored 2.2 (4.3 lit) and was rejected as
    "blur", though its embedding moved by 0.002: dim webcam and indoor footage lost faces
    (a clip darkened to 55% lost 1 of 25)."""
    image = load_image(sample_dir() / name)
    lit = analyze_image(image)[0]
    assert lit.quality.ok
    for light in (0.5, 0.25):
        dim = analyze_image((image * light).astype(np.uint8))[0]
        assert dim.quality.ok, (light, dim.quality)
    blurred = cv2.GaussianBlur(image, (0, 0), 2)
    for light in (1.0, 0.5):
        face = analyze_image((blurred * light).astype(np.uint8))[0]
        assert not face.quality.ok and "blur" in face.quality.reasons, (light, face.quality)


def test_the_gain_only_lifts_and_is_bounded() -> None:
    cfg = QualityConfig()
    rng = np.random.default_rng(0)
    lit = rng.normal(128, 50, (35, 35)).astype(np.float32)
    assert contrast_gain(lit, cfg) == 1.0  # contrasted enough: FEENet's score
    assert contrast_gain(lit * 0.5, cfg) == pytest.approx(32 / float(np.std(lit * 0.5)))
    assert contrast_gain(np.full((35, 35), 7.0, np.float32), cfg) == 4.0  # uniform: at most 4
    assert contrast_gain(lit * 0.5, QualityConfig(contrast_floor=0.0)) == 1.0


def test_sharpness_of_a_dimmed_image_is_that_of_the_lit_one_scaled_back() -> None:
    """Dimming multiplies FEENet's score by the light; the gain divides it out (up to the
    rounding of the dimmed pixels) while the patch is under the floor."""
    image = load_image(sample_dir() / "pexels_langer_frame000.jpg")
    lm = analyze_image(image)[0].face.landmarks
    feenet = QualityConfig(contrast_floor=0.0)
    raw_lit = sharpness(image, lm, feenet)
    raw_dim = sharpness((image * 0.25).astype(np.uint8), lm, feenet)
    assert raw_dim == pytest.approx(raw_lit * 0.25, rel=0.1)  # the problem
    lifted = sharpness((image * 0.25).astype(np.uint8), lm)
    assert lifted > QualityConfig().sharpness_threshold
    assert lifted == pytest.approx(raw_lit * 32 / 44.0, rel=0.15)  # lit patches: std ~44


def test_quality_config_checks_the_new_settings() -> None:
    from exprsim.errors import ArgumentError

    with pytest.raises(ArgumentError, match="contrast_floor"):
        QualityConfig(contrast_floor=-1.0)
    with pytest.raises(ArgumentError, match="max_contrast_gain"):
        QualityConfig(max_contrast_gain=0.5)
