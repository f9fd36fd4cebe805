"""Twenty-third robustness round, the CLI: a disk that fills in mid-command names the
command to run again, not always `index add`."""

from __future__ import annotations

import sqlite3

import pytest

from exprsim.cli import _sqlite_message, build_parser


def _disk_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("disk I/O error")  # SQLite's word for EFBIG, EIO
    exc.sqlite_errorcode = 10  # type: ignore[attr-defined]  # SQLITE_IOERR
    return exc


@pytest.mark.parametrize(
    ("argv", "again"),
    [
        (["tag", "add", "calm", "a.jpg", "--db", "f.db"], "`exprsim tag add` again"),
        (["tag", "a.jpg", "--db", "f.db", "--index"], "`exprsim tag` again"),
        (["index", "reembed", "--db", "f.db"], "`exprsim index reembed` again"),
        (["index", "add", "a.jpg", "--db", "f.db"], "`exprsim index add` again"),
    ],
)
def test_a_full_disk_names_the_command_to_run_again(argv: list[str], again: str) -> None:
    """Audit: `tag add` cut by a full disk (the first references stored, the next not)
    said "(`index add` again goes on from there)". (`index add`'s own hint was right; it
    only gains the word `exprsim`, so that case fails on the old code by wording alone.)"""
    text = _sqlite_message(_disk_error(), build_parser().parse_args(argv))
    assert text == (
        "f.db: its disk is full or failing (disk I/O error); what was stored before the "
        f"error stays ({again} goes on from there)"
    )
