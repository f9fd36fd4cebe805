"""Round 25 (docs/robustness.md): ``FaceIndex`` methods given something that is not a
table or a mapping answered with an ``AttributeError`` from deep inside (``'NoneType' has
no attribute 'to_pandas'``); they now say what they take, as a ``TypeError``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_bulk import embed_table

from exprsim.index.store import FaceIndex


@pytest.mark.parametrize("bad", [None, [1, 2], "faces.parquet"])
def test_add_table_says_what_it_takes(tmp_path: Path, bad: object) -> None:
    with FaceIndex(tmp_path / "faces.db") as ix:
        with pytest.raises(TypeError, match="pandas DataFrame or a table with to_pandas"):
            ix.add_table(bad)
        assert ix.add_table(embed_table(2)).files_added == 2  # a table is still taken


@pytest.mark.parametrize("bad", [None, [(1, np.zeros(128, np.float32))]])
def test_identity_descriptors_must_be_a_mapping(tmp_path: Path, bad: object) -> None:
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(embed_table(2))
        with pytest.raises(TypeError, match="mapping of face id to descriptor"):
            ix.store_identity_descriptors(bad)  # type: ignore[arg-type]
        fid = ix.records()[0].id
        ix.store_identity_descriptors({fid: np.ones(128, np.float32)})
        assert ix.identity_descriptors([fid])[fid].shape == (128,)


def test_prune_forgets_only_files_that_are_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file behind a folder made unreadable a moment (permission denied; a stale NFS
    handle, an I/O error) was "no longer there" for ``index add --prune``, which forgot
    it with its labels and tags."""
    import errno
    import os

    photos = tmp_path / "p"
    for sub in ("2019", "2020", "2021"):
        (photos / sub).mkdir(parents=True)
        (photos / sub / "x.jpg").write_bytes(b"x")
    table = embed_table(3)
    table["source"] = [str(photos / s / "x.jpg") for s in ("2019", "2020", "2021")]
    with FaceIndex(tmp_path / "faces.db") as ix:
        ix.add_table(table)
        (photos / "2020" / "x.jpg").unlink()  # gone
        real = os.lstat

        def lstat(path, *args, **kwargs):
            if "2019" in str(path):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            if "2021" in str(path):
                raise OSError(errno.EIO, "Input/output error", str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "lstat", lstat)
        missing = ix.missing_under([photos])
        monkeypatch.undo()
    assert missing == [str((photos / "2020" / "x.jpg").resolve())]


def test_a_shard_folder_that_cannot_be_listed_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``index add --from-parquet DIR``: an unreadable subfolder's shards were skipped
    (rglob swallows PermissionError) and the load said "1 file added", exit 0."""
    import errno
    import os

    from exprsim.errors import ExprsimError
    from exprsim.scale.parquet import parquet_shards

    for sub in ("a", "b", "b/c"):
        (tmp_path / "pq" / sub).mkdir(parents=True, exist_ok=True)
        embed_table(1, seed=len(sub)).to_parquet(tmp_path / "pq" / sub / "s.parquet")
    (tmp_path / "pq" / "b" / ".hidden.parquet").write_bytes(b"")
    assert parquet_shards(tmp_path / "pq") == [
        tmp_path / "pq" / "a" / "s.parquet",
        tmp_path / "pq" / "b" / "c" / "s.parquet",
        tmp_path / "pq" / "b" / "s.parquet",
    ]
    real = os.scandir

    def scandir(path="."):
        if str(path).endswith(os.sep + "b"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ExprsimError, match=r"pq/b: cannot list this folder \(Permission denied\)"):
        parquet_shards(tmp_path / "pq")


def test_a_named_pipe_as_the_database_is_called_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was "no such database" (index info, search, tag list, video --tags) or "disk I/O
    error: is its disk full or failing?" (index add, serve)."""
    import os

    from exprsim.cli import main
    from exprsim.errors import IndexDatabaseError

    fifo = tmp_path / "faces.db"
    os.mkfifo(fifo)
    with pytest.raises(IndexDatabaseError, match="is a named pipe, not a database file"):
        FaceIndex(fifo)
    for argv in (["index", "info", "--db", str(fifo)], ["tag", "list", "--db", str(fifo)]):
        assert main(argv) == 2
        assert "is a named pipe, not a database file" in capsys.readouterr().err, argv
