"""Seventh round, tags: one tag-name rule for the CLI, the web app and the API; ``tag``
options an action does not read are refused; same-named files told apart on the tag page;
read-only openings never create a SQLite file (each test failed before its fix)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from stub_embedder import StubEmbedder, write_images

import exprsim.index.store as store
from exprsim.apps.tag import Tagger, check_new_tag_name
from exprsim.errors import ExprsimError
from exprsim.index.store import FaceIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_run import one_line, run


@pytest.mark.parametrize(
    "name", [" happy", "happy ", "a,b", "x\nEVIL", "tab\there", ".", "..", "z" * 65, "\u202eabc"]
)
def test_a_new_tag_name_follows_one_rule(name: str, tmp_path: Path, stub: StubEmbedder) -> None:
    with pytest.raises(ExprsimError, match="tag name"):
        check_new_tag_name(name)
    img = write_images(tmp_path / "imgs", 1)[0]
    with FaceIndex(tmp_path / "f.db", embedder=stub) as ix:
        ix.add([img])
        with pytest.raises(ExprsimError, match="tag name"):
            Tagger(ix).add(name, img)  # was: stored, then shown as another tag
        with pytest.raises(ExprsimError, match="tag name"):
            ix.add_tags([1], name)
        assert Tagger(ix).references() == [] and ix.records()[0].tags == ()


@pytest.mark.parametrize("name", ["happy", "très content", "z" * 64, "a/b", "😀"])
def test_ordinary_names_pass(name: str) -> None:
    check_new_tag_name(name)


def _old_style_reference(ix: FaceIndex, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference stored under ``name`` by an earlier exprsim (which took any name)."""
    with monkeypatch.context() as m:
        m.setattr(store, "check_new_tag_name", store.check_tag_name)
        ix.add_tag_reference(name, np.eye(16, dtype=np.float32)[0], "stub@1")


def test_names_of_earlier_versions_are_listed_escaped_and_removed_exactly(
    tmp_path: Path, stub: StubEmbedder, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=stub) as ix:
        _old_style_reference(ix, "happy", monkeypatch)
        _old_style_reference(ix, " happy ", monkeypatch)
        _old_style_reference(ix, "x\nEVIL  fake.jpg", monkeypatch)
    rc, out, _ = run(capsys, "tag", "list", "--db", str(db))
    assert rc == 0 and len(out.strip().splitlines()) == 3  # was 4: the newline printed raw
    assert "x\\nEVIL" in out
    rc, out, _ = run(capsys, "tag", "remove", " happy ", "--db", str(db))
    assert rc == 0
    with FaceIndex(db, embedder=stub) as ix:
        assert sorted({r.name for r in Tagger(ix).references()}) == ["happy", "x\nEVIL  fake.jpg"]


def test_the_web_app_deletes_exactly_the_name_given(
    tmp_path: Path, stub: StubEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from exprsim.web import ServeConfig, create_app

    db = tmp_path / "faces.db"
    with FaceIndex(db, embedder=stub) as ix:
        _old_style_reference(ix, "happy", monkeypatch)
        _old_style_reference(ix, " happy ", monkeypatch)
    client = TestClient(create_app(ServeConfig(db=str(db)), embedder=stub))
    assert client.delete("/api/tags/%20happy%20").json() == {"removed": 1}
    names = [t["name"] for t in client.get("/api/tags").json()["references"]]
    assert names == ["happy"]  # was: "happy" deleted, " happy " kept


@pytest.mark.parametrize(
    "argv",
    [
        ["tag", "list", "--html", "x.html"],
        ["tag", "list", "--out", "x.csv"],
        ["tag", "remove", "foo", "--threshold", "0.1"],
        ["tag", "add", "foo", "a.jpg", "--index"],
        ["tag", "add", "foo", "a.jpg", "--html", "x.html"],
        ["tag", "a.jpg", "--face", "3"],
        ["tag", "a.jpg", "--data-dir", "/nonexistent"],
        ["tag", "calibrate", "--threshold", "0.2"],
    ],
)
def test_tag_options_an_action_does_not_read_are_refused(
    argv: list[str], tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, *argv, "--db", str(tmp_path / "f.db"))
    assert rc == 2 and "does not take --" in one_line(err)
    assert not list(tmp_path.iterdir())  # nothing written, no index created


def test_tag_add_refuses_a_name_with_a_comma(tmp_path: Path, capsys) -> None:
    rc, _, err = run(capsys, "tag", "add", "happy,sad", "a.jpg", "--db", str(tmp_path / "f.db"))
    assert rc == 2 and "','" in one_line(err)


def test_the_tag_page_tells_same_named_files_apart(tmp_path: Path, stub: StubEmbedder) -> None:
    from exprsim.apps.tag import tag_page

    imgs = write_images(tmp_path / "imgs", 2)
    for sub, img in zip(("dA", "dB"), imgs, strict=True):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.png").write_bytes(img.read_bytes())
    with FaceIndex(tmp_path / "f.db", embedder=stub) as ix:
        ix.add(imgs)
        tagger = Tagger(ix)
        tagger.add("alpha", imgs[0])
        results = tagger.tag([tmp_path / "dA" / "x.png", tmp_path / "dB" / "x.png"])
        html = tag_page(results, tagger.references()).render()
    assert "dA/x.png#0" in html and "dB/x.png#0" in html  # was: x.png#0 twice


def test_a_read_only_opening_never_creates_a_sqlite_file(tmp_path: Path, stub) -> None:
    db = tmp_path / "gone.db"
    with pytest.raises(ExprsimError, match="no such database"):
        FaceIndex(db, embedder=stub, create=False)
    assert not db.exists()  # was: created empty
    with FaceIndex(db, embedder=stub):
        pass
    with FaceIndex(db, embedder=stub, create=False) as ix:
        assert ix.info().to_dict()["faces"] == 0


def test_the_cli_and_the_store_know_the_same_side_files() -> None:
    from exprsim.cli.argtypes import DB_SIDE_FILES
    from exprsim.index.backends import SIDE_FILES

    assert set(DB_SIDE_FILES) == {"", *SIDE_FILES}  # was: no ".web"
