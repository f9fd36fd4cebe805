"""Twenty-fifth robustness round, faces: ``faces --crops DIR`` run on two folders in turn
whose photos share a name wrote the second photo's crop over the first's (the first run's
table then pointed at a face of another person). Crops now carry their photo
(:func:`crop_owner`, a digest of its path); another photo's crops of that name are kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from exprsim.cli import main
from exprsim.faces.pipeline import crop_owner, photo_key
from exprsim.samples import sample_path


def _crops(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.iterdir())}


def test_two_folders_with_same_named_photos_keep_both_crops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copyfile(sample_path("grace_hopper.jpg"), a / "x.jpg")
    shutil.copyfile(sample_path("astronaut_eileen_collins.jpg"), b / "x.jpg")
    crops = tmp_path / "crops"
    assert main(["-q", "faces", str(a), "--crops", str(crops), "-o", str(tmp_path / "a.csv")]) == 0
    first = _crops(crops)
    assert list(first) == ["x_0.png"]
    assert main(["-q", "faces", str(b), "--crops", str(crops), "-o", str(tmp_path / "b.csv")]) == 0
    after = _crops(crops)
    assert list(after) == ["x-2_0.png", "x_0.png"]  # was: one x_0.png, b's face
    assert np.array_equal(after["x_0.png"], first["x_0.png"])  # a's crop untouched
    assert not np.array_equal(after["x-2_0.png"], first["x_0.png"])
    assert crop_owner(crops / "x_0.png") == photo_key(a / "x.jpg")
    assert crop_owner(crops / "x-2_0.png") == photo_key(b / "x.jpg")
    assert photo_key(a / "x.jpg") == photo_key(tmp_path / "b" / ".." / "a" / "x.jpg")
    assert photo_key(a / "x.jpg") != photo_key(b / "x.jpg")
    assert str(tmp_path).encode() not in (crops / "x_0.png").read_bytes()  # no path inside
    # each table points at its own photo's crop
    assert Path(pd.read_csv(tmp_path / "a.csv")["crop"][0]).name == "x_0.png"
    assert Path(pd.read_csv(tmp_path / "b.csv")["crop"][0]).name == "x-2_0.png"
    # reruns, in either order, write each photo's crops again under the same names
    for folder in (b, a):
        assert main(["-q", "faces", str(folder), "--crops", str(crops)]) == 0
    capsys.readouterr()
    assert list(_crops(crops)) == ["x-2_0.png", "x_0.png"]


def test_a_file_exprsim_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    """A user's own ``g_0.png`` (or a crop of an exprsim before the mark) where a crop
    goes was written over; it is kept now, and the crop takes the next name."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(sample_path("grace_hopper.jpg"), photos / "g.jpg")
    crops = tmp_path / "crops"
    crops.mkdir()
    Image.new("L", (4, 4), 77).save(crops / "g_0.png")  # no mark
    assert crop_owner(crops / "g_0.png") is None
    assert crop_owner(crops / "missing.png") is None
    (crops / "junk_0.png").write_bytes(b"not a png")
    assert crop_owner(crops / "junk_0.png") is None
    for _ in range(2):  # a rerun writes its crop again under the same name
        assert main(["-q", "faces", str(photos), "--crops", str(crops)]) == 0
        names = sorted(p.name for p in crops.iterdir())
        assert names == ["g-2_0.png", "g_0.png", "junk_0.png"]
    assert np.asarray(Image.open(crops / "g_0.png")).tolist() == [[77] * 4] * 4  # kept
    assert Image.open(crops / "g-2_0.png").size == (112, 112)
    assert crop_owner(crops / "g-2_0.png") == photo_key(photos / "g.jpg")


def test_crops_inside_the_input_folder_are_not_read_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``faces DIR --crops DIR/crops`` run three times gave 2, 4, then 6 faces, and
    ``x_0_0_0.png`` crops of crops; a user's photo standing where a crop goes (``DIR
    --crops DIR``) is kept and still read."""
    for name in ("album", "other"):
        (tmp_path / name).mkdir()
        shutil.copyfile(sample_path("grace_hopper.jpg"), tmp_path / name / "x.jpg")
        shutil.copyfile(sample_path("astronaut_eileen_collins.jpg"), tmp_path / name / "x_0.png")
    album = tmp_path / "album"
    for crops in (album / "crops", tmp_path / "other"):
        album = crops.parent if crops.name == "crops" else crops
        for _ in range(3):
            out = tmp_path / "t.csv"
            assert main(["-q", "faces", str(album), "--crops", str(crops), "-o", str(out)]) == 0
            assert len(pd.read_csv(out)) == 2, crops  # x.jpg's face and x_0.png's
        capsys.readouterr()
    crops_of_album = tmp_path / "album" / "crops"
    assert sorted(p.name for p in crops_of_album.iterdir()) == ["x_0.png", "x_0_0.png"]
    assert sorted(p.name for p in album.iterdir() if p.is_file()) == [
        "x-2_0.png",
        "x.jpg",
        "x_0.png",
        "x_0_0.png",
    ]
    photo = np.asarray(Image.open(album / "x_0.png"))
    assert photo.shape[:2] != (112, 112)  # the user's photo, not a crop


@pytest.mark.parametrize("border", ["constant", "replicate"])
@pytest.mark.parametrize("side", [32767, 40000])
def test_a_panorama_wider_than_opencv_takes_is_warped(side: int, border: str) -> None:
    """A face in a stitched panorama (a side of 32,767 px or more) failed OpenCV's remap
    assertion, in the detector's landmark stage and the aligner alike. The warp of the
    whole panorama equals OpenCV's own warp of a part of it under the limit."""
    import cv2

    from exprsim.faces.align import MAX_WARP_SIDE, warp_affine

    assert side >= MAX_WARP_SIDE
    rng = np.random.default_rng(0)
    pano = rng.integers(0, 256, (48, side, 3), dtype=np.uint8)
    angle, scale, x = 0.3, 1.7, side - 500.0  # a face near the right end, rotated, enlarged
    m = cv2.getRotationMatrix2D((x, 24.0), np.degrees(angle), scale)
    m[:, 2] += [56 - x, 56 - 24]  # its centre to the middle of a 112 px crop
    got = warp_affine(pano, m, 112, border=border)
    part0 = side - 20000  # a part under the limit that holds everything the crop reads
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ [part0, 0]
    want = cv2.warpAffine(
        np.ascontiguousarray(pano[:, part0:]), shifted, (112, 112), flags=cv2.INTER_LINEAR,
        borderMode={"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}[border],
    )  # fmt: skip
    np.testing.assert_array_equal(got, want)
    beside = m.copy()
    beside[:, 2] += 5000  # an output wholly off the image: border only, no error
    assert warp_affine(pano, beside, 16).shape == (16, 16, 3)
