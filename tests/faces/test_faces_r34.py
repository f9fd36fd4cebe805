"""Round 34: ``faces --crops NEW`` over a folder holding an earlier run's crops folder read
those crops as photos (each face twice in the table, and the crops of crops written into
``NEW``). Marked crops found inside an input folder are left out; crops named as files, or
in a folder named as an input, are read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from exprsim.cli import main
from exprsim.faces.pipeline import crop_owner
from exprsim.samples import sample_path


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """A folder of two photos and, inside it, the crops folder of a first run."""
    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        shutil.copy(sample_path(name), folder / name)
    assert main(["-q", "faces", str(folder), "--crops", str(folder / "crops")]) == 0
    assert len(list((folder / "crops").glob("*.png"))) == 2
    return folder


def _faces(tmp_path: Path, *argv: str) -> pd.DataFrame:
    out = tmp_path / "t.csv"
    assert main(["-q", "faces", *argv, "-o", str(out)]) == 0
    return pd.read_csv(out)


def test_an_earlier_runs_crops_inside_the_input_are_left_out(
    tmp_path: Path, album: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO"):
        table = _faces(tmp_path, str(album), "--crops", str(tmp_path / "new"))
    assert sorted(Path(f).name for f in table["source"]) == [
        "astronaut_eileen_collins.jpg",
        "grace_hopper.jpg",
    ]  # was: the two crops as photos too
    assert len(list((tmp_path / "new").glob("*.png"))) == 2
    assert "2 crops written by an earlier exprsim run left out" in caplog.text


def test_crops_named_or_in_a_named_folder_are_read(tmp_path: Path, album: Path) -> None:
    crops = album / "crops"
    table = _faces(tmp_path, str(crops), "--crops", str(tmp_path / "new"))
    assert sorted(Path(f).name for f in table["source"]) == sorted(p.name for p in crops.iterdir())
    one = next(crops.glob("grace*.png"))
    table = _faces(tmp_path, str(album), str(one), "--crops", str(tmp_path / "new2"))
    assert sorted(Path(f).name for f in table["source"]) == sorted(
        ["astronaut_eileen_collins.jpg", "grace_hopper.jpg", one.name]
    )


def test_without_crops_every_image_is_read(tmp_path: Path, album: Path) -> None:
    assert len(_faces(tmp_path, str(album))) == 4  # the user's files, as before


def test_a_crops_folder_named_with_a_tilde_is_read(
    tmp_path: Path, album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a folder named ``~/...`` (quoted, or from a list) is read from the home
    folder, but the rule compared its unexpanded name: the named crops were left out."""
    monkeypatch.setenv("HOME", str(album.parent))
    monkeypatch.chdir(tmp_path)
    table = _faces(tmp_path, "~/album/crops", "--crops", str(tmp_path / "new"))
    assert len(table) == 2  # was: 0 files, 0 faces


def test_each_walk_warning_is_said_once(
    tmp_path: Path, album: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Review: the CLI walked each input folder twice (its own expansion, then the
    pipeline's), and each walk's warning was said twice."""
    (album / "raw.cr2").write_bytes(b"raw")
    with caplog.at_level("INFO"):
        _faces(tmp_path, str(album), "--crops", str(tmp_path / "new"))
    said = [r.getMessage() for r in caplog.records if "RAW" in r.getMessage()]
    assert len(said) == 1, said


def test_crops_of_an_exprsim_before_the_mark_are_not_read_again(
    tmp_path: Path, album: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Audit of older files: crops written before the mark (2026-12-04) were read as photos
    by every `faces album --crops album/crops` (4 files for 2 photos, crops of crops), and
    the new crops were named `x-2_0.png` beside them without a word."""
    from PIL import Image

    crops = album / "crops"
    for p in crops.glob("*.png"):  # as an exprsim before the mark wrote them
        Image.open(p).convert("RGB").save(p)
    assert all(crop_owner(p) is None for p in crops.glob("*.png"))
    with caplog.at_level("INFO"):
        table = _faces(tmp_path, str(album), "--crops", str(crops))
    assert sorted(Path(f).name for f in table["source"]) == [
        "astronaut_eileen_collins.jpg",
        "grace_hopper.jpg",
    ]  # was: the 2 old crops too
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 2, said
    assert said[0].startswith("2 PNG files named as crops are (NAME_0.png) in the crops folder")
    assert "2 file(s) in" in said[1] and "carry no exprsim mark" in said[1]
    assert len(list(crops.glob("*-2_0.png"))) == 2  # the old crops are kept
    table = _faces(tmp_path, str(crops), "--crops", str(tmp_path / "other"))
    assert len(table) == 4  # the crops folder named: every crop in it is read


def test_photos_of_the_users_in_the_crops_folder_are_still_read(
    tmp_path: Path, album: Path
) -> None:
    """Review: every PNG of the crops folder was left out, the user's own photos too."""
    from PIL import Image

    portraits = album / "portraits"
    portraits.mkdir()
    Image.open(sample_path("grace_hopper.jpg")).save(portraits / "mum.png")
    table = _faces(tmp_path, str(album), "--crops", str(portraits))
    assert "mum.png" in {Path(f).name for f in table["source"]}
