"""Video job folders over a server's life: jobs a stopped server left unfinished are marked
failed (not a 404 and an upload kept for good), and ``keep_videos_days`` deletes old ones."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

JOB = "0123456789abcdef"


def _orphan(root: Path, job_id: str = JOB, name: str = "holiday.mp4") -> Path:
    """A job folder as a server killed mid-job leaves it: the upload, its lock file
    (unlocked), no ``job.json``."""
    (root / job_id / "input").mkdir(parents=True)
    (root / job_id / "input" / name).write_bytes(b"\0" * 1000)
    (root / job_id / ".active").touch()
    return root / job_id


def _finished(root: Path, job_id: str, days_ago: float) -> Path:
    out = root / job_id
    out.mkdir(parents=True)
    (out / "report.html").write_text("<!DOCTYPE html>")
    job = {"id": job_id, "name": "a.mp4", "status": "done", "summary": {}}
    (out / "job.json").write_text(json.dumps(job))
    then = time.time() - days_ago * 86400
    os.utime(out / "job.json", (then, then))
    return out


def test_a_job_left_unfinished_by_a_stopped_server_is_failed_not_lost(make_client, tmp_path):
    import subprocess
    import sys

    videos = tmp_path / "faces.db.web" / "videos"
    out = _orphan(videos)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a report its killed server was saving
    (out / f".exprsim-partial-{child.pid}-abc").mkdir()
    c = make_client()
    job = c.get(f"/api/jobs/{JOB}")
    assert job.status_code == 200  # was: 404 "no such job", the upload kept for good
    job = job.json()
    assert job["status"] == "failed" and "server stopped" in job["error"]
    assert job["name"] == "holiday.mp4" and job["report"] is None
    assert not (out / "input").exists() and not (out / ".active").exists()
    assert sorted(p.name for p in out.iterdir()) == ["job.json"]
    assert make_client().get(f"/api/jobs/{JOB}").json() == job  # and after another restart


def test_a_job_another_server_runs_is_left_alone(tmp_path):
    import fcntl

    from exprsim.web.jobs import ACTIVE, VideoJobs

    out = _orphan(tmp_path)
    with open(out / ACTIVE, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # that server's lock
        assert VideoJobs(None, tmp_path).recover() == 0
        assert not (out / "job.json").exists() and (out / "input" / "holiday.mp4").exists()
    assert VideoJobs(None, tmp_path).recover() == 1  # that server is gone
    assert json.loads((out / "job.json").read_text())["status"] == "failed"


def test_a_live_job_holds_its_lock_until_it_ends(make_client, tmp_path, monkeypatch):
    import exprsim.video.pipeline as pipeline
    from exprsim.video import VideoError
    from exprsim.web.jobs import VideoJobs

    release, started = threading.Event(), threading.Event()

    def slow(*a, **k):
        started.set()
        release.wait(30)
        raise VideoError("stopped by the test")

    monkeypatch.setattr(pipeline, "analyze_video", slow)
    c = make_client()
    clip = ("a.mp4", b"\0\0\0\x18ftypisom" + b"x" * 100, "video/mp4")
    job_id = c.post("/api/videos", files={"file": clip}).json()["id"]
    assert started.wait(30)
    videos = tmp_path / "faces.db.web" / "videos"
    assert VideoJobs(None, videos).recover() == 0  # a second server starting meanwhile
    assert make_client().get(f"/api/jobs/{job_id}").status_code == 404  # not failed by it
    release.set()
    deadline = time.time() + 30
    while c.get(f"/api/jobs/{job_id}").json()["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert "stopped by the test" in c.get(f"/api/jobs/{job_id}").json()["error"]
    deadline = time.time() + 10
    while (videos / job_id / ".active").exists():  # removed just after job.json is written
        assert time.time() < deadline
        time.sleep(0.05)
    assert [p.name for p in videos.iterdir()] == [job_id]  # no temporary folder left


def test_finished_jobs_older_than_keep_videos_days_are_deleted(make_client, tmp_path):
    videos = tmp_path / "faces.db.web" / "videos"
    old = _finished(videos, "a" * 16, days_ago=3)
    new = _finished(videos, "b" * 16, days_ago=1)
    c = make_client(keep_videos_days=2)  # at start-up
    assert not old.exists() and new.exists()
    assert c.get(f"/api/jobs/{'a' * 16}").status_code == 404
    assert c.get(f"/api/jobs/{'b' * 16}").json()["status"] == "done"
    assert c.get(f"/api/videos/{'b' * 16}/report").status_code == 200
    kept = _finished(videos, "c" * 16, days_ago=30)
    make_client()  # without keep_videos_days: kept for good
    assert kept.exists()


def test_a_job_that_expires_while_the_server_runs_is_gone_when_asked_for(tmp_path):
    from exprsim.web.jobs import VideoJobs

    jobs = VideoJobs(None, tmp_path, keep_days=2)
    out = _finished(tmp_path, "d" * 16, days_ago=1)
    assert jobs.get("d" * 16) is not None
    then = time.time() - 3 * 86400
    os.utime(out / "job.json", (then, then))
    assert jobs.get("d" * 16) is None and not out.exists()
    assert jobs.prune() == 0


@pytest.mark.parametrize("bad", [0, -1.0])
def test_keep_days_must_be_positive(tmp_path, bad):
    from exprsim.web.jobs import VideoJobs

    with pytest.raises(ValueError, match="keep_days"):
        VideoJobs(None, tmp_path, keep_days=bad)


def test_serve_refuses_a_bad_keep_videos(tmp_path, capsys):
    from exprsim.cli import main

    for bad in ("0", "-3", "soon"):
        with pytest.raises(SystemExit) as exc:
            main(["serve", "--db", str(tmp_path / "x.db"), "--keep-videos", bad])
        assert exc.value.code == 2
        assert "--keep-videos" in capsys.readouterr().err


def test_serve_passes_keep_videos_to_the_app(tmp_path, monkeypatch):
    import exprsim.web
    from exprsim.cli import main

    seen = []

    class Stop(Exception):
        pass

    def fake_create_app(config):
        seen.append(config)
        raise Stop

    monkeypatch.setattr(exprsim.web, "create_app", fake_create_app)
    db = str(tmp_path / "x.db")
    with pytest.raises(Stop):
        main(["serve", "--db", db, "--port", "0", "--keep-videos", "7.5"])
    with pytest.raises(Stop):
        main(["serve", "--db", db, "--port", "0"])
    assert [c.keep_videos_days for c in seen] == [7.5, None]


def _full() -> OSError:
    import errno

    return OSError(errno.ENOSPC, "No space left on device")


def test_a_video_whose_job_folder_cannot_be_made_is_507_and_leaves_nothing(
    make_client, tmp_path, monkeypatch
):
    """Audit: out of inodes, the upload answered 500 with a traceback, and the uploaded
    video stayed in uploads/ for good."""
    import exprsim.web.jobs as jobs

    def no_room(out_dir):
        raise _full()

    monkeypatch.setattr(jobs, "_new_job_folder", no_room)
    c = make_client()
    clip = ("a.mp4", b"\0\0\0\x18ftypisom" + b"x" * 100, "video/mp4")
    r = c.post("/api/videos", files={"file": clip})
    assert r.status_code == 507 and "full" in r.json()["error"]
    web = tmp_path / "faces.db.web"
    assert not [p for p in web.rglob("*") if p.is_file()]


def test_a_half_made_job_folder_is_swept_and_a_failed_make_leaves_none(tmp_path, monkeypatch):
    from exprsim.web import jobs

    half = tmp_path / f".new-{JOB}"
    (half / "input").mkdir(parents=True)
    old = time.time() - 2 * jobs._HALF_MADE_GRACE_S  # younger, it may be being made
    os.utime(half, (old, old))
    jobs.VideoJobs(None, tmp_path).recover()
    assert not half.exists()  # a server stopped between mkdir and rename left it

    def no_lock_file(*a, **k):
        raise _full()

    monkeypatch.setattr(jobs, "open", no_lock_file, raising=False)
    with pytest.raises(OSError):
        jobs._new_job_folder(tmp_path / JOB)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_the_outcome_is_written_leaves_no_empty_job_json(
    make_client, tmp_path, monkeypatch
):
    """Audit: job.json was left at 0 bytes; after a restart the finished job answered 404
    "no such job" for good. Now nothing is written, and a restart reads the job as cut
    short."""
    import exprsim.io
    import exprsim.video.pipeline as pipeline
    from exprsim.video import VideoError

    def fails(*a, **k):
        raise VideoError("not a video")

    def full_disk(doc):
        raise _full()

    monkeypatch.setattr(pipeline, "analyze_video", fails)
    monkeypatch.setattr(exprsim.io, "json_text", full_disk)
    c = make_client()
    clip = ("a.mp4", b"\0\0\0\x18ftypisom" + b"x" * 100, "video/mp4")
    job_id = c.post("/api/videos", files={"file": clip}).json()["id"]
    out = tmp_path / "faces.db.web" / "videos" / job_id
    deadline = time.time() + 30
    while (out / ".active").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    assert not (out / "job.json").exists()
    assert [p.name for p in out.iterdir()] == []  # no temporary file left either
    monkeypatch.undo()
    again = make_client().get(f"/api/jobs/{job_id}")
    assert again.status_code == 200 and "server stopped" in again.json()["error"]


def test_a_full_disk_during_a_job_says_so(make_client, monkeypatch):
    import exprsim.video.pipeline as pipeline

    def full(*a, **k):
        raise _full()

    monkeypatch.setattr(pipeline, "analyze_video", full)
    c = make_client()
    clip = ("a.mp4", b"\0\0\0\x18ftypisom" + b"x" * 100, "video/mp4")
    job_id = c.post("/api/videos", files={"file": clip}).json()["id"]
    deadline = time.time() + 30
    while (job := c.get(f"/api/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert job["error"] == "the server's disk is full (No space left on device)"  # was:
    # "internal error (OSError)", with a traceback in the log


def test_an_index_write_on_a_full_disk_is_507(make_client, photo, monkeypatch):
    import sqlite3

    from exprsim.index.store import FaceIndex

    def full(*a, **k):
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = 13  # type: ignore[attr-defined]
        raise exc

    monkeypatch.setattr(FaceIndex, "add", full)
    r = make_client().post("/api/index", files={"file": photo()})
    assert r.status_code == 507, r.text  # was: 500 "internal error (OperationalError)"
    assert r.json()["error"] == "the server's disk is full; nothing was stored"


def test_a_job_json_dated_ahead_expires_counting_from_now(tmp_path):
    from exprsim.web.jobs import VideoJobs

    out = _finished(tmp_path, "e" * 16, days_ago=-365)  # written while the clock ran ahead
    jobs = VideoJobs(None, tmp_path, keep_days=7)
    assert jobs.prune() == 0 and out.exists()
    assert abs((out / "job.json").stat().st_mtime - time.time()) < 60  # its age starts now
    then = time.time() - 8 * 86400
    os.utime(out / "job.json", (then, then))
    assert jobs.prune() == 1 and not out.exists()
