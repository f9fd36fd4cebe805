"""Round 33: two ``exprsim demo --out D`` at once: one deleted the other's open index
("faces.db was replaced by another file ... run the command again", which failed again
while the other ran). The second is now refused at once, in one line."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from exprsim.demo import run_demo
from exprsim.errors import ExprsimError


def test_a_second_demo_into_a_busy_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    out.mkdir()
    with open(out / ".lock", "a+b") as fh:  # what a running demo holds
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(ExprsimError, match="another `exprsim demo` is writing this folder"):
            run_demo(out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written or deleted
