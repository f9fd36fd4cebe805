"""Round 25 (docs/robustness.md), the FER loader: a pixel row one value short and a later
one one long made the total right and shifted every image between them by a pixel; the
parse cache, keyed on the size and whole seconds, kept serving a same-size edit made in
the same second (or a file restored with its old time); missing columns raised KeyError;
a shorter provenance file, NumPy's broadcast error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_fer import _write

from exprsim.data.fer import load_fer_table
from exprsim.errors import DataError


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _edit(path: Path, line: int, edit) -> None:
    lines = path.read_text().splitlines()
    lines[line] = edit(lines[line])
    path.write_text("\n".join(lines) + "\n")


def test_a_pixel_row_of_the_wrong_length_is_named(tmp_path: Path, cache: Path) -> None:
    folder = _write(tmp_path / "fer")
    fer = folder / "fer2013.csv"
    _edit(fer, 2, lambda s: s.replace(" 255 ", " ", 1))  # data row 2: 2303 values
    _edit(fer, 4, lambda s: s.replace(",40 ", ",40 40 ", 1))  # data row 4: 2305
    with pytest.raises(DataError, match="data row 2 has 2303 pixel values, not 2304"):
        load_fer_table(folder, cache=False)  # was: loaded, rows 2-3 shifted by a pixel


def test_the_cache_sees_a_same_size_edit_in_the_same_second(tmp_path: Path, cache: Path) -> None:
    folder = _write(tmp_path / "fer")
    new = folder / "fer2013new.csv"
    before = os.stat(new)
    assert load_fer_table(folder).votes[0, 1] == 9
    _edit(new, 1, lambda s: s.replace(",0,9,1,", ",0,8,2,", 1))  # same size
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns + 1000))  # the same second
    assert os.stat(new).st_size == before.st_size
    assert int(os.stat(new).st_mtime) == int(before.st_mtime)
    assert load_fer_table(folder).votes[0, 1] == 8  # was: 9, the stale parse


@pytest.mark.parametrize(
    "stem, column", [("fer2013", "pixels"), ("fer2013", "Usage"), ("fer2013new", "Usage")]
)
def test_a_missing_column_is_named(tmp_path: Path, cache: Path, stem: str, column: str) -> None:
    folder = _write(tmp_path / "fer")
    _edit(folder / f"{stem}.csv", 0, lambda s: s.replace(column, "x" + column, 1))
    with pytest.raises(DataError, match=rf"{stem}.csv: missing columns \['{column}'\]"):
        load_fer_table(folder, cache=False)  # was: KeyError


def test_a_short_provenance_file_is_named(tmp_path: Path, cache: Path) -> None:
    folder = _write(tmp_path / "fer")
    prov = folder / "fer2013_provenance.csv"
    prov.write_text("\n".join(prov.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(DataError, match=r"fer2013_provenance\.csv has 5"):
        load_fer_table(folder, cache=False)
    assert np.asarray(load_fer_table(_write(tmp_path / "ok")).images).shape == (7, 48, 48)
