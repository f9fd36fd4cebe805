"""Fifteenth robustness round, embed tables: a file's identity is the file's own, whatever
its name and kind, and whole numbers keep every digit."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pandas as pd
import pytest
from stub_embedder import write_images

from exprsim.apps.embed import FILE_COLUMNS, embed_files, file_identity
from exprsim.io import TableWriter


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_the_identity_of_a_named_pipe_is_empty_and_does_not_wait(tmp_path) -> None:
    """Audit: `exprsim embed` of a named pipe hung for good after embedding it: hashing
    opened the pipe again and waited for a writer that never came."""
    fifo = tmp_path / "p.jpg"
    os.mkfifo(fifo)
    got: list[dict] = []
    worker = threading.Thread(target=lambda: got.append(file_identity(str(fifo))), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # let it go before failing
        with open(fifo, "wb"):
            pass
        worker.join(10)
        pytest.fail("file_identity waited for a writer to the pipe")
    assert got == [dict.fromkeys(FILE_COLUMNS)]


def test_a_name_with_a_control_character_gets_its_files_identity(stub, tmp_path) -> None:
    """Audit: the identity was looked up under the escaped name (`new\\nline.png`), so such
    a file had none, and that one empty row rounded every other file's `mtime_ns`."""
    (a, b) = write_images(tmp_path / "imgs", 2)
    odd = tmp_path / "imgs" / "new\nline.png"
    shutil.copy(a, odd)
    table = embed_files([tmp_path / "imgs"], stub)
    frame = table.to_frame()
    assert len(frame) == 3
    assert frame["source"].str.contains(r"new\nline", regex=False).sum() == 1  # escaped name
    assert sorted(frame["size"].tolist()) == sorted(p.stat().st_size for p in (a, b, odd))
    assert sorted(frame["mtime_ns"].tolist()) == sorted(p.stat().st_mtime_ns for p in (a, b, odd))


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".json"])
def test_whole_numbers_keep_every_digit_beside_missing_cells(tmp_path, suffix) -> None:
    big = 1_796_199_645_398_617_631  # a file's mtime_ns: past 2**53, lost in a float64
    rows = [{"name": "a", "n": big}, {"name": "b", "n": None}, {"name": "c", "n": 3}]
    writer = TableWriter(tmp_path / f"t{suffix}")
    writer.write(rows)
    path = writer.close()
    if suffix == ".parquet":
        got = pd.read_parquet(path)["n"].tolist()
    elif suffix == ".csv":
        got = pd.read_csv(path, dtype={"n": "Int64"})["n"].tolist()
    elif suffix == ".jsonl":
        got = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    else:
        got = [r["n"] for r in json.loads(path.read_text())]
    assert [None if pd.isna(v) else int(v) for v in got] == [big, None, 3]


class _FillsUp:
    """A text file on a disk with ``room`` characters left: the write that does not fit
    writes what fits, then fails as a full disk does."""

    def __init__(self, real: object, room: int) -> None:
        self.real, self.room = real, room

    def write(self, text: str) -> int:
        if len(text) > self.room:
            self.real.write(text[: self.room])  # type: ignore[attr-defined]
            self.real.flush()  # type: ignore[attr-defined]
            self.room = 0
            raise OSError(28, "No space left on device")
        self.room -= len(text)
        return self.real.write(text)  # type: ignore[attr-defined,no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_table_cut_by_a_full_disk_keeps_whole_rows_and_names_itself(
    tmp_path, monkeypatch, suffix
) -> None:
    """Audit: `embed -o t.csv` on a disk that filled kept a table whose last row was cut
    mid-number (pandas read e0=0.1 and NaNs), and the error named no file."""
    import builtins

    import exprsim.io

    def fills_up(*args, **kw):
        return _FillsUp(builtins.open(*args, **kw), room=200)

    monkeypatch.setattr(exprsim.io, "open", fills_up, raising=False)
    rows = [{"source": f"photo_{i}.jpg", "e0": 0.123456789 * i} for i in range(40)]
    path = tmp_path / f"t{suffix}"
    with pytest.raises(OSError) as err, TableWriter(path, chunk_rows=2) as writer:
        for i in range(0, 40, 2):
            writer.write(rows[i : i + 2])
    assert err.value.filename == str(path) and err.value.errno == 28
    if suffix == ".csv":
        kept = pd.read_csv(path).to_dict("records")
    elif suffix == ".jsonl":
        kept = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        kept = json.loads(path.read_text())
    assert 2 <= len(kept) < 40 and len(kept) % 2 == 0  # whole chunks, no cut row
    assert kept == rows[: len(kept)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
