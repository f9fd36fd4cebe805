"""Twenty-third robustness round, FEC: a disk that fills while `fec crop` writes a shard,
or refuses the manifest, is said as such."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from exprsim.errors import DataError
from exprsim.fec.fetch import database_errors
from file_limit import run_with_file_limit


def test_a_shard_cut_by_a_full_disk_says_so(tmp_path: Path) -> None:
    """Audit: `fec crop` on a disk that filled said "shard-00000.npy: 225792 requested
    and 99872 written" (numpy's words, no errno); the shard itself was already left out
    (guard: no file, no temporary)."""
    code = """
        from pathlib import Path
        import numpy as np
        from exprsim.fec.crops import _write_npy_atomic
        try:
            _write_npy_atomic(Path("shard-00000.npy"), np.zeros((4, 32, 32, 3), np.uint8))
        except OSError as exc:
            print(exc.filename, exc.strerror, sep="|")
        """
    proc = run_with_file_limit(code, 10000, tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    name, why = proc.stdout.strip().split("|")
    assert name == "shard-00000.npy"
    assert re.fullmatch(r"cut short, is the disk full\? \(\d+ requested and \d+ written\)", why)
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_the_disk_refuses_is_said_to_be_the_disks() -> None:
    """Audit: a manifest SQLite could not write ("disk I/O error": a full disk, or a file
    past its size limit) gave "cannot use this FEC image manifest: disk I/O error", with
    no word of the disk."""
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = 10  # type: ignore[attr-defined]  # SQLITE_IOERR
    with pytest.raises(DataError) as caught, database_errors("m.sqlite", "manifest", "hint"):
        raise exc
    assert str(caught.value) == (
        "m.sqlite: cannot use this manifest: disk I/O error (is its disk full or failing? "
        "free some space and run it again)"
    )
