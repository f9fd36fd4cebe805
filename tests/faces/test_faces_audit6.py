"""Face-side inputs found by the sixth audit (docs/robustness.md): alignment of images of
any dtype, alignment configs, detector options, analyze_image given a path."""

from __future__ import annotations

import numpy as np
import pytest

from exprsim.errors import ExprsimError, ImageError
from exprsim.faces.align import AlignConfig, align_face

FRONTAL = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im / 255.0,  # float 0..1: was a float64 crop embed_crops refused
        lambda im: im[..., 0],  # gray: was an (S, S) crop
        lambda im: np.dstack([im, im[..., :1]]),  # RGBA: was (S, S, 4)
        lambda im: im.astype(np.int64),  # was a raw cv2.error
        lambda im: im > 100,  # bool: was a raw cv2.error
    ],
)
def test_align_face_gives_uint8_rgb_crops_from_any_image(convert):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    crop = align_face(convert(image), FRONTAL, AlignConfig(size=48))
    assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8


def test_align_face_refuses_an_empty_image_in_one_line():
    with pytest.raises(ImageError, match=r"got \(0, 0, 3\)"):
        align_face(np.zeros((0, 0, 3), np.uint8), FRONTAL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 8.5}, "whole number"),
        ({"size": True}, "whole number"),
        ({"size": 40_000}, r"in \[8, 4096\]"),
        ({"template": ((0.5, 0.5),) * 5}, "eyes apart"),  # was ZeroDivisionError
        ({"template": ((float("nan"), 0.0),) * 5}, "finite"),  # was LinAlgError
    ],
)
def test_align_config_refuses_what_would_fail_later(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AlignConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_confidence": 2}, r"min_confidence must be in \[0, 1\]"),  # found no face
        ({"min_confidence": -1}, r"min_confidence must be in \[0, 1\]"),  # found 80
        ({"min_confidence": float("nan")}, r"must be in \[0, 1\]"),
        ({"tile_min_confidence": "high"}, r"must be in \[0, 1\]"),
        ({"bogus": 1}, "has no option bogus"),  # was a raw TypeError
    ],
)
def test_detector_options_are_checked(kwargs, match):
    from exprsim.faces.detect import create_detector

    with pytest.raises(ExprsimError, match=match):
        create_detector("haar" if "bogus" in kwargs else "mediapipe", **kwargs)


def test_analyze_image_reads_a_path_or_bytes():
    from exprsim.faces.pipeline import analyze_image
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    path = sample_path("grace_hopper.jpg")
    from_pixels = analyze_image(load_image(path))
    for source in (path, str(path), path.read_bytes()):  # a path failed with "got ()"
        (face,) = analyze_image(source)
        np.testing.assert_array_equal(face.crop, from_pixels[0].crop)
    with pytest.raises(ImageError, match="no such file"):
        analyze_image(str(path) + ".missing")
