"""Round 24 (docs/robustness.md): an upload over 1 MB refused by a full temporary disk,
and SQLite's I/O error on a tag's write, answer in one line (507, 503), not 400 / 500."""

from __future__ import annotations

import errno
import logging
import sqlite3
import tempfile


def _no_space(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_large_upload_on_a_full_temp_disk_is_507(make_client, photo, monkeypatch, caplog):
    # Starlette spools a part over 1 MB to $TMPDIR; there ENOSPC became FastAPI's
    # 400 "There was an error parsing the body", and nothing was logged
    name, data, kind = photo()
    big = data + b"\0" * 1_200_000  # a JPEG reader ignores bytes after its end
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", _no_space)
    with caplog.at_level(logging.WARNING, logger="exprsim.web.app"):
        r = make_client().post("/api/index", files={"file": (name, big, kind)})
    assert r.status_code == 507, r.text
    assert r.json()["error"] == "the server's disk is full; nothing was stored"
    assert any("disk is full" in rec.getMessage() for rec in caplog.records)


def test_a_small_bad_body_is_still_400(make_client) -> None:
    r = make_client().post(
        "/api/index",
        content=b'--x\r\nContent-Disposition: form-data; name="file"\r\n',
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code in (400, 422), r.text


def test_a_tag_written_on_a_failing_disk_is_503(make_client, photo, monkeypatch, caplog):
    from exprsim.apps.tag import Tagger

    def io_error(*_a, **_k):
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = 10  # type: ignore[attr-defined]  # SQLITE_IOERR
        raise exc

    c = make_client()
    assert c.post("/api/index", files={"file": photo()}).status_code == 200
    monkeypatch.setattr(Tagger, "add", io_error)
    with caplog.at_level(logging.WARNING):
        r = c.post("/api/tags", data={"name": "smile"}, files={"file": photo()})
    assert r.status_code == 503, r.text  # was: 500 "internal error (OperationalError)"
    assert "disk is failing" in r.json()["error"]
    assert not [rec for rec in caplog.records if rec.exc_info]  # no traceback in the log
