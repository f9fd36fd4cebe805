"""The web app after the seventh audit (docs/robustness.md): the home page's counts, the index
gone, locked, read-only or damaged under a running server, a full disk, video jobs changed on
disk, HEAD and ``Allow``, clearer 404/422 texts, an offline ``/api/docs``."""

from __future__ import annotations

import errno
import io
import json
import logging
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest


def _load_faces(db: Path, model: str, sources: list[str]) -> list[int]:
    """Faces loaded from a table (as ``index add --from-parquet`` does): no stored crops.
    Returns their ids."""
    import pandas as pd

    from exprsim.index.store import FaceIndex

    rng = np.random.default_rng(0)
    rows = []
    for source in sources:
        e = rng.normal(size=16)
        rows.append(
            {"source": source, **{f"e{i}": float(v) for i, v in enumerate(e / np.linalg.norm(e))}}
        )
    with FaceIndex(db) as ix:
        ix.add_table(pd.DataFrame(rows), model=model)
        return [r.id for r in ix.records()]


def _model(c) -> str:
    return c.get("/api/health").json()["model"]


def test_home_page_counts_the_faces_and_photos_of_the_index(make_client, tmp_path):
    c = make_client()
    _load_faces(tmp_path / "faces.db", _model(c), ["a.jpg", "b.jpg"])
    r = c.get("/")
    assert r.status_code == 200
    assert "Index: 2 faces in 2 photos" in r.text, re.findall(r"Index: [^<]*", r.text)


def test_a_database_gone_under_the_server_is_not_recreated(make_client, tmp_path):
    c = make_client()
    db = tmp_path / "faces.db"
    for p in tmp_path.glob("faces.db*"):
        if p.is_file():
            p.unlink()
    for url in ("/api/health", "/", "/api/tags"):
        r = c.get(url)
        assert r.status_code == 503, (url, r.text)
        # the API in JSON, a page as a page (round 26)
        text = r.text if url == "/" else r.json()["error"]
        assert "gone" in text and str(tmp_path) not in r.text
    assert not db.exists()  # not re-created empty by a read
    db.write_bytes(b"")  # emptied (truncated, or replaced by an empty file): the same
    assert c.get("/api/health").status_code == 503
    assert db.stat().st_size == 0


def test_a_locked_index_answers_503_with_retry_after_and_no_traceback(
    make_client, tmp_path, monkeypatch, caplog
):
    c = make_client()
    real_connect = sqlite3.connect

    def quick(*args, **kwargs):  # SQLite waits 30 s for a lock: 0.1 s here
        return real_connect(*args, **{**kwargs, "timeout": 0.1})

    monkeypatch.setattr(sqlite3, "connect", quick)
    holder = real_connect(str(tmp_path / "faces.db"), isolation_level=None)
    # another program holding the file for itself (in WAL mode a plain write transaction
    # no longer stops readers: the index reads without waiting for writers)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="exprsim.web.app"):
            for url in ("/api/health", "/", "/api/tags"):
                r = c.get(url)
                assert r.status_code == 503, (url, r.text)
                assert r.headers["retry-after"].isdigit()
                assert "busy" in r.json()["error"] and "OperationalError" not in r.text
                assert len(r.json()["error"].splitlines()) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert caplog.records and not [rec for rec in caplog.records if rec.exc_info]
    assert c.get("/api/health").status_code == 200  # served again once the lock is gone


def test_a_full_disk_answers_507_and_keeps_nothing(make_client, photo, tmp_path, monkeypatch):
    import exprsim.web.uploads as uploads

    class FullDisk(io.RawIOBase):
        def __init__(self, path, mode):
            self.fh = open(path, mode)  # noqa: SIM115 - closed by close() below

        def writable(self) -> bool:
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            self.fh.close()
            super().close()

    monkeypatch.setattr(uploads, "open", FullDisk, raising=False)
    c = make_client()
    for url in ("/api/faces", "/api/index"):
        r = c.post(url, files={"file": photo()})
        assert r.status_code == 507, (url, r.text)
        assert "No space left" in r.json()["error"] and str(tmp_path) not in r.text
    assert list((tmp_path / "faces.db.web" / "uploads").iterdir()) == []


def test_a_folder_that_cannot_be_written_is_a_one_line_500(tmp_path):
    from exprsim.web.uploads import storage_error

    error = storage_error(PermissionError(errno.EACCES, "Permission denied", "/srv/secret"))
    assert error.status == 500 and "Permission denied" in str(error)
    assert "/srv/secret" not in str(error)
    assert storage_error(OSError(errno.EDQUOT, "Disk quota exceeded")).status == 507


def test_video_job_files_changed_on_disk_are_404(make_client, tmp_path):
    c = make_client()
    job_id = "00000000000000ab"
    folder = tmp_path / "faces.db.web" / "videos" / job_id
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"status": "done", "name": "v.mp4"}))
    assert c.get(f"/api/jobs/{job_id}").json()["status"] == "done"
    r = c.get(f"/api/videos/{job_id}/report")  # its report.html was removed
    assert r.status_code == 404 and "missing" in r.json()["error"]
    (folder / "job.json").write_text("[1]")  # JSON, but not an object
    r = c.get(f"/api/jobs/{job_id}")
    assert r.status_code == 404 and r.json() == {"error": "no such job"}
    assert c.get(f"/api/videos/{job_id}/report").status_code == 404


def test_server_side_index_faults_are_503_without_the_server_path(
    make_client, photo, tmp_path, monkeypatch
):
    import exprsim.index.backends as backends

    c = make_client()
    db = tmp_path / "faces.db"
    (face_id,) = _load_faces(db, _model(c), ["a.jpg"])
    c.post("/api/tags/from-face/1", data={"name": "calm"})
    monkeypatch.setattr(backends, "writable", lambda path: False)  # read-only media
    assert c.get("/api/health").json()["faces"] == 1  # reads still work
    for r in (
        c.post("/api/index", files={"file": photo()}),
        c.post(f"/api/tags/from-face/{face_id}", data={"name": "wry"}),
        c.delete("/api/tags/calm"),
    ):
        assert r.status_code == 503, r.text
        assert r.json()["error"] == "the index is read-only on this server; nothing was changed"
        assert str(db) not in r.text and "faces.db" not in r.text
    assert list((tmp_path / "faces.db.web" / "uploads").iterdir()) == []  # not indexed: gone
    monkeypatch.undo()

    for p in tmp_path.glob("faces.db-*"):
        p.unlink()
    db.write_bytes(b"garbage, not a database" * 100)  # replaced under the running server
    for url in ("/api/health", "/", "/api/thumbs/1"):
        r = c.get(url)
        assert r.status_code == 503, (url, r.text)
        assert r.json()["error"].startswith("the index cannot be used: ")
        assert str(tmp_path) not in r.text and "faces.db" not in r.text


def test_a_duplicate_upload_is_kept_when_indexing_fails(make_client, photo, tmp_path, monkeypatch):
    import hashlib

    import exprsim.index.backends as backends

    c = make_client()
    data = photo()[1]
    uploads = tmp_path / "faces.db.web" / "uploads"
    uploads.mkdir(parents=True)
    stored = uploads / f"{hashlib.sha256(data).hexdigest()[:24]}-grace_hopper.jpg"
    stored.write_bytes(data)  # stored (and perhaps indexed) by an earlier upload
    monkeypatch.setattr(backends, "writable", lambda path: False)
    r = c.post("/api/index", files={"file": ("again.jpg", data, "image/jpeg")})
    assert r.status_code == 503 and stored.is_file()


def test_index_fault_messages_never_name_the_server_database():
    from exprsim.errors import ExprsimError, IndexDatabaseError
    from exprsim.web.app import _index_fault

    names = ("/srv/data/faces.db",)
    text, headers = _index_fault(
        IndexDatabaseError("/srv/data/faces.db", "folder /srv/data does not exist"), names
    )
    assert text == "the index cannot be used: folder its folder does not exist" and not headers
    text, _ = _index_fault(IndexDatabaseError("a", "not a usable exprsim database (x)"), ("a",))
    assert text == "the index cannot be used: not a usable exprsim database (x)"
    assert _index_fault(ExprsimError("a tag name must not be empty"), names) is None
    busy = IndexDatabaseError("x.db", "not a usable exprsim database (database is locked)")
    busy.__cause__ = sqlite3.OperationalError("database is locked")
    text, headers = _index_fault(busy, ("x.db",))
    assert "busy" in text and headers["Retry-After"].isdigit()


def test_head_works_wherever_get_does_and_405_says_allow(make_client):
    c = make_client()
    for url in ("/api/health", "/", "/summary", "/api/tags", "/api/openapi.json", "/login"):
        got, head = c.get(url), c.head(url)
        assert head.status_code == 200, url
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["x-content-type-options"] == "nosniff"
    r = c.put("/api/health")
    assert r.status_code == 405 and {"GET", "HEAD"} <= set(r.headers["allow"].split(", "))
    r = c.head("/api/faces")  # POST only
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert c.head("/api/thumbs/12345").status_code == 404


@pytest.mark.slow
def test_no_thumbnail_and_no_face_are_told_apart(make_client, tmp_path):
    from PIL import Image

    c = make_client()
    (face_id,) = _load_faces(tmp_path / "faces.db", _model(c), ["a.jpg"])
    r = c.get(f"/api/thumbs/{face_id}")
    assert r.status_code == 404 and "no stored thumbnail" in r.json()["error"]
    assert c.get(f"/api/thumbs/{face_id + 1}").json()["error"] == f"no face {face_id + 1}"
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (128, 128, 128)).save(buf, format="PNG")
    r = c.post("/api/search", files={"file": ("wall.png", buf.getvalue(), "image/png")})
    assert r.status_code == 422 and r.json()["error"] == "no face found in the photo"


def test_api_docs_are_offline_and_list_the_routes(make_client):
    c = make_client()
    r = c.get("/api/docs")
    assert r.status_code == 200 and r.text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", r.text)  # no CDN, no outside link
    for path in ("/api/faces", "/api/search", "/api/summary", "/api/tags", "/api/videos"):
        assert f"<code>{path}</code>" in r.text
    assert c.get("/api/openapi.json").status_code == 200
    assert c.get("/api/redoc").status_code == 404
