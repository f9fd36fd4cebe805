"""Round 35: `serve --db` of an index it refuses (a newer exprsim's schema) leaves no
empty `<db>.web/uploads/` beside it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")


def test_a_refused_index_leaves_no_web_folder(tmp_path: Path, capsys) -> None:
    from exprsim.cli import main
    from exprsim.index import FaceIndex

    db = tmp_path / "f.db"
    with FaceIndex(db):
        pass
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    con.commit()
    con.close()
    assert main(["serve", "--db", str(db), "--port", "0"]) == 2
    assert "made by a newer exprsim" in capsys.readouterr().err
    assert not (tmp_path / "f.db.web").exists()
    kept = tmp_path / "mine"  # a folder given that was there already stays
    kept.mkdir()
    assert main(["serve", "--db", str(db), "--port", "0", "--web-dir", str(kept)]) == 2
    assert kept.is_dir()


def test_a_server_without_pyav_says_so_before_an_upload(make_client, monkeypatch, tmp_path) -> None:
    """The video page took an upload, answered "queued", and the job failed afterwards
    naming the extra. The page has no drop zone then (an upload is read whole before any
    answer), and an upload is refused before it is stored."""
    import builtins

    from exprsim.web import app as web_app

    real = builtins.__import__

    def no_av(name, *a, **k):
        if name == "av":
            raise OSError("libavcodec.so.61: cannot open shared object file")  # broken
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_av)
    web_app._reads_video.cache_clear()
    try:
        client = make_client()
        page = client.get("/video").text
        assert "cannot read videos" in page and "exprsim[video]" in page
        assert 'id="drop"' not in page
        r = client.post("/api/videos", files={"file": ("clip.mp4", b"\0" * 100, "video/mp4")})
        assert r.status_code == 501 and "exprsim[video]" in r.json()["error"]
        uploads = tmp_path / "faces.db.web" / "uploads"
        assert not uploads.is_dir() or not any(uploads.iterdir())  # nothing stored
    finally:
        web_app._reads_video.cache_clear()


def test_a_server_with_pyav_shows_no_note(make_client) -> None:
    pytest.importorskip("av", reason="the video extra is not installed")
    assert "cannot read videos" not in make_client().get("/video").text


def test_a_busy_port_leaves_no_web_folder_nor_its_parents(tmp_path: Path, capsys) -> None:
    """Review: the folder was removed only when the app failed, not when the port was
    busy; and of `--web-dir a/b/c`, the parents made stayed."""
    import socket

    from exprsim.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        db = str(tmp_path / "new.db")
        assert main(["serve", "--db", db, "--port", port]) == 2
        assert "in use" in capsys.readouterr().err
        assert not (tmp_path / "new.db.web").exists()
        nested = tmp_path / "a" / "b" / "c"
        assert main(["serve", "--db", db, "--port", port, "--web-dir", str(nested)]) == 2
        assert not (tmp_path / "a").exists()
