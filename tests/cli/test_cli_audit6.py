"""Audit A (sixth round), CLI side: items 1, 4, 6, 8, 10 and 13 of /tmp/auditA.md (blank
paths, outputs over inputs, stale tags, names that are not UTF-8, files named twice, faiss
start-up noise). Each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import digest, one_line, run, stub_cli_model

# the fast, deterministic stand-in embedder lives beside the index tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images

NOT_UTF8 = os.fsdecode(b"caf\xe9.png")  # a file name's stray byte, as Python keeps it


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubEmbedder:
    """The CLI's model is the stub (no network, no detector)."""
    return stub_cli_model(monkeypatch, StubEmbedder())


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, list[Path]]:
    """An index (stub model) of three images in tmp_path/photos."""
    from exprsim.index.store import FaceIndex

    imgs = write_images(tmp_path / "photos", 3)
    db = tmp_path / "f.db"
    with FaceIndex(db, embedder=StubEmbedder()) as index:
        index.add(imgs)
    return db, imgs


# ----------------------------------------------------------------------------- A1


BLANK_COMMANDS = [
    ["index", "add", "{P}", "--db", "new.db"],
    ["index", "remove", "{P}", "--db", "f.db"],
    ["summarize", "{P}", "--out", "s.csv"],
    ["classify", "{P}", "--out", "c.csv"],
    ["faces", "{P}", "--out", "x.csv"],
    ["embed", "{P}", "-o", "e.csv"],
    ["tag", "add", "smile", "{P}", "--db", "new.db"],
    ["tag", "{P}", "--db", "f.db", "--out", "t.csv"],
    ["search", "{P}", "--db", "f.db", "--out", "h.csv"],
    ["compare", "photos/img_0000.png", "{P}"],
    ["subclasses", "{P}", "--labels", "none", "--html", "sub.html"],
    ["video", "{P}", "--out", "video-out"],
]


@pytest.mark.parametrize("blank", ["", "  "])
@pytest.mark.parametrize("argv", BLANK_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_a_blank_path_is_refused_in_one_line_before_any_work(
    argv: list[str],
    blank: str,
    indexed: tuple[Path, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    db, _ = indexed
    monkeypatch.chdir(tmp_path)  # "" was the working folder: its photos were walked
    before = digest(db)
    rc, out, err = run(capsys, *(blank if a == "{P}" else a for a in argv))
    assert rc == 2 and "is blank" in one_line(err), err
    assert out == ""
    for made in ("new.db", "s.csv", "c.csv", "x.csv", "e.csv", "t.csv", "h.csv", "sub.html"):
        assert not (tmp_path / made).exists(), made
    assert not (tmp_path / "video-out").exists()
    assert digest(db) == before


def test_index_remove_of_a_blank_path_keeps_every_file(
    indexed: tuple[Path, list[Path]], tmp_path: Path, monkeypatch, capsys
) -> None:
    from exprsim.index.store import FaceIndex

    db, imgs = indexed
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(capsys, "index", "remove", "", str(imgs[0]), "--db", str(db))
    assert rc == 2 and "blank" in one_line(err) and out == ""  # was: "removed 3 files"
    with FaceIndex(db) as index:
        assert len(index) == 3


# ----------------------------------------------------------------------------- A4


def test_search_never_writes_over_the_index_or_its_files(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    files = [Path(f"{db}{x}") for x in ("", "-wal", "-shm", ".ann", ".ann.json", ".lock")]
    files[3].write_bytes(b"ann")  # whatever is there must stay as it was
    files[4].write_text("{}")
    before = {p: p.read_bytes() for p in files if p.exists()}
    q = str(imgs[0])
    for flag, target in [
        ("--html", db),
        ("--html", files[1]),
        ("--html", files[3]),
        ("--out", files[4]),  # a .json table name: check_table_path lets it through
        ("--html", files[5]),
        ("--html", tmp_path / "photos" / ".." / "f.db"),
    ]:
        rc, out, err = run(capsys, "search", q, "--db", str(db), flag, str(target))
        line = one_line(err)
        assert rc == 2 and "would be overwritten" in line and "--db" in line, (target, err)
        assert out == ""
    rc, _, err = run(capsys, "search", q, "--db", str(db), "--html", q)
    assert rc == 2 and "the query image" in one_line(err)
    assert {p: p.read_bytes() for p in files if p.exists()} == before
    assert stub.calls == 0  # refused before any work


def test_an_output_through_a_link_is_the_file_it_names(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    soft = tmp_path / "report.html"
    soft.symlink_to(db)
    hard = tmp_path / "hard.html"
    os.link(imgs[1], hard)
    before = digest(db), digest(imgs[1])
    rc, _, err = run(capsys, "search", str(imgs[0]), "--db", str(db), "--html", str(soft))
    assert rc == 2 and "index database" in one_line(err)
    rc, _, err = run(capsys, "summarize", str(imgs[1]), "-n", "1", "--html", str(hard))
    assert rc == 2 and "an input image" in one_line(err)
    assert (digest(db), digest(imgs[1])) == before


def test_album_commands_never_write_over_an_input_image(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    cover = str(imgs[2])
    before = digest(imgs[2])
    for argv in (
        ["summarize", str(tmp_path / "photos"), "-n", "1", "--html", cover],
        ["classify", cover, "--html", cover],
        ["classify", cover, "--json", cover],
        ["tag", cover, "--db", str(db), "--html", cover],
        ["tag", str(imgs[0]), "--db", str(db), "--html", str(db)],
        ["subclasses", cover, "--labels", "none", "--html", cover],
    ):
        rc, out, err = run(capsys, *argv)
        assert rc == 2 and "would be overwritten" in one_line(err), (argv, err)
        assert out == ""
    assert digest(imgs[2]) == before and stub.calls == 0


def test_two_outputs_naming_one_file_are_refused(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    both = str(tmp_path / "r.json")
    rc, _, err = run(capsys, "search", str(imgs[0]), "--db", str(db), "--out", both,
                     "--html", both)  # fmt: skip
    assert rc == 2 and "are the same file" in one_line(err)
    rc, _, err = run(capsys, "classify", str(imgs[0]), "--out", both, "--json", both)
    assert rc == 2 and "are the same file" in one_line(err)
    assert not Path(both).exists()


def test_video_and_evaluate_outputs_never_replace_their_inputs(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    clip = out / "report.html"  # a video with an unlucky name, in the output folder
    clip.write_bytes(b"not decoded: refused before")
    rc, _, err = run(capsys, "video", str(clip), "--out", str(out))
    assert rc == 2 and "the input video" in one_line(err)
    assert clip.read_bytes() == b"not decoded: refused before"
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    rc, _, err = run(
        capsys, "evaluate", "--model", str(model), "--json", str(model / "config.json")
    )
    assert rc == 2 and "a file of the model" in one_line(err)
    assert (model / "config.json").read_text() == "{}"


# ----------------------------------------------------------------------------- A6


def test_tag_remove_takes_the_name_off_the_indexed_faces(
    indexed: tuple[Path, list[Path]], stub: StubEmbedder, capsys
) -> None:
    from exprsim.index.store import FaceIndex

    db, imgs = indexed
    assert run(capsys, "tag", "add", "smiley", str(imgs[0]), "--db", str(db))[0] == 0
    rc, out, _ = run(capsys, "tag", str(imgs[0]), "--db", str(db), "--index",
                     "--threshold", "2.0")  # fmt: skip
    assert rc == 0 and "tagged 3 indexed faces" in out
    with FaceIndex(db) as index:
        ids = [r.id for r in index.records()]
        index.add_tags(ids[:1], "favourite")  # a user's own tag stays
    rc, out, _ = run(capsys, "tag", "remove", "smiley", "--db", str(db))
    assert rc == 0 and "removed 1 reference face of 'smiley'" in out
    with FaceIndex(db) as index:  # was: every face still tagged 'smiley'
        assert [r.tags for r in index.records()] == [("favourite",), (), ()]


# ----------------------------------------------------------------------------- A8


def test_search_report_of_a_query_whose_name_is_not_utf8(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    query = tmp_path / NOT_UTF8
    query.write_bytes(imgs[0].read_bytes())
    report = tmp_path / "report.html"
    report.write_text("<old report>")
    rc, _, err = run(capsys, "search", str(query), "--db", str(db), "--html", str(report),
                       "--include-same-image")  # fmt: skip
    assert rc == 0, err  # was: UnicodeEncodeError, and report.html truncated to 0 bytes
    text = report.read_text(encoding="utf-8")
    assert "caf\\xe9.png" in text and "<old report>" not in text


def test_tag_add_of_an_image_whose_name_is_not_utf8(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    image = tmp_path / NOT_UTF8
    image.write_bytes(imgs[0].read_bytes())
    rc, out, err = run(capsys, "tag", "add", "happy", str(image), "--db", str(db))
    assert rc == 0 and "caf\\xe9.png" in out, err  # was: UnicodeEncodeError from SQLite
    rc, out, _ = run(capsys, "tag", "list", "--db", str(db))
    assert rc == 0 and out.rstrip().endswith("caf\\xe9.png")


def test_a_tag_name_that_is_not_utf8_is_one_line_before_any_work(
    indexed: tuple[Path, list[Path]], tmp_path: Path, stub: StubEmbedder, capsys
) -> None:
    db, imgs = indexed
    name = os.fsdecode(b"h\xffappy")
    fresh = tmp_path / "fresh.db"
    rc, _, err = run(capsys, "tag", "add", name, str(imgs[0]), "--db", str(fresh))
    assert rc == 2 and "not valid UTF-8" in one_line(err)
    assert not fresh.exists() and stub.calls == 0  # no database made, no image read
    rc, _, err = run(capsys, "tag", "remove", name, "--db", str(db))
    assert rc == 2 and "not valid UTF-8" in one_line(err)


def test_a_report_is_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    from exprsim.report.html import Page

    path = tmp_path / "report.html"
    path.write_text("<old report>")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        Page("new").save(path)
    assert path.read_text() == "<old report>"  # was: replaced (or truncated) in place
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left
    monkeypatch.undo()
    Page("names", subtitle=NOT_UTF8).save(path)  # was: UnicodeEncodeError, 0 bytes left
    assert "caf\\udce9.png" in path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- A10


def test_a_file_named_twice_is_summarized_once(
    tmp_path: Path, stub: StubEmbedder, monkeypatch, capsys
) -> None:
    from exprsim.cli.argtypes import expand_image_paths

    imgs = write_images(tmp_path / "album", 3)
    (tmp_path / "link.png").symlink_to(imgs[1])
    monkeypatch.chdir(tmp_path)
    named = ["album", "album/", "./album", str(tmp_path / "album"), "album/img_0001.png",
             "link.png", str(imgs[2])]  # fmt: skip
    files = expand_image_paths(named)
    assert files == ["album/img_0000.png", "album/img_0001.png", "album/img_0002.png"]
    rc, out, _ = run(capsys, "summarize", *named, "-n", "2", "--out", "s.csv")
    assert rc == 0, out
    import pandas as pd

    assert len(pd.read_csv("s.csv")) == 3  # was 3 rows per naming: 15
    assert sum(int(line.split()[2]) for line in out.splitlines() if "cluster" in line) == 3


def test_classify_counts_a_file_named_twice_once(
    tmp_path: Path, stub: StubEmbedder, monkeypatch, capsys
) -> None:
    from exprsim.apps.classify import ReferenceSet
    from exprsim.data.fer import FERPLUS_CLASSES

    imgs = write_images(tmp_path / "album", 1)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((20, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ref = tmp_path / "ref.npz"
    ReferenceSet(emb, rng.integers(0, 8, 20), FERPLUS_CLASSES, "stub@1", 3).save(ref)
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(capsys, "classify", "album/img_0000.png", "./album/img_0000.png",
                     str(imgs[0]), "--reference", str(ref), "--out", "c.csv")  # fmt: skip
    assert rc == 0, err
    import pandas as pd

    assert len(pd.read_csv("c.csv")) == 1  # was one row per naming: 3


# ----------------------------------------------------------------------------- A13


@pytest.mark.parametrize("verbose", [False, True])
def test_faiss_loader_lines_only_with_verbose(verbose: bool) -> None:
    pytest.importorskip("faiss")
    code = (
        "import exprsim.cli.model_cmd as m\n"
        "def load(args):\n"
        "    import faiss\n"
        "    return 0\n"
        "m.cmd_models = load\n"
        "from exprsim.cli import main\n"
        f"raise SystemExit(main({['-v', 'models'] if verbose else ['models']!r}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert ("faiss.loader" in proc.stderr) == verbose, proc.stderr  # was: 10 INFO lines
