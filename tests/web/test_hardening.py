"""The web app against hostile or careless clients: memory, duplicates, other sites, names,
queues, limits (the fourth robustness round, docs/robustness.md)."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_pixel_limit_is_judged_before_decoding(make_client, monkeypatch):
    from PIL import ImageFile

    # 16-bit, 3000 x 3000: a few KB of PNG, 9 M pixels once decoded
    data = _png(np.full((3000, 3000), 1000, np.uint16))
    assert len(data) < 100_000
    decoded: list[int] = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        decoded.append(self.size[0] * self.size[1])
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    c = make_client(max_pixels=1_000_000)
    r = c.post("/api/faces", files={"file": ("bomb.png", data, "image/png")})
    assert r.status_code == 413 and "pixels" in r.json()["error"]
    assert decoded == []  # refused from the header: no pixel was decoded


@pytest.mark.slow
def test_same_photo_twice_is_indexed_once_under_its_own_name(make_client, photo, tmp_path):
    c = make_client()
    first = c.post("/api/index", files={"file": photo()}).json()
    assert first["added_faces"] == 1 and first["file"] == "grace_hopper.jpg"
    # the same bytes under another name: one copy, one face
    again = c.post("/api/index", files={"file": ("copy of grace.jpg", photo()[1], "image/jpeg")})
    assert again.status_code == 200 and again.json()["added_faces"] == 0, again.text
    assert c.get("/api/health").json()["faces"] == 1
    stored = [p for p in (tmp_path / "faces.db.web" / "uploads").iterdir()]
    assert len(stored) == 1 and stored[0].name.endswith("-grace_hopper.jpg")
    query = photo("astronaut_eileen_collins.jpg")  # another photo: its own is left out
    hits = c.post("/api/search?k=1", files={"file": query}).json()["hits"]
    assert hits[0]["file"] == "grace_hopper.jpg"  # the client's name, not a random one


def _wait(c, job_id: str) -> dict:
    deadline = time.time() + 60
    job = c.get(f"/api/jobs/{job_id}").json()
    while job["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.05)
        job = c.get(f"/api/jobs/{job_id}").json()
    return job


def test_failed_video_job_names_no_server_path_and_keeps_nothing(make_client, tmp_path):
    c = make_client()
    junk = b"\0\0\0\x18ftypisom" + bytes(range(256)) * 40
    job = c.post("/api/videos", files={"file": ("holiday.mp4", junk, "video/mp4")}).json()
    assert job["name"] == "holiday.mp4"
    job = _wait(c, job["id"])
    assert job["status"] == "failed" and "holiday.mp4" in job["error"], job
    web = tmp_path / "faces.db.web"
    assert str(web) not in job["error"] and "/" not in job["error"].split(":")[0]
    # the upload is gone; the outcome stays on disk
    assert not list(web.rglob("*.mp4")) and not list(web.rglob("*.vid"))
    assert (web / "videos" / job["id"] / "job.json").is_file()
    # a restarted server still answers for it
    c2 = make_client()
    assert c2.get(f"/api/jobs/{job['id']}").json()["status"] == "failed"
    assert c2.get("/api/jobs/..").status_code == 404
    assert c2.get("/api/jobs/0123456789abcdef").status_code == 404


def test_video_queue_is_bounded(make_client, tmp_path, monkeypatch):
    import exprsim.video.pipeline as pipeline
    from exprsim.video import VideoError

    release = threading.Event()

    def slow(*a, **k):
        release.wait(30)
        raise VideoError("stopped by the test")

    monkeypatch.setattr(pipeline, "analyze_video", slow)
    c = make_client(max_queued_videos=1)
    clip = ("a.mp4", b"\0\0\0\x18ftypisom" + b"x" * 100, "video/mp4")
    first = c.post("/api/videos", files={"file": clip})
    assert first.status_code == 200
    second = c.post("/api/videos", files={"file": clip})
    assert second.status_code == 429 and "queued" in second.json()["error"]
    assert second.headers["retry-after"] == "30"
    uploads = tmp_path / "faces.db.web" / "uploads"
    assert not [p for p in uploads.iterdir() if p.suffix == ".vid"]  # the refused one is deleted
    release.set()
    assert _wait(c, first.json()["id"])["status"] == "failed"
    again = c.post("/api/videos", files={"file": clip})  # room again
    assert again.status_code == 200


def test_sniff_reads_still_iso_images_and_netpbm():
    from exprsim.web.uploads import sniff

    assert sniff(b"\0\0\0\x1cftypavif\0\0\0\0") == "image"
    assert sniff(b"\0\0\0\x18ftypheic\0\0\0\0") == "image"
    assert sniff(b"\0\0\0\x18ftypisom\0\0\0\0") == "video"
    assert sniff(b"P6\n4 4\n255\n") == "image" and sniff(b"P5 4 4 255 ") == "image"
    assert sniff(b"Plain text") is None and sniff(b"P7\n") is None


def test_safe_and_display_names():
    from exprsim.web.uploads import display_name, safe_name

    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\photos\\été 2024.jpg") == "été 2024.jpg"
    assert safe_name("..") == "upload" and safe_name("") == "upload"
    assert safe_name("a\x00b\nc<d>.jpg") == "a_b_c_d_.jpg"
    assert len(safe_name("é" * 300).encode()) <= 120
    assert display_name("/x/0123456789abcdef01234567-me.jpg") == "me.jpg"
    assert display_name("/x/3f2a.img") == "3f2a.img"


@pytest.mark.slow
def test_tag_names_are_checked_and_every_stored_name_reachable(make_client, photo):
    c = make_client()
    c.post("/api/index", files={"file": photo()})
    face_id = c.get("/api/summary?n=1").json()["clusters"][0]["representative"]
    for bad in ("", "   ", "..", ".", "x" * 65, "a\x00b", "tab\tbed"):
        r = c.post(f"/api/tags/from-face/{face_id}", data={"name": bad})
        assert r.status_code == 422, (bad, r.text)
    r = c.post(f"/api/tags/from-face/{face_id}", data={"name": "  happy/sad "})
    assert r.status_code == 200 and r.json()["name"] == "happy/sad"
    assert c.get("/api/tags/happy%2Fsad/faces?threshold=0.01").json()["count"] == 1
    assert c.delete("/api/tags/happy%2Fsad%20").json()["removed"] == 1
    assert c.get("/api/tags").json()["references"] == []


def test_body_limit_without_content_length_is_413(make_client):
    c = make_client(max_upload_mb=0.05)

    def chunks():
        for _ in range(40):
            yield b"x" * 8192

    r = c.post(
        "/api/faces",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert r.status_code == 413, r.text
    assert "limit (0.05 MB)" in r.json()["error"]  # the upload limit, not the framing
    assert "xxxx" not in r.text  # the body is never echoed back


def test_other_sites_cannot_reach_or_change_the_server(make_client):
    c = make_client(allowed_hosts=("127.0.0.1", "localhost"))
    assert c.get("/api/health").status_code == 403  # Host: testserver (DNS rebinding)
    assert c.get("/api/health", headers={"host": "localhost:8000"}).status_code == 200
    c = make_client()
    evil = {"origin": "http://evil.example"}
    r = c.post("/api/tags/from-face/1", data={"name": "x"}, headers=evil)
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    r = c.delete("/api/tags/x", headers={"origin": "null"})
    assert r.status_code == 403
    assert c.get("/api/health", headers=evil).status_code == 200  # reading is not refused
    same = {"origin": "http://testserver"}
    assert c.post("/api/tags/from-face/1", data={"name": "x"}, headers=same).status_code == 404


def test_bearer_scheme_any_case_and_security_headers(make_client):
    c = make_client(token="s3cret")
    assert c.get("/api/health", headers={"authorization": "bearer s3cret"}).status_code == 200
    assert c.get("/api/health", headers={"authorization": "Basic s3cret"}).status_code == 401
    r = c.get("/login")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert c.get("/api/health").headers["x-frame-options"] == "SAMEORIGIN"  # on a 401 too


def test_serve_checks_its_folder_port_and_token_before_starting(tmp_path, capsys, monkeypatch):
    import socket

    from exprsim.cli import main

    monkeypatch.delenv("EXPRSIM_TOKEN", raising=False)
    import uvicorn

    def serving(*args, **kwargs):  # a regression must fail here, not serve forever
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", serving)
    monkeypatch.setattr(uvicorn.Server, "run", serving)
    db = tmp_path / "s.db"
    (tmp_path / "s.db.web").write_text("a file where the data folder goes")
    assert main(["serve", "--db", str(db), "--port", "8765"]) == 2  # was: a 500 per upload
    assert "--web-dir" in capsys.readouterr().err  # round 27: named as the option
    (tmp_path / "s.db.web").unlink()
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", "--db", str(db), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen" in err and len(err.strip().splitlines()) == 1
    assert main(["serve", "--db", str(db), "--host", "0.0.0.0", "--token", "  "]) == 2
    assert "without a token" in capsys.readouterr().err  # a blank token is no token
