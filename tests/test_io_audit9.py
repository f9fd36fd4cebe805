"""Audit 9 (/tmp/audit9/cli.md), exprsim.io side: an interrupted table never replaces a
complete earlier one (finding 1), folders that cannot be listed are failed inputs, not
dropped (finding 3), and ``load_image`` looks at a file before reading it (finding 6).
Each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from exprsim.errors import ImageError, ImageTooLargeError
from unlistable import deny_listing

SUFFIXES = (".csv", ".jsonl", ".parquet", ".json")


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=suffix == ".jsonl")


def _earlier(path: Path, n: int = 5) -> bytes:
    from exprsim.io import save_table

    save_table([{"a": i, "b": f"old{i}"} for i in range(n)], path)
    return path.read_bytes()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_interrupted_table_goes_beside_a_complete_earlier_one(tmp_path, suffix):
    from exprsim.io import TableWriter, partial_path

    out = tmp_path / f"t{suffix}"
    before = _earlier(out)
    with pytest.raises(KeyboardInterrupt), TableWriter(out, chunk_rows=1) as w:
        w.write([{"a": 1, "b": "new"}, {"a": 2, "b": "new"}])
        raise KeyboardInterrupt
    assert out.read_bytes() == before  # was replaced by the 2 rows of the interrupted run
    assert w.saved_to == partial_path(out) == tmp_path / f"t.partial{suffix}"
    assert _read(w.saved_to)["a"].tolist() == [1, 2]
    assert not (tmp_path / f"t{suffix}.partial").exists()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_interrupted_run_with_no_row_writes_nothing(tmp_path, suffix):
    from exprsim.io import TableWriter

    out = tmp_path / f"t{suffix}"
    before = _earlier(out)
    with pytest.raises(KeyboardInterrupt), TableWriter(out, columns=["a", "b"]) as w:
        raise KeyboardInterrupt
    assert out.read_bytes() == before  # was an empty table
    assert w.saved_to is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_streamed_table_does_not_truncate_an_earlier_file_while_it_runs(tmp_path, suffix):
    from exprsim.io import TableWriter, partial_path

    out = tmp_path / f"t{suffix}"
    before = _earlier(out)
    w = TableWriter(out, chunk_rows=1)
    w.write([{"a": 7, "b": "new"}])  # flushed: a killed job keeps it...
    assert out.read_bytes() == before  # ...but not over the earlier table (was truncated)
    assert _read(partial_path(out))["a"].tolist() == [7]
    assert w.close() == out  # complete: it replaces the earlier table
    assert _read(out)["a"].tolist() == [7] and not partial_path(out).exists()


def test_an_error_after_rows_keeps_them_beside_an_earlier_table(tmp_path):
    from exprsim.io import TableWriter

    out = tmp_path / "t.parquet"
    before = _earlier(out)
    with pytest.raises(OSError), TableWriter(out, chunk_rows=1) as w:
        w.write([{"a": 1, "b": "x"}])
        raise OSError(28, "No space left on device")
    assert out.read_bytes() == before  # was replaced by the failed run's row
    assert _read(tmp_path / "t.partial.parquet")["a"].tolist() == [1]


def test_save_partial_table(tmp_path):
    from exprsim.io import save_partial_table

    out = tmp_path / "f.csv"
    assert save_partial_table(pd.DataFrame({"a": [1]}), out) == out  # nothing there: in place
    assert save_partial_table(pd.DataFrame({"a": [2]}), out) == tmp_path / "f.partial.csv"
    assert save_partial_table(pd.DataFrame({"a": []}), out) is None
    assert pd.read_csv(out)["a"].tolist() == [1]


# ------------------------------------------------------------------ folders not listed


@pytest.fixture
def locked_folder(tmp_path, monkeypatch):
    """``w/ok/a.png`` and ``w/locked/b.png``, ``w/locked`` refusing to be listed (as
    ``chmod 000`` does for a user other than root)."""
    for name in ("ok/a.png", "locked/b.png"):
        (tmp_path / "w" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "w" / name)
    deny_listing(monkeypatch, tmp_path / "w" / "locked")
    return tmp_path / "w"


def test_a_folder_that_cannot_be_listed_is_yielded_as_a_failed_input(locked_folder):
    from exprsim.io import iter_image_files, load_image

    found = list(iter_image_files([locked_folder]))
    assert found == [locked_folder / "locked", locked_folder / "ok" / "a.png"]  # was: ok only
    with pytest.raises(ImageError, match=r"folder cannot be listed \(Permission denied\)"):
        load_image(found[0])
    named = list(iter_image_files(locked_folder / "locked"))  # named itself: not dropped
    assert named == [locked_folder / "locked"]


def test_the_walk_keeps_what_rglob_found(tmp_path):
    from exprsim.io import iter_image_files

    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.JPG", "a/b/y.png", "z.png", "a/notes.txt", ".hidden.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "loop").symlink_to(tmp_path)  # a linked folder is not entered
    os.mkfifo(tmp_path / "pipe.jpg")  # skipped in a folder
    got = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    # hidden names are left out (since the sixteenth audit round: a killed writer's
    # temporary crop was read as a photo)
    assert got == sorted(got) == ["a/b/y.png", "a/x.JPG", "broken.jpg", "z.png"]


# ------------------------------------------------------------------ load_image


def test_a_device_is_refused_without_reading_it():
    from exprsim.io import load_image

    with pytest.raises(ImageError, match=r"not a regular file \(a character device\)"):
        load_image("/dev/null")  # was read ("empty file"); /dev/zero was read for ever


def test_a_named_pipe_nothing_writes_to_is_refused_not_waited_for(tmp_path, monkeypatch):
    import exprsim.io as eio

    monkeypatch.setattr(eio, "PIPE_WAIT_S", 0.5)  # the default gives a writer 10 s
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            eio.load_image(fifo)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # the old code waits in open(): give it a writer that closes at once
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(10)
        pytest.fail("load_image waited for a writer on a named pipe")
    assert len(result) == 1 and "a pipe that nothing wrote to within 0.5 s" in str(result[0])


def test_a_named_pipe_whose_writer_comes_a_moment_later_is_read(tmp_path):
    """``mkfifo p.jpg; exprsim faces p.jpg & producer > p.jpg`` (refused at once in the
    first version of the check above)."""
    import io

    from exprsim.io import load_image

    buf = io.BytesIO()
    Image.new("RGB", (10, 6), (200, 10, 10)).save(buf, format="PNG")
    fifo = tmp_path / "late.png"
    os.mkfifo(fifo)

    def produce() -> None:
        import time

        time.sleep(0.5)
        with open(fifo, "wb") as fh:
            fh.write(buf.getvalue())

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    assert load_image(fifo).shape == (6, 10, 3)
    t.join(10)


def test_a_pipe_with_a_writer_is_read(tmp_path):
    """``<(cat x.jpg)``: a pipe the shell gives as /dev/fd/N."""
    import io

    from exprsim.io import load_image

    buf = io.BytesIO()
    Image.new("RGB", (10, 6), (200, 10, 10)).save(buf, format="PNG")
    r, w = os.pipe()
    os.write(w, buf.getvalue())
    os.close(w)
    try:
        img = load_image(f"/dev/fd/{r}")
    finally:
        os.close(r)
    assert img.shape == (6, 10, 3) and tuple(img[0, 0]) == (200, 10, 10)


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path, monkeypatch):
    import exprsim.io as io_mod

    monkeypatch.setattr(io_mod, "FILE_BYTES_SLACK", 0, raising=False)
    path = tmp_path / "big.png"
    rng = np.random.default_rng(0)  # noise: a PNG larger than 80 bytes
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
    size = path.stat().st_size
    assert size > 8 * 10
    with pytest.raises(ImageTooLargeError, match=f"file too large \\({size:,} bytes; limit 80\\)"):
        io_mod.load_image(path, max_pixels=10)  # was: read whole, then refused by its pixels
    assert io_mod.file_byte_limit(10) == 80


def test_a_large_junk_file_is_refused_from_its_first_bytes(tmp_path):
    """A 1 GB file named .jpg (a video renamed, a disk image) cost 1 GB of memory."""
    big = tmp_path / "big.jpg"
    with open(big, "wb") as fh:
        fh.truncate(1 << 30)  # sparse: no disk space used
    code = (
        "import sys\n"
        "from exprsim.io import load_image\n"
        "from exprsim.errors import ImageError\n"
        "try:\n"
        "    load_image(sys.argv[1])\n"
        "except ImageError as exc:\n"
        "    print(exc.reason)\n"
        "status = open('/proc/self/status').read()\n"  # VmHWM: this program's peak only
        "print(status.split('VmHWM:')[1].split()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=120
    )
    reason, peak_kb = out.stdout.split("\n")[:2]
    assert reason == "not an image or unsupported format"
    assert int(peak_kb) < 400_000  # was 1.1 GB


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".json"])
def test_an_earlier_partial_table_is_never_overwritten(tmp_path: Path, suffix: str) -> None:
    from exprsim.io import TableWriter, save_partial_table

    def load_table(path: Path) -> pd.DataFrame:
        readers = {
            ".csv": pd.read_csv,
            ".parquet": pd.read_parquet,
            ".jsonl": lambda f: pd.read_json(f, lines=True),
            ".json": pd.read_json,
        }
        return readers[path.suffix](path)

    out = tmp_path / f"out{suffix}"
    earlier = tmp_path / f"out.partial{suffix}"
    out.write_text("complete earlier table")
    earlier.write_text("the rows an earlier interrupted run kept")
    with TableWriter(out) as w:  # a complete rerun
        w.write([{"source": "a.jpg", "face": 0}])
    assert len(load_table(out)) == 1
    assert earlier.read_text() == "the rows an earlier interrupted run kept"  # was: gone
    w = TableWriter(out)
    w.write([{"source": "b.jpg", "face": 0}])
    second = w.keep_partial()  # an interrupted rerun
    assert second == tmp_path / f"out.partial-2{suffix}" and len(load_table(second)) == 1
    assert earlier.read_text() == "the rows an earlier interrupted run kept"
    third = save_partial_table([{"source": "c.jpg", "face": 0}], out)
    assert third == tmp_path / f"out.partial-3{suffix}"
