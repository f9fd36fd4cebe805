"""Files in and out: the one way exprsim turns a file into pixels, and a table into a file.

Images: every format Pillow reads (JPEG, PNG, WebP, BMP, GIF, TIFF including 16-bit, AVIF
where Pillow has it), EXIF orientation applied (EXIF that cannot be parsed: the image as
stored, with a warning), and every mode converted to RGB uint8. Anything that cannot be
decoded raises :class:`exprsim.errors.ImageError` naming the file; an image over the pixel
limit raises :class:`exprsim.errors.ImageTooLargeError` naming the limit.

Tables: :func:`save_table` writes one row per face (or per anything) as CSV, Parquet,
JSON lines or JSON, chosen by the file's suffix; every command that writes a table uses it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import logging
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from exprsim.errors import (
    ArgumentError,
    ExprsimError,
    ImageError,
    ImageTooLargeError,
    printable,
)

log = logging.getLogger(__name__)

#: Largest image accepted, in pixels (about 14,000 x 14,000); larger files are refused
#: (:class:`~exprsim.errors.ImageTooLargeError`) instead of exhausting memory. A file is
#: also held to twice Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 179 M pixels by default),
#: where Pillow itself refuses it (:func:`_decode_limit`).
MAX_PIXELS = 200_000_000


def _pillow_reads_avif() -> bool:
    """Whether this Pillow decodes AVIF (Pillow 11.2+ built with libavif)."""
    try:
        from PIL import features

        return bool(features.check_module("avif"))
    except (ValueError, ImportError):  # an older Pillow: no such feature
        return False


#: Suffixes of HEIC / HEIF photos (most phones' own format), read with ``pillow-heif``
#: (``pip install 'exprsim[heif]'``); without it each fails in one line that says so.
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})

#: Suffixes of the image files found in folders (:func:`iter_image_files`, frame folders).
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".bmp", ".tif", ".tiff"}
    | {".gif", ".ppm", ".pgm", ".pnm", ".pbm"}
    | ({".avif"} if _pillow_reads_avif() else set())
    | HEIF_SUFFIXES
)

#: Camera RAW suffixes: not read (a RAW file needs developing); a folder walk says how many
#: it left out instead of skipping them without a word.
RAW_SUFFIXES = frozenset(
    {".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".dng", ".orf", ".rw2"}
    | {".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".raw"}
)

#: ISO base-media brands of HEIF stills (HEIC and other HEIF codings)
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
#: ... and of every still image in an ``ftyp`` file (AVIF too): other brands are videos
_STILL_BRANDS = (b"avif", b"avis", *_HEIF_BRANDS)


@functools.lru_cache(maxsize=1)
def _heif_opener() -> bool:
    """Register ``pillow-heif``'s HEIF opener with Pillow, once, when the first HEIF photo
    is read (never on import); ``False`` when it is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # Pillow's own plugins first (its AVIF reader among them, where built in): registered
    # before them, pillow-heif took every AVIF whose main brand is mif1 and failed on it
    # when it has no AV1 decoder, depending on which image the process had read first
    Image.init()
    pillow_heif.register_heif_opener()
    return True


def _ftyp_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base-media ``ftyp`` box at the start of
    ``head`` (empty when there is none)."""
    if head[4:8] != b"ftyp":
        return set()
    size = min(int.from_bytes(head[:4], "big"), len(head))
    return {head[8:12]} | {head[i : i + 4] for i in range(16, size - 3, 4)}


def _check_heif(fh: BinaryIO, name: str) -> None:
    """Before Pillow reads ``fh``: a HEIF photo gets its reader registered, or a clear
    :class:`ImageError` when there is none. An AVIF (an ``avif`` brand, even under a
    ``mif1`` main brand) is Pillow's own to read."""
    head = fh.read(64)
    fh.seek(0)
    if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
        return
    if {b"avif", b"avis"} & _ftyp_brands(head) and _pillow_reads_avif():
        return
    if not _heif_opener():
        raise ImageError(
            name, "a HEIC/HEIF photo: reading it needs pillow-heif (pip install 'exprsim[heif]')"
        )


#: The EXIF orientation tag.
_ORIENTATION_TAG = 0x0112

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | np.ndarray | Image.Image


def _writeable(arr: np.ndarray) -> np.ndarray:
    """``arr``, or a copy of it when it is read-only: ``np.asarray`` of a Pillow image
    shares Pillow's bytes and cannot be written to, so whether a caller could draw on an
    image depended on its mode, its size and whether pyarrow was imported yet."""
    return arr if arr.flags.writeable else arr.copy()


def _to_rgb8(img: Image.Image, name: str = "<image>") -> np.ndarray:
    """Convert any Pillow mode to a writeable ``(H, W, 3)`` uint8 RGB array."""
    return _writeable(_rgb8_of(img, name))


def _rgb8_of(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    see_through = "transparency" in img.info  # a tRNS colour (PNG, GIF): over white too
    if mode == "RGB" and not see_through:  # most photos: one copy out of Pillow, no conversion
        fast = _rgb_from_one_block(img)
        return fast if fast is not None else np.asarray(img)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) gray: scale the full range to 0..255, in integers (a float64
        # copy of an 8000 x 8000 image is 512 MB)
        arr = _white_is_zero(img, np.asarray(img))
        lo, top = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo < 0 or top > 65535:  # a 32-bit file: as an array of such values is read
            log.warning(
                "%s: %d-bit image with values from %d to %d: values outside 0..65535 clipped",
                name, 32 if mode == "I" else 16, lo, top,
            )  # fmt: skip
        # a 16-bit PGM / PPM (maxval over 255) opens as mode "I" with 0..65535 values: its
        # header says 16 bits, whatever the largest pixel
        if mode.startswith("I;16") or img.format == "PPM" or arr.max() > 255:
            scaled = (np.clip(arr, 0, 65535).astype(np.uint32) * 255 + 32767) // 65535
        else:
            scaled = np.clip(arr, 0, 255)
        gray = scaled.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        gray = _float_gray(np.asarray(img, dtype=np.float32), name)
        if _is_white_is_zero(img):  # a float TIFF whose 0 is white: read as a negative
            gray = (255 - gray).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and see_through):
        # premultiplied alpha (RGBa, La): un-premultiplied as it is converted (Pillow cannot
        # convert La to RGBA directly; RGBa's alpha was dropped)
        rgba = (img.convert("LA") if mode == "La" else img).convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema()[1] == 0:  # nothing visible
            if img.format == "BMP":  # Windows tools write 32-bit BMPs with alpha 0: opaque
                return np.ascontiguousarray(np.asarray(rgba.convert("RGB"), dtype=np.uint8))
            log.warning(
                "%s: alpha is 0 everywhere (fully transparent): laid over white it is blank",
                name,
            )
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


#: TIFF's PhotometricInterpretation tag, and its WhiteIsZero value
_PHOTOMETRIC, _WHITE_IS_ZERO = 262, 0


def _is_white_is_zero(img: Image.Image) -> bool:
    """Whether ``img`` is a TIFF whose 0 is white (PhotometricInterpretation 0)."""
    tags = getattr(img, "tag_v2", None)
    return img.format == "TIFF" and tags is not None and tags.get(_PHOTOMETRIC) == _WHITE_IS_ZERO


def _white_is_zero(img: Image.Image, arr: np.ndarray) -> np.ndarray:
    """A 16- or 32-bit gray TIFF whose 0 is white (PhotometricInterpretation 0) as black
    is 0: Pillow inverts such 8-bit files itself, not these (they were read as negatives
    and no face found)."""
    if not _is_white_is_zero(img):
        return arr
    bits = img.tag_v2.get(258, 16)  # type: ignore[attr-defined]
    bits = int(bits[0] if isinstance(bits, tuple) else bits)
    return (2 ** min(bits, 32) - 1) - arr.astype(np.int64)


#: Images of at least this many pixels take the Arrow path of :func:`_rgb_from_one_block`
#: even when pyarrow is not imported yet (importing it costs about 0.2 s once; the path
#: saves about 50 ms on a 12-megapixel photo)
ARROW_MIN_PIXELS = 2_000_000
#: JPEG-like formats decoded into one block of memory (:func:`_decode_into_one_block`)
_ONE_BLOCK_FORMATS = frozenset({"JPEG", "MPO"})


def _decode_into_one_block(img: Image.Image) -> None:
    """Before ``img.load()``: give an RGB JPEG one contiguous block of memory to decode
    into (Pillow splits images over 16 MB into blocks), so that its pixels can leave
    through Pillow's Arrow export without a copy (:func:`_rgb_from_one_block`). Nothing
    happens where this Pillow lacks the API."""
    if img.mode != "RGB" or img.format not in _ONE_BLOCK_FORMATS:
        return
    new_block = getattr(Image.core, "new_block", None)
    if new_block is None:  # Pillow < 11.2
        return
    try:
        img.im = new_block(img.mode, img.size)
    except (ValueError, MemoryError, TypeError, AttributeError):
        return  # Pillow allocates as usual in load()


def _rgb_from_one_block(img: Image.Image) -> np.ndarray | None:
    """A loaded RGB image's pixels as ``(H, W, 3)`` uint8, read through Pillow's Arrow
    export (RGBX, no copy) and dropped to three channels by OpenCV: the same pixels as
    ``np.asarray(img)``, whose ``tobytes`` copy takes 5-7x longer (about 60 ms against 9 ms
    for a 12-megapixel photo). ``None`` when that path is not open: an older Pillow, an
    image in several blocks, pyarrow not imported for a small image."""
    import sys

    w, h = img.size
    if "pyarrow" not in sys.modules and w * h < ARROW_MIN_PIXELS:
        return None
    if not hasattr(img, "__arrow_c_array__"):
        return None
    try:
        import pyarrow as pa

        buf = pa.array(img).buffers()[-1]  # rows not in one block: ValueError
    except (ImportError, ValueError, TypeError, MemoryError):
        return None
    if buf is None or buf.size < w * h * 4:
        return None
    import cv2

    pixels = np.frombuffer(buf, np.uint8, count=w * h * 4).reshape(h, w, 4)
    return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB)


def pil_to_rgb8(img: Image.Image, name: str = "<image>") -> np.ndarray:
    """A loaded Pillow image (any mode) as ``(H, W, 3)`` uint8 RGB, converted as
    :func:`load_image` converts it (transparency over white, 16-bit and float gray
    stretched); no EXIF orientation applied (:func:`apply_orientation`). ``name`` is the
    file's, for warnings."""
    return _to_rgb8(img, name)


def _float_gray(arr: np.ndarray, name: str) -> np.ndarray:
    """A float (mode ``"F"``) image as uint8 gray, its finite values stretched to 0..255.

    NaN and -inf pixels are read as the darkest finite value, +inf as the brightest (one
    such pixel made the whole image black); an image with no finite value is black.
    """
    finite = np.isfinite(arr)
    if not finite.all():
        if not finite.any():
            log.warning("%s: float image with no finite pixel value: read as black", name)
            return np.zeros(arr.shape, dtype=np.uint8)
        values = arr[finite]
        lo, hi = float(values.min()), float(values.max())
        log.warning(
            "%s: float image with %d NaN or infinite pixel(s): read as the darkest (NaN, "
            "-inf) or brightest (+inf) value",
            name,
            int(arr.size - values.size),
        )
        arr = np.where(finite, arr, np.where(np.isposinf(arr), np.float32(hi), np.float32(lo)))
    else:
        lo, hi = float(arr.min()), float(arr.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    with np.errstate(over="ignore"):  # a range beyond float32's: clipped to 255 below
        return np.clip((arr - lo) * scale, 0, 255).astype(np.uint8)


def _pixel_limit(max_pixels: int | None) -> int:
    if max_pixels is None:
        return MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int | np.integer):
        raise ArgumentError(f"max_pixels must be a whole number >= 1, got {max_pixels!r}")
    if max_pixels < 1:
        raise ArgumentError(f"max_pixels must be >= 1, got {max_pixels}")
    return min(int(max_pixels), MAX_PIXELS)


def _decode_limit(max_pixels: int | None) -> int:
    """The pixel limit of a file: :func:`_pixel_limit`, and at most twice Pillow's
    ``Image.MAX_IMAGE_PIXELS`` (about 179 M pixels by default), where Pillow refuses an
    image inside ``Image.open`` (its warning below that is ignored: the limit is checked
    from the header). Pillow's setting is read, never changed: importing exprsim leaves
    Pillow as it was."""
    limit = _pixel_limit(max_pixels)
    pillow = Image.MAX_IMAGE_PIXELS
    return min(limit, 2 * int(pillow)) if pillow is not None and pillow >= 1 else limit


def _too_large(size: str, limit: int) -> str:
    """The reason of an :class:`ImageTooLargeError`: the size and the limit, in pixels."""
    return f"image too large ({size} pixels; limit {limit})"


def exif_orientation(img: Image.Image, name: str = "<image>") -> int:
    """The EXIF orientation (1-8; 1: stored as shown) of an opened Pillow image, read as
    :func:`PIL.ImageOps.exif_transpose` reads it (EXIF, or XMP ``tiff:Orientation``).

    Never raises: EXIF that Pillow cannot parse (mistyped tags, bad rationals: camera
    firmware writes such EXIF), and a tag that is not 1-8, give 1 with a logged warning.
    """
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception as exc:  # hostile EXIF raises struct.error, TypeError, KeyError, ...
        log.warning("%s: EXIF unreadable (%s); the image is read as stored", name, exc)
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 8:
        return value
    log.warning("%s: EXIF orientation %r is not 1-8; the image is read as stored", name, value)
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """``image`` (``(H, W)`` or ``(H, W, C)``) as shown for an EXIF ``orientation``: the
    transposes of :func:`PIL.ImageOps.exif_transpose` (1 or any other value: unchanged;
    2 mirrored, 3 turned 180 degrees, 4 upside down, 5 transposed, 6 turned clockwise,
    7 transversed, 8 turned counter-clockwise)."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return image if turned is None else np.ascontiguousarray(turned(image))


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes to ``(H, W, 3)`` uint8 RGB (EXIF orientation applied).

    Args:
        max_pixels: refuse images with more pixels than this (at most :data:`MAX_PIXELS`,
            the default), judged from the header before any pixel is decoded.

    Raises:
        ImageTooLargeError: more pixels than the limit (the message names the limit).
        ImageError: empty, corrupt, truncated or non-image data.
    """
    if not data:
        raise ImageError(name, "empty file")
    return _decode(io.BytesIO(data), name, max_pixels)


def _ico_png_pixels(fh: BinaryIO) -> int:
    """The most pixels among the PNG images inside an ICO file, from their own headers
    (0 for any other file; ``fh`` left where it was). The directory's sizes are one byte
    each, and Pillow decodes an icon's image when it opens the file: a 6000x6000 PNG behind
    a 16x16 entry was decoded before the pixel limit saw it."""
    where = fh.tell()
    try:
        head = fh.read(6)
        if head[:4] != b"\x00\x00\x01\x00":  # an ICO directory (CUR files are 2)
            return 0
        count = int.from_bytes(head[4:6], "little")
        offsets = []
        for _ in range(min(count, 256)):
            entry = fh.read(16)
            if len(entry) < 16:
                break
            offsets.append(int.from_bytes(entry[12:16], "little"))
        most = 0
        for offset in offsets:
            fh.seek(offset)
            png = fh.read(24)
            if png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":
                w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
                most = max(most, w * h)
        return most
    finally:
        fh.seek(where)


_quiet_lock = threading.Lock()
#: the filters :func:`pillow_quiet` adds (the same objects every time, told from the host's
#: by identity), and the threads inside it with the ones this use inserted
_QUIET_FILTERS = (
    ("ignore", re.compile("Image was not the expected size", re.I), Warning, None, 0),
    ("ignore", None, Image.DecompressionBombWarning, None, 0),
)
_quiet: dict[str, Any] = {"users": 0, "mine": []}


@contextlib.contextmanager
def pillow_quiet() -> Iterator[None]:
    """Pillow's warnings that exprsim's own checks make redundant ignored while the block
    runs: its decompression-bomb warning (the pixel limit is checked from the header) and
    an icon's "Image was not the expected size" (read at its own size, checked against the
    limit first, :func:`_ico_png_pixels`).

    Thread-safe where ``warnings.catch_warnings`` is not: that restores the filter list it
    saw on entry, so overlapping blocks on decoding threads left their filters set for the
    life of the process, and removed a filter the host added meanwhile. Here the first
    thread in inserts the filters the host does not have already (an equal one of the
    host's is left alone, and stays), and the last one out removes those, by identity.
    """
    with _quiet_lock:
        if not _quiet["users"]:
            mine = []
            for ours in _QUIET_FILTERS:
                if any(f is ours for f in warnings.filters):  # left by a host's block
                    mine.append(ours)
                elif ours not in warnings.filters:  # an equal one of the host's: its own
                    warnings.filters.insert(0, ours)  # type: ignore[attr-defined]
                    mine.append(ours)
            _quiet["mine"] = mine
            _filters_changed()
        _quiet["users"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet["users"] -= 1
            if not _quiet["users"]:
                for ours in _quiet["mine"]:
                    _remove_identical(ours)
                _filters_changed()


def _remove_identical(item: object) -> None:
    """Remove ``item`` itself (not an equal filter of the host's) from ``warnings.filters``."""
    filters = warnings.filters
    for i, f in enumerate(filters):
        if f is item:
            with contextlib.suppress(IndexError):
                if filters[i] is item:  # not moved by an insert meanwhile
                    del filters[i]  # type: ignore[attr-defined]
            return


def _filters_changed() -> None:
    """Tell the warnings module its filters changed (its per-module caches)."""
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


def _decode(fh: BinaryIO, name: str, max_pixels: int | None) -> np.ndarray:
    """:func:`decode_image` of an open binary file (bytes in memory, or a file on disk:
    Pillow reads only what it needs)."""
    limit = _decode_limit(max_pixels)
    _check_heif(fh, name)
    hidden = _ico_png_pixels(fh)
    if hidden > limit:  # an icon's PNG larger than its directory says, decoded by open
        raise ImageTooLargeError(name, _too_large(str(hidden), limit))
    size = ""  # the image's size, once its header is read
    try:
        with pillow_quiet():
            with _codec_errors(name):
                img = Image.open(fh)
            with img:
                w, h = img.size
                size = f" ({w}x{h})"
                if w <= 0 or h <= 0:
                    raise ImageError(name, f"zero-size image ({w}x{h})")
                if w * h > limit:
                    raise ImageTooLargeError(name, _too_large(f"{w}x{h}", limit))
                _decode_into_one_block(img)
                with _codec_errors(name):
                    img.load()
                return apply_orientation(_to_rgb8(img, name), exif_orientation(img, name))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # over twice Pillow's threshold: refused inside Image.open, the size only in its text
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = found.group(1) if found else f"over {limit}"
        raise ImageTooLargeError(name, _too_large(size, limit)) from exc
    except UnidentifiedImageError as exc:
        fh.seek(0)
        head = fh.read(64)
        if _looks_like_video(head[:12]):
            raise ImageError(name, "a video, not an image (exprsim video reads videos)") from exc
        kind = _image_signature(head)
        if kind:  # a half-copied AVIF was "not an image"
            raise ImageError(
                name, f"corrupt or truncated image ({kind} file cut short or damaged)"
            ) from exc
        raise ImageError(name, "not an image or unsupported format") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        raise ImageError(name, f"corrupt or truncated image ({exc})") from exc
    except Exception as exc:  # MemoryError, or OpenCV's allocation failure
        if not out_of_memory(exc):
            raise
        raise ImageError(name, f"not enough memory to decode it{size}") from exc


@contextlib.contextmanager
def _codec_errors(name: str) -> Iterator[None]:
    """A codec's own failure while an image is opened or decoded as one
    :class:`ImageError` for that file: libavif's "Decoding of color planes failed",
    pillow-heif's missing decoder (``RuntimeError``), Pillow's ``BLPFormatError`` for an
    unknown compression (a ``NotImplementedError``). Only there: the same errors from
    exprsim's own code after decoding are bugs, and are not hidden."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as exc:
        raise ImageError(name, f"corrupt or undecodable image ({exc})") from exc


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``MemoryError``, or OpenCV's
    ``cv2.error`` "Insufficient memory" (a process under ``ulimit -v``, a large image)."""
    if isinstance(exc, MemoryError):
        return True
    return type(exc).__module__.startswith("cv2") and "Insufficient memory" in str(exc)


def sniff(head: bytes) -> str | None:
    """``"image"``, ``"video"`` or ``None`` from the first bytes of a file (magic numbers):
    what the web app accepts as an upload of each kind."""
    if _magic_format(head) or head.startswith(b"BM"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[4:8] == b"ftyp":  # mp4 / mov / m4v, or a still AVIF / HEIF image
        return "image" if head[8:12] in _STILL_BRANDS else "video"
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return "image"  # PBM / PGM / PPM
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # matroska / webm
        return "video"
    return None


#: the first bytes of image files, by format
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _magic_format(head: bytes) -> str:
    """The image format (PNG, JPEG, GIF, TIFF, WebP) whose magic number ``head`` starts
    with, ``""`` for none of them (:func:`sniff` and :func:`_image_signature` read it)."""
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    return "WebP" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else ""


def _image_signature(head: bytes) -> str:
    """The image format whose signature ``head`` starts with (``""``: none known): a
    :func:`_magic_format`, or an AVIF / HEIF by its ``ftyp`` brands."""
    if kind := _magic_format(head):
        return kind
    brands = _ftyp_brands(head)
    if {b"avif", b"avis"} & brands:
        return "AVIF"
    return "HEIF" if brands & set(_HEIF_BRANDS) else ""


def _looks_like_video(head: bytes) -> bool:
    """Whether a file's first bytes are a video container's (:func:`sniff`, or an MPEG
    program or elementary stream): an image command given one says so."""
    return sniff(head) == "video" or head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"))


def pixels_within(source: np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """An image array as ``(H, W, 3)`` uint8 RGB (:func:`as_rgb8`; the array itself when it
    is one already: for readers that only read it), after the pixel limit.

    Raises:
        ImageTooLargeError: more pixels than the limit.
        ImageError: not an image array.
    """
    limit = _pixel_limit(max_pixels)
    if source.ndim >= 2 and source.shape[0] * source.shape[1] > limit:
        h, w = source.shape[:2]
        raise ImageTooLargeError("<array>", _too_large(f"{w}x{h}", limit))
    return as_rgb8(source)


def load_image(source: ImageSource, max_pixels: int | None = None) -> np.ndarray:
    """Load an image as ``(H, W, 3)`` uint8 RGB.

    Args:
        source: a path, a ``data:`` URI, encoded bytes (or a ``memoryview`` of them), a
            PIL image (its EXIF orientation applied), or an array (``(H, W)`` gray,
            ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA) of any real dtype, returned as RGB
            uint8 (:func:`as_rgb8`).
        max_pixels: refuse larger images (at most :data:`MAX_PIXELS`, the default); a file
            is judged by its header, before its pixels are decoded.

    Raises:
        ImageTooLargeError: more pixels than the limit (the message names the limit).
        ImageError: the file is missing, empty, zero-size, corrupt, truncated or not an
            image; ``source`` is none of the accepted types.
    """
    if isinstance(source, np.ndarray):
        image = pixels_within(source, max_pixels)
        # the caller's to edit, as a decoded file's: a uint8 RGB array came back as itself
        # (drawing on the result drew on the input; a read-only frame came back read-only)
        return image.copy() if np.may_share_memory(image, source) else image
    if isinstance(source, bytes | bytearray | memoryview):
        return decode_image(bytes(source), max_pixels=max_pixels)
    if isinstance(source, Image.Image):
        return _pil_source(source, max_pixels)
    if not isinstance(source, str | os.PathLike):
        # e.g. a nested list or a torch tensor: say what is accepted instead of a TypeError
        raise ImageError(
            f"<{type(source).__name__}>",
            "not an image source: give a path, encoded bytes, a PIL image or a NumPy array"
            + (" (tensor.numpy())" if hasattr(source, "numpy") else ""),
        )
    if isinstance(source, str) and source[:5].lower() == "data:":
        return decode_image(data_uri_bytes(source), "<data URI>", max_pixels)
    if isinstance(source, str) and len(source) > 1024 and _BASE64.fullmatch(source[:1024]):
        # a base64 string (DeepFace's habit) read as a file name: an 80 KB message
        raise ImageError(
            f"<{len(source):,} characters>",
            "looks like base64 text, not a path: pass base64.b64decode(text) (the bytes) "
            "or a data: URI ('data:image/jpeg;base64,...')",
        )
    # a bytes path-like (an os.scandir(b"...") entry: names that do not decode) as a path
    return _load_file(Path(os.fsdecode(source)), max_pixels)


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")


def data_uri_bytes(uri: str) -> bytes:
    """The bytes of a ``data:`` URI (``data:image/jpeg;base64,...``, or percent-encoded
    without ``;base64``).

    Raises:
        ImageError: not a well-formed data URI.
    """
    import base64
    import binascii
    from urllib.parse import unquote_to_bytes

    head, comma, body = uri.partition(",")
    if not comma:
        raise ImageError("<data URI>", "malformed data: URI (no comma before the data)")
    if head.lower().endswith(";base64"):
        try:
            return base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError("<data URI>", f"its base64 data cannot be decoded ({exc})") from exc
    return unquote_to_bytes(body)


def _pil_source(img: Image.Image, max_pixels: int | None) -> np.ndarray:
    """A PIL image given as an input: its EXIF orientation applied (as for the file it
    came from; ``np.asarray`` of it kept a phone photo's sideways pixels), then converted
    as a file's pixels are."""
    from PIL import ImageOps

    limit = _pixel_limit(max_pixels)
    if img.width * img.height > limit:
        raise ImageTooLargeError("<PIL image>", _too_large(f"{img.width}x{img.height}", limit))
    if img.width < 1 or img.height < 1:  # read as a (H, 0, 3) array, refused too late
        raise ImageError("<PIL image>", f"zero-size image ({img.width}x{img.height})")
    try:
        upright = ImageOps.exif_transpose(img)
        return pil_to_rgb8(upright if upright is not None else img, "<PIL image>")
    except (OSError, ValueError, SyntaxError) as exc:  # a lazily loaded, truncated file
        raise ImageError("<PIL image>", f"cannot read its pixels ({exc})") from exc


#: Largest image file read, in bytes, for the default pixel limit (:func:`file_byte_limit`):
#: an uncompressed 16-bit RGBA image of :data:`MAX_PIXELS` pixels fits.
BYTES_PER_PIXEL_CAP = 8
#: Room for metadata (EXIF thumbnails, ICC profiles, XMP) above the pixels' bytes.
FILE_BYTES_SLACK = 64 << 20

#: ``errno`` values of a name that leads to no file (``os.stat``)
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF})


def stat_or_none(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``os.stat(path)``, or ``None`` when it fails (no such file, a NUL in the name, ...:
    the caller that reads the file says why)."""
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def stat_problem(exc: OSError) -> str:
    """What went wrong when ``os.stat`` of an input file raised ``exc``, for messages."""
    if exc.errno == errno.ELOOP:
        return "a loop of symbolic links (no file at its end)"
    if exc.errno in _MISSING:
        return "no such file"
    return f"cannot read ({exc.strerror or exc})"


def file_byte_limit(max_pixels: int | None = None) -> int:
    """The largest image file :func:`load_image` reads, in bytes: the file's pixel limit
    (:func:`_decode_limit`) at :data:`BYTES_PER_PIXEL_CAP` bytes per pixel (an uncompressed
    16-bit RGBA image), plus :data:`FILE_BYTES_SLACK` for metadata. A larger file is
    refused unread (:class:`ImageTooLargeError`): a video renamed ``.jpg``, a disk image."""
    return _decode_limit(max_pixels) * BYTES_PER_PIXEL_CAP + FILE_BYTES_SLACK


def _load_file(path: Path, max_pixels: int | None) -> np.ndarray:
    """:func:`load_image` of a file: checked by ``os.stat`` before a byte is read.

    Regular files are decoded from the open file (Pillow reads what it needs: a junk
    file is refused from its first bytes), pipes (``<(cat x.jpg)``, ``/dev/stdin``) are
    read to their end, at most :func:`file_byte_limit` bytes; a folder, a device or a
    socket is refused (``/dev/zero`` never ends).
    """
    try:
        st = os.stat(path)
    except OSError as exc:  # a name too long for the file system, a link loop, ...
        url = as_url(path)
        if url is not None:
            raise ImageError(url, URL_PROBLEM) from exc
        raise ImageError(path, stat_problem(exc)) from exc
    except ValueError as exc:  # a NUL byte in the name
        raise ImageError(path, "no such file") from exc
    cap = file_byte_limit(max_pixels)
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(path, folder_problem(path))
    if stat.S_ISFIFO(st.st_mode):
        return decode_image(_read_pipe(path, cap), str(path), max_pixels=max_pixels)
    _refuse_irregular(path, st, cap)
    if st.st_size == 0:
        raise ImageError(path, "empty file")
    fh = open_regular(path, st)
    with fh:
        return _decode(fh, str(path), max_pixels)


def _refuse_irregular(path: str | Path, st: os.stat_result, cap: int) -> None:
    """Refuse, from its ``os.stat``, what is not a regular file (a folder, a pipe, a
    device) or is larger than ``cap`` bytes, before a byte is read."""
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(path, f"not a regular file ({_file_kind(st.st_mode)}), not an image")
    if st.st_size > cap:
        raise ImageTooLargeError(path, f"file too large ({st.st_size:,} bytes; limit {cap:,})")


def read_whole(path: str | Path, st: os.stat_result | None = None) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file, and its ``fstat`` (of the file read: stamps stored
    with them describe these bytes, not another file renamed over it meanwhile); at most
    :func:`file_byte_limit` bytes. ``st``: its ``os.stat`` when the caller took one.

    Raises:
        ImageError: no such file, not a regular file (a folder, a pipe, a device), too
            large, another file or a pipe at the name since ``st``
            (:func:`open_regular`), unreadable, or written while being read.
    """
    if st is None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ImageError(path, stat_problem(exc)) from exc
        except ValueError as exc:  # a NUL byte in the name
            raise ImageError(path, "no such file") from exc
    cap = file_byte_limit()
    _refuse_irregular(path, st, cap)
    with open_regular(path, st) as fh:
        try:
            before = os.fstat(fh.fileno())
            data = fh.read(min(before.st_size, cap) + 1)  # a byte more: it grew
            after = os.fstat(fh.fileno())
        except OSError as exc:
            raise ImageError(path, f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > cap:
        raise ImageTooLargeError(path, f"file too large (more than {cap:,} bytes; limit)")
    stamps = (before.st_size, before.st_mtime_ns)
    if stamps != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise ImageError(path, "written to while it was being read (read it again)")
    return data, after


#: how a file checked by ``os.stat`` is opened: never waiting (a named pipe put in its
#: place since would block ``open`` until a writer came), never as a terminal, in binary
#: (Windows: no ``O_NONBLOCK``, and ``O_BINARY`` or line ends are translated)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS = (
    os.O_RDONLY
    | _NONBLOCK
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
#: seconds ``open`` is tried again while another program holds a lease on the file (a
#: Samba oplock, an NFS delegation): an open that does not wait fails at once where a
#: plain one waits for the lease's break, which the failed open has started
LEASE_WAIT_S = 10.0


def open_regular(path: str | Path, st: os.stat_result) -> io.BufferedReader:
    """The regular file at ``path`` that ``os.stat`` gave ``st`` for, opened for reading,
    or an :class:`ImageError` when the name now holds something else: a file renamed over
    it (read the new one next time), or a named pipe or device put there since (a plain
    ``open`` of a pipe waits for a writer for ever, and a command stuck there could not be
    stopped by SIGTERM). A file rewritten in place keeps its inode: its new bytes are read.

    Raises:
        ImageError: it cannot be opened, or it is not the file ``st`` describes.
    """
    fd = _open_leased(path)
    owned = True
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise ImageError(path, "replaced while it was being opened (read it again)")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        owned = False  # the file object closes it, also when it fails to be made
        return open(fd, "rb", closefd=True)  # the caller closes it
    except BaseException:
        if owned:
            os.close(fd)
        raise


def _open_leased(path: str | Path) -> int:
    """``os.open(path, _OPEN_FLAGS)``, tried again for :data:`LEASE_WAIT_S` while another
    program's lease on the file is being broken (``EAGAIN``)."""
    deadline = time.monotonic() + LEASE_WAIT_S
    while True:
        try:
            return os.open(path, _OPEN_FLAGS)
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                raise ImageError(path, f"cannot read ({exc.strerror or exc})") from exc
            time.sleep(0.05)
        except OSError as exc:
            raise ImageError(path, f"cannot read ({exc.strerror or exc})") from exc


#: why a URL given as an image is refused
URL_PROBLEM = "a URL: exprsim reads local files only (download it first)"

_URL = re.compile(r"^(https?|ftp|s3|gs):/+(?=[^/])", re.IGNORECASE)


def as_url(path: str | Path) -> str | None:
    """The URL a path names (``Path`` folds ``https://`` to ``https:/``: given back
    unfolded), or ``None`` for a path that is not one."""
    m = _URL.match(str(path))
    return None if m is None else f"{m.group(1)}://{str(path)[m.end() :]}"


def folder_problem(path: str | Path) -> str:
    """Why a folder given as an image cannot be read: it cannot be listed (its images
    could not be searched: :func:`iter_image_files` yields it), or it is one."""
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return f"folder cannot be listed ({exc.strerror or exc}); its images were not read"
    return "is a directory, not an image"


def special_file(path: str | Path) -> str | None:
    """What ``path`` is in words when it exists and is neither a regular file nor a folder
    (``"a named pipe"``, ``"a socket"``, ``"a character device"``...), else ``None``: a
    database, a config or a list given as one is refused by what it is, not as missing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a named pipe" if stat.S_ISFIFO(mode) else _file_kind(mode)


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words."""
    for test, kind in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return kind
    return "a special file"


#: seconds a named pipe is given for a writer to open it (:func:`load_image`)
PIPE_WAIT_S = 10.0


def _first_pipe_bytes(fd: int) -> bytes | None:
    """The first bytes of a pipe opened without blocking; ``None`` when a writer is there
    with nothing written yet; ``b""`` when no writer opened it within :data:`PIPE_WAIT_S`
    (or it was empty)."""

    deadline = time.monotonic() + PIPE_WAIT_S
    while True:
        try:
            first = os.read(fd, 1 << 20)
        except BlockingIOError:  # a writer is there, with nothing written yet: wait for it
            return None
        if first or time.monotonic() > deadline:
            return first
        time.sleep(0.02)  # no writer yet (end of file at once): look again


def _read_pipe(path: Path, cap: int) -> bytes:
    """The bytes of a pipe (``<(cat x.jpg)``, ``/dev/stdin``), at most ``cap``.

    Opened without waiting: a named pipe that no writer opens within :data:`PIPE_WAIT_S`
    seconds is refused instead of hanging for ever (``mkfifo p; exprsim faces p &
    producer > p`` works; a writer already there is waited for as usual).

    Raises:
        ImageError: nothing writes to it, or it cannot be read.
        ImageTooLargeError: more than ``cap`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ImageError(path, f"cannot read ({exc.strerror or exc})") from exc
    chunks: list[bytes] = []
    size = 0
    try:
        first = _first_pipe_bytes(fd)
        if first == b"":
            raise ImageError(
                path, f"a pipe that nothing wrote to within {PIPE_WAIT_S:g} s (or that was empty)"
            )
        os.set_blocking(fd, True)
        chunk = first if first is not None else os.read(fd, 1 << 20)
        while chunk:
            size += len(chunk)
            if size > cap:
                raise ImageTooLargeError(path, f"more than {cap:,} bytes in a pipe (limit)")
            chunks.append(chunk)
            chunk = os.read(fd, 1 << 20)
    except OSError as exc:
        raise ImageError(path, f"cannot read ({exc.strerror or exc})") from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


def looks_like_one_colour_crop(arr: np.ndarray) -> bool:
    """Whether a 3-D array meant as a batch of gray crops ``(N, H, W)`` is more likely one
    ``(H, W, 3)`` / ``(H, W, 4)`` colour crop (read as a batch, it would be ``H`` crops
    of ``W`` x 3 pixels)."""
    return arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.shape[1] > 4


def as_rgb8(array: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Coerce an in-memory image array to ``(H, W, 3)`` uint8 RGB.

    Pixel values: uint8 as they are; bool as black and white; uint16 as 16-bit; floats as
    0..1; other integers as 0..255, or as 16-bit (0..65535, like Pillow's mode ``"I"``)
    when a value exceeds 255. Values outside the range read are clipped with a warning.
    ``(H, W, 4)`` is RGBA: transparent pixels are laid over white, as in an RGBA file.

    Raises:
        ImageError: another shape, pixels that are not real numbers (text, complex), or
            NaN / infinite floats.
    """
    if isinstance(array, str | os.PathLike | bytes | bytearray | memoryview | Image.Image):
        # Detector.detect(path) said "expected (H, W) ... array, got ()"
        raise ImageError(
            name,
            f"pixels expected, got {type(array).__name__}: read it with "
            "exprsim.load_image(...) first",
        )
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(name, f"expected (H, W), (H, W, 3) or (H, W, 4) array, got {arr.shape}")
    if arr.dtype != np.uint8:
        arr = _pixels_to_uint8(arr, name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = _over_white(arr)
    return np.ascontiguousarray(arr)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA as RGB over a white background, as an RGBA file is read
    (:func:`_to_rgb8`); an opaque image just loses its alpha channel."""
    alpha = rgba[:, :, 3]
    if int(alpha.min()) == 255:
        return rgba[:, :, :3]
    if int(alpha.max()) == 0:
        log.warning(
            "an RGBA array with alpha 0 everywhere is fully transparent: laid over white it "
            "is blank; if its fourth channel is not alpha (RGBX), pass array[..., :3]"
        )
    background = Image.new("RGBA", (rgba.shape[1], rgba.shape[0]), (255, 255, 255, 255))
    over = Image.alpha_composite(background, Image.fromarray(np.ascontiguousarray(rgba), "RGBA"))
    return _writeable(np.asarray(over.convert("RGB")))


def _pixels_to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """Pixels of any numeric dtype as uint8 (see :func:`as_rgb8`); values outside the
    range read are clipped with a warning, never silently."""
    if not arr.dtype.isnative:  # big-endian uint16 (FITS, np.frombuffer(..., ">u2")) is 16-bit
        arr = arr.astype(arr.dtype.newbyteorder("="))
    kind = arr.dtype.kind
    if kind == "b":  # a mask: black and white
        return arr.astype(np.uint8) * 255
    if kind not in "iuf":
        raise ImageError(name, f"pixels of type {arr.dtype} are not real numbers")
    if kind == "f":
        if not np.isfinite(arr).all():
            raise ImageError(name, "float image with NaN or infinite values")
        lo, top = float(arr.min()), float(arr.max())
        if top > 1.0 + 1.0 / 255 or lo < -1.0 / 255:
            # 0..255 values in a float array (all but black turns white), or -1..1 ones
            log.warning(
                "%s: float image with values from %.4g to %.4g read as 0..1 and clipped; "
                "pass uint8, or divide by 255 (0..255 values) or map to 0..1",
                name,
                lo,
                top,
            )
        # clip first: values far outside [0, 1] must not overflow when scaled
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    lo, top = int(arr.min()), int(arr.max())
    if lo >= 0 and top <= 255 and arr.dtype != np.uint16:
        return arr.astype(np.uint8)
    if lo < 0 or top > 65535:
        log.warning(
            "%s: %s image with values from %d to %d: values outside 0..%d clipped",
            name,
            arr.dtype,
            lo,
            top,
            255 if top <= 255 else 65535,
        )
    if top <= 255 and arr.dtype != np.uint16:
        return np.clip(arr, 0, 255).astype(np.uint8)
    if arr.dtype == np.uint16 and top <= 255 and arr.size:
        # 0..255 values in a uint16 array read as 16-bit: nearly black, no face found
        log.warning(
            "%s: uint16 image whose values all lie in 0..255, read as 16-bit (nearly black); "
            "pass arr.astype(np.uint8) if these are 8-bit values",
            name,
        )
    # 16-bit pixels, or 16-bit pixels in a wider integer type (Pillow's mode "I"): as a
    # 16-bit file is read (:func:`_to_rgb8`), rounded to the nearest level
    wide = np.clip(arr, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def as_inputs(sources: Any) -> list[Any]:
    """The inputs of a many-image call as a list, a single input wrapped.

    One path (``str`` or path-like), encoded ``bytes`` or one image array (``(H, W)`` or
    ``(H, W, C)``) is one input: iterating it would give characters, bytes or pixel rows.
    A 4-d array is a stack of images; any other iterable (list, tuple, generator) is
    listed as is. A file object, a ``memoryview``, a PIL image or anything not iterable
    is one input too (which the reader refuses in one clear line, instead of a failure
    per line, byte or pixel row).
    """
    if isinstance(sources, str | os.PathLike | bytes | bytearray | memoryview | Image.Image):
        return [sources]
    if isinstance(sources, np.ndarray):
        return [sources] if sources.ndim in (2, 3) else list(sources)
    if hasattr(sources, "read") or not hasattr(sources, "__iter__"):
        return [sources]
    if hasattr(sources, "numpy") and hasattr(sources, "shape"):
        return [sources]  # a tensor: refused whole with a hint, not row by row
    return list(sources)


def input_stream(sources: Any) -> tuple[Iterable[Any], int | None]:
    """The inputs of a many-image call as :func:`as_inputs` reads them, without listing a
    generator: ``(inputs, how many)``, the count ``None`` for an iterator (it is read as
    it goes, so that a generator of video frames is not held in memory whole)."""
    # a file object is an iterator too (of lines): one input, refused whole by the reader
    lazy = isinstance(sources, Iterator) and not hasattr(sources, "shape")
    if lazy and not hasattr(sources, "read"):
        return sources, None
    items = as_inputs(sources)
    return items, len(items)


def folders_walked(items: Iterable[Any]) -> Iterator[Any]:
    """``items`` (inputs of a many-image call) with each folder (a path naming one)
    replaced by its image files (:func:`iter_image_files`): "is a directory" was its one
    result in the API calls that did not walk folders."""
    for item in items:
        if isinstance(item, str | os.PathLike) and os.path.isdir(item):
            yield from (str(p) for p in iter_image_files([Path(item)]))
        else:
            yield item


def iter_image_files(paths: Iterable[str | Path] | str | Path) -> Iterator[Path]:
    """Yield image files from files and directories (recursed, sorted, by suffix).

    Explicitly named files are yielded whatever their suffix (so bad files get a clear
    error later); files inside directories are filtered by :data:`IMAGE_SUFFIXES`. Broken
    links with an image suffix are yielded too (they fail later with "no such file" instead
    of vanishing); linked folders are not entered (no loops). A folder that cannot be
    listed (permissions, a stale network mount) is yielded itself, in its place: it fails
    later as an input, with its reason (:func:`load_image`), instead of its images
    vanishing without a word; linked folders left out are counted in one warning. Hidden
    files and folders (names starting with ``.``: macOS's ``._`` twins, thumbnail caches,
    a killed writer's temporaries) are not walked into; a hidden file named explicitly is
    read. A single path is one input. A path starting
    with ``~`` (from a list of files, or quoted) is the home folder's, as the shell's,
    unless a file of that very name exists.
    """
    for p in as_inputs(paths):
        if not isinstance(p, str | os.PathLike | bytes):
            # an array among files: a raw "expected str, bytes or os.PathLike" TypeError
            raise ArgumentError(
                f"{type(p).__name__} given where a file or folder path is expected: "
                "in-memory images go to Embedder.embed_images (or as (name, bytes) pairs "
                "where a call takes them)"
            )
        path = as_given(p)
        if _is_dir(path):
            raw: list[Path] = []
            links: list[Path] = []
            yield from sorted(_walk_images(path, raw, links))
            if raw:
                log.warning(
                    "%s: %d camera RAW files left out (%s, ...): exprsim does not read RAW; "
                    "export them as JPEG first",
                    printable(str(path)), len(raw), printable(min(raw).name),
                )  # fmt: skip
            if links:
                log.warning(
                    "%s: %d linked folders not entered (%s, ...): name them to read their "
                    "images",
                    printable(str(path)), len(links), printable(str(min(links))),
                )  # fmt: skip
        else:
            yield path


def _walk_images(
    top: Path, raw: list[Path] | None = None, links: list[Path] | None = None
) -> list[Path]:
    """The image files under the folder ``top`` (any order), and the folders under it
    (``top`` included) that cannot be listed (:func:`iter_image_files`); camera RAW files
    are appended to ``raw``, links to folders (not entered) to ``links``."""
    found: list[Path] = []
    folders = [top]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            found.append(folder)  # named as a failed input, not dropped
            continue
        for entry in entries:
            child = folder / entry.name
            if is_hidden(entry.name):
                continue
            if _entry_is(entry.is_dir, follow_symlinks=False):
                folders.append(child)
            elif links is not None and _entry_is(entry.is_dir):  # a link to a folder
                links.append(child)  # not entered: no loops, no folder walked twice
            elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and image_entry(entry):
                found.append(child)
            elif raw is not None and Path(entry.name).suffix.lower() in RAW_SUFFIXES:
                raw.append(child)
    return found


def is_hidden(name: str) -> bool:
    """Whether a folder's entry ``name`` is hidden, and so not walked into: macOS's ``._``
    twins, thumbnail caches, a killed writer's temporaries (:func:`temp_beside`)."""
    return name.startswith(".")


def image_entry(entry: os.DirEntry[str]) -> bool:
    """A file to read: a file (or a link to one), a broken link (fails later with "no
    such file"), or an entry that cannot be examined (fails later with its reason); not a
    FIFO, socket, device or link to a folder."""
    if _entry_is(entry.is_file):
        return True
    try:
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:
        return True


def _entry_is(test: Callable[..., bool], **kwargs: Any) -> bool:
    """``entry.is_file()`` / ``is_dir()``: false when it cannot be told."""
    try:
        return test(**kwargs)
    except OSError:
        return False


def file_key(path: str | Path, expand_user: bool = True) -> Path:
    """The one name of a file: ``~`` expanded (unless ``expand_user`` is false), links and
    ``..`` resolved; a link loop gives the path made absolute, as written."""
    p = Path(path)
    if expand_user:
        # "~nosuchuser/x.jpg": kept as written (then no such file)
        with contextlib.suppress(RuntimeError):
            p = p.expanduser()
    try:
        return p.resolve()
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the name
        return p.absolute()


def unique_inputs(items: Iterable[Any]) -> Iterator[Any]:
    """``items`` (inputs of a many-image call) without repeats of one file, named twice
    (relative and absolute, through a link, in a folder given too: :func:`file_key`), in
    first-seen order; an input that is not a path (an array, bytes) is kept as given."""
    seen: set[Path] = set()
    for item in items:
        if isinstance(item, str | os.PathLike):
            key = file_key(os.fspath(item))
            if key in seen:
                continue
            seen.add(key)
        yield item


def unique_files(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` without repeats of one file (named twice, relative and absolute, or
    through a link: told apart by :func:`file_key`), in first-seen order."""
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = file_key(p)
        if key not in seen:
            seen.add(key)
            out.append(Path(p))
    return out


def _is_dir(path: Path) -> bool:
    """``path.is_dir()``, false for a name the file system refuses (too long, say): the
    file then fails alone, with its reason, when it is read."""
    try:
        return path.is_dir()
    except OSError:
        return False


def json_ready(value: Any) -> Any:
    """``value`` ready for strict JSON: NumPy scalars and arrays as Python numbers and lists,
    NaN and infinities as ``None`` (``json.dumps`` would write ``NaN`` / ``Infinity``, which
    JSON readers refuse), dict keys as text, anything else JSON cannot hold as its text."""
    import math

    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


# ----------------------------------------------------------------------------- tables

#: Table formats :func:`save_table` writes, by file suffix.
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".jsonl", ".json")


def check_table_path(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path` if its suffix names a table format.

    Lets a command refuse a bad output name before doing the work.

    Raises:
        ExprsimError: the suffix is not one of :data:`TABLE_SUFFIXES`, or the name leaves
            no room for the ``.partial`` name of a run cut short.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ExprsimError(f"{path}: a table must end in {', '.join(TABLE_SUFFIXES)}")
    size = len(os.fsencode(path.name))
    if size > NAME_MAX - PARTIAL_ROOM:
        raise ExprsimError(
            f"{printable(str(path))}: file name too long ({size} bytes; a table's name may "
            f"have {NAME_MAX - PARTIAL_ROOM})"
        )
    return path


#: bytes a table's name leaves for its partial names (``.partial-12``)
PARTIAL_ROOM = 16


def save_table(table: Any, path: str | Path) -> Path:
    """Write a table, in the format its suffix names; parent folders are created.

    Args:
        table: a ``pandas.DataFrame``, or a sequence of row dicts (columns in first-seen
            order).
        path: ``.csv`` (header, no index), ``.parquet``, ``.jsonl`` (one JSON object per
            line) or ``.json`` (one JSON array of row objects). NaN is written as an empty
            CSV field and as ``null`` in JSON.

    Returns:
        The path written.

    Raises:
        ExprsimError: unknown suffix (nothing is written).
    """
    import pandas as pd

    path = check_table_path(path)
    frame = table if isinstance(table, pd.DataFrame) else _frame(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    # whole or not at all: a write that fails midway (a full disk, Ctrl-C) keeps the file
    # that was there (it was truncated first); a killed run's temporary is swept first
    sweep_temporaries(path.parent, temp_pattern(path, path.suffix))
    return replace_atomically(path, lambda tmp: _write_table(frame, tmp), suffix=path.suffix)


def _write_table(frame: Any, path: Path) -> None:
    """Write the DataFrame ``frame`` at ``path`` in the format its suffix names (in place:
    :func:`save_table` gives it a temporary file)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        (_typed_empty(frame) if frame.empty else _typed_nulls(frame)).to_parquet(path, index=False)
    else:
        path.write_text(records_json(frame, lines=suffix == ".jsonl"), encoding="utf-8")


#: how the columns of an empty table are typed in Parquet, by name (the columns of
#: exprsim's tables; any other is float64): a column with no value was typed ``null``, and
#: a folder holding an empty table beside others could not be read as one dataset
_TEXT_COLUMNS = frozenset(
    {"source", "reasons", "crop", "label", "tags", "best", "frame_file", "model", "detector"}
    | {"sha256", "path", "tag", "name", "error", "emotion_1", "emotion_2", "emotion_3"}
)
_INT_COLUMNS = frozenset(
    {"face", "frame", "slot", "person", "track", "rank", "face_id", "size", "mtime_ns"}
    | {"cluster", "item", "support"}
)
_BOOL_COLUMNS = frozenset({"quality_ok"})


def _typed_empty(frame: Any) -> Any:
    """An empty table with each untyped (object) column typed by :data:`_TEXT_COLUMNS`,
    :data:`_INT_COLUMNS`, :data:`_BOOL_COLUMNS`, else float64 (the embedding, box and score
    columns); typed columns keep their type."""
    import pandas as pd

    def kind(column: str) -> str:
        if column in _TEXT_COLUMNS:
            return "string"
        if column in _INT_COLUMNS:
            return "int64"
        return "bool" if column in _BOOL_COLUMNS else "float64"

    return pd.DataFrame(
        {
            c: pd.Series([], dtype=kind(str(c)) if frame[c].dtype == object else frame[c].dtype)
            for c in frame.columns
        }
    )


def _typed_nulls(frame: Any) -> Any:
    """``frame`` with each column that holds no value at all (``label`` of an index without
    labels) typed as :func:`_typed_empty` types it, with missing values: Parquet typed such
    a column ``null``, and a folder holding it beside a table with values could not be read
    as one dataset."""
    empty = [c for c in frame.columns if frame[c].dtype == object and frame[c].isna().all()]
    if not empty:
        return frame
    import pandas as pd

    typed = _typed_empty(frame[empty].iloc[:0])
    nullable = {"int64": "Int64", "bool": "boolean"}

    def missing(column: Any) -> Any:  # fresh: None, NaN, pd.NA and NaT alike
        dtype = nullable.get(str(typed[column].dtype), typed[column].dtype)
        return pd.Series(pd.array([None] * len(frame), dtype=dtype), index=frame.index)

    return frame.assign(**{str(c): missing(c) for c in empty})


def _whole_numbers_kept(frame: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
    """``frame`` with each column of whole numbers and missing cells as pandas' nullable
    ``Int64``: pandas makes such a column float64, which rounds integers past 2**53 (a
    file's ``mtime_ns`` lost its last digits when another row had none)."""
    import pandas as pd

    for col in frame.columns:
        if frame[col].dtype.kind != "f" or not frame[col].isna().any():
            continue
        values = [row.get(col) for row in rows]
        whole = [v for v in values if v is not None]
        if whole and all(isinstance(v, int) and not isinstance(v, bool) for v in whole):
            frame[col] = pd.array(values, dtype="Int64")
    return frame


def records_json(frame: Any, lines: bool = False) -> str:
    """``frame`` as JSON records (one per line with ``lines``), as people read them: UTF-8
    text, ``/`` not escaped, and every number at full precision, as CSV and Parquet have
    it (pandas' ``to_json`` writes ``\\/`` and ``\\u00e9`` and rounds to 10 decimals, so
    4.2e-11 became 0.0). Missing and infinite numbers are ``null``."""
    import json

    rows = [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]
    dump = functools.partial(
        json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=str
    )
    if lines:
        return "".join(dump(row) + "\n" for row in rows)
    return dump(rows)


def _json_value(value: Any) -> Any:
    """A table cell as JSON can hold it: NumPy scalars and arrays as Python values, NaN,
    infinities and pandas' missing markers as ``None``."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def replace_table(table: Any, path: str | Path) -> Path:
    """:func:`save_table`, whole or not at all: written beside ``path`` and renamed over
    it, so that an interruption or a full disk leaves an earlier file as it was."""
    return save_table(table, path)  # save_table is whole or not at all now


def save_partial_table(table: Any, path: str | Path) -> Path | None:
    """Save the table of an interrupted run, which must not replace a complete earlier
    one: at ``path`` when no file is there, else beside it at :func:`partial_path`;
    nothing when it has no row. Returns where it went, or ``None``."""
    import pandas as pd

    frame = table if isinstance(table, pd.DataFrame) else _frame(table)
    if not len(frame):
        return None
    path = check_table_path(path)
    return replace_table(frame, free_partial_path(path) if path_exists(path) else path)


def _frame(rows: Sequence[Mapping[str, Any]]) -> Any:
    import pandas as pd

    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame(list(rows), columns=columns)


class TableWriter:
    """Write a table chunk by chunk, in the format its suffix names (as :func:`save_table`).

    Rows are buffered and written ``chunk_rows`` at a time, so memory holds one chunk and a
    table of any length streams to disk (a Parquet row group per chunk). The columns are
    fixed by the first rows (later rows are reindexed to them). CSV and JSON lines are
    appended and flushed chunk by chunk, so a killed job leaves a valid file of what was
    written; Parquet and JSON are written to ``<path>.partial`` and moved into place by
    :meth:`close`.

    An earlier file at ``path`` is only replaced by a complete table: while it exists, CSV
    and JSON lines stream into :func:`partial_path` (``faces.partial.csv``) instead. A run
    stopped by Ctrl-C or an error (:meth:`keep_partial`, which the ``with`` block calls)
    keeps what was done: at ``path`` when nothing was there, else beside it at
    :func:`partial_path`; with no row done, nothing is written and an earlier file stays.

    Args:
        path: ``.csv``, ``.parquet``, ``.jsonl`` or ``.json``; parent folders are created.
        columns: column order (default: the first rows' keys in first-seen order).
        chunk_rows: rows buffered before a write.
        schema: the Arrow schema of a Parquet table (every chunk is cast to it, and a
            table with no rows still has its types, so a folder of such tables reads as
            one dataset); default: the first chunk's types.

    Raises:
        ExprsimError: unknown suffix (nothing is written).
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[str] | None = None,
        chunk_rows: int = 1000,
        schema: Any = None,
    ) -> None:
        import pandas  # noqa: F401 - loaded before the work, not after it (a memory
        # limit failed the import at the first write, when every face was done)

        self.schema = schema
        if schema is not None and columns is None:
            columns = list(schema.names)
        self.path = check_table_path(path)
        self.chunk_rows = max(1, int(chunk_rows))
        self._buffer: list[Mapping[str, Any]] = []
        self.suffix = self.path.suffix.lower()
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.rows = 0
        #: where the rows are once the writer is closed (``None``: nowhere, see
        #: :meth:`keep_partial`)
        self.saved_to: Path | None = None
        self._streamed = self.suffix in (".csv", ".jsonl")
        if self._streamed:  # an earlier table is not truncated before this run completes
            self._target = free_partial_path(self.path) if path_exists(self.path) else self.path
        else:
            self._target = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one writer of a table at a time: two runs writing one -o overwrote each other's
        # rows (a corrupt CSV, both saying done) or moved each other's files away
        self._lock = _lock_output(self.path)
        self._file: Any = None
        self._opened = False  # whether this writer made its file (at ``_target``)
        self._whole = 0  # bytes of the text file that hold whole chunks
        self._parquet: Any = None
        self._closed = False
        self._flushed = time.monotonic()

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append rows (dicts); they reach the file ``chunk_rows`` at a time, and for CSV
        and JSON lines also once a second (a killed job keeps what it had done)."""
        self._buffer.extend(rows)
        due = self._streamed and time.monotonic() - self._flushed >= STREAM_FLUSH_S
        if len(self._buffer) >= self.chunk_rows or (due and self._buffer):
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows now."""
        self._flushed = time.monotonic()
        rows, self._buffer = self._buffer, []
        if rows:
            self._write(rows)

    def _write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        import pandas as pd

        if self.columns is None:
            self.columns = list(dict.fromkeys(k for row in rows for k in row))
        frame = _whole_numbers_kept(pd.DataFrame(list(rows)).reindex(columns=self.columns), rows)
        first = self.rows == 0
        if self.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            try:
                if self._parquet is None:
                    self._opened = True
                    schema = self.schema or table.schema
                    self._parquet = pq.ParquetWriter(str(self._target), schema)
                self._parquet.write_table(table.cast(self._parquet.schema))
            except OSError as exc:  # a full disk: a Parquet file without its footer is unreadable
                self.abort()
                why = f"{exc.strerror or exc}; a Parquet table cut short cannot be kept"
                raise OSError(exc.errno, why, str(self.path)) from exc
        elif self.suffix == ".csv":
            self._append(frame.to_csv(index=False, header=first))
        elif self.suffix == ".jsonl":
            self._append(records_json(frame, lines=True))  # a line per row
        else:
            self._append(("[" if first else ",") + records_json(frame)[1:-1])
        self.rows += len(frame)

    def _append(self, text: str) -> None:
        """Append ``text`` to the file whole or not at all: a write that fails (a full
        disk) cuts the file back to its last whole chunk, so that a table kept after it
        holds no cut row, and the error names the table."""
        if self._file is None:  # the first chunk (or again after a failed write)
            mode = "a" if self._opened else "w"
            self._file = open(self._target, mode, encoding="utf-8", newline="")  # noqa: SIM115
            self._opened = True
        try:
            self._file.write(text)
            self._file.flush()
        except OSError as exc:
            self._cut_back()
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        self._whole = os.fstat(self._file.fileno()).st_size

    def _cut_back(self) -> None:
        """After a failed write: drop what did not fit (the next chunk reopens the file for
        appending)."""
        with contextlib.suppress(OSError):
            self._file.close()  # its unwritten tail is dropped with it
        self._file = None
        with contextlib.suppress(OSError):
            os.truncate(self._target, self._whole)

    def close(self) -> Path:
        """Finish the complete table (an empty table still gets its file), replacing an
        earlier file at ``path``; returns ``path``."""
        if self._closed:
            return self.saved_to or self.path
        try:
            self.flush()
        except BaseException:  # e.g. a full disk: what was written before stays
            self.keep_partial()
            raise
        self._closed = True
        if self.rows == 0:
            if self.schema is not None and self.suffix == ".parquet":
                import pyarrow.parquet as pq

                empty = self.schema.empty_table()
                replace_atomically(self.path, lambda tmp: pq.write_table(empty, tmp), ".parquet")
            else:
                save_table(_frame_of(self.columns or []), self.path)
            self._discard()
        else:
            try:
                self._finish()
            except BaseException:  # a JSON array or a Parquet footer that did not fit
                self._closed = False
                self.abort()
                raise
            if self._target != self.path:
                install(Path(self._target), self.path)  # mode kept, a link written through
            elif os.path.isfile(self.path):  # written in place (not a pipe): on disk now
                sync_file(self.path)
        self.saved_to = self.path
        self._release()
        return self.path

    def keep_partial(self) -> Path | None:
        """Finish the table of an interrupted (or failed) run, which must not replace a
        complete earlier one: written at ``path`` when no file is there, else beside it
        at :func:`free_partial_path`; nothing at all when no row was done (an earlier file
        stays as it was). Returns where the rows are (also :attr:`saved_to`), or ``None``.
        """
        if self._closed:
            return self.saved_to
        self.flush()
        if self.rows == 0:
            self.abort()
            return None
        self._closed = True
        self._finish()
        if self._target == self.path or not path_exists(self.path):
            where = self.path  # no earlier file: the rows done are the table
        elif self._streamed:
            where = self._target  # a partial name of its own, chosen when it started
        else:
            where = free_partial_path(self.path)
        if self._target != where:
            sync_file(self._target)
            os.replace(self._target, where)
            sync_folder(Path(where).parent)
        self.saved_to = where
        self._release()
        return where

    def _release(self) -> None:
        """Give up the lock on ``path`` (:func:`_lock_output`); idempotent."""
        lock, self._lock = self._lock, None
        if lock is not None:
            _unlock_output(self.path, lock)

    def _finish(self) -> None:
        """Close the open file (a JSON array gets its closing bracket)."""
        if self._parquet is not None:
            self._parquet.close()
        if self.suffix == ".json" and self._opened:
            self._append("]")
        if self._file is not None:
            self._file.close()

    def _discard(self) -> None:
        """Close and remove this writer's own file, if it is not ``path``."""
        for f in (self._file, self._parquet):
            if f is not None:
                f.close()
        if self._target != self.path:
            Path(self._target).unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop without leaving a file of this run (only what :meth:`close` already finished
        stays). A file at ``path`` this writer never opened (an earlier run's) is kept."""
        if self._closed:
            return
        self._closed = True
        for f in (self._file, self._parquet):
            if f is not None:
                with contextlib.suppress(OSError):  # a full disk fails the close too
                    f.close()
        if self._opened:
            Path(self._target).unlink(missing_ok=True)
        self._release()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # an error or Ctrl-C: what was done is kept, never over a complete earlier table,
        # and nothing is left behind when no row was done
        try:
            if exc_type is None:
                self.close()
            else:
                self.keep_partial()
        finally:
            self._release()


#: the lock file :func:`folder_lock` holds inside a folder
FOLDER_LOCK = ".lock"
#: errors of ``flock`` on a file system without locks (NFS without lockd, some FUSE)
NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})


@contextlib.contextmanager
def folder_lock(folder: Path, busy: Callable[[str], Exception], what: str) -> Iterator[None]:
    """Hold an exclusive lock on the output folder ``folder`` while the block runs
    (``flock`` on ``folder/.lock``, not waiting): two runs writing one folder at once
    removed or overwrote each other's files. The file stays (it names the holder while
    held: :mod:`exprsim.lockholder`); closing it releases the lock. A no-op where ``fcntl``
    is missing (not POSIX), and, with a warning naming ``what`` (e.g. "crops folder"), on a
    file system without locks.

    Raises:
        Exception: ``busy(holder)``, when another process holds it (``holder``: `` (pid N,
            `command`)``, or ``""`` when the lock file names none).
    """
    from exprsim.lockholder import forget_holder, lock_holder, note_holder

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(folder / FOLDER_LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(lock_holder(fh)) from None
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise
            log.warning(
                "%s: cannot lock this %s (%s: no file locks here?); going on unlocked: "
                "run one command into it at a time",
                printable(str(folder)), what, exc.strerror or exc,
            )  # fmt: skip
        note_holder(fh)
        try:
            yield
        finally:
            forget_holder(fh)  # no holder named after it


def _output_lock_path(path: Path) -> Path:
    return path.with_name(f".{_temp_stem(path.name)}.lock")


def _lock_output(path: Path) -> BinaryIO | None:
    """An exclusive ``flock`` on a hidden file beside the table ``path`` (``.NAME.lock``),
    held by its :class:`TableWriter`; ``None`` where no lock can be taken (a stream such
    as ``/dev/stdout``, a system without ``flock``, a folder that takes no new file: the
    table's own write then says why).

    Raises:
        ExprsimError: another process (or writer) is writing ``path`` now.
    """
    from exprsim.lockholder import lock_holder, note_holder

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    if _is_stream(path):
        return None
    lock = _output_lock_path(path)
    for _ in range(3):  # the holder removes the file when done: it may go between open and flock
        try:
            fh = open(lock, "a+b")  # noqa: SIM115 - held until the writer ends
        except OSError:
            return None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = lock_holder(fh)
            fh.close()
            raise ExprsimError(
                f"{printable(str(path))}: another exprsim command{holder} is writing this "
                "table now; wait for it to end, or write another file"
            ) from None
        try:
            same = os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino
        except OSError:
            same = False
        if same:
            note_holder(fh)
            return fh
        fh.close()
    return None


def _unlock_output(path: Path, fh: BinaryIO) -> None:
    """Remove the lock file of ``path`` and release its lock (in that order: a writer that
    opens the old file after the removal sees it is gone and opens it again)."""
    from exprsim.lockholder import forget_holder

    forget_holder(fh)  # a file that cannot be removed names no holder after it
    with contextlib.suppress(OSError):
        os.unlink(_output_lock_path(path))
    with contextlib.suppress(OSError):
        fh.close()


#: seconds between flushes of a streamed (CSV, JSON lines) :class:`TableWriter`
STREAM_FLUSH_S = 1.0


def partial_path(path: str | Path) -> Path:
    """Where the partial table of an interrupted run goes when ``path`` holds an earlier
    table: ``faces.csv`` -> ``faces.partial.csv`` (same format, beside it)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def free_partial_path(path: str | Path) -> Path:
    """:func:`partial_path`, or when that name is taken (the rows an earlier interrupted
    run kept: never overwritten) ``faces.partial-2.csv``, ``-3``, ... the first free one."""
    first = partial_path(path)
    if not path_exists(first):
        return first
    n = 2
    while path_exists(candidate := first.with_name(f"{first.stem}-{n}{first.suffix}")):
        n += 1
    return candidate


def as_given(p: str | os.PathLike[str] | bytes) -> Path:
    """An input path as the batch commands read it (:func:`iter_image_files`): ``~`` is
    the home folder's, as the shell's, unless a file of that very name exists."""
    path = Path(os.fsdecode(p) if isinstance(p, bytes) else p)
    if str(path).startswith("~") and not path_exists(path):
        # as file_key (which tells repeats apart) reads it: ~/a.jpg and the home's a.jpg
        # were one file to it, and the one read was ~/a.jpg, "no such file"
        with contextlib.suppress(RuntimeError):  # ~nosuchuser: kept as written
            path = path.expanduser()
    return path


def path_exists(path: Path) -> bool:
    """``path.exists()``, false for a name the file system refuses (too long, or holding
    a NUL) instead of an ``OSError`` / ``ValueError``."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _frame_of(columns: Sequence[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns=list(columns))


# --------------------------------------------------------------------------- atomic files


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (unsure, or not POSIX: ``True``)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):  # another user's process; no pid at all
        return True
    return True


def left_by_killed(folder: str | Path, pattern: str) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` whose whole name matches the regular expression
    ``pattern`` and whose group ``pid`` names a process that no longer runs (what a killed
    exprsim process left); none when the folder cannot be read."""
    rule = re.compile(pattern)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = rule.fullmatch(entry.name)
        if match is not None and not pid_alive(int(match.group("pid"))):
            found.append(entry)
    return found


def sweep_temporaries(folder: str | Path, pattern: str) -> int:
    """Delete what killed exprsim processes left in ``folder``: each entry whose whole name
    matches the regular expression ``pattern``, whose group ``pid`` names a process that no
    longer runs (a file, or a folder with what it holds). Returns how many went."""
    gone = 0
    for entry in left_by_killed(folder, pattern):
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            gone += 1
            log.info("removed %s, left by a process that was killed", entry.path)
    return gone


#: what :func:`temp_beside` puts between a name and its suffix (as a regular expression)
TEMP_TAIL = r"\.(?P<pid>\d+)\.\d+"


#: what stands for the end of a name too long for a temporary's (:func:`temp_beside`): a
#: ``~`` and 16 hex digits of the name's SHA-1 (as a regular expression)
SHORTENED_TAIL = r"~[0-9a-f]{16}"

#: the longest file name most file systems take (``NAME_MAX``), in bytes
NAME_MAX = 255
#: room a temporary's name needs beyond its file's: a dot, ``.<pid>.<thread>``, a suffix
_TEMP_ROOM = 64


def _temp_stem(name: str) -> str:
    """The part of a temporary's name that stands for the file ``name``: the name itself,
    or when that would make the temporary's name too long, its start and a digest."""
    if len(os.fsencode(name)) <= NAME_MAX - _TEMP_ROOM:
        return name
    import hashlib

    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:16]
    start = os.fsencode(name)[: NAME_MAX - _TEMP_ROOM - 24].decode("utf-8", "ignore")
    return f"{start}~{digest}"


def temp_pattern(path: str | Path, suffix: str = ".tmp") -> str:
    """The :func:`sweep_temporaries` pattern of :func:`temp_beside`'s names for ``path``."""
    return rf"\.{re.escape(_temp_stem(Path(path).name))}{TEMP_TAIL}{re.escape(suffix)}"


def split_path_list(text: str) -> list[str]:
    """The paths of a text list (``--files-from``, a Ray engine's ``.txt`` input): one per
    line, split at a newline alone (a carriage return before it dropped: a list written on
    Windows; a name may hold any other line separator, U+2028 say), or NUL-separated
    (``find -print0``); blank lines skipped."""
    if "\0" in text:
        lines = text.split("\0")
    else:
        lines = [line.removesuffix("\r") for line in text.split("\n")]
    return [line for line in lines if line.strip()]


def temp_beside(path: str | Path, suffix: str = ".tmp") -> Path:
    """A hidden temporary name beside ``path``, unique to this process and thread
    (``.<name>.<pid>.<thread><suffix>``; a name too long for that is shortened): two
    writers of one file never share it."""
    path = Path(path)
    stem = _temp_stem(path.name)
    return path.with_name(f".{stem}.{os.getpid()}.{threading.get_ident()}{suffix}")


def replace_atomically(
    path: str | Path, write: Callable[[Path], object], suffix: str = ".tmp", durable: bool = True
) -> Path:
    """Write ``path`` whole or not at all: ``write(tmp)`` fills a hidden temporary file
    beside it (:func:`temp_beside`), which then takes its place (:func:`install`). The
    temporary file is removed if anything fails (readers see the old file or the new one,
    never a part). For writers that take a path (pandas, safetensors);
    :func:`write_atomically` for those that take a file. ``durable``: flushed to disk
    first, so that a power cut leaves the old file or the whole new one (``False`` for
    many small files made again by a rerun). Returns ``path``."""
    path = Path(path)
    if _is_stream(path):  # /dev/null, /dev/stdout, a FIFO: the temporary goes elsewhere
        tmp = temp_beside(Path(tempfile.gettempdir()) / path.name, suffix)
    else:
        tmp = temp_beside(_through_link(path), suffix)
    try:
        try:
            write(tmp)
        except OSError as exc:
            if exc.filename in (None, str(tmp), tmp):  # say which file, not the hidden name
                raise _staging_error(exc, path, tmp) from exc
            raise
        try:
            install(tmp, path, durable)
        except OSError as exc:
            if exc.filename in (None, str(tmp), tmp):
                raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
            raise
    finally:
        with contextlib.suppress(OSError):  # e.g. a name the file system refused
            tmp.unlink(missing_ok=True)
    return path


def _staging_error(exc: OSError, path: Path, tmp: Path) -> OSError:
    """``exc``, raised writing ``tmp`` (the hidden file staged for ``path``), as an error
    of ``path``; of the temporary folder when ``path`` is a stream (``/dev/stdout``, a
    FIFO) whose output was staged there: a full ``TMPDIR`` is not a full stdout."""
    if _is_stream(path):
        where = f"{tmp.parent} (the temporary folder, where the output for {path} is staged)"
        return OSError(exc.errno, exc.strerror or str(exc), where)
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def sync_file(path: str | Path) -> None:
    """Flush a finished file's bytes to disk (``fsync``), before a rename puts it in place:
    after a power cut the new name then holds the whole file, never an empty one. A file
    system that cannot sync (``EINVAL``) is left as it is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def sync_folder(path: str | Path) -> None:
    """Flush a folder's entries to disk (``fsync``), after a rename into it, so that the
    rename survives a power cut. Best effort: a folder that cannot be synced is left so."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def install(tmp: Path, path: Path, durable: bool = True) -> None:
    """Put the finished file ``tmp`` at ``path``, as a shell's ``>`` would leave it: into a
    device, a FIFO or a name under ``/dev`` or ``/proc`` (``/dev/stdout``), its bytes are
    written (appended: ``>>`` stays an append); over a link to a regular file, the file
    it points to is replaced (written through); else ``tmp`` is renamed to ``path``. A
    replaced file's mode is kept. ``durable``: the file is synced to disk before the
    rename and its folder after (:func:`sync_file`, :func:`sync_folder`)."""
    if _is_stream(path):
        std = _standard_stream(path)
        if std is not None:  # through the process's own stream: its offset moves with it
            std.flush()
            with open(tmp, "rb") as src:
                shutil.copyfileobj(src, std.buffer)
            std.flush()
        else:
            with open(tmp, "rb") as src, open(path, "ab") as dst:
                shutil.copyfileobj(src, dst)
        os.unlink(tmp)
        return
    target = _through_link(path)
    if durable:  # before the mode is kept: a write-only mode could not be opened to sync
        sync_file(tmp)
    _keep_mode(target, tmp)
    try:
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # a link to another file system: copied beside its target, then renamed there
        beside = temp_beside(target, ".tmp")
        try:
            shutil.copyfile(tmp, beside)
            if durable:
                sync_file(beside)
            _keep_mode(target, beside)
            os.replace(beside, target)
        finally:
            with contextlib.suppress(OSError):
                beside.unlink(missing_ok=True)
        os.unlink(tmp)
    if durable:
        sync_folder(target.parent)


def _standard_stream(path: Path) -> Any:
    """``sys.stdout`` or ``sys.stderr`` when ``path`` is that stream's file (``--html
    /dev/stdout > out.html``), else ``None``. Written through its own descriptor: a second
    opening of a file redirected with ``>`` wrote at the end while the stream's offset
    stayed, and the next line printed overwrote the page's first bytes."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            if os.path.samestat(st, os.fstat(stream.fileno())) and hasattr(stream, "buffer"):
                return stream
        except (AttributeError, OSError, ValueError):  # replaced, closed or no descriptor
            continue
    return None


def _is_stream(path: Path) -> bool:
    """Whether ``path`` names a stream rather than a file to replace: a device, FIFO or
    socket (through links), or a name under ``/dev`` or ``/proc`` (or a link through one)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return True
    return any(name.startswith(("/dev/", "/proc/")) for name in _link_hops(path))


def _link_hops(path: Path, most: int = 40) -> list[str]:
    """``path`` and each name its links lead through, absolute (``/dev/stdout``,
    ``/proc/self/fd/1``, ...), at most ``most`` hops."""
    name = os.path.abspath(path)
    hops = [name]
    for _ in range(most):
        try:
            name = os.path.abspath(os.path.join(os.path.dirname(name), os.readlink(name)))
        except (OSError, ValueError):
            break
        hops.append(name)
    return hops


def _through_link(path: Path) -> Path:
    """The file a rewrite of ``path`` replaces: the regular file a symbolic link points to
    when its folder takes a new file (written through, as a shell's ``>`` does), else
    ``path`` (a dangling link, or one into a folder that takes no new file, is replaced)."""
    try:
        if not path.is_symlink():
            return path
        real = Path(os.path.realpath(path))
        if real.is_file() and os.access(real.parent, os.W_OK | os.X_OK):
            return real
    except OSError:
        pass
    return path


def _keep_mode(old: Path, new: Path) -> None:
    """Give ``new`` the permission bits of the regular file ``old`` it replaces (a
    rewrite keeps a table's or a report's mode, as ``>`` and ``sed -i`` do); a new file
    gets the mode ``open`` gives one under the process's umask (safetensors makes its
    files readable by their owner only, which a server running as another user could not
    load)."""
    try:
        st = os.stat(old)
    except FileNotFoundError:
        mode = _new_file_mode()
        with contextlib.suppress(OSError):
            if mode is not None and stat.S_IMODE(os.stat(new).st_mode) != mode:
                os.chmod(new, mode)
        return
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        with contextlib.suppress(OSError):
            os.chmod(new, stat.S_IMODE(st.st_mode))


def _new_file_mode() -> int | None:
    """``0o666`` less the process's umask, read without changing it (Linux:
    ``/proc/self/status``); ``None`` where it cannot be read."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def json_text(doc: Any) -> str:
    """``doc`` as strict, indented JSON (:func:`json_ready`: NaN and infinities as
    ``null``), newline-ended."""
    import json

    return json.dumps(json_ready(doc), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, doc: Any, suffix: str = ".tmp") -> Path:
    """Write ``doc`` as :func:`json_text` to ``path``, whole or not at all
    (:func:`write_atomically`). Returns ``path``."""
    data = json_text(doc).encode("utf-8")
    return write_atomically(path, lambda fh: fh.write(data), suffix)


def write_together(files: Sequence[tuple[str | Path, bytes]]) -> list[Path]:
    """Write several files that belong together (a report and its JSON), each whole or
    not at all, and none of them when one cannot be written: every file is first written
    in full beside its place (a full disk fails here, and the earlier files all stay),
    then each takes its place (:func:`install`). Returns the paths."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            target = Path(path)
            if _is_stream(target):  # /dev/stdout, a FIFO: the temporary goes elsewhere
                tmp = temp_beside(Path(tempfile.gettempdir()) / target.name)
            else:
                tmp = temp_beside(_through_link(target))
            staged.append((tmp, target))
            try:
                with open(tmp, "wb") as fh:
                    fh.write(data)
            except OSError as exc:  # say which file, not the hidden name
                raise _staging_error(exc, target, tmp) from exc
        for tmp, target in staged:
            install(tmp, target)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    return [target for _, target in staged]


def write_atomically(
    path: str | Path, write: Callable[[BinaryIO], object], suffix: str = ".tmp"
) -> Path:
    """:func:`replace_atomically` for writers that take an open binary file: ``write(fh)``,
    then the file is flushed to disk (``fsync``) before the rename, so that a power cut
    leaves the old file or the whole new one. Returns ``path``."""

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            write(fh)

    return replace_atomically(path, fill, suffix)  # synced before the rename


def save_npz(fh: BinaryIO, arrays: Mapping[str, Any], compressed: bool = False) -> None:
    """``numpy.savez`` (``compressed``: ``savez_compressed``) of ``arrays`` into the open
    file ``fh``, closing the archive even when a write fails: numpy leaves it to the
    garbage collector, whose second try at a full disk printed an "Exception ignored"
    traceback after the command's own one-line error."""
    import zipfile

    from numpy.lib import format as npy_format

    mode = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    archive = zipfile.ZipFile(fh, mode="w", compression=mode, allowZip64=True)
    try:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, np.asanyarray(value), allow_pickle=False)
    except BaseException:
        with contextlib.suppress(OSError, ValueError):  # the disk refuses the end too
            archive.close()
        raise
    archive.close()


#: the file a model folder holds while its model files are written (:func:`writing_model`)
WRITING_MODEL_MARK = ".writing-model"


@contextlib.contextmanager
def writing_model(folder: str | Path, *, again: bool = False) -> Iterator[None]:
    """Mark ``folder`` while a model is written into it (``model.safetensors``, its
    ``config.json`` and whatever a trainer computes for them after its last checkpoint).

    Each file is written whole or not at all, but together they are not: a command killed
    between two of them leaves a folder whose files do not belong together, or a finished
    run's last checkpoint beside an earlier run's model. The mark it leaves behind says so
    to :func:`exprsim.load_model` and to the training side; the mark is removed only when
    the block ends normally (an error or Ctrl-C inside keeps it).

    Args:
        folder: the model's folder.
        again: the block writes again the model of a run that was finished (a finished
            run run once more, nothing trained since). If it then fails with the folder's
            ``model.safetensors`` and ``config.json`` as they were, and the folder held a
            whole model (no mark) before, that model is still whole: the mark is removed
            (a full disk must not leave a finished model refused).
    """
    mark = Path(folder) / WRITING_MODEL_MARK
    before = _model_digests(Path(folder)) if again and not mark.exists() else None
    try:
        mark.write_text(
            "A command was writing the model in this folder. If none is running now, it "
            "stopped before it finished: run it again.\n"
        )
    except OSError as exc:  # a full disk: the files below say so themselves
        log.warning("%s: cannot write %s (%s)", folder, mark.name, exc)
    try:
        yield
    except BaseException:
        if before is not None and _model_digests(Path(folder)) == before:
            mark.unlink(missing_ok=True)
        raise
    mark.unlink(missing_ok=True)


def _model_digests(folder: Path) -> dict[str, str] | None:
    """SHA-1 of the folder's ``model.safetensors`` and ``config.json`` (those there);
    ``None`` without weights, or when they cannot be read."""
    import hashlib

    digests = {}
    for name in ("model.safetensors", "config.json"):
        try:
            with open(folder / name, "rb") as fh:
                digests[name] = hashlib.file_digest(fh, "sha1").hexdigest()
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return digests if "model.safetensors" in digests else None


def model_being_written(folder: str | Path) -> bool:
    """Whether ``folder`` holds :func:`writing_model`'s mark: its model is being written
    now, or the command writing it stopped before it finished."""
    return (Path(folder) / WRITING_MODEL_MARK).exists()
