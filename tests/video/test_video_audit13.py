"""Thirteenth robustness round: a still image given to `video` is read as every other
command reads it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from exprsim.io import load_image
from exprsim.samples import sample_path
from exprsim.video.frames import FrameReader

pytest.importorskip("av")


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "pexels_langer_frame144.jpg"])
def test_a_still_jpeg_gives_load_images_pixels(name, tmp_path):
    """Audit: FFmpeg decoded the JPEG (its chroma upsampling), up to 46 gray levels away
    from what `embed`, `faces` and the web read; one face's embedding moved 0.0126."""
    path = tmp_path / name
    shutil.copyfile(sample_path(name), path)
    with FrameReader(path) as reader:
        frames = list(reader)
        assert (reader.info.width, reader.info.height) == load_image(path).shape[1::-1]
    assert len(frames) == 1
    np.testing.assert_array_equal(frames[0].image, load_image(path))


def test_a_turned_still_is_turned_once(tmp_path):
    img = Image.open(sample_path("grace_hopper.jpg"))
    exif = img.getexif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    path = tmp_path / "turned.jpg"
    img.save(path, exif=exif)
    with FrameReader(path) as reader:
        (frame,) = list(reader)
        assert (reader.info.width, reader.info.height) == frame.image.shape[1::-1]
    np.testing.assert_array_equal(frame.image, load_image(path))
    assert frame.image.shape[:2] == img.size  # (W, H) of the file: turned
