"""Eighteenth audit round, PostgreSQL: a search of an empty index does not print the
password of its ``--db`` URI."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images


def test_search_of_an_empty_postgres_index_hides_the_password(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Audit: "no matching faces: postgresql://user:SECRET@... holds no faces yet"."""
    import exprsim.cli.apps_cmd as apps_cmd
    from exprsim.cli import main
    from exprsim.index.store import FaceIndex

    scheme, rest = pg_url.split("://", 1)
    user = rest.split("@", 1)[0].split(":", 1)[0] if "@" in rest else "postgres"
    where = rest.split("@", 1)[1] if "@" in rest else rest
    url = f"{scheme}://{user}:Sw0rdfish-93@{where}"  # the test server trusts local users
    FaceIndex(url).close()
    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: StubEmbedder())
    (query,) = write_images(tmp_path / "q", 1)
    rc = main(["-q", "search", str(query), "--db", url])
    err = capsys.readouterr().err
    assert rc == 0 and "holds no faces yet" in err
    assert "Sw0rdfish" not in err and "***" in err
