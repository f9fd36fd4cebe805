"""Round 27 (docs/robustness.md): 405 answers, the login form's faults, ``filename*=``."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

AUTH = {"authorization": "Bearer s"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/api/tags", "GET, HEAD, POST"),  # was "GET, HEAD": the first route's only
        ("put", "/login", "GET, HEAD, POST"),  # was "GET, HEAD"
        ("delete", "/api/search", "POST"),
        ("post", "/", "GET, HEAD"),
        ("patch", "/api/tags/x", "DELETE"),
    ],
)
def test_a_405_names_every_method_of_the_path(make_client, method, path, allow) -> None:
    client = make_client(token="s")
    resp = getattr(client, method)(path, headers=AUTH)
    assert resp.status_code == 405
    assert resp.headers["allow"] == allow
    for other in allow.split(", "):  # each one named is taken (not a 405)
        assert client.request(other, path, headers=AUTH).status_code != 405


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"token=%ff%fe", "application/x-www-form-urlencoded"),
        (b"token=\xff", "application/x-www-form-urlencoded"),
        (
            b'--B\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\xfe\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
        ),
    ],
)
def test_a_login_that_is_not_utf8_gets_the_login_page(make_client, body, kind) -> None:
    client = make_client(token="s")
    resp = client.post("/login", content=body, headers={"content-type": kind})
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("text/html")  # was JSON, in a browser
    assert "<form method='post' action='/login'>" in resp.text
    assert "UTF-8" in resp.text or "utf-8" in resp.text


def test_a_file_named_only_by_filename_star_is_told_so(make_client, photo) -> None:
    client = make_client()
    data = photo()[1]
    body = (
        b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a.jpg\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--B--\r\n"
    )
    resp = client.post(
        "/api/faces", content=body, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert resp.status_code == 422
    assert "filename*=" in resp.json()["error"]  # was "send the photo ... named `file`"
    both = body.replace(b"filename*=", b'filename="a.jpg"; filename*=')
    ok = client.post(
        "/api/faces", content=both, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("fails", [False, True])
def test_a_video_job_is_shown_finished_only_once_its_outcome_is_on_disk(
    tmp_path, monkeypatch, fails
) -> None:
    import dataclasses
    import time

    import exprsim.video.pipeline as pipeline
    from exprsim.video import VideoError
    from exprsim.web import jobs

    @dataclasses.dataclass
    class _Analysis:
        warnings: tuple = ()
        faces: tuple = ()
        n_sampled: int = 3
        n_persons: int = 0

        def save(self, out_dir) -> None:
            (out_dir / "report.html").write_text("report")

    def analyze(*args, **kwargs):
        if fails:
            raise VideoError("not a video")
        return _Analysis()

    monkeypatch.setattr(pipeline, "analyze_video", analyze)
    real = jobs._write_outcome
    seen: list[str] = []

    def slow_write(outcome) -> None:
        time.sleep(0.2)
        seen.append(runner.get(outcome.id).status)  # what a client polling now is told
        real(outcome)

    monkeypatch.setattr(jobs, "_write_outcome", slow_write)
    runner = jobs.VideoJobs(None, tmp_path / "videos")
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"x")
    job = runner.submit(source, "clip.mp4")
    deadline = time.monotonic() + 10
    while runner.get(job.id).status not in jobs.FINISHED and time.monotonic() < deadline:
        time.sleep(0.01)
    got = runner.get(job.id)
    assert got.status == ("failed" if fails else "done")
    assert seen == ["running"]  # was the final status: before job.json was there
    assert (job.out_dir / "job.json").is_file()
    restarted = jobs.VideoJobs(None, tmp_path / "videos").get(job.id)
    assert restarted is not None and restarted.status == got.status
