"""Twenty-third robustness round, the demo: one cut short by a full disk leaves a
``faces.db`` that holds nothing, and running it again once there is room completes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from exprsim.demo import check_demo_index
from exprsim.errors import ExprsimError
from file_limit import cache_env, run_with_file_limit


def test_an_index_that_holds_nothing_may_be_replaced(tmp_path: Path) -> None:
    """Audit: `exprsim demo` on a disk that filled as it made faces.db left the file with
    SQLite's header and no table; every later demo into the folder was refused ("holds an
    index of other photos (1 files, e.g. (not an exprsim index))")."""
    db = tmp_path / "faces.db"
    sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").fetchall()  # header, no table
    check_demo_index(db)  # was: ExprsimError


def test_another_programs_database_is_refused_in_words_that_fit(tmp_path: Path) -> None:
    """Audit: a database that is not an index was said to be "an index of other photos
    (1 files, e.g. (not an exprsim index))"; it is still refused (guard), now said so."""
    db = tmp_path / "faces.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (text)")
    before = db.read_bytes()
    with pytest.raises(ExprsimError) as caught:
        check_demo_index(db)
    assert str(caught.value) == (
        f"{db} is not an exprsim index (no such table: files); the demo would replace it: "
        "use another --out"
    )
    assert db.read_bytes() == before


@pytest.mark.slow  # two demos: ~15 s
def test_a_demo_cut_by_a_full_disk_completes_when_run_again(tmp_path: Path) -> None:
    """Audit: the scenario end to end (a file-size limit stands for the full disk)."""
    out = tmp_path / "demo"
    code = """
        from exprsim.cli import main
        sys.exit(main(["-q", "demo", "--out", sys.argv[1]]))
        """
    # matplotlib's font cache is built with room, not cut
    cut = run_with_file_limit(
        code,
        30000,
        tmp_path,
        args=[str(out)],
        before="import matplotlib.font_manager\n",
        timeout=300,
    )
    assert cut.returncode == 2 and len(cut.stderr.strip().splitlines()) == 1, cut.stderr
    again = subprocess.run(
        [sys.executable, "-m", "exprsim", "-q", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=cache_env(tmp_path),
    )
    assert again.returncode == 0, again.stderr  # was: 2, "holds an index of other photos"
    assert (out / "index.html").is_file()
