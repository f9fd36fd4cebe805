"""Seventeenth round: decoding under a memory limit, rewrites that keep a file's mode and
follow a link, long output names, odd temporaries, and Parquet tables on a full disk."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from exprsim import io as xio
from exprsim.errors import ExprsimError, ImageError


def _jpeg(path: Path) -> Path:
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(path)
    return path


class _CvError(Exception):
    """Stands in for ``cv2.error`` (same module name, same text)."""


_CvError.__module__ = "cv2"


@pytest.mark.parametrize(
    "failure",
    [MemoryError(), _CvError("OpenCV(4.11.0) ... (-4:Insufficient memory) Failed to allocate")],
)
def test_an_image_without_memory_to_decode_is_an_image_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """Audit (`ulimit -v`): one large photo's MemoryError / cv2.error ended the batch."""
    path = _jpeg(tmp_path / "big.jpg")

    def fail(*a: object, **k: object) -> None:
        raise failure

    monkeypatch.setattr(xio, "_to_rgb8", fail)
    with pytest.raises(ImageError, match=r"not enough memory to decode it \(50x40\)"):
        xio.load_image(path)
    with pytest.raises(ImageError, match="not enough memory"):
        xio.decode_image(path.read_bytes(), "big.jpg")


def test_other_failures_are_not_taken_for_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _jpeg(tmp_path / "a.jpg")

    def fail(*a: object, **k: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(xio, "_to_rgb8", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        xio.load_image(path)
    assert not xio.out_of_memory(_CvError("(-215:Assertion failed)"))


def test_a_rewrite_keeps_the_files_mode(tmp_path: Path) -> None:
    """Audit: a rewritten table or report took the umask's mode (0664 became 0644), unlike
    `>` or `sed -i`."""
    path = tmp_path / "t.csv"
    path.write_text("old\n")
    os.chmod(path, 0o664)
    xio.replace_atomically(path, lambda tmp: tmp.write_text("new\n"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o664 and path.read_text() == "new\n"
    os.chmod(path, 0o640)
    xio.write_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_rewrite_of_a_link_writes_its_target(tmp_path: Path) -> None:
    """Audit: an output that was a symbolic link became a regular file, and the file it
    pointed to kept the old content."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "r.html"
    target.write_text("old")
    link = tmp_path / "r.html"
    link.symlink_to(target)
    assert xio.replace_atomically(link, lambda tmp: tmp.write_text("new")) == link
    assert link.is_symlink() and target.read_text() == "new"


def test_a_link_to_a_device_or_to_stdout_is_written_into_not_replaced(tmp_path: Path) -> None:
    """Review: writing through a link replaced what it pointed to, `/dev/null` itself
    (as root), or the log behind `/dev/stdout >> run.log`. Streams are written into,
    appended as `>>` does."""
    # (not a link to /dev/null itself: on the code before, as root, it replaced the device)
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        xio.replace_atomically(fifo, lambda tmp: tmp.write_text("through the pipe"))
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    log = tmp_path / "run.log"
    log.write_text("earlier\n")
    proc_link = tmp_path / "fd.html"
    with log.open("a") as fh:
        proc_link.symlink_to(f"/proc/self/fd/{fh.fileno()}")
        xio.replace_atomically(proc_link, lambda tmp: tmp.write_text("report\n"))
    assert log.read_text() == "earlier\nreport\n"


def test_a_link_into_a_folder_that_takes_no_new_file_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: the temporary went beside the link's target, and a folder that takes no
    new file (the file itself writable) failed the save after the work."""
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "r.csv"
    target.write_text("old")
    link = tmp_path / "r.csv"
    link.symlink_to(target)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **k: Path(p) != target.parent and real_access(p, mode)
    )
    xio.replace_atomically(link, lambda tmp: tmp.write_text("new"))
    assert not link.is_symlink() and link.read_text() == "new" and target.read_text() == "old"


def test_table_writer_keeps_mode_and_writes_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "t.parquet"
    xio.save_table(__import__("pandas").DataFrame({"a": [0]}), target)
    os.chmod(target, 0o664)
    link = tmp_path / "t.parquet"
    link.symlink_to(target)
    with xio.TableWriter(link) as writer:
        writer.write([{"a": 1}, {"a": 2}])
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o664
    assert __import__("pandas").read_parquet(target)["a"].tolist() == [1, 2]


def test_a_long_output_name_is_written(tmp_path: Path) -> None:
    """Audit: names of 225-255 bytes failed after the work, the error naming the hidden
    temporary (whose name was longer than the file system takes)."""
    path = tmp_path / ("é" * 110 + "x" * 25 + ".html")  # 250 bytes
    assert len(os.fsencode(path.name)) == 250
    xio.replace_atomically(path, lambda tmp: tmp.write_text("ok"))
    assert path.read_text() == "ok"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    assert len(os.fsencode(xio.temp_beside(path).name)) <= xio.NAME_MAX
    assert xio.temp_pattern(path).startswith(r"\.")


def test_a_failed_rewrite_names_the_file_not_the_temporary(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "r.html"  # no such folder
    with pytest.raises(OSError) as exc:
        xio.replace_atomically(path, lambda tmp: tmp.write_text("x"))
    assert exc.value.filename == str(path)


def test_a_table_name_without_room_for_its_partial_name_is_refused_first(tmp_path: Path) -> None:
    with pytest.raises(ExprsimError, match="file name too long"):
        xio.check_table_path(tmp_path / ("t" * 245 + ".csv"))
    xio.check_table_path(tmp_path / ("t" * 200 + ".csv"))


def test_a_temporary_with_no_real_pid_is_left_alone(tmp_path: Path) -> None:
    """Audit: a name such as `.part-2147483648-x` crashed every sweep (OverflowError), the
    web server's start-up among them."""
    odd = tmp_path / ".t.csv.99999999999999999999.1.tmp"
    odd.write_text("x")
    assert xio.pid_alive(2**31) and xio.pid_alive(10**20)
    assert xio.sweep_temporaries(tmp_path, xio.temp_pattern(tmp_path / "t.csv")) == 0
    assert odd.exists()


def _no_space(*a: object, **k: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_parquet_table_cut_by_a_full_disk_leaves_no_unreadable_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Audit: the rows before the failure were kept as a Parquet file without its footer
    ("magic bytes not found"), at the output path, and the error named no table."""
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    writer = xio.TableWriter(path, chunk_rows=2)
    writer.write([{"a": 1}, {"a": 2}])
    monkeypatch.setattr(pq.ParquetWriter, "write_table", _no_space)
    with pytest.raises(OSError) as exc, writer:
        writer.write([{"a": 3}, {"a": 4}])
    assert exc.value.filename == str(path) and "cannot be kept" in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_full_disk_at_the_closing_write_leaves_no_empty_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """Audit: `with TableWriter(...)` whose rows all went out at close() on a full disk
    left a 0-byte table (or `.partial`) that nothing removed."""
    path = tmp_path / f"t{suffix}"
    real_open = open

    class Full:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> object:
            return getattr(self.fh, name)

    def full_open(file: object, mode: str = "r", *a: object, **k: object) -> object:
        fh = real_open(file, mode, *a, **k)
        return Full(fh) if "w" in mode or "a" in mode else fh

    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(OSError), xio.TableWriter(path) as writer:
        writer.write([{"a": 1}, {"a": 2}])
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
