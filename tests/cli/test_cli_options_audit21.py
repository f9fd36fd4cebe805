"""Round 21: options that another one makes useless are refused in one line before any
work (they were accepted and silently ignored), and checks that failed only after the
embedding now come first."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from cli_run import one_line, run

from exprsim.errors import ExprsimError


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model (the start of the work) ends the command with a line that says so."""
    import exprsim.models.embedder as embedder

    def reached(*args: object, **kwargs: object) -> None:
        raise ExprsimError("WORK BEGAN")

    monkeypatch.setattr(embedder, "load_model", reached)


@pytest.fixture
def album(tmp_path: Path) -> Path:
    from PIL import Image

    (tmp_path / "album").mkdir()
    Image.new("RGB", (32, 32), (90, 90, 90)).save(tmp_path / "album" / "a.png")
    return tmp_path / "album"


# ------------------------------------------------------------------------ subclasses


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--fer", "PublicTest", "--labels", "none"], "--labels is only used with image PATHs"),
        (["--fer", "PublicTest", "--detector", "dlib"], "--detector is only used with image"),
        (["--fer", "PublicTest", "--components", "2", "--max-components", "3"],
         "--max-components is only used with --components bic"),
    ],
)  # fmt: skip
def test_subclasses_refuses_ignored_options(
    capsys: pytest.CaptureFixture, no_model: None, tmp_path: Path, flags: list[str], words: str
) -> None:
    rc, _, err = run(capsys, "subclasses", *flags, "--html", str(tmp_path / "s.html"))
    assert rc == 2 and words in one_line(err), err


def test_subclasses_guards_defaults_and_bic(
    capsys: pytest.CaptureFixture, no_model: None, tmp_path: Path, album: Path
) -> None:
    """Guards: the defaults, and --max-components with bic, reach the work."""
    html = ["--html", str(tmp_path / "s.html"), "--map", "pca"]
    for argv in (
        ["--fer", "PublicTest", *html],
        ["--fer", "PublicTest", "--max-components", "3", *html],
        [str(album), "--labels", "none", "--detector", "mediapipe", *html],
        [str(album), "--components", "2", *html],
    ):
        rc, _, err = run(capsys, "subclasses", *argv)
        assert rc == 2 and "WORK BEGAN" in one_line(err), (argv, err)


def test_subclasses_map_umap_without_umap_learn_is_refused_first(
    capsys: pytest.CaptureFixture,
    no_model: None,
    tmp_path: Path,
    album: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: the embedding ran, then ``import umap`` failed in a traceback."""
    monkeypatch.setitem(sys.modules, "umap", None)  # not installed, whatever this venv has
    argv = [str(album), "--labels", "none", "--html", str(tmp_path / "s.html")]
    rc, _, err = run(capsys, "subclasses", *argv, "--map", "umap")
    line = one_line(err)
    assert rc == 2 and "umap-learn" in line and "pip install" in line, err
    rc, _, err = run(capsys, "subclasses", *argv, "--map", "auto")  # guard: falls back
    assert rc == 2 and "WORK BEGAN" in one_line(err)


def test_project_2d_umap_without_umap_learn_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import numpy as np

    from exprsim.report import plots

    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(ExprsimError, match="umap-learn"):
        plots.project_2d(np.random.default_rng(0).normal(size=(12, 4)), method="umap")
    assert plots.check_map_method("auto") == "tsne"


# ----------------------------------------------------------------------------- video


@pytest.mark.parametrize("flags", [["--eps", "0.3"], ["--min-samples", "5"]])
def test_video_dbscan_options_with_iou_tracks_are_refused(
    capsys: pytest.CaptureFixture, no_model: None, tmp_path: Path, flags: list[str]
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    out = ["--out", str(tmp_path / "out")]
    rc, _, err = run(capsys, "video", str(clip), *out, "--identity", "iou", *flags)
    assert rc == 2 and f"{flags[0]} is only used with --identity dlib" in one_line(err), err
    for identity in ("dlib", "auto"):  # guard: DBSCAN reads them there
        rc, _, err = run(capsys, "video", str(clip), *out, "--identity", identity, *flags)
        assert rc == 2 and "WORK BEGAN" in one_line(err), err
    rc, _, err = run(capsys, "video", str(clip), *out, "--identity", "iou")  # guard: defaults
    assert rc == 2 and "WORK BEGAN" in one_line(err), err


# ------------------------------------------------------------------------- index add


def test_index_add_from_parquet_refuses_workers(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    db = tmp_path / "faces.db"
    argv = ["index", "add", "--from-parquet", str(tmp_path), "--db", str(db)]
    rc, _, err = run(capsys, *argv, "--workers", "4")
    line = one_line(err)
    assert rc == 2 and "--from-parquet" in line and "--workers" in line, err
    assert not db.exists()


# ----------------------------------------------------------------------------- faces


def test_faces_size_without_crops_is_refused_before_the_work(
    capsys: pytest.CaptureFixture, album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import exprsim.faces.pipeline as pipeline

    def reached(*args: object, **kwargs: object) -> None:
        raise ExprsimError("WORK BEGAN")

    monkeypatch.setattr(pipeline, "analyze_files", reached)
    rc, out, err = run(capsys, "faces", str(album), "--size", "64")
    assert rc == 2 and out == "" and "--size is only used with --crops" in one_line(err), err
    rc, _, err = run(
        capsys, "faces", str(album), "--size", "64", "--crops", str(album.parent / "c")
    )
    assert rc == 2 and "WORK BEGAN" in one_line(err), err  # guard


def test_faces_on_stdout_writes_nothing_when_every_input_fails(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """Before: a header-only CSV on stdout (a pipeline read it as an empty table)."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a picture")
    rc, out, err = run(capsys, "faces", str(bad))
    assert rc != 0 and out == "", out
    assert "bad.jpg" in one_line(err)


# ------------------------------------------------------------------------------- tag


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["tag", "list", "smile"], "tag list takes no 'smile'"),
        (["tag", "calibrate", "extra"], "tag calibrate takes no 'extra'"),
    ],
)
def test_tag_list_and_calibrate_refuse_extra_words(
    capsys: pytest.CaptureFixture, tmp_path: Path, argv: list[str], words: str
) -> None:
    db = ["--db", str(tmp_path / "t.db")] if argv[1] == "list" else []
    rc, out, err = run(capsys, *argv, *db)
    assert rc == 2 and out == "" and words in one_line(err), err
