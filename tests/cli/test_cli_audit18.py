"""Eighteenth audit round, the CLI: an unwritable HOME, a C locale, composed tag names."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _summarize(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    from exprsim.samples import sample_path

    photos = tmp_path / "album"
    photos.mkdir(exist_ok=True)
    for name in ("grace_hopper.jpg", "astronaut_eileen_collins.jpg"):
        shutil.copy(sample_path(name), photos / name)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME")}
    env["HOME"] = "/proc/no-such-home"  # no process can make a folder there, root included
    html = ["--html", str(tmp_path / "album.html")]
    return subprocess.run(
        [sys.executable, "-m", "exprsim", *flags, "summarize", str(photos), "-n", "2", *html],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_an_unwritable_home_does_not_fill_stderr_with_matplotlib_cache_warnings(
    tmp_path: Path,
) -> None:
    """Before: two WARNING lines (``mkdir -p failed``, ``set the MPLCONFIGDIR``), even with
    ``-q``; the report was made all the same. ``-v`` still shows them."""
    quiet = _summarize(tmp_path, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "album.html").stat().st_size > 0
    assert "matplotlib" not in quiet.stderr, quiet.stderr
    verbose = _summarize(tmp_path, "-v")
    assert verbose.returncode == 0 and "MPLCONFIGDIR" in verbose.stderr


def test_a_c_locale_without_utf8_mode_escapes_names_on_stdout(tmp_path: Path) -> None:
    """Before: under ``LC_ALL=C PYTHONUTF8=0`` stdout is ascii with "surrogateescape",
    which the escaping left alone: `classify` died on a UnicodeEncodeError and its -o
    file was not written (`faces`, `compare`, `summarize`, `tag list`, `index info` too)."""
    from exprsim.samples import sample_path

    photo = tmp_path / "İstanbul.jpg"
    shutil.copy(sample_path("grace_hopper.jpg"), photo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENC"))}
    env.update(LC_ALL="C", PYTHONUTF8="0")
    out = tmp_path / "c.csv"
    done = subprocess.run(
        [sys.executable, "-m", "exprsim", "-q", "classify", str(photo), "-o", str(out)],
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-800:]
    assert b"stanbul.jpg" in done.stdout and len(out.read_text().splitlines()) == 2


def test_a_tag_typed_composed_or_decomposed_is_one_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Before: ``café`` with a combining accent and ``café`` with ``é`` were two tags that
    look the same in every list, and ``tag remove café`` missed the first."""
    from cli_run import run, stub_cli_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
    from stub_embedder import StubEmbedder, write_images

    from exprsim.index.store import FaceIndex

    stub_cli_model(monkeypatch, StubEmbedder())
    imgs = write_images(tmp_path / "photos", 2)
    db = str(tmp_path / "f.db")
    nfd, nfc = "cafe\u0301", "caf\u00e9"
    assert run(capsys, "tag", "add", nfd, str(imgs[0]), "--db", db)[0] == 0
    assert run(capsys, "tag", "add", nfc, str(imgs[1]), "--db", db)[0] == 0
    with FaceIndex(db) as index:
        assert sorted({r["name"] for r in index.tag_references()}) == [nfc]
        # a name an earlier version stored as typed (decomposed) ...
        index.add_tag_reference("x", np.eye(16, dtype=np.float32)[0], "stub@1")
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE tag_refs SET name = ? WHERE name = 'x'", (nfd,))
    rc, out, _ = run(capsys, "tag", "remove", nfc, "--db", db)  # ... is removed as typed now
    assert rc == 0 and "removed 2 reference faces" in out
    rc, out, _ = run(capsys, "tag", "remove", nfc, "--db", db)
    assert rc == 0 and "removed 1 reference face" in out


def test_names_typed_on_the_command_line_cannot_forge_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Before: ``index remove`` and ``embed``'s "not written" printed the names raw, so a
    newline (or an escape sequence) in them made a second, forged message line."""
    from cli_run import one_line, run

    from exprsim.index.store import FaceIndex

    db = tmp_path / "f.db"
    FaceIndex(db).close()
    rc, _, err = run(capsys, "index", "remove", "--db", str(db), "old\nexprsim: removed 9\x1b[2J")
    assert rc == 1 and "old\\nexprsim: removed 9\\x1b[2J" in one_line(err)
    out = tmp_path / "o\nFORGED.csv"
    rc, _, err = run(capsys, "embed", "-o", str(out), str(tmp_path / "missing.jpg"))
    assert rc != 0 and not out.exists()
    lines = err.strip().splitlines()
    assert lines[-1].endswith("o\\nFORGED.csv not written") and "FORGED" not in lines[0]


def test_prune_forgets_the_files_of_a_folder_whose_photos_were_all_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Before: ``index add DIR --prune`` on the emptied folder said "no image files found
    in DIR" (exit 2) and forgot nothing: the gone photos stayed in searches."""
    from cli_run import run, stub_cli_model

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
    from stub_embedder import StubEmbedder, write_images

    from exprsim.index.store import FaceIndex

    stub_cli_model(monkeypatch, StubEmbedder())
    folder = tmp_path / "album"
    imgs = write_images(folder, 3)
    db = str(tmp_path / "f.db")
    assert run(capsys, "index", "add", str(folder), "--db", db)[0] == 0
    for img in imgs:
        img.unlink()
    rc, out, _ = run(capsys, "index", "add", str(folder), "--prune", "--db", db)
    assert rc == 0 and "forgot 3 files no longer there" in out
    with FaceIndex(db) as index:
        assert index.info().n_files == 0 and len(index) == 0
    rc, _, err = run(capsys, "index", "add", str(folder), "--db", db)  # without --prune
    assert rc == 2 and "no image files found" in err
