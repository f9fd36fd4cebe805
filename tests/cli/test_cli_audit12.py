"""Twelfth robustness round, CLI side: a search that finds nothing says what its filters
left out (a copy of the query at another path is the query's own image)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from cli_run import run, stub_cli_model

# the fast, deterministic stand-in embedder lives beside the index tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubEmbedder:
    return stub_cli_model(monkeypatch, StubEmbedder())


def test_a_search_left_empty_by_copies_of_the_query_says_so(
    tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    from exprsim.index.store import FaceIndex

    (img,) = write_images(tmp_path / "photos", 1)
    copy = tmp_path / "elsewhere.png"
    shutil.copyfile(img, copy)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        index.add([img])
    rc, _, err = run(capsys, "search", str(copy), "--db", str(db))
    assert rc == 0
    assert "no matching faces" in err
    assert "1 face of the query's own image" in err and "--include-same-image" in err
    rc, out, err = run(capsys, "search", str(copy), "--db", str(db), "--include-same-image")
    assert rc == 0 and "no matching faces" not in err and "photos" in out


def test_a_search_short_of_k_names_what_was_left_out(
    tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "photos", 3)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        index.add(imgs)
    rc, _, err = run(capsys, "search", str(imgs[0]), "--db", str(db), "-k", "5")
    assert rc == 0
    assert "2 of 5 faces found (left out: 1 face of the query's own image" in err


def test_the_help_says_copies_count_as_the_same_image(capsys) -> None:
    from exprsim.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["search", "--help"])
    assert stop.value.code == 0
    assert "a copy of it" in " ".join(capsys.readouterr().out.split())
