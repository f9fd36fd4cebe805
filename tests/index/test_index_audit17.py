"""Seventeenth round (determinism audit): `index rebuild` without `--ann` keeps the
backend chosen for the index, as its help says."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_embedder import StubEmbedder, write_images

from exprsim.index.store import FaceIndex


@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivf"])
def test_a_plain_rebuild_keeps_the_backend_chosen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    """Audit: `index rebuild --db F` gave the choice back (default "auto"), so an index set
    to HNSW silently became exact search."""
    from exprsim.cli import main

    pytest.importorskip("faiss")
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder(), ann_backend=backend) as ix:
        ix.add(write_images(tmp_path / "p", 3))
        ix.refresh_ann(backend)
        assert ix.recorded_ann_backend == backend
    assert main(["-q", "index", "rebuild", "--db", str(db)]) == 0
    assert f"rebuilt {backend} index" in capsys.readouterr().out
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix.recorded_ann_backend == backend
    # `--ann auto` still gives the choice back, as the help says
    assert main(["-q", "index", "rebuild", "--db", str(db), "--ann", "auto"]) == 0
    assert "rebuilt exact index" in capsys.readouterr().out
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        assert ix.recorded_ann_backend == "auto"


def test_a_name_python_could_not_decode_names_the_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit: under a C locale without UTF-8 mode, a valid UTF-8 name was refused as "not
    valid UTF-8 (rename the file)": the cause is the locale, not the name."""
    import sys

    from exprsim.errors import ExprsimError
    from exprsim.index.store import check_tag_name

    name = b"sourire_\xc3\xa9".decode("ascii", "surrogateescape")
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "ascii")
    with pytest.raises(ExprsimError, match=r"Python decodes names as ascii.*PYTHONUTF8=1"):
        check_tag_name(name)
    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "utf-8")
    with pytest.raises(ExprsimError, match=r"is not valid UTF-8$"):
        check_tag_name(name)
