"""Round 35 (time): job folders stamped while the clock ran ahead.

``job.json``'s age already allowed for a clock set back (``_CLOCK_SLACK_S``); a half-made
job folder, or a job of an exprsim before the job locks, stamped a year ahead was taken
as being made or run right now: left on disk, its job answered 404, and a warning at
every start, until that date.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from exprsim.web import jobs


def _stamp(folder: Path, when: float) -> None:
    for p in (folder, *folder.rglob("*")):
        os.utime(p, (when, when))


def _old_job_and_half_made(root: Path, when: float) -> tuple[Path, Path]:
    """A job of an exprsim before the job locks (its upload, no .active), and a half-made
    job folder, both stamped ``when``."""
    job = root / "0123456789abcdef"
    (job / "input").mkdir(parents=True)
    (job / "input" / "clip.mp4").write_bytes(b"\0" * 100)
    half = root / ".new-fedcba9876543210"
    half.mkdir()
    _stamp(job, when)
    _stamp(half, when)
    return job, half


def test_jobs_stamped_ahead_of_the_clock_are_recovered(tmp_path: Path) -> None:
    job, half = _old_job_and_half_made(tmp_path, time.time() + 365 * 86400)
    assert jobs.VideoJobs(None, tmp_path).recover() == 1
    assert json.loads((job / "job.json").read_text())["status"] == "failed"
    assert not half.exists()


def test_jobs_changed_just_now_are_still_left_alone(tmp_path: Path) -> None:
    """A folder being made, or an earlier exprsim's job running, now (within the clock's
    slack: a file system's time may be a little ahead) is left as it is."""
    job, half = _old_job_and_half_made(tmp_path, time.time() + 30)
    assert jobs.VideoJobs(None, tmp_path).recover() == 0
    assert half.exists() and not (job / "job.json").exists()


@pytest.mark.parametrize(
    ("record", "status", "said"),
    [
        ({"status": "running"}, "failed", "status 'running'"),
        ({"name": "clip.mp4"}, "failed", "no status"),
        ({"status": "done", "error": None, "total": "many", "done": None}, "done", ""),
    ],
)
def test_a_record_of_another_writer_is_read_as_finished(
    tmp_path: Path, record: dict, status: str, said: str
) -> None:
    """`{"status": "running"}` was running for ever (polled for ever), a record without a
    status "no such job", `"error": null` shown as "None", `"total": "many"` passed on."""
    job = tmp_path / "0123456789abcdef"
    job.mkdir()
    (job / "job.json").write_text(json.dumps(record))
    got = jobs.VideoJobs(None, tmp_path).get(job.name)
    assert got is not None and got.status == status
    assert said in got.error and "None" not in got.error
    assert got.total is None and got.done == 0
