"""A hostile-input corpus, generated on the fly (nothing is checked in, nothing downloaded).

:func:`image_corpus` writes image files of every awkward kind into a folder and returns,
for each file name, whether a careful loader should read it (``True``) or refuse it with
an :class:`~exprsim.errors.ImageError` (``False``). Good photos come from the bundled
samples, so the face pipeline has real faces to find among the bad files.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from exprsim.samples import sample_path

FACE = "grace_hopper.jpg"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _with_orientation(img: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(img, "JPEG", exif=exif, quality=90)


def image_corpus(root: Path) -> dict[str, bool]:
    """Write the corpus into ``root``; returns ``{file name: readable}``."""
    root.mkdir(parents=True, exist_ok=True)
    face_bytes = sample_path(FACE).read_bytes()
    face = Image.open(io.BytesIO(face_bytes)).convert("RGB")
    small = face.resize((160, 200))
    rng = np.random.default_rng(0)
    cases: dict[str, bool] = {}

    def put(name: str, data: bytes, ok: bool) -> None:
        (root / name).write_bytes(data)
        cases[name] = ok

    # good photos, and good photos in every colour mode / bit depth / container
    put("good_face.jpg", face_bytes, True)
    put("good_other.jpg", sample_path("pexels_langer_frame144.jpg").read_bytes(), True)
    put("mode_L.png", _encode(small.convert("L"), "PNG"), True)
    put("mode_LA.png", _encode(small.convert("LA"), "PNG"), True)
    put("mode_P.png", _encode(small.convert("P"), "PNG"), True)
    put("mode_P_transparent.png", _encode(small.convert("P"), "PNG", transparency=0), True)
    put("mode_RGBA.png", _encode(small.convert("RGBA"), "PNG"), True)
    put("mode_1.png", _encode(small.convert("1"), "PNG"), True)
    put("mode_CMYK.jpg", _encode(small.convert("CMYK"), "JPEG"), True)
    i16 = (np.asarray(small.convert("L"), np.uint16) * 257).astype(np.uint16)
    put("mode_I16.png", _encode(Image.fromarray(i16), "PNG"), True)
    f32 = np.asarray(small.convert("L"), np.float32) / 7.0
    put("mode_F.tif", _encode(Image.fromarray(f32, mode="F"), "TIFF"), True)
    put("format.bmp", _encode(small, "BMP"), True)
    put("format.webp", _encode(small, "WEBP"), True)
    put("format.gif", _encode(small.convert("P"), "GIF"), True)
    frames = [small, small.rotate(10), small.rotate(-10)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    put("animated.gif", gif.getvalue(), True)
    tif = io.BytesIO()
    frames[0].save(tif, format="TIFF", save_all=True, append_images=frames[1:])
    put("multipage.tif", tif.getvalue(), True)
    put("format.ppm", _encode(small, "PPM"), True)
    for o in range(1, 9):
        put(f"exif_orientation_{o}.jpg", _with_orientation(small, o), True)
    # wrong extensions: the content decides
    put("png_named.jpg", _encode(small, "PNG"), True)
    put("jpeg_named.png", face_bytes, True)
    # awkward sizes: tiny, thin, no face, many faces
    put("one_pixel.png", _encode(Image.new("RGB", (1, 1), (90, 90, 90)), "PNG"), True)
    put("two_by_two.png", _encode(Image.new("RGB", (2, 2), (10, 200, 10)), "PNG"), True)
    put("thin_1x400.png", _encode(Image.new("L", (1, 400), 128), "PNG"), True)
    put("no_face_gray.png", _encode(Image.new("RGB", (320, 240), (128, 128, 128)), "PNG"), True)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    put("no_face_noise.png", _encode(Image.fromarray(noise), "PNG"), True)
    grid = Image.new("RGB", (480, 600))
    for r in range(3):
        for c in range(3):
            grid.paste(small, (c * 160, r * 200))
    put("many_faces.jpg", _encode(grid, "JPEG", quality=90), True)
    # unicode and odd names
    put("visage_é.jpg", face_bytes, True)
    put("顔.jpg", face_bytes, True)
    put("smile 😀 (1).jpg", face_bytes, True)
    put("-starts-with-dash.jpg", face_bytes, True)
    # broken files
    put("empty.jpg", b"", False)
    put("empty.png", b"", False)
    for frac in (0.02, 0.3, 0.7):
        put(f"truncated_{int(frac * 100)}.jpg", face_bytes[: int(len(face_bytes) * frac)], False)
    png = _encode(small, "PNG")
    put("truncated.png", png[: len(png) // 2], False)
    put("random_bytes.jpg", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), False)
    put("text_named.png", b"this is not an image\n" * 50, False)
    put("html_named.jpg", b"<!DOCTYPE html><html><body>404</body></html>", False)
    put("jpeg_header_only.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", False)
    put("png_signature_only.png", b"\x89PNG\r\n\x1a\n", False)
    put("bomb_60000x60000.png", png_bomb(60000, 60000), False)
    put("bomb_100000x3000.png", png_bomb(100000, 3000), False)
    corrupt = bytearray(face_bytes)
    corrupt[600:4000] = rng.integers(0, 256, 3400, dtype=np.uint8).tobytes()
    put("corrupt_middle.jpg", bytes(corrupt), True)  # decodes (with damage): not refused
    # links: to a good file, broken, and a directory loop (must not recurse forever)
    os.symlink(root / "good_face.jpg", root / "link_to_good.jpg")
    cases["link_to_good.jpg"] = True
    os.symlink(root / "does_not_exist.jpg", root / "broken_link.jpg")
    cases["broken_link.jpg"] = False
    sub = root / "sub"
    sub.mkdir()
    (sub / "nested.jpg").write_bytes(face_bytes)
    cases["sub/nested.jpg"] = True
    os.symlink(root, sub / "loop")
    return cases


def bad_names(cases: dict[str, bool]) -> list[str]:
    return sorted(n for n, ok in cases.items() if not ok)
