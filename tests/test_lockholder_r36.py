"""Round 36 (an audit of every deletion): a `.lock` file of the user's own in an output
folder was emptied by exprsim's folder lock and deleted by a training run's lock; it is
left as it is (the lock still works), while exprsim's own lock files keep their notes."""

from __future__ import annotations

from pathlib import Path

from exprsim.errors import ExprsimError
from exprsim.io import FOLDER_LOCK, folder_lock
from exprsim.lockholder import holds_a_note
from exprsim.training.run import LOCK_NAME, run_lock

MINE = "my notes: do not lose\nsecond line\n"


def test_a_users_lock_file_is_neither_emptied_nor_removed(tmp_path: Path) -> None:
    (tmp_path / FOLDER_LOCK).write_text(MINE)
    with folder_lock(tmp_path, ExprsimError, "output folder"):
        assert (tmp_path / FOLDER_LOCK).read_text() == MINE
    assert (tmp_path / FOLDER_LOCK).read_text() == MINE
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_text(MINE)
    with run_lock(run):
        pass
    assert (run / LOCK_NAME).read_text() == MINE


def test_exprsims_own_lock_files_carry_the_note_and_go(tmp_path: Path) -> None:
    with folder_lock(tmp_path, ExprsimError, "output folder"):
        note = (tmp_path / FOLDER_LOCK).read_text()
        assert note.split(" ", 1)[0].isdigit()
        with open(tmp_path / FOLDER_LOCK, "rb") as fh:
            assert holds_a_note(fh)
    run = tmp_path / "run"
    with run_lock(run):
        assert (run / LOCK_NAME).read_text().split(" ", 1)[0].isdigit()
    assert not (run / LOCK_NAME).exists()


def test_a_note_of_a_command_with_a_line_break_is_one_line_and_goes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["exprsim", "index", "add", "/photos/holiday\nshots\u2028"])
    with folder_lock(tmp_path, ExprsimError, "output folder"):
        note = (tmp_path / FOLDER_LOCK).read_text()
        assert note.count("\n") == 1 and note.endswith("holiday?shots?\n")
    assert (tmp_path / FOLDER_LOCK).read_text() == ""
