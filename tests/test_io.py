"""exprsim.io: formats, EXIF orientation, colour modes, bad files, decompression bombs."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import exprsim.io as eio
from exprsim.errors import ImageError
from exprsim.io import as_rgb8, decode_image, iter_image_files, load_image


def rgb_pattern(w: int = 40, h: int = 30) -> np.ndarray:
    """Left half red, right half blue, a green square at the top-left corner."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (220, 20, 20)
    img[:, w // 2 :] = (20, 20, 220)
    img[:6, :6] = (20, 220, 20)
    return img


def save(img: Image.Image, path, fmt: str, **kw) -> None:
    img.save(path, format=fmt, **kw)


@pytest.mark.parametrize(
    ("fmt", "suffix", "kw", "tol"),
    [
        ("JPEG", ".jpg", {"quality": 95, "subsampling": 0}, 16),
        ("PNG", ".png", {}, 0),
        ("WEBP", ".webp", {"lossless": True}, 0),
        ("BMP", ".bmp", {}, 0),
        ("TIFF", ".tif", {}, 0),
        ("GIF", ".gif", {}, 0),
    ],
)
def test_formats_decode_to_rgb8(tmp_path, fmt, suffix, kw, tol):
    ref = rgb_pattern()
    path = tmp_path / f"img{suffix}"
    save(Image.fromarray(ref), path, fmt, **kw)
    out = load_image(path)
    assert out.shape == ref.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= tol


def test_tiff_16bit_scaled_to_8bit(tmp_path):
    ramp = np.tile(np.array([0, 257, 32896, 65535], np.uint16), (3, 1))
    path = tmp_path / "deep.tif"
    Image.fromarray(ramp).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I;16")
    out = load_image(path)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    assert np.array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize(
    ("orientation", "check"),
    [
        # 6: stored image must be rotated 90 deg clockwise for display -> left half on top
        (
            6,
            lambda o: (
                o.shape[:2] == (40, 30) and o[:15, :, 0].mean() > 150 and o[25:, :, 2].mean() > 150
            ),
        ),
        # 3: rotated 180 deg -> red on the right
        (
            3,
            lambda o: (
                o.shape[:2] == (30, 40) and o[:, 25:, 0].mean() > 150 and o[:, :15, 2].mean() > 150
            ),
        ),
        # 2: mirrored -> red on the right, green square top-right
        (2, lambda o: o.shape[:2] == (30, 40) and o[:6, -6:, 1].mean() > 150),
    ],
)
def test_exif_orientation_applied(tmp_path, orientation, check):
    img = Image.fromarray(rgb_pattern())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "rotated.jpg"
    img.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    assert Image.open(path).getexif()[0x0112] == orientation
    assert check(load_image(path))


def test_exif_rotation_matches_pillow_reference(tmp_path):
    from PIL import ImageOps

    img = Image.fromarray(rgb_pattern())
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "r8.jpg"
    img.save(path, format="JPEG", quality=95, exif=exif.tobytes())
    ref = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(load_image(path), ref)


def test_gray_rgba_palette_to_rgb(tmp_path):
    gray = np.arange(0, 240, 8, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert (
        out.shape == (5, 6, 3)
        and np.array_equal(out[..., 0], gray)
        and np.array_equal(out[..., 1], gray)
    )

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[:2, :, 3] = 255  # top opaque, bottom fully transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [10, 200, 30] and out[3, 3].tolist() == [255, 255, 255]

    pal = Image.fromarray(rgb_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    out = load_image(tmp_path / "p.png")
    assert np.array_equal(out, np.asarray(pal.convert("RGB")))


def test_bytes_and_arrays():
    buf = io.BytesIO()
    Image.fromarray(rgb_pattern()).save(buf, format="PNG")
    assert np.array_equal(load_image(buf.getvalue()), rgb_pattern())
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert load_image(np.ones((2, 2, 3), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert as_rgb8(np.full((2, 2, 3), 65535, np.uint16))[0, 0, 0] == 255
    assert as_rgb8(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)
    with pytest.raises(ImageError, match="<array>"):
        as_rgb8(np.zeros((2, 2, 2)))
    with pytest.raises(ImageError):
        as_rgb8(np.zeros((0, 3, 3), np.uint8))
    big = np.full((1, 2, 3), 3e38, np.float32)
    big[0, 1] = -3e38
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        assert as_rgb8(big)[0, :, 0].tolist() == [255, 0]
    for bad in (np.nan, np.inf):  # a clear refusal, not an undefined cast
        arr = np.zeros((2, 2, 3), np.float32)
        arr[1, 1, 0] = bad
        with pytest.raises(ImageError, match="NaN or infinite"):
            as_rgb8(arr)


def _valid_jpeg(path) -> bytes:
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        path, format="JPEG"
    )
    return path.read_bytes()


@pytest.mark.parametrize(
    "case", ["empty", "corrupt", "truncated", "text", "zero_size", "missing", "dir"]
)
def test_bad_files_raise_image_error_naming_the_file(tmp_path, case):
    path = tmp_path / f"bad_{case}.jpg"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    elif case == "truncated":
        data = _valid_jpeg(tmp_path / "ok.jpg")
        path.write_bytes(data[: len(data) // 2])
    elif case == "text":
        path = tmp_path / "notes.png"
        path.write_text("hello, I am not a picture\n" * 10)
    elif case == "zero_size":
        # a PNG whose header declares a 0 x 0 image
        buf = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buf, format="PNG")
        data = bytearray(buf.getvalue())
        data[16:24] = b"\x00" * 8  # IHDR width and height
        path = tmp_path / "zero.png"
        path.write_bytes(bytes(data))
    elif case == "dir":
        path = tmp_path / "folder.jpg"
        path.mkdir()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    assert load_image(path).shape == (100, 100, 3)
    monkeypatch.setattr(eio, "MAX_PIXELS", 5_000)
    with pytest.raises(ImageError, match="too large") as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_pillow_bomb_error_is_an_image_too_large_error(monkeypatch):
    """Pillow refuses a file over twice its ``MAX_IMAGE_PIXELS``: that refusal is the one
    ImageTooLargeError naming the limit (was Pillow's "DOS attack" text); between its
    warning and its error, the image is decoded (the limit is exprsim's own)."""
    from exprsim.errors import ImageTooLargeError

    buf = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buf, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(ImageTooLargeError, match=r"image too large \(10000 pixels; limit 2000\)"):
        decode_image(buf.getvalue(), "x.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)  # between Pillow's warning and error
    assert decode_image(buf.getvalue(), "x.png").shape == (100, 100, 3)


def test_importing_exprsim_leaves_pillow_as_it_was():
    import subprocess
    import sys

    code = (
        "from PIL import Image; before = Image.MAX_IMAGE_PIXELS; import exprsim.io, exprsim; "
        "assert Image.MAX_IMAGE_PIXELS == before, Image.MAX_IMAGE_PIXELS"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_iter_image_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.jpg", "a/b/2.PNG", "a/b/notes.txt", "a/3.webp"):
        (tmp_path / name).write_bytes(b"x")
    explicit = tmp_path / "a" / "b" / "notes.txt"
    found = list(iter_image_files([tmp_path / "a", explicit]))
    rel = [p.relative_to(tmp_path).as_posix() for p in found]
    assert rel == ["a/1.jpg", "a/3.webp", "a/b/2.PNG", "a/b/notes.txt"]


# ----------------------------------------------------------------------------- tables


def _rows() -> list[dict]:
    return [
        {"source": "a.jpg", "face": 0, "x1": 1.5, "quality_ok": True, "reasons": ""},
        {"source": "b.jpg", "face": 1, "x1": float("nan"), "quality_ok": False, "reasons": "blur"},
    ]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_save_table_every_format_round_trips(tmp_path, suffix):
    import json

    import pandas as pd

    from exprsim.io import save_table

    out = save_table(_rows(), tmp_path / "deep" / f"t{suffix}")  # parent folders created
    assert out == tmp_path / "deep" / f"t{suffix}" and out.is_file()
    if suffix == ".csv":
        back = pd.read_csv(out, keep_default_na=False, na_values=[""])
        assert out.read_text().splitlines()[0] == "source,face,x1,quality_ok,reasons"
    elif suffix == ".parquet":
        back = pd.read_parquet(out)
    elif suffix == ".jsonl":
        lines = out.read_text().splitlines()
        assert len(lines) == 2 and json.loads(lines[1])["x1"] is None  # NaN -> null
        back = pd.read_json(out, lines=True)
    else:
        rows = json.loads(out.read_text())  # one JSON array of row objects
        assert isinstance(rows, list) and rows[0]["source"] == "a.jpg" and rows[1]["x1"] is None
        back = pd.DataFrame(rows)
    assert list(back.columns) == ["source", "face", "x1", "quality_ok", "reasons"]
    assert back["source"].tolist() == ["a.jpg", "b.jpg"]
    assert back["x1"].iloc[0] == 1.5 and pd.isna(back["x1"].iloc[1])
    assert back["quality_ok"].astype(bool).tolist() == [True, False]


def test_save_table_takes_a_frame_and_refuses_unknown_suffixes(tmp_path):
    import pandas as pd

    from exprsim.errors import ExprsimError
    from exprsim.io import TABLE_SUFFIXES, check_table_path, save_table

    frame = pd.DataFrame(_rows())
    assert save_table(frame, tmp_path / "t.CSV").is_file()  # suffixes are case-insensitive
    for bad in ("t.xlsx", "t", "t.csv.gz"):
        with pytest.raises(ExprsimError, match=r"must end in \.csv"):
            save_table(frame, tmp_path / bad)
        with pytest.raises(ExprsimError):
            check_table_path(bad)
        assert not (tmp_path / bad).exists()
    assert TABLE_SUFFIXES == (".csv", ".parquet", ".jsonl", ".json")
    assert check_table_path("x/y.jsonl").name == "y.jsonl"


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_table_writer_in_chunks_equals_save_table(tmp_path, suffix):
    import pandas as pd

    from exprsim.io import TableWriter, save_table

    rows = [
        {"source": f"{i}.jpg", "face": i % 3, "x1": float(i) / 3, "quality_ok": i % 2 == 0}
        for i in range(11)
    ]
    ref = save_table(rows, tmp_path / f"ref{suffix}")
    with TableWriter(tmp_path / "deep" / f"t{suffix}", chunk_rows=3) as w:
        for chunk in (rows[0:4], [], rows[4:9], rows[9:]):  # an empty chunk among them
            w.write(chunk)
    out = tmp_path / "deep" / f"t{suffix}"
    assert w.rows == 11 and out.is_file()
    assert not (tmp_path / "deep" / f"t{suffix}.partial").exists()

    def read(p):
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix == ".parquet":
            return pd.read_parquet(p)
        return pd.read_json(p, lines=suffix == ".jsonl")

    pd.testing.assert_frame_equal(read(out), read(ref))


def test_table_writer_keeps_what_was_done_when_interrupted(tmp_path):
    import pandas as pd

    from exprsim.io import TableWriter

    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"t{suffix}"
        with pytest.raises(KeyboardInterrupt), TableWriter(out) as w:
            w.write([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
            raise KeyboardInterrupt
        back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert back["a"].tolist() == [1, 2]


def test_table_writer_empty_table_and_fixed_columns(tmp_path):
    import pandas as pd

    from exprsim.errors import ExprsimError
    from exprsim.io import TableWriter

    with TableWriter(tmp_path / "e.parquet", columns=["a", "b"]):
        pass
    assert list(pd.read_parquet(tmp_path / "e.parquet").columns) == ["a", "b"]
    with TableWriter(tmp_path / "c.csv", chunk_rows=1) as w:
        w.write([{"a": 1, "b": 2}])
        w.write([{"b": 4, "a": 3, "extra": 9}])  # reindexed to the first chunk's columns
    assert (tmp_path / "c.csv").read_text().splitlines() == ["a,b", "1,2", "3,4"]
    with pytest.raises(ExprsimError):
        TableWriter(tmp_path / "x.xlsx")


def test_table_writer_leaves_no_file_when_failing_before_the_first_row(tmp_path):
    from exprsim.errors import ExprsimError
    from exprsim.io import TableWriter

    for suffix in (".csv", ".parquet", ".json"):
        out = tmp_path / f"t{suffix}"
        with pytest.raises(ExprsimError), TableWriter(out):
            raise ExprsimError("no image files found")
        assert not out.exists() and not (tmp_path / f"t{suffix}.partial").exists()


def test_image_error_survives_pickling():
    """Worker processes and Ray tasks send errors back pickled: path and reason survive."""
    import pickle

    err = pickle.loads(pickle.dumps(ImageError("a/b.jpg", "truncated JPEG")))
    assert isinstance(err, ImageError)
    assert (err.path, err.reason, str(err)) == (
        "a/b.jpg",
        "truncated JPEG",
        "a/b.jpg: truncated JPEG",
    )


@pytest.mark.parametrize("source", [[[1, 2], [3, 4]], 5, None, 2.5])
def test_load_image_refuses_other_types_with_an_image_error(source) -> None:
    """Not a path, bytes, PIL image or array: an ImageError naming the type and what is
    accepted (a nested list used to escape as a TypeError from Path(); a PIL image, refused
    here until round 30, is now read: tests/apps/test_user_audit30.py)."""
    with pytest.raises(ImageError, match="not an image source") as info:
        load_image(source)
    assert info.value.path == f"<{type(source).__name__}>"


def test_caller_pixel_limit_is_judged_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    from exprsim.errors import ImageTooLargeError

    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200)).save(path)
    assert load_image(path, max_pixels=60_000).shape == (200, 300, 3)  # at the limit: fine
    loads: list[int] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1))
    for source in (path, path.read_bytes()):
        with pytest.raises(ImageTooLargeError, match="limit 59999"):
            load_image(source, max_pixels=59_999)
    assert loads == []  # the header decided: no pixel decoded
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((200, 300, 3), np.uint8), max_pixels=1_000)
    assert issubclass(ImageTooLargeError, ImageError)  # callers catching ImageError still do
    with pytest.raises(ValueError):
        load_image(path, max_pixels=0)


def test_16_bit_gray_scales_like_the_float_formula(tmp_path):
    values = np.array([0, 1, 128, 129, 257, 32767, 32768, 40000, 65534, 65535], np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(np.tile(values, (2, 1))).save(path)
    got = load_image(path)[0, :, 0].astype(int)
    expected = np.floor(values / 65535.0 * 255.0 + 0.5).astype(int)  # the old float64 path
    assert np.abs(got - expected).max() == 0


def test_atomic_writes_leave_the_old_file_whole_when_writing_fails(tmp_path):
    import threading

    from exprsim.io import replace_atomically, temp_beside, write_atomically

    target = tmp_path / "table.bin"
    assert write_atomically(target, lambda fh: fh.write(b"first")) == target
    assert target.read_bytes() == b"first"

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, half_then_fail)
    with pytest.raises(ValueError, match="bad rows"):
        replace_atomically(target, lambda tmp: (tmp.write_bytes(b"x"), int("bad rows")))
    assert target.read_bytes() == b"first"  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.bin"]  # no temporary left
    replace_atomically(target, lambda tmp: tmp.write_bytes(b"second"))
    assert target.read_bytes() == b"second"

    names = []
    worker = threading.Thread(target=lambda: names.append(temp_beside(target).name))
    worker.start()
    worker.join()
    here = temp_beside(target, ".part").name
    assert here.startswith(".table.bin.") and here.endswith(".part")
    assert names[0] != temp_beside(target).name  # two threads never share a temporary file


# ----------------------------------------------------------------- sixth audit


def test_a_name_too_long_fails_alone(tmp_path, random_embedder):
    from exprsim.errors import ImageError
    from exprsim.io import iter_image_files, load_image
    from exprsim.samples import sample_path

    good = tmp_path / "good.jpg"
    good.write_bytes(sample_path("grace_hopper.jpg").read_bytes())
    long = str(tmp_path / ("x" * 300 + ".jpg"))  # past NAME_MAX: the OS raises on stat
    with pytest.raises(ImageError, match="too long"):
        load_image(long)
    assert [p.name for p in iter_image_files([tmp_path, long])] == ["good.jpg", "x" * 300 + ".jpg"]
    failures: list = []
    faces = random_embedder.embed_images([good, long], failures=failures)
    assert len(faces) == 1 and len(failures) == 1  # the good file was never reached


def test_wide_integer_pixels_are_read_as_16_bit_like_the_file():
    import io

    from PIL import Image

    from exprsim.io import as_rgb8, decode_image

    ramp16 = np.linspace(0, 65535, 32 * 32).astype(np.uint16).reshape(32, 32)
    buf = io.BytesIO()
    Image.fromarray(ramp16).save(buf, format="PNG")
    from_file = decode_image(buf.getvalue())
    ramp = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("I"))  # int32
    assert ramp.dtype == np.int32
    np.testing.assert_array_equal(as_rgb8(ramp), from_file)  # was clipped: nearly all white
    np.testing.assert_array_equal(as_rgb8(ramp16), from_file)
    small = np.arange(256, dtype=np.int16).reshape(16, 16)
    np.testing.assert_array_equal(as_rgb8(small)[..., 0], small.astype(np.uint8))


@pytest.mark.parametrize(
    ("array", "warned"),
    [
        (np.linspace(-1, 1, 64).reshape(8, 8), "from -1 to 1"),  # a [-1, 1] network image
        (np.full((8, 8), -5, np.int32), "outside 0..255 clipped"),
        (np.full((8, 8), 70_000, np.int64), "outside 0..65535 clipped"),
    ],
)
def test_clipped_pixels_are_never_silent(array, warned, caplog):
    from exprsim.io import as_rgb8

    assert as_rgb8(array).dtype == np.uint8
    assert warned in caplog.text


@pytest.mark.parametrize("array", [np.full((8, 8, 3), "a"), np.ones((8, 8), np.complex64)])
def test_pixels_that_are_not_real_numbers_are_an_image_error(array, random_embedder):
    from exprsim.errors import ImageError
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    with pytest.raises(ImageError, match="not real numbers"):
        load_image(array)
    failures: list = []  # a raw UFuncTypeError escaped failures= and aborted the batch
    random_embedder.embed_images([array, sample_path("grace_hopper.jpg")], failures=failures)
    assert len(failures) == 1


def test_max_pixels_and_byte_paths(tmp_path):
    from exprsim.io import iter_image_files, load_image
    from exprsim.samples import sample_path

    with pytest.raises(ValueError, match="whole number"):
        load_image(sample_path("grace_hopper.jpg"), max_pixels="10")  # type: ignore[arg-type]
    (tmp_path / "a.png").write_bytes(b"x")
    assert [p.name for p in iter_image_files([bytes(tmp_path)])] == ["a.png"]
