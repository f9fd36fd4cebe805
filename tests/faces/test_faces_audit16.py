"""Sixteenth audit round, faces: a crop a killed run was writing is swept by the next run
and never read as a photo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_crops_temporary_is_swept_and_never_read_as_a_photo(
    tmp_path: Path, mp_detector: object
) -> None:
    """Audit: `faces --crops` killed mid-write left `.p10_0_0.png.<pid>.<tid>.png` in the crops
    folder for good, and `index add crops/` then stored 171 faces for 170 crops."""
    import shutil

    from exprsim.faces.pipeline import analyze_files
    from exprsim.io import iter_image_files
    from exprsim.samples import sample_path

    crops = tmp_path / "crops"
    crops.mkdir()
    grace = tmp_path / "in" / "grace.jpg"
    grace.parent.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), grace)
    left = crops / f".grace_0.png.{_dead_pid()}.140000000000001.tmp"
    shutil.copy(grace, left)
    older = crops / f".grace_0.png.{_dead_pid()}.140000000000001.png"  # an earlier naming
    shutil.copy(grace, older)
    assert list(iter_image_files(crops)) == []  # hidden names are not walked into
    analyze_files([grace], detector=mp_detector, crops_dir=crops)
    assert sorted(p.name for p in crops.iterdir()) == sorted(["grace_0.png", older.name])
