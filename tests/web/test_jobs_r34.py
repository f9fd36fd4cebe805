"""Round 34 (files of older versions): a video job folder an exprsim before ``job.json``
(2026-12-01) finished (a whole report, no upload, no lock) was marked failed at the next
start ("the server stopped before this job ended"), over a complete report. It is
recorded done, with the summary its ``analysis.json`` gives."""

from __future__ import annotations

import json
from pathlib import Path

from exprsim.web.jobs import INTERRUPTED, VideoJobs


def _old_job(videos: Path, name: str, report: bool = True) -> Path:
    out = videos / name
    out.mkdir(parents=True)
    doc = {"frames_sampled": 25, "faces_accepted": 20, "persons": [{"person": 0}]}
    (out / "analysis.json").write_text(json.dumps(doc))
    if report:
        (out / "report.html").write_text("<!DOCTYPE html><p>report</p>")
    return out


def test_a_job_finished_before_job_json_is_recorded_done(tmp_path: Path) -> None:
    out = _old_job(tmp_path, "0123456789abcdef")
    jobs = VideoJobs(None, tmp_path)
    assert jobs.recover() == 0  # was 1: marked failed
    job = jobs.get("0123456789abcdef")
    assert job is not None and job.status == "done" and job.error != INTERRUPTED
    assert job.summary == {"frames": 25, "faces": 20, "persons": 1}
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_a_job_without_its_report_is_still_marked_failed(tmp_path: Path) -> None:
    _old_job(tmp_path, "fedcba9876543210", report=False)
    jobs = VideoJobs(None, tmp_path)
    assert jobs.recover() == 1
    job = jobs.get("fedcba9876543210")
    assert job is not None and job.status == "failed" and job.error == INTERRUPTED
