"""Fifteenth robustness round, faces: a disk that fills never spoils what an earlier run
wrote (crops, tables)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pandas as pd
import pytest

from exprsim.faces.pipeline import FaceTable, analyze_files
from exprsim.samples import sample_path


def test_a_crop_the_disk_cannot_hold_leaves_the_earlier_crop_whole(
    tmp_path: Path, mp_detector: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: on a full disk, `faces --crops` overwrote every earlier crop of the same name
    with a cut PNG (9 of 9 unreadable)."""
    from PIL import Image

    album = tmp_path / "album"
    album.mkdir()
    shutil.copy(sample_path("grace_hopper.jpg"), album / "a.jpg")
    crops = tmp_path / "crops"
    analyze_files([album], detector=mp_detector, crops_dir=crops)
    (crop,) = crops.iterdir()
    before = crop.read_bytes()

    def full_disk(self: Image.Image, fp: object, *args: object, **kw: object) -> None:
        with open(fp, "wb") as fh:  # type: ignore[arg-type]
            fh.write(b"\x89PNG\r\n")  # a start, then no room
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    table = analyze_files([album], detector=mp_detector, crops_dir=crops)
    assert not table.rows and "No space left on device" in table.errors[0][1]
    monkeypatch.undo()
    assert [p.name for p in crops.iterdir()] == [crop.name]  # no temporary file left
    assert crop.read_bytes() == before
    Image.open(crop).load()


def test_a_table_the_disk_cannot_hold_leaves_the_earlier_table_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: `classify`, `summarize`, `search` and `tag calibrate -o` (and
    FaceTable.save) wrote over the earlier table in place: a full disk left a cut one."""
    import exprsim.io
    from exprsim.cli.apps_cmd import _write_table

    out = tmp_path / "t.csv"
    old = pd.DataFrame({"source": ["a.jpg", "b.jpg"], "face": [0, 0]})
    old.to_csv(out, index=False)
    before = out.read_bytes()
    real = exprsim.io.save_table

    def full_disk(table: object, path: object) -> Path:
        Path(str(path)).write_text("source,fa")  # a start, then no room
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exprsim.io, "save_table", full_disk)
    new = pd.DataFrame({"source": ["c.jpg"] * 5, "face": range(5)})
    for write in (lambda: _write_table(new, str(out)), lambda: FaceTable(rows=[{}]).save(out)):
        with pytest.raises(OSError):
            write()
        assert out.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    monkeypatch.setattr(exprsim.io, "save_table", real)
    _write_table(new, str(out))
    assert pd.read_csv(out)["source"].tolist() == ["c.jpg"] * 5
