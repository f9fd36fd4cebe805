"""The JSON API end to end (FastAPI TestClient, real face pipeline, random-weight model)."""

from __future__ import annotations

import time

import numpy as np
import pytest


def test_health_and_openapi(make_client):
    c = make_client()
    r = c.get("/api/health")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["faces"] == 0
    schema = c.get("/api/openapi.json").json()
    for path in ("/api/faces", "/api/search", "/api/summary", "/api/tags", "/api/videos"):
        assert path in schema["paths"]


@pytest.mark.slow
def test_faces_index_search_thumbs_summary_tags(make_client, photo):
    c = make_client()
    r = c.post("/api/faces", files={"file": photo()})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert len(faces) == 1
    f = faces[0]
    x1, y1, x2, y2 = f["box"]
    assert 0 <= x1 < x2 and 0 <= y1 < y2 and len(f["landmarks"]) == 5
    assert len(f["embedding"]) == 16
    assert np.linalg.norm(f["embedding"]) == pytest.approx(1.0, abs=1e-4)
    assert set(f["quality"]) >= {"ok", "sharpness", "yaw"}

    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg", "pexels_langer_frame144.jpg"):
        r = c.post("/api/index", files={"file": photo(name)})
        assert r.status_code == 200 and r.json()["added_faces"] == 1, r.text
    assert c.get("/api/health").json()["faces"] == 3

    r = c.post("/api/search?k=2", files={"file": photo()})
    hits = r.json()["hits"]
    assert len(hits) == 2 and hits[0]["distance"] <= hits[1]["distance"]
    # the photo itself is indexed and left out, as `exprsim search` leaves it out
    assert all(h["file"] != "grace_hopper.jpg" for h in hits) and hits[0]["distance"] > 0
    thumb = c.get(hits[0]["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert c.get("/api/thumbs/999999").status_code == 404
    huge = 10**23  # beyond SQLite's 64-bit integers: still "no such face", not a 500
    assert c.get(f"/api/thumbs/{huge}").status_code == 404
    assert c.get("/api/thumbs/-1").status_code == 404
    assert c.post(f"/api/tags/from-face/{huge}", data={"name": "x"}).status_code == 404
    assert c.get("/api/thumbs/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)

    s = c.get("/api/summary?n=2").json()
    assert s["faces"] == 3 and sum(cl["size"] for cl in s["clusters"]) == 3
    assert c.get(s["map"]).headers["content-type"] == "image/png"

    r = c.post("/api/tags", data={"name": "calm", "face": "0"}, files={"file": photo()})
    assert r.status_code == 200, r.text
    tags = c.get("/api/tags").json()
    assert [t["name"] for t in tags["references"]] == ["calm"]
    near = c.get("/api/tags/calm/faces?threshold=0.01").json()
    assert near["count"] == 1  # only the identical face is that close
    wide = c.get("/api/tags/calm/faces?threshold=2").json()
    assert wide["count"] == 3
    assert c.delete("/api/tags/calm").json()["removed"] == 1
    assert c.get("/api/tags/calm/faces").status_code == 404


def test_upload_limits_and_content_checks(make_client, photo):
    c = make_client(max_upload_mb=0.01)  # 10 KB
    r = c.post("/api/faces", files={"file": photo()})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    c = make_client()
    r = c.post(
        "/api/faces", files={"file": ("x.jpg", b"just text, named like a photo", "image/jpeg")}
    )
    assert r.status_code == 415 and "content" in r.json()["error"]
    r = c.post("/api/faces", files={"file": ("x.jpg", b"", "image/jpeg")})
    assert r.status_code == 400
    trunc = photo()[1][:2000]
    r = c.post("/api/faces", files={"file": ("t.jpg", trunc, "image/jpeg")})
    assert r.status_code == 422 and "error" in r.json()
    r = c.post("/api/videos", files={"file": photo()})  # an image is not a video
    assert r.status_code == 415


def test_unexpected_errors_are_json_500_without_a_trace(make_client, photo, monkeypatch):
    c = make_client()

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    import importlib

    module = importlib.import_module("exprsim.apps.summarize")  # the module, not the function
    monkeypatch.setattr(module, "summarize", boom)
    c.post("/api/index", files={"file": photo()})
    r = c.get("/api/summary")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error (RuntimeError)"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_token_protects_api_and_pages(make_client):
    c = make_client(token="s3cret")
    assert c.get("/api/health").status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert c.post("/login", data={"token": "nope"}).status_code == 401
    r = c.post("/login", data={"token": "s3cret"}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/").status_code == 200  # the cookie now rides along


def test_pages_are_offline(make_client):
    import re

    c = make_client()
    for page in ("/", "/summary", "/tags", "/video", "/login"):
        r = c.get(page)
        assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
        assert not re.search(r"(src|href)=['\"]https?://", r.text), page


@pytest.mark.slow
def test_video_job_progress_and_report(make_client):
    from exprsim.samples import sample_dir

    c = make_client()
    clip = (sample_dir() / "langer_clip.mp4").read_bytes()
    job = c.post("/api/videos", files={"file": ("clip.mp4", clip, "video/mp4")}).json()
    assert job["status"] in ("queued", "running")
    deadline = time.time() + 240
    while job["status"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.5)
        job = c.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    assert job["done"] >= 1 and job["summary"]["frames"] == job["done"]
    report = c.get(job["report"])
    assert report.status_code == 200 and report.text.startswith("<!DOCTYPE html>")
    assert c.get("/api/jobs/nope").status_code == 404


def test_serve_refuses_public_bind_without_token(capsys, monkeypatch, tmp_path):
    from exprsim.cli import main

    monkeypatch.delenv("EXPRSIM_TOKEN", raising=False)
    rc = main(["serve", "--db", str(tmp_path / "x.db"), "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert rc == 2 and "without a token" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_tag_from_an_indexed_face_and_the_pixel_limit(make_client, photo):
    import io

    from PIL import Image

    c = make_client(max_pixels=100_000)
    big = io.BytesIO()
    Image.new("RGB", (400, 300), (120, 120, 120)).save(big, format="PNG")  # 120,000 pixels
    r = c.post("/api/faces", files={"file": ("big.png", big.getvalue(), "image/png")})
    assert r.status_code == 413 and "pixels" in r.json()["error"]
    c = make_client()
    c.post("/api/index", files={"file": photo()})
    face_id = c.get("/api/summary?n=1").json()["clusters"][0]["representative"]
    r = c.post(f"/api/tags/from-face/{face_id}", data={"name": "wry"})
    assert r.status_code == 200 and r.json()["name"] == "wry"
    assert c.get("/api/tags/wry/faces?threshold=0.01").json()["count"] == 1
    assert c.post("/api/tags/from-face/99999", data={"name": "x"}).status_code == 404
