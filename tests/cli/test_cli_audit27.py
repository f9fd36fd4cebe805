"""Round 27 (docs/robustness.md): what an interrupted `index add` says it stored."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from cli_run import run, stub_cli_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from stub_embedder import StubEmbedder, write_images
from test_cli_audit9 import Stub16

from exprsim.index.store import FaceIndex


def test_an_add_stopped_while_another_writer_stores_counts_none_as_its_own(
    tmp_path, capsys, monkeypatch
):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    write_images(mine, 2)
    write_images(theirs, 3, seed=5)
    db = tmp_path / "i.db"
    real = FaceIndex._writer_lock

    others: list[FaceIndex] = []

    @contextlib.contextmanager
    def waiting(self, wait=None):
        if self in others:  # the other writer takes the lock as usual
            with real(self, wait):
                yield
            return
        # while this one waits, the other writer stores its 3 files; then Ctrl-C
        with FaceIndex(db, embedder=StubEmbedder()) as other:
            others.append(other)
            other.add([theirs])
        raise KeyboardInterrupt

    monkeypatch.setattr(FaceIndex, "_writer_lock", waiting)
    stub_cli_model(monkeypatch, Stub16())
    rc, _, err = run(capsys, "index", "add", str(mine), "--db", str(db))
    assert rc == 130
    line = err.strip().splitlines()[-1]
    # was "3 files added in this run are stored (3 in ...)": the other writer's
    assert "interrupted: 0 files added in this run are stored (3 in " in line


def test_an_add_stopped_part_way_counts_its_own_files(tmp_path, capsys, monkeypatch):
    write_images(tmp_path / "old", 2, seed=7)
    write_images(tmp_path / "imgs", 5)
    db = tmp_path / "i.db"
    with FaceIndex(db, embedder=StubEmbedder()) as ix:
        ix.add([tmp_path / "old"])
    stub_cli_model(monkeypatch, Stub16(stop=2))
    rc, _, err = run(capsys, "index", "add", str(tmp_path / "imgs"), "--db", str(db))
    assert rc == 130
    assert "interrupted: 2 files added in this run are stored (4 in " in err.splitlines()[-1]


def test_index_add_ann_auto_gives_the_choice_back_as_rebuild_does(tmp_path, capsys, monkeypatch):
    import pytest

    pytest.importorskip("faiss", reason="faiss not installed: pip install 'exprsim[ann]'")
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b", 2, seed=3)
    write_images(tmp_path / "c", 2, seed=4)
    db = str(tmp_path / "i.db")
    stub_cli_model(monkeypatch, Stub16())
    assert run(capsys, "index", "add", str(tmp_path / "a"), "--db", db)[0] == 0
    assert run(capsys, "index", "rebuild", "--db", db, "--ann", "faiss-ivf")[0] == 0

    def chosen() -> str:
        with FaceIndex(db) as ix:
            return ix.recorded_ann_backend

    assert chosen() == "faiss-ivf"
    assert run(capsys, "index", "add", str(tmp_path / "b"), "--db", db)[0] == 0
    assert chosen() == "faiss-ivf"  # no --ann: the choice stays
    assert run(capsys, "index", "add", str(tmp_path / "c"), "--db", db, "--ann", "auto")[0] == 0
    assert chosen() == "auto"  # was faiss-ivf: `--ann auto` did nothing on add


def test_serve_refuses_a_data_set_folder_for_its_uploads(tmp_path, capsys):
    import pytest

    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    fer = tmp_path / "fer2013"
    fer.mkdir()
    (fer / "fer2013new.csv").write_text("Usage,neutral\n")
    db = str(tmp_path / "faces.db")
    for flag in ("--web-dir", "--data-dir"):  # the older name too, as other commands use it
        rc, _, err = run(capsys, "serve", "--db", db, flag, str(fer), "--port", "0")
        assert rc == 2 and "holds fer2013new.csv, a data set's folder" in err  # was: served
        assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in fer.iterdir()) == ["fer2013new.csv"]  # no uploads/ made


def test_json_flag_given_a_file_name_says_it_prints(tmp_path, capsys):
    from exprsim.samples import sample_path

    photo = str(sample_path("grace_hopper.jpg"))
    out = str(tmp_path / "out.json")
    rc, _, err = run(capsys, "compare", photo, photo, "--json", out)
    assert rc == 2 and "--json of `exprsim compare` takes no file name" in err  # was "no such file"
    assert not (tmp_path / "out.json").exists()


def test_summarize_takes_search_s_name_of_the_quality_filter(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        run(capsys, "summarize", "--help")
    assert "--quality-ok" in capsys.readouterr().out
    rc, _, err = run(capsys, "summarize", str(tmp_path / "none"), "--quality-ok")
    assert "unrecognized arguments" not in err  # was: refused, search's name for it
    assert rc != 0 and "none" in err


def test_help_says_the_ranges_the_parser_enforces(capsys):
    import pytest

    cases = {
        ("tag",): ["in (0, 2]"],
        ("search",): ["(0 to 180)", "the quality check takes 3.0"],
        ("video",): ["0.0001 to 1000", "at most 1000", "in (0, 2]", "0 to 180"],
        ("fec", "fetch"): ["at most 86,400", "0 to 10"],
        ("fec", "crop"): ["0 to 10"],
        ("subclasses",): ["0 to 2**32 - 1"],
    }
    for command, texts in cases.items():
        with pytest.raises(SystemExit):
            run(capsys, *command, "--help")
        text = " ".join(capsys.readouterr().out.split())  # wrapped lines joined
        for t in texts:
            assert t in text, (command, t)
