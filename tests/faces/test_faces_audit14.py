"""Fourteenth robustness round, faces: crop names within the file system's limit, and a
crop that cannot be written fails its file, not the run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from exprsim.faces.pipeline import MAX_CROP_STEM_BYTES, _crop_stem, analyze_files
from exprsim.samples import sample_path


def test_long_stems_are_shortened_and_stay_apart() -> None:
    a, b = "z" * 300, "z" * 299 + "y"
    assert _crop_stem("short") == "short"
    assert len(_crop_stem(a).encode()) <= MAX_CROP_STEM_BYTES
    assert _crop_stem(a) != _crop_stem(b) and _crop_stem(a).startswith("z" * 100)
    wide = "é" * 150  # 300 bytes: cut between characters, never inside one
    assert _crop_stem(wide).startswith("é" * 95) and len(_crop_stem(wide).encode()) <= 200


def test_a_255_byte_name_gets_its_crop_and_the_table_keeps_every_file(
    tmp_path: Path, mp_detector: object
) -> None:
    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), album / "a.jpg")
    shutil.copy(sample_path("grace_hopper.jpg"), album / ("z" * 251 + ".jpg"))  # 255 bytes
    table = analyze_files([album], detector=mp_detector, crops_dir=tmp_path / "crops")
    # was: OSError "File name too long" out of the loop, and no table at all
    assert len(table.rows) == 2 and not table.errors
    assert all(Path(r["crop"]).exists() for r in table.rows)


def test_a_crop_that_cannot_be_written_fails_its_file_only(
    tmp_path: Path,
    mp_detector: object,
    album_abc: Path,
    full_disk: Callable[[Callable[[str], bool] | None], None],
) -> None:
    # b.jpg's crop (written under a temporary name first)
    full_disk(lambda path: "b_0.png" in path)
    table = analyze_files([album_abc], detector=mp_detector, crops_dir=tmp_path / "crops")
    assert sorted(Path(r["source"]).name for r in table.rows) == ["a.jpg", "c.jpg"]
    ((source, why),) = table.errors
    assert source.endswith("b.jpg") and "No space left on device" in why


@pytest.mark.parametrize("workers", [0, -1, 2.5, True])
def test_a_worker_count_that_is_not_a_whole_number_above_zero_is_refused(workers: object) -> None:
    import numpy as np

    from exprsim.errors import ExprsimError
    from exprsim.faces.stream import analyze_stream

    with pytest.raises(ExprsimError, match="workers"):  # was: clamped or cut, silently
        list(analyze_stream([np.zeros((64, 64, 3), np.uint8)], "haar", workers=workers))
