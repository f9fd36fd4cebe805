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
