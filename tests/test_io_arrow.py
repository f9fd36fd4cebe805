"""RGB JPEGs leave Pillow through its Arrow export (one block, no ``tobytes`` copy): the
same pixels as ``np.asarray`` of the decoded image, and the same where that path is shut."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import exprsim.io as eio


def _jpeg(w: int, h: int, seed: int = 0, **kw) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=85, **kw)
    return buf.getvalue()


def _reference(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize(
    ("w", "h", "kw"),
    [(2600, 2000, {}), (2001, 1003, {"progressive": True}), (17, 3, {}), (640, 480, {})],
)
def test_rgb_jpegs_decode_to_the_same_pixels(w, h, kw, monkeypatch) -> None:
    data = _jpeg(w, h, **kw)
    taken = []
    real = eio._rgb_from_one_block

    def spy(img):
        out = real(img)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(eio, "_rgb_from_one_block", spy)
    got = eio.decode_image(data)
    assert got.dtype == np.uint8 and got.flags["C_CONTIGUOUS"] and got.shape == (h, w, 3)
    assert np.array_equal(got, _reference(data))
    if hasattr(Image.core, "new_block") and w * h >= eio.ARROW_MIN_PIXELS:
        assert taken == [True]  # 2600 x 2000 RGBX is over Pillow's 16 MB block: one block


def test_without_the_one_block_api_the_pixels_are_the_same(monkeypatch) -> None:
    data = _jpeg(2600, 2000, seed=1)
    want = eio.decode_image(data)
    monkeypatch.delattr(Image.core, "new_block", raising=False)
    assert np.array_equal(eio.decode_image(data), want)  # several blocks: np.asarray
    monkeypatch.setattr(eio, "ARROW_MIN_PIXELS", 10**12)
    monkeypatch.delitem(__import__("sys").modules, "pyarrow", raising=False)
    assert np.array_equal(eio.decode_image(data), want)


def test_exif_orientation_still_applies_after_the_fast_path() -> None:
    arr = np.zeros((1500, 2000, 3), np.uint8)
    arr[:100, :200] = 255  # a white corner, top left as stored
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif)
    got = eio.decode_image(buf.getvalue())
    assert got.shape == (2000, 1500, 3)
    assert got[:200, -100:].mean() > 200 and got[:200, :100].mean() < 50  # now top right
