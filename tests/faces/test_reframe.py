"""Crops framed by someone else, framed again (:mod:`exprsim.faces.reframe`).

References: the framing ``r`` against the geometry of landmarks placed on the template at a
known scale, and re-framed crops of a real photo against the crop cut directly from it."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.faces.align import FER2013_TEMPLATE, AlignConfig, align_face
from exprsim.faces.reframe import LOOSE_FRAMING, framing, reframe_crops

from .conftest import HAND_CHECKED


class _NoDetector:
    def detect(self, image: np.ndarray) -> list:
        raise AssertionError("the detector must not run")


def _placed(side_px: float, offset: tuple[float, float], angle: float = 0.0) -> np.ndarray:
    """The template's 5 points with the template square ``side_px`` pixels wide, turned by
    ``angle`` radians about its centre and moved by ``offset``."""
    t = np.asarray(FER2013_TEMPLATE) - 0.5
    c, s = np.cos(angle), np.sin(angle)
    turned = t @ np.array([[c, s], [-s, c]])
    return (turned + 0.5) * side_px + np.asarray(offset)


@pytest.mark.parametrize("factor", [0.8, 1.0, 1.4, 2.0])
@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_framing_is_the_crop_side_in_template_squares(factor: float, angle: float) -> None:
    crop = (240, 240, 3)
    side = 240 / factor  # the template square of a face framed `factor` times looser
    lm = _placed(side, (120 - side / 2, 120 - side / 2), angle)
    for size in (48, 112, 224):  # the aligned crop's side does not matter
        assert framing(lm, crop, AlignConfig(size=size)) == pytest.approx(factor, rel=1e-9)


def test_framing_of_a_tall_crop_counts_its_longer_side() -> None:
    lm = _placed(100.0, (0.0, 50.0))
    assert framing(lm, (200, 100, 3), AlignConfig()) == pytest.approx(2.0)
    assert framing(lm, (100, 200, 3), AlignConfig()) == pytest.approx(2.0)


def test_no_crops_no_detector() -> None:
    out = reframe_crops(np.zeros((0, 150, 150, 3), np.uint8), AlignConfig(), _NoDetector())
    assert out.crops.shape == (0, 112, 112, 3) and out.reframed.shape == out.framing.shape == (0,)


def test_crops_without_a_face_are_left_alone(mp_detector) -> None:
    rng = np.random.default_rng(0)
    crops = np.stack([np.full((150, 150, 3), 90, np.uint8), rng.integers(0, 256, (150, 150, 3))])
    crops = crops.astype(np.uint8)
    out = reframe_crops(crops, AlignConfig(), detector=mp_detector)
    assert not out.reframed.any() and np.isnan(out.framing).all()
    import cv2

    for got, crop in zip(out.crops, crops, strict=True):  # as they are, at the aligned side
        assert np.array_equal(got, cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA))


def _crops_of(load_sample, name: str, factor: float, size: int = 112) -> np.ndarray:
    """The photo's face cut with the template framed ``factor`` times looser (real
    surroundings, not padding), at ``size`` px."""
    cfg = AlignConfig(size=size, eye_distance=0.355 / factor, border="replicate")
    return align_face(load_sample(name), HAND_CHECKED[name], cfg)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "pexels_langer_frame000.jpg"])
def test_a_loose_crop_is_cut_again_like_the_model_crop(load_sample, mp_detector, name) -> None:
    direct = _crops_of(load_sample, name, 1.0).astype(float)
    loose = _crops_of(load_sample, name, 2.0, size=200)
    out = reframe_crops(loose[None], AlignConfig(), detector=mp_detector)
    assert out.reframed.tolist() == [True]
    assert out.framing[0] == pytest.approx(2.0, abs=0.25)
    again = out.crops[0].astype(float)
    import cv2

    as_is = cv2.resize(loose, (112, 112), interpolation=cv2.INTER_AREA).astype(float)
    # the detector's landmarks are not the hand-checked ones: close, not equal
    assert np.abs(again - direct).mean() < 0.5 * np.abs(as_is - direct).mean()
    assert np.abs(again - direct).mean() < 25


def test_gray_crops_are_read_as_gray_faces(load_sample, mp_detector) -> None:
    loose = _crops_of(load_sample, "grace_hopper.jpg", 2.0, size=200)
    gray = loose.mean(axis=2).round().astype(np.uint8)
    out = reframe_crops(gray[None], AlignConfig(), detector=mp_detector)
    assert out.reframed.tolist() == [True] and out.crops.shape == (1, 112, 112, 3)
    assert (out.crops[0, ..., 0] == out.crops[0, ..., 1]).all()


def test_a_crop_framed_like_fer2013_stays(load_sample, mp_detector) -> None:
    crops = np.stack(
        [_crops_of(load_sample, n, 1.0) for n in ("grace_hopper.jpg", "pexels_langer_frame288.jpg")]
    )
    out = reframe_crops(crops, AlignConfig(), detector=mp_detector)
    assert not out.reframed.any()
    assert np.array_equal(out.crops, crops)  # 112 px already: resized to 112, unchanged
    assert np.all(np.abs(out.framing - 1.0) < 0.2)
    assert np.all(out.framing < LOOSE_FRAMING)
    # the threshold decides, not the detector: a lower one takes both
    low = reframe_crops(crops, AlignConfig(), detector=mp_detector, threshold=0.5)
    assert low.reframed.tolist() == [True, True]
