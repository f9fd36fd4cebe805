"""Round 26 (docs/robustness.md): the files `faces` writes."""

from __future__ import annotations

import os
import shutil

import pandas as pd

from exprsim.cli import main
from exprsim.samples import sample_path


def test_a_crops_folder_whose_name_is_not_utf8_gives_a_table(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), photos / "grace.jpg")
    crops = os.fsdecode(bytes(tmp_path) + b"/cr\xe9")
    out = tmp_path / "t.csv"
    # was: the crops written, then a UnicodeEncodeError traceback and no table
    assert main(["faces", str(photos), "-o", str(out), "--crops", crops, "-q"]) == 0
    (crop,) = pd.read_csv(out)["crop"]
    assert crop.endswith("cr\\xe9/grace_0.png")
    assert os.path.isfile(os.path.join(crops, "grace_0.png"))


def test_a_crop_name_is_claimed_at_once_so_a_second_run_takes_another(tmp_path):
    from exprsim.faces.pipeline import _free_stem, _taken, photo_key

    taken_a = lambda name: _taken(tmp_path, photo_key("/a/x.jpg"), 2, name)  # noqa: E731
    taken_b = lambda name: _taken(tmp_path, photo_key("/b/x.jpg"), 2, name)  # noqa: E731
    # run A chose "x" and has not written its crops yet; run B, at that moment, looks
    assert _free_stem("x", set(), taken_a) == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_0.png", "x_1.png"]  # claimed
    assert _free_stem("x", set(), taken_b) == "x-2"  # was "x": B wrote over A's crops


def test_claims_of_a_name_given_up_are_removed(tmp_path):
    from exprsim.faces.pipeline import _taken, photo_key

    (tmp_path / "x_1.png").write_bytes(b"the user's own file")
    assert _taken(tmp_path, photo_key("/a/x.jpg"), 2, "x")  # x_1 is not ours
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x_1.png"]  # no claim of x_0 left
