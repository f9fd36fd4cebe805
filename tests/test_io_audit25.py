"""Round 25 (docs/robustness.md), decoding: a damaged AVIF (or BLP) stopped a whole batch
with a codec's RuntimeError; an AVIF under the mif1 brand failed or not depending on the
image read before it; 16-bit white-is-zero TIFFs were read as negatives, 32-bit ones
clipped without a word; big-endian uint16 arrays read as 8-bit; a file transparent
everywhere went blank without a word (a 32-bit BMP with alpha 0 is opaque); a gray or RGB
PNG's transparent colour was ignored."""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from exprsim.errors import ImageError
from exprsim.io import decode_image, load_image
from exprsim.samples import sample_path

avif = pytest.mark.skipif(not features.check("avif"), reason="this Pillow reads no AVIF")


def _gray() -> np.ndarray:
    return np.asarray(Image.open(sample_path("grace_hopper.jpg")).convert("L"))


def _avif_bytes() -> bytes:
    out = io.BytesIO()
    Image.open(sample_path("grace_hopper.jpg")).save(out, format="AVIF")
    return out.getvalue()


@avif
def test_a_damaged_avif_is_one_unreadable_file() -> None:
    data = bytearray(_avif_bytes())
    start = data.find(b"mdat") + 8
    rng = np.random.default_rng(0)
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    with pytest.raises(ImageError, match="corrupt or undecodable image"):
        decode_image(bytes(data), "bad.avif")  # was: RuntimeError out of every command


@avif
def test_an_avif_under_the_mif1_brand_is_read_as_avif(tmp_path) -> None:
    """Its major brand mif1, avif among the compatible ones: Pillow's AVIF reader, not
    pillow-heif (no AV1 decoder in its wheel) or a demand for pillow-heif. In a fresh
    process that read a PNG first, as the failure depended on what was read before."""
    import subprocess
    import sys

    data = bytearray(_avif_bytes())
    assert data[4:8] == b"ftyp" and b"avif" in data[16:32]
    data[8:12] = b"mif1"
    (tmp_path / "m.avif").write_bytes(bytes(data))
    (tmp_path / "a.avif").write_bytes(_avif_bytes())
    code = (
        "import sys, numpy as np; from exprsim.io import load_image; "
        f"load_image({str(sample_path('grace_hopper.jpg'))!r}); "
        f"a = load_image({str(tmp_path / 'm.avif')!r}); "
        f"b = load_image({str(tmp_path / 'a.avif')!r}); "
        "sys.exit(0 if np.array_equal(a, b) else 3)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]


def test_a_blp_of_unknown_compression_is_one_unreadable_file() -> None:
    out = io.BytesIO()
    Image.new("P", (8, 8)).save(out, format="BLP")
    data = bytearray(out.getvalue())
    data[4] = 0xA1  # compression 161: Pillow raises BLPFormatError, a NotImplementedError
    with pytest.raises(ImageError, match="corrupt or undecodable image"):
        decode_image(bytes(data), "x.blp")


def test_a_white_is_zero_16_bit_tiff_reads_as_it_displays() -> None:
    g = _gray()
    out = io.BytesIO()
    inverted = ((255 - g.astype(np.uint32)) * 257).astype(np.uint16)  # 65535 is black
    Image.fromarray(inverted).save(out, format="TIFF", tiffinfo={262: 0})
    got = decode_image(out.getvalue(), "w16.tif")
    np.testing.assert_array_equal(got[:, :, 0], g)  # was its negative (mean 178, not 77)


def test_a_32_bit_tiff_beyond_16_bits_says_it_is_clipped(caplog) -> None:
    out = io.BytesIO()
    Image.fromarray(_gray().astype(np.int32) * 1000).save(out, format="TIFF")
    with caplog.at_level(logging.WARNING):
        decode_image(out.getvalue(), "i32.tif")
    assert "i32.tif: 32-bit image with values from 0 to 255000" in caplog.text


def test_big_endian_uint16_reads_as_16_bit() -> None:
    a = _gray().astype(np.uint16)[:40, :40]  # 16-bit pixels, all under 256: a dark image
    np.testing.assert_array_equal(load_image(a.astype(">u2")), load_image(a))
    assert load_image(np.full((4, 4), 200, ">u2")).max() == 1  # 200 of 65535, not 200 of 255


def test_a_png_transparent_everywhere_says_so(caplog) -> None:
    out = io.BytesIO()
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(out, format="PNG")
    with caplog.at_level(logging.WARNING):
        got = decode_image(out.getvalue(), "clear.png")
    assert (got == 255).all()
    assert "clear.png: alpha is 0 everywhere" in caplog.text


def _bmp32(rgba: np.ndarray) -> bytes:
    """A 32-bit BMP with a V4 header and an alpha mask, as Windows tools write them."""
    h, w = rgba.shape[:2]
    pixels = np.ascontiguousarray(rgba[::-1][:, :, [2, 1, 0, 3]]).tobytes()  # BGRA, bottom-up
    v4 = struct.pack(
        "<IiiHHIIiiII4I4s36s3I",
        108, w, h, 1, 32, 3, len(pixels), 2835, 2835, 0, 0,
        0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000, b"BGRs", bytes(36), 0, 0, 0,
    )  # fmt: skip
    head = struct.pack("<2sIHHI", b"BM", 14 + len(v4) + len(pixels), 0, 0, 14 + len(v4))
    return head + v4 + pixels


def test_a_32_bit_bmp_with_alpha_0_is_opaque() -> None:
    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[:, :, 0], rgba[:, :, 1], rgba[:, :, 2] = 200, 100, 50
    data = _bmp32(rgba)
    assert Image.open(io.BytesIO(data)).mode == "RGBA"
    got = decode_image(data, "w.bmp")
    np.testing.assert_array_equal(got, rgba[:, :, :3])  # was all white: blank
    rgba[:, :, 3] = 255  # (opaque alpha: the same pixels)
    np.testing.assert_array_equal(decode_image(_bmp32(rgba), "o.bmp"), got)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_transparent_colour_is_laid_over_white(mode: str) -> None:
    g = np.full((4, 4), 7, np.uint8)
    g[0] = 0
    out = io.BytesIO()
    img = Image.fromarray(g if mode == "L" else np.dstack([g] * 3))
    img.save(out, format="PNG", transparency=0 if mode == "L" else (0, 0, 0))
    got = decode_image(out.getvalue())
    assert (got[0] == 255).all() and (got[1:] == 7).all()  # was black where transparent


def test_a_home_path_in_a_list_is_read_and_not_taken_for_a_repeat(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/a.jpg`` and the same file by its full name: the repeat check expanded ``~``
    (one file) but the reader did not, so the full name was dropped and ``~/a.jpg``
    failed: "every file failed"."""
    from exprsim.io import iter_image_files, unique_files

    home = tmp_path / "home"
    (home / "sub").mkdir(parents=True)
    (home / "a.jpg").write_bytes(b"x")
    (home / "sub" / "b.jpg").write_bytes(b"x")
    monkeypatch.setenv("HOME", str(home))
    files = unique_files(iter_image_files(["~/a.jpg", str(home / "a.jpg"), "~/sub"]))
    assert files == [home / "a.jpg", home / "sub" / "b.jpg"]
    assert all(f.is_file() for f in files)
    assert list(iter_image_files(["~nosuchuser1/x.jpg"])) == [Path("~nosuchuser1/x.jpg")]


def test_linked_folders_left_out_are_counted_in_one_warning(tmp_path, caplog) -> None:
    from exprsim.io import iter_image_files

    album = tmp_path / "album"
    (album / "2020").mkdir(parents=True)
    (album / "2020" / "a.jpg").write_bytes(b"x")
    (tmp_path / "nas").mkdir()
    (tmp_path / "nas" / "b.jpg").write_bytes(b"x")
    (album / "2019").symlink_to(tmp_path / "nas")
    (album / "up").symlink_to("..")
    with caplog.at_level(logging.WARNING):
        files = list(iter_image_files([album]))
    assert files == [album / "2020" / "a.jpg"]  # links are still not entered
    assert "album: 2 linked folders not entered" in caplog.text  # was: not a word
    assert list(iter_image_files([album / "2019"])) == [album / "2019" / "b.jpg"]  # named


@pytest.mark.parametrize("suffix, fmt", [(".apng", "PNG"), (".pbm", "PPM")])
def test_apng_and_pbm_files_are_found_in_folders(tmp_path, suffix: str, fmt: str) -> None:
    """Read when named, skipped without a word by a folder walk."""
    from exprsim.io import iter_image_files

    img = Image.new("1" if suffix == ".pbm" else "RGB", (8, 8), 1)
    img.save(tmp_path / f"x{suffix}", format=fmt)
    assert list(iter_image_files([tmp_path])) == [tmp_path / f"x{suffix}"]
    assert load_image(tmp_path / f"x{suffix}").shape == (8, 8, 3)
