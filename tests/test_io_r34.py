"""Round 34: an output for ``/dev/stdout`` (or a FIFO) is staged in the temporary folder;
a full ``TMPDIR`` was reported as "/dev/stdout: No space left on device"."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from exprsim.io import replace_atomically, write_together


def _full(tmp: Path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(tmp))


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_full_staging_folder_is_named_for_a_stream(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    with pytest.raises(OSError) as err:
        replace_atomically(fifo, _full)
    assert err.value.errno == errno.ENOSPC
    assert str(staging) in err.value.filename  # was: the FIFO's own name
    assert "temporary folder" in err.value.filename and str(fifo) in err.value.filename
    assert list(staging.iterdir()) == []


def test_a_regular_file_is_still_named_itself(tmp_path: Path) -> None:
    with pytest.raises(OSError) as err:
        replace_atomically(tmp_path / "out.html", _full)
    assert err.value.filename == str(tmp_path / "out.html")


def test_write_together_names_the_staging_folder_of_a_stream(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # cannot stage there
    with pytest.raises(OSError) as err:
        write_together([(fifo, b"x")])
    assert err.value.errno == errno.ENOENT
    assert err.value.filename.startswith(f"{tmp_path / 'gone'} (the temporary folder")


# A table with a column that holds no value (`label` of an index without labels) was
# written with that column typed `null` in Parquet: a folder holding it beside a table
# with labels could not be read as one dataset ("Unsupported cast from string to null").


def test_a_column_without_values_is_typed_by_its_name_in_parquet(tmp_path: Path) -> None:
    import pandas as pd

    from exprsim.io import save_table

    empty = {"label": None, "identity_distance": None, "rank": None, "quality_ok": None}
    full = {"label": "x", "identity_distance": 0.5, "rank": 2, "quality_ok": True}
    save_table([{"source": "a.jpg", "face": 0, **empty}], tmp_path / "s" / "a.parquet")
    save_table([{"source": "b.jpg", "face": 1, **full}], tmp_path / "s" / "b.parquet")
    both = pd.read_parquet(tmp_path / "s").sort_values("source")  # was: ArrowNotImplementedError
    assert both["label"].tolist()[1] == "x" and pd.isna(both["label"].tolist()[0])
    assert both["rank"].tolist()[1] == 2 and both["quality_ok"].tolist()[1]
    alone = pd.read_parquet(tmp_path / "s" / "a.parquet")
    assert alone["label"].isna().all() and alone["identity_distance"].dtype == "float64"
    # pandas' own missing values (review: pd.NA made the writer fail)
    odd = {"label": pd.NA, "identity_distance": pd.NA, "rank": pd.NA, "quality_ok": None}
    save_table([{"source": "c.jpg", "face": 2, **odd}], tmp_path / "s" / "c.parquet")
    assert len(pd.read_parquet(tmp_path / "s")) == 3
