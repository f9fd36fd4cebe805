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
