"""Round 27 (docs/robustness.md): the FER+ folder as users have it: rows out of step, a
stale or damaged cache, files pandas cannot read, both a .gz and a .csv, bad labels."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pytest
from test_fer import _write

from exprsim.data.fer import load_fer_table
from exprsim.errors import DataError


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _put(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_votes_out_of_step_with_the_provenance_are_refused(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer")
    new = folder / "fer2013new.csv"
    lines = _lines(new)
    # two Training vote rows swapped (or one dropped and another repeated): the same
    # count and Usage pattern
    lines[1], lines[2] = lines[2], lines[1]
    _put(new, lines)
    with pytest.raises(DataError, match=r"name another FER\+ image at data row 1"):
        load_fer_table(folder, cache=False)  # was: loaded, every later vote one row off


def test_a_provenance_of_another_usage_is_refused(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer")
    prov = folder / "fer2013_provenance.csv"
    lines = _lines(prov)
    lines[1] = lines[1].replace("Training", "PublicTest", 1)
    _put(prov, lines)
    with pytest.raises(DataError, match=r"disagree on Usage at data row 1 \('Training' against"):
        load_fer_table(folder, cache=False)  # was: never compared


def test_a_file_rewritten_with_its_old_size_time_and_inode_is_parsed_again(tmp_path, cache):
    folder = _write(tmp_path / "fer")
    new = folder / "fer2013new.csv"
    assert load_fer_table(folder).votes[0, 1] == 9
    before = os.stat(new)
    text = new.read_text().replace(",0,9,1,", ",0,8,2,", 1)
    with open(new, "r+") as fh:  # in place: the inode stays (as cp -p over it)
        fh.write(text)
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(new)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino,
    )  # fmt: skip
    assert load_fer_table(folder).votes[0, 1] == 8  # was: 9, the stale parse


@pytest.mark.parametrize("damage", ["half", "empty", "folder"])
def test_a_damaged_cache_entry_is_parsed_again(tmp_path, cache, damage, caplog) -> None:
    folder = _write(tmp_path / "fer")
    want = load_fer_table(folder)
    (entry,) = cache.glob("fer-*.npz")
    if damage == "half":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "empty":
        entry.write_bytes(b"")
    else:
        entry.unlink()
        entry.mkdir()
    with caplog.at_level(logging.WARNING):
        got = load_fer_table(folder)  # was: BadZipFile, EOFError, IsADirectoryError
    assert got == want
    assert damage == "folder" or "damaged parsed FER table" in caplog.text


@pytest.mark.parametrize(
    "content, said",
    [
        (b"", "an empty file"),
        ("Usage,x\n".encode("utf-16"), "not UTF-8 text"),
        (b"Usage,a,b\nx,1,2\ny,1,2,3,4\n", "not a CSV file as expected"),
    ],
)
def test_a_file_pandas_cannot_read_is_one_line_naming_it(tmp_path, cache, content, said):
    folder = _write(tmp_path / "fer")
    (folder / "fer2013new.csv").write_bytes(content)
    with pytest.raises(DataError, match=said) as info:
        load_fer_table(folder, cache=False)  # was pandas' EmptyDataError, UnicodeDecodeError
    assert "fer2013new.csv" in str(info.value)


def test_a_damaged_gzip_file_is_named(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer", gz=True)
    path = folder / "fer2013new.csv.gz"
    path.write_bytes(path.read_bytes()[:-20])  # cut short
    with pytest.raises(DataError, match=r"fer2013new.csv.gz: a damaged gzip file"):
        load_fer_table(folder, cache=False)  # was EOFError
    path.write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match=r"fer2013new.csv.gz: cannot be read"):
        load_fer_table(folder, cache=False)  # was "Not a gzipped file", no file named


def test_both_a_gz_and_a_csv_say_which_is_read(tmp_path, cache, caplog) -> None:
    folder = _write(tmp_path / "fer", gz=True)
    _write(tmp_path / "plain")
    (tmp_path / "plain" / "fer2013new.csv").rename(folder / "fer2013new.csv")
    with caplog.at_level(logging.WARNING):
        load_fer_table(folder, cache=False)
    assert "both fer2013new.csv.gz and fer2013new.csv; reading fer2013new.csv.gz" in caplog.text


@pytest.mark.parametrize("value", ["happy", "7", "-1", "3.5", ""])
def test_an_emotion_that_is_not_a_label_is_named(tmp_path, cache, value) -> None:
    folder = _write(tmp_path / "fer")
    fer = folder / "fer2013.csv"
    lines = _lines(fer)
    lines[2] = value + lines[2][lines[2].index(",") :]
    _put(fer, lines)
    with pytest.raises(DataError, match=r"data row 2: emotion .* is not a whole number 0 to 6"):
        load_fer_table(folder, cache=False)  # was a ValueError, or taken as it was


def test_a_pixel_that_is_not_a_number_names_its_row_and_file(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer", gz=True)
    path = folder / "fer2013.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    label, pixels, usage = lines[3].split(",")
    lines[3] = ",".join([label, pixels.replace(" ", " abc ", 1), usage])
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DataError, match=r"fer2013.csv.gz: data row 3: pixel value 'abc'"):
        load_fer_table(folder, cache=False)


def test_unknown_usage_values_are_said_and_spaces_around_one_are_not_a_mismatch(
    tmp_path, cache, caplog
) -> None:
    folder = _write(tmp_path / "fer")
    want = load_fer_table(folder, cache=False)
    fer = folder / "fer2013.csv"
    lines = _lines(fer)
    lines[1] = lines[1] + " "  # "Training " (an editor's trailing space)
    _put(fer, lines)
    assert load_fer_table(folder, cache=False) == want  # was: "rows are not aligned"
    for stem in ("fer2013", "fer2013new", "fer2013_provenance"):
        path = folder / f"{stem}.csv"
        _put(path, [line.replace("PublicTest", "Validation") for line in _lines(path)])
    with caplog.at_level(logging.WARNING):
        table = load_fer_table(folder, cache=False)
    assert "rows of an unknown Usage are left out: 'Validation' x" in caplog.text
    assert "Validation" in set(table.usage)


def test_a_semicolon_file_says_what_header_it_read(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer")
    new = folder / "fer2013new.csv"
    _put(new, [line.replace(",", ";") for line in _lines(new)])
    with pytest.raises(DataError, match=r"separated by ';'\? save it comma-separated"):
        load_fer_table(folder, cache=False)


def test_a_file_given_as_the_folder_is_said_so(tmp_path, cache) -> None:
    folder = _write(tmp_path / "fer")
    with pytest.raises(DataError, match="a file; --data-dir takes the folder"):
        load_fer_table(folder / "fer2013.csv", cache=False)
    (folder / "fer2013new.csv").unlink()
    os.symlink(folder / "gone.csv", folder / "fer2013new.csv")
    with pytest.raises(DataError, match=r"fer2013new.csv: a broken link"):
        load_fer_table(folder, cache=False)
