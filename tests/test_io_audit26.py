"""Round 26 (docs/robustness.md): decoding."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from exprsim.io import decode_image


def test_a_white_is_zero_float_tiff_reads_as_it_displays() -> None:
    g = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (16, 1))  # left dark, right light
    plain, inverted = io.BytesIO(), io.BytesIO()
    Image.fromarray(g).save(plain, format="TIFF")
    Image.fromarray(1.0 - g).save(inverted, format="TIFF", tiffinfo={262: 0})  # 1.0 is black
    want = decode_image(plain.getvalue(), "f.tif")
    got = decode_image(inverted.getvalue(), "wf.tif")
    assert got[:, 0].mean() < 10 and got[:, -1].mean() > 245  # was its negative
    assert np.abs(got.astype(int) - want).max() <= 1


def test_a_half_copied_avif_is_called_truncated_not_a_non_image() -> None:
    import pytest
    from PIL import features

    from exprsim.errors import ImageError
    from exprsim.samples import sample_path

    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    out = io.BytesIO()
    Image.open(sample_path("grace_hopper.jpg")).save(out, format="AVIF")
    half = out.getvalue()[: len(out.getvalue()) // 2]
    with pytest.raises(ImageError, match=r"corrupt or truncated image \(AVIF file cut short"):
        decode_image(half, "half.avif")  # was "not an image or unsupported format"
    with pytest.raises(ImageError, match="not an image or unsupported format"):
        decode_image(b"hello, not a picture at all", "x.avif")


def _icon_hiding(png_side: int) -> bytes:
    """An ICO whose one directory entry says 16x16 and whose image is a PNG of
    ``png_side`` x ``png_side``."""
    import struct

    out = io.BytesIO()
    Image.new("RGB", (png_side, png_side), (90, 120, 150)).save(out, format="PNG")
    png = out.getvalue()
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + png


def test_an_icon_hiding_a_large_png_is_refused_before_it_is_decoded(monkeypatch) -> None:
    import pytest

    from exprsim.errors import ImageTooLargeError

    icon = _icon_hiding(300)  # made before load is watched (saving loads too)
    decoded = []
    real = Image.Image.load

    def load(self):
        decoded.append(self.size)
        return real(self)

    monkeypatch.setattr(Image.Image, "load", load)
    with pytest.raises(ImageTooLargeError, match="90000"):
        decode_image(icon, "hidden.ico", max_pixels=10_000)
    assert not any(w * h > 10_000 for w, h in decoded)  # was decoded, then refused


def test_an_icon_whose_png_differs_from_its_entry_reads_without_a_raw_warning(recwarn) -> None:
    got = decode_image(_icon_hiding(40), "icon.ico")
    assert got.shape == (40, 40, 3) and tuple(got[0, 0]) == (90, 120, 150)
    assert not [w for w in recwarn if "expected size" in str(w.message)]
