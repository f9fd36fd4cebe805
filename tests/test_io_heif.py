"""HEIC / HEIF photos (read with pillow-heif) and camera RAW files in folders (thirteenth
robustness round: both were skipped without a word)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim import io as xio
from exprsim.errors import ImageError
from exprsim.samples import sample_path


def _heic_bytes(img: Image.Image, **kw) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pip install 'exprsim[heif]'")
    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    img.save(buf, format="HEIF", quality=95, **kw)
    return buf.getvalue()


def test_a_heic_photo_reads_as_its_pixels_and_its_orientation(tmp_path):
    src = Image.open(sample_path("grace_hopper.jpg")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(_heic_bytes(src, exif=exif.tobytes()))
    got = xio.load_image(path)
    want = np.asarray(src.transpose(Image.Transpose.ROTATE_270))
    assert got.shape == want.shape  # turned once
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 4  # lossy, but the same picture
    assert [p.name for p in xio.iter_image_files(tmp_path)] == ["IMG_0001.HEIC"]


def test_without_pillow_heif_a_heic_photo_fails_in_one_line_that_says_what_to_install(
    tmp_path, monkeypatch
):
    data = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64  # the header is enough to tell
    monkeypatch.setattr(xio, "_heif_opener", lambda: False)
    with pytest.raises(ImageError, match=r"HEIC/HEIF photo: reading it needs pillow-heif"):
        xio.decode_image(data, "x.heic")
    (tmp_path / "a.heic").write_bytes(data)
    assert [p.name for p in xio.iter_image_files(tmp_path)] == ["a.heic"]  # not dropped


def test_a_folder_walk_says_how_many_raw_files_it_left_out(tmp_path, caplog):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    for name in ("b.CR2", "c.dng", "d.NEF"):
        (tmp_path / name).write_bytes(b"raw")
    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        found = list(xio.iter_image_files(tmp_path))
    assert [p.name for p in found] == ["a.jpg"]
    assert "3 camera RAW files left out (b.CR2, ...)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exprsim.io"):
        assert list(xio.iter_image_files(tmp_path / "b.CR2")) == [Path(tmp_path / "b.CR2")]
    assert "RAW" not in caplog.text  # a file named is tried as it is
