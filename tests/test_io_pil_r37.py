"""Round 37 (an audit of array layouts and types): a PIL image of zero pixels was read as a
``(10, 0, 3)`` array and refused only later, outside the read, so ``embed_images(...,
failures=[])`` lost the whole batch; Pillow's premultiplied modes were read wrong: ``RGBa``
with its alpha dropped (a red pixel at 25% opacity came out dark red, not pink over white)
and ``La`` refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exprsim.errors import ImageError
from exprsim.io import load_image
from exprsim.models.embedder import load_model
from exprsim.samples import sample_path


def _over_white(rgb: tuple[int, ...], alpha: int) -> np.ndarray:
    """A straight-alpha colour laid over white, computed by hand."""
    a = alpha / 255
    return np.array([round(c * a + 255 * (1 - a)) for c in rgb], dtype=float)


@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_a_pil_image_of_no_pixels_is_refused_as_it_is_read(size: tuple[int, int]) -> None:
    with pytest.raises(ImageError, match=r"<PIL image>: zero-size image"):
        load_image(Image.new("RGB", size))


def test_a_pil_image_of_no_pixels_fails_alone_in_a_batch() -> None:
    failures: list[Exception] = []
    inputs = [sample_path("grace_hopper.jpg"), Image.new("RGB", (0, 10))]
    faces = load_model().embed_images(inputs, failures=failures)
    assert len(faces) == 1 and str(faces[0].source).endswith("grace_hopper.jpg")
    assert len(failures) == 1 and "zero-size image (0x10)" in str(failures[0])


def test_premultiplied_rgba_is_laid_over_white_as_straight_rgba() -> None:
    straight = Image.new("RGBA", (3, 2), (255, 0, 0, 64))
    got = load_image(straight.convert("RGBa"))
    assert np.abs(got[0, 0] - _over_white((255, 0, 0), 64)).max() <= 2  # was [64, 0, 0]
    assert np.array_equal(got, load_image(straight))


def test_premultiplied_gray_with_alpha_is_read_as_la() -> None:
    straight = Image.new("LA", (3, 2), (100, 128))
    got = load_image(straight.convert("La"))  # was: "conversion from La to L not supported"
    assert np.abs(got[0, 0] - _over_white((100, 100, 100), 128)).max() <= 2
    assert np.abs(got.astype(int) - load_image(straight).astype(int)).max() <= 1
