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
