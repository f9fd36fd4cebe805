"""Sixteenth audit round, the web app's answers: a tag reference keeps the photo's name, a
video's warnings never name the server's files, validation errors name the parameter."""

from __future__ import annotations

import time

import pytest


def test_a_tag_reference_from_an_upload_keeps_the_photos_name(make_client, photo) -> None:
    """Audit: tags added from the Tags page were stored with the source `<array>`."""
    c = make_client()
    r = c.post("/api/tags", data={"name": "calm", "face": "0"}, files={"file": photo()})
    assert r.status_code == 200, r.text
    (ref,) = c.get("/api/tags").json()["references"]
    assert ref["name"] == "calm" and ref["source"] == "grace_hopper.jpg"


@pytest.mark.slow
def test_a_truncated_videos_warnings_name_the_clients_file(make_client, tmp_path) -> None:
    """Audit: the report of a truncated upload said "Partial result: /srv/.../input/x.mp4:
    stream ends at ..." (the server's path)."""
    from exprsim.samples import sample_dir

    data = (sample_dir() / "langer_clip.mp4").read_bytes()
    c = make_client()
    clip = ("cut.mp4", data[: int(len(data) * 0.4)], "video/mp4")
    job_id = c.post("/api/videos", files={"file": clip}).json()["id"]
    deadline = time.time() + 240
    while (job := c.get(f"/api/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.time() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "done", job
    report = c.get(job["report"]).text
    assert "cut.mp4" in report and "stream ends" in report
    assert str(tmp_path) not in report and "/input/" not in report


def test_a_bad_parameter_is_named_as_the_page_knows_it(make_client) -> None:
    r = make_client().get("/api/summary?n=0")
    assert r.status_code == 422 and r.json()["error"].startswith("n: ")  # was "query.n: ..."
