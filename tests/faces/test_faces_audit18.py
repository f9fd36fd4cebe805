"""Eighteenth audit round, faces: the crop temporary of a long name (shortened to a digest
by exprsim.io.temp_beside) that a killed run left is swept by the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_long_crops_temporary_is_swept(tmp_path: Path, mp_detector: object) -> None:
    """Before: CROP_TEMPORARY wanted ``.png`` before the pid, and the shortened name ends in
    ``~<digest>``, so such a temporary stayed in the crops folder for good."""
    from exprsim.faces.pipeline import analyze_files
    from exprsim.io import temp_beside
    from exprsim.samples import sample_path

    photo = tmp_path / "in" / ("portrait-" + "x" * 200 + ".jpg")
    photo.parent.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), photo)
    crops = tmp_path / "crops"
    analyze_files([photo], detector=mp_detector, crops_dir=crops)
    (crop,) = crops.iterdir()
    mine = temp_beside(crop).name
    assert f".{os.getpid()}." in mine and not mine.startswith(f".{crop.name}.")  # shortened
    left = crops / mine.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    shutil.copy(crop, left)
    analyze_files([photo], detector=mp_detector, crops_dir=crops)
    assert [p.name for p in crops.iterdir()] == [crop.name]
