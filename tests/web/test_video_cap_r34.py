"""Round 34 (web security audit): a web video job analysed the whole video, however long:
a 25 MB upload can hold two hours of video (2 hours of CPU and 2.5 GB of memory for one
job, 8 of them queued). A job now analyses the first ``max_video_minutes`` (10 by
default) and its report says where it stopped."""

from __future__ import annotations

import json

import pytest

from exprsim.web import ServeConfig

from .test_web_audit13 import _run_job


@pytest.mark.slow
def test_a_video_job_stops_at_the_servers_limit(make_client, tmp_path) -> None:
    from exprsim.samples import sample_dir

    c = make_client(max_video_minutes=0.01)  # 0.6 s: 3 frames at the default 5 per second
    clip = (sample_dir() / "langer_clip.mp4").read_bytes()  # 5 s
    job = _run_job(c, clip, seconds=240)
    assert job["status"] == "done", job
    assert job["summary"]["frames"] == 3 and job["total"] == 3  # was: every frame of the clip
    doc = json.loads(next((tmp_path / "faces.db.web").rglob("analysis.json")).read_text())
    said = [w for w in doc["warnings"] if "--max-video-minutes" in w]
    assert said == [
        "analysis stopped after 3 sampled frames (1 s of video): the server analyses at "
        "most 0.01 minutes at the default rate (exprsim serve --max-video-minutes)"
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


def test_a_video_that_ends_at_the_cap_gets_no_warning() -> None:
    """Review: a video of exactly the cap's length was said to be cut."""
    from types import SimpleNamespace

    from exprsim.web.jobs import _cap_warning

    def analysis(n: int, duration: float) -> SimpleNamespace:
        return SimpleNamespace(
            n_sampled=n, sample_period=0.2, info=SimpleNamespace(duration=duration)
        )

    assert _cap_warning(analysis(3000, 600.0), 3000, 10.0) == ()  # ended there
    assert _cap_warning(analysis(2999, 900.0), 3000, 10.0) == ()  # below the cap
    assert len(_cap_warning(analysis(3000, 900.0), 3000, 10.0)) == 1
    assert len(_cap_warning(analysis(3000, float("nan")), 3000, 10.0)) == 1  # unknown
    assert _cap_warning(analysis(3000, 900.0), None, None) == ()
