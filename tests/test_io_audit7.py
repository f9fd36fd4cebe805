"""Audit 7 (video and media decoding), the image side: EXIF that Pillow cannot write back,
one refusal for every image over the pixel limit, float images with NaN or infinite pixels,
AVIF / JFIF files in folders. Each test failed before its fix."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim.cli import main
from exprsim.errors import ImageError, ImageTooLargeError
from exprsim.io import IMAGE_SUFFIXES, MAX_PIXELS, decode_image, iter_image_files, load_image
from exprsim.samples import sample_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import png_bomb


def mistyped_exif_jpeg(orientation: int) -> bytes:
    """The bundled still with EXIF Make = 'Cam' whose tag id is then changed to 0x0119
    (MaxSampleValue, a SHORT tag in Pillow's registry) while it still holds ASCII, as camera
    firmware writes such EXIF: Pillow reads it, but cannot serialise it again."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Cam"
    buf = io.BytesIO()
    Image.open(sample_path("pexels_langer_frame000.jpg")).save(buf, "JPEG", exif=exif)
    data = buf.getvalue()
    assert b"\x01\x0f\x00\x02" in data  # the Make entry (big-endian EXIF)
    return data.replace(b"\x01\x0f\x00\x02", b"\x01\x19\x00\x02", 1)


def good_exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Cam"
    buf = io.BytesIO()
    Image.open(sample_path("pexels_langer_frame000.jpg")).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


# ------------------------------------------------------------------ 1: unwritable EXIF


def test_mistyped_exif_with_an_orientation_is_read_upright():
    """Was struct.error out of exif_transpose (it re-serialises the EXIF block): a
    traceback in every command, a whole album lost."""
    bad = decode_image(mistyped_exif_jpeg(6), "bad.jpg")
    good = decode_image(good_exif_jpeg(6), "good.jpg")
    assert bad.shape == (640, 360, 3)  # turned clockwise: upright
    assert np.array_equal(bad, good)


def test_unparsable_exif_reads_the_image_as_stored(monkeypatch, caplog):
    def broken(self):
        raise struct.error("required argument is not an integer")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with caplog.at_level("WARNING", logger="exprsim.io"):
        image = decode_image(good_exif_jpeg(6), "odd.jpg")
    assert image.shape == (360, 640, 3)  # as stored, not a traceback
    assert "odd.jpg: EXIF unreadable" in caplog.text


def test_faces_reads_a_folder_holding_a_mistyped_exif_photo(tmp_path, capsys):
    import pandas as pd

    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_path("grace_hopper.jpg").read_bytes())
    (folder / "b.jpg").write_bytes(mistyped_exif_jpeg(6))
    (folder / "c.jpg").write_bytes(sample_path("astronaut_eileen_collins.jpg").read_bytes())
    out = tmp_path / "faces.csv"
    assert main(["-q", "faces", str(folder), "--out", str(out)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert {Path(s).name for s in pd.read_csv(out)["source"]} == {"a.jpg", "b.jpg", "c.jpg"}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_apply_orientation_is_pillows_exif_transpose(orientation):
    from PIL import ImageOps

    from exprsim.io import apply_orientation

    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    assert np.array_equal(apply_orientation(pixels, orientation), expected)
    assert np.array_equal(decode_image(buf.getvalue()), expected)


# ------------------------------------------------------------------ 7: one "too large"


def test_over_the_callers_limit_is_image_too_large_naming_it():
    """The web app's 40 M limit: a 100 M pixel PNG was Pillow's "decompression bomb ...
    DOS attack" ImageError (89.5 M threshold), not ImageTooLargeError (413)."""
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(png_bomb(10000, 10000), "big.png", max_pixels=40_000_000)
    assert str(info.value) == "big.png: image too large (10000x10000 pixels; limit 40000000)"


@pytest.mark.parametrize(("width", "height"), [(100000, 3000), (60000, 60000)])
def test_every_image_over_max_pixels_is_image_too_large(width, height):
    from PIL import Image

    limit = min(MAX_PIXELS, 2 * Image.MAX_IMAGE_PIXELS)  # where Pillow refuses (179 M)
    with pytest.raises(ImageTooLargeError, match=f"pixels; limit {limit}\\)$") as info:
        decode_image(png_bomb(width, height), "bomb.png")
    assert "DOS" not in str(info.value) and "decompression bomb" not in str(info.value)


def test_images_under_max_pixels_are_not_refused_as_bombs():
    """100 M pixels (a Fujifilm GFX100 photo has 102 M) is under the documented 200 M limit:
    this header-only file gets as far as decoding (was refused as a "DOS attack")."""
    with pytest.raises(ImageError) as info:
        decode_image(png_bomb(10000, 10000), "gfx.png")
    assert not isinstance(info.value, ImageTooLargeError)
    assert "truncated" in str(info.value)


# ------------------------------------------------------------------ 8: float images


def _float_tiff(path: Path, bad: float | None, at: tuple[int, int] = (0, 0)) -> np.ndarray:
    values = np.linspace(0.0, 10.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    if bad is not None:
        values[at] = bad
    Image.fromarray(values, "F").save(path)
    return values


@pytest.mark.filterwarnings("error")  # numpy's RuntimeWarning on NaN casts included
@pytest.mark.parametrize("bad", [float("inf"), float("nan"), float("-inf")])
def test_a_float_image_with_one_non_finite_pixel_keeps_its_picture(tmp_path, bad, caplog):
    """One +inf pixel made the whole photo black (the stretch divided by infinity)."""
    _float_tiff(tmp_path / "ref.tif", None)
    _float_tiff(tmp_path / "bad.tif", bad, at=(10, 10))
    ref = load_image(tmp_path / "ref.tif")
    with caplog.at_level("WARNING", logger="exprsim.io"):
        got = load_image(tmp_path / "bad.tif")
    assert "bad.tif: float image with 1 NaN or infinite pixel(s)" in caplog.text
    same = np.ones(ref.shape[:2], bool)
    same[10, 10] = False
    assert np.array_equal(got[same], ref[same])
    assert got[10, 10, 0] == (255 if bad == float("inf") else 0)


@pytest.mark.filterwarnings("error")
def test_a_float_image_with_no_finite_pixel_is_black(tmp_path):
    Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(tmp_path / "nan.tif")
    assert not load_image(tmp_path / "nan.tif").any()


# ------------------------------------------------------------------ 9: folder suffixes


def test_folders_yield_jfif_jpe_and_avif_files(tmp_path):
    photo = Image.open(sample_path("grace_hopper.jpg"))
    for name in ("a.jfif", "b.jpe"):
        photo.save(tmp_path / name, "JPEG")
    names = ["a.jfif", "b.jpe"]
    if ".avif" in IMAGE_SUFFIXES:
        photo.save(tmp_path / "c.avif")
        names.append("c.avif")
    assert [p.name for p in iter_image_files(tmp_path)] == names


def test_faces_finds_the_face_of_an_avif_photo_in_a_folder(tmp_path, capsys):
    """Was "no image files found in DIR" (exit 2) although the file decodes."""
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this Pillow does not read AVIF")
    import pandas as pd

    folder = tmp_path / "album"
    folder.mkdir()
    Image.open(sample_path("grace_hopper.jpg")).save(folder / "photo.avif")
    out = tmp_path / "faces.csv"
    assert main(["-q", "faces", str(folder), "--out", str(out)]) == 0, capsys.readouterr().err
    assert [Path(s).name for s in pd.read_csv(out)["source"]] == ["photo.avif"]
