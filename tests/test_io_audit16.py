"""Sixteenth audit round: what a process killed hard (SIGKILL, a power cut) left behind is
removed by the next run, and never read as input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_tables_temporary_is_swept_by_the_next_write(tmp_path: Path) -> None:
    """Audit: `summarize -o` / `classify -o` killed while writing left `.t.csv.<pid>.<tid>.csv`
    for good; complete reruns kept it."""
    import os

    from exprsim.io import replace_table

    dead = tmp_path / f".t.csv.{_dead_pid()}.140000000000001.csv"
    live = tmp_path / f".t.csv.{os.getpid()}.140000000000002.csv"  # a writer still at work
    other = tmp_path / ".t.csv.notes"  # not a temporary of ours
    for f in (dead, live, other):
        f.write_text("source,fa")
    replace_table(pd.DataFrame({"source": ["a.jpg"]}), tmp_path / "t.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.csv", live.name, other.name])


def test_a_killed_video_reports_partial_folder_is_swept(tmp_path: Path) -> None:
    import re

    from exprsim.io import sweep_temporaries
    from exprsim.video.pipeline import PARTIAL_REPORT

    dead = tmp_path / f".exprsim-partial-{_dead_pid()}-abc123_x"
    (dead / "sub").mkdir(parents=True)
    (dead / "faces.csv").write_text("x")
    mine = tmp_path / ".exprsim-partial-1-abc"  # pid 1 runs (init): kept
    mine.mkdir()
    assert sweep_temporaries(tmp_path, PARTIAL_REPORT) == 1
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]
    assert re.fullmatch(PARTIAL_REPORT, ".exprsim-partial-4242-k2j_9s1")  # mkdtemp's names


def test_a_killed_servers_half_stored_upload_is_swept_at_start_up(
    tmp_path: Path, random_model_dir: Path
) -> None:
    """Audit: a 22 MB `uploads/.part-*` of a killed server survived every restart."""
    import pytest

    pytest.importorskip("fastapi")
    from exprsim.models.embedder import load_model
    from exprsim.web import ServeConfig, create_app

    uploads = tmp_path / "faces.db.web" / "uploads"
    uploads.mkdir(parents=True)
    part = uploads / f".part-{_dead_pid()}-0123456789abcdef"
    part.write_bytes(b"\0" * 1000)
    create_app(
        ServeConfig(db=str(tmp_path / "faces.db")), embedder=load_model(str(random_model_dir))
    )
    assert not part.exists()
