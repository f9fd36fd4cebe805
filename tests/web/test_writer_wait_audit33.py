"""Round 33: an upload to the index waited for ever while ``exprsim index add`` held the
index (hours for an album); 40 such uploads took every thread of the server, and search,
summary and tags stopped answering. It now waits a few seconds, then gets 503 with
``Retry-After``, nothing stored."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

from exprsim.web import app as web_app


@contextlib.contextmanager
def _writer(db: Path) -> Iterator[None]:
    """What a running ``exprsim index add`` holds: the ``flock`` on ``<db>.lock``."""
    with open(db.with_name(db.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def test_an_upload_behind_a_long_writer_is_503_with_retry_after(
    make_client, photo, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(web_app, "WRITER_WAIT_S", 0.3)
    c = make_client()
    assert c.get("/api/health").status_code == 200  # the index exists
    with _writer(tmp_path / "faces.db"):
        t0 = time.monotonic()
        r = c.post("/api/index", files={"file": photo()})
        waited = time.monotonic() - t0
        assert r.status_code == 503, r.text  # was: no answer until the writer ended
        assert r.headers["Retry-After"] == str(web_app.INDEX_RETRY_AFTER_S)
        assert "busy" in r.json()["error"] and str(tmp_path) not in r.text
        assert waited < 10
    uploads = tmp_path / "faces.db.web" / "uploads"
    assert [p.name for p in uploads.iterdir() if p.name[0] != "."] == []  # not kept
    assert c.get("/api/health").json()["faces"] == 0
    r = c.post("/api/index", files={"file": photo()})  # the writer is done: stored
    assert r.status_code == 200 and r.json()["added_faces"] == 1, r.text
