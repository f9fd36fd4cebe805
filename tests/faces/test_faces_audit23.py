"""Twenty-third robustness round, faces: crops that a full disk refused fail the command
(exit 1, one line saying so), and the files are not counted as unreadable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from exprsim.cli import main


def test_crops_a_full_disk_refused_fail_the_command(
    tmp_path: Path,
    album_abc: Path,
    full_disk: Callable[[Callable[[str], bool] | None], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Audit: `faces --crops` on a disk that filled after the first crops exited 0 (a
    script went on without the crops) and counted the files "unreadable"."""
    full_disk(lambda path: "a_0.png" not in path)  # the disk fills after a.jpg's crop
    crops, table = tmp_path / "crops", tmp_path / "faces.csv"
    argv = ["faces", str(album_abc), "--crops", str(crops), "-o", str(table)]
    assert main(argv) == 1  # was: 0
    err = capsys.readouterr().err
    assert "0 unreadable, 2 without their crops" in err  # was: "2 unreadable"
    assert err.strip().splitlines()[-1] == (
        "exprsim faces: error: the crops of 2 files could not be written (see above); "
        "free some space and run the command again"
    )
    assert [p.name for p in crops.iterdir()] == ["a_0.png"]  # no temporary left
    full_disk(None)  # room again: the rerun completes
    assert main(["-q", *argv]) == 0
    assert sorted(p.name for p in crops.iterdir()) == ["a_0.png", "b_0.png", "c_0.png"]
