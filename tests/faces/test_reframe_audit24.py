"""Round 24 (docs/robustness.md): :func:`reframe_crops` and :func:`framing` check their
arguments (a single colour crop was read as a batch of strips; a bad threshold raised a
raw ValueError or re-framed nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ArgumentError
from exprsim.faces.align import FER2013_TEMPLATE, AlignConfig
from exprsim.faces.detect import downscale_for_detection
from exprsim.faces.reframe import framing, reframe_crops


class _NoDetector:
    def detect(self, image: np.ndarray) -> list:
        raise AssertionError("the detector must not run")


@pytest.mark.parametrize(
    "crops",
    [
        np.zeros((100, 100, 3), np.uint8),  # one colour crop, not a batch
        np.zeros((2, 100, 100), np.float32),
        np.zeros((2, 100, 100, 4), np.uint8),
        np.zeros((2, 0, 100), np.uint8),
        np.zeros((100,), np.uint8),
    ],
)
def test_reframe_crops_refuses_what_is_not_a_batch(crops) -> None:
    with pytest.raises(ArgumentError, match="crops"):
        reframe_crops(crops, AlignConfig(), _NoDetector())


@pytest.mark.parametrize("threshold", ["abc", float("nan"), float("inf"), 0, -1.0, True])
def test_reframe_crops_refuses_a_bad_threshold(threshold) -> None:
    with pytest.raises(ArgumentError, match="threshold"):
        reframe_crops(np.zeros((1, 100, 100), np.uint8), AlignConfig(), _NoDetector(), threshold)


def test_one_channel_crops_are_read_as_gray() -> None:
    class NoFace:
        def detect(self, image: np.ndarray) -> list:
            assert image.shape == (80, 90, 3)
            return []

    crop = np.arange(80 * 90, dtype=np.uint32).reshape(1, 80, 90).astype(np.uint8)
    a = reframe_crops(crop[..., None], AlignConfig(), NoFace(), threshold=1.2)
    b = reframe_crops(crop, AlignConfig(), NoFace(), threshold=1.2)
    np.testing.assert_array_equal(a.crops, b.crops)


@pytest.mark.parametrize("shape", [(100,), ()])
def test_framing_needs_two_sides(shape) -> None:
    lm = np.asarray(FER2013_TEMPLATE) * 100.0
    with pytest.raises(ArgumentError, match="crop_shape"):
        framing(lm, shape, AlignConfig())


@pytest.mark.parametrize("max_side", [1920, None])
def test_detection_never_sees_a_side_opencv_cannot_warp(max_side) -> None:
    from exprsim.faces.detect import MAX_DETECT_SIDE

    img = np.zeros((70, 40000, 3), np.uint8)
    small, factor = downscale_for_detection(img, max_side)
    assert max(small.shape[:2]) == MAX_DETECT_SIDE
    assert factor == pytest.approx(MAX_DETECT_SIDE / 40000, rel=1e-4)
    same, one = downscale_for_detection(np.zeros((70, 30000, 3), np.uint8), None)
    assert one == 1.0 and same.shape == (70, 30000, 3)
