"""Round 34 (web security audit): a web video job analysed the whole video, however long:
a 25 MB upload can hold two hours of video (2 hours of CPU and 2.5 GB of memory for one
job, 8 of them queued). A job now analyses the first ``max_video_minutes`` (10 by
default) and its report says where it stopped."""

from __future__ import annotations

import json
import time

import pytest

from exprsim.web import ServeConfig


def _finished(c, job: dict) -> dict:
    deadline = time.time() + 240
    while job["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.3)
        job = c.get(f"/api/jobs/{job['id']}").json()
    return job


@pytest.mark.slow
def test_a_video_job_stops_at_the_servers_limit(make_client, tmp_path) -> None:
    from exprsim.samples import sample_dir

    c = make_client(max_video_minutes=0.01)  # 0.6 s: 3 frames at the default 5 per second
    clip = (sample_dir() / "langer_clip.mp4").read_bytes()  # 5 s
    job = _finished(c, c.post("/api/videos", files={"file": ("c.mp4", clip, "video/mp4")}).json())
    assert job["status"] == "done", job
    assert job["summary"]["frames"] == 3 and job["total"] == 3  # was: every frame of the clip
    doc = json.loads(next((tmp_path / "faces.db.web").rglob("analysis.json")).read_text())
    said = [w for w in doc["warnings"] if "--max-video-minutes" in w]
    assert said == [
        "only the first 0.01 minutes were analysed (the server's limit: exprsim serve "
        "--max-video-minutes)"
    ]
    # the report (the client's file and tag names) is sandboxed: no script, no request
    report = c.get(job["report"])
    assert report.status_code == 200 and "<script" not in report.text
    policy = report.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "default-src 'none'" in policy


def test_the_limit_is_checked_and_matches_the_cli_default() -> None:
    from exprsim.cli import build_parser

    assert ServeConfig(db="x.db").max_video_minutes == 10.0
    args = build_parser().parse_args(["serve", "--db", "x.db"])
    assert args.max_video_minutes == ServeConfig(db="x.db").max_video_minutes
    assert ServeConfig(db="x.db", max_video_minutes=None).max_video_minutes is None
    for bad in (0, -1.0, float("nan"), "10"):
        with pytest.raises(Exception, match="max_video_minutes"):
            ServeConfig(db="x.db", max_video_minutes=bad)
