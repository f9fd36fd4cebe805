"""``embed --engine ray``'s input list, round 25 (docs/robustness.md): a ``**`` glob
entered linked folders (one link to a parent gave every photo 40 times, two made the
listing run for ever); a file whose name holds ``[1]`` was read as a pattern (another file
embedded, or none, exit 0); a file named twice was embedded twice. No Ray is started."""

from __future__ import annotations

import glob
import os
import signal
from pathlib import Path

import pytest

from exprsim.scale.ray_embed import glob_without_links, list_inputs


def _tree(root: Path) -> None:
    for rel in ("a.jpg", "sub/b.jpg", "sub/deep/c.png", "sub/.hidden/d.jpg", ".e.jpg", "f.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


@pytest.mark.parametrize(
    "pattern",
    ["**/*.jpg", "*.jpg", "sub/*/*.png", "**", "sub/**/*.[jp][pn]g", "s?b/*.jpg", "**/deep/*"],
)
def test_the_pattern_finds_what_glob_finds_without_links(tmp_path: Path, pattern: str) -> None:
    """glob.glob(recursive=True) as the reference, on a tree without links (for "**"
    alone, glob also lists folders: files only here)."""
    _tree(tmp_path)
    want = sorted(
        p for p in glob.glob(str(tmp_path / pattern), recursive=True) if os.path.isfile(p)
    )
    assert sorted(glob_without_links(str(tmp_path / pattern))) == want
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a relative pattern gives relative names, as glob's
    try:
        rel = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        assert sorted(glob_without_links(pattern)) == rel
    finally:
        os.chdir(cwd)


def test_links_to_parent_folders_are_not_followed(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.symlink("..", tmp_path / "sub" / "up")
    os.symlink("..", tmp_path / "sub" / "up2")

    def too_long(*args: object) -> None:
        raise TimeoutError("the listing ran for ever")

    signal.signal(signal.SIGALRM, too_long)
    signal.alarm(20)
    try:
        got = list_inputs([str(tmp_path / "**" / "*.jpg")])
    finally:
        signal.alarm(0)
    assert got == [str(tmp_path / "a.jpg"), str(tmp_path / "sub" / "b.jpg")]


def test_a_file_named_like_a_pattern_is_that_file(tmp_path: Path) -> None:
    (tmp_path / "photo[1].jpg").write_bytes(b"x")
    (tmp_path / "photo1.jpg").write_bytes(b"y")
    assert list_inputs([str(tmp_path / "photo[1].jpg")]) == [str(tmp_path / "photo[1].jpg")]
    assert list_inputs([str(tmp_path / "photo[12].jpg")]) == [str(tmp_path / "photo1.jpg")]


def test_a_pattern_matching_nothing_says_so(tmp_path: Path, caplog) -> None:
    assert list_inputs([str(tmp_path / "*.jpg")]) == []
    assert "the pattern matches no file" in caplog.text


def test_a_file_named_twice_is_listed_once(tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "h" / "a.jpg", tmp_path / "link.jpg")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        got = list_inputs(["h/a.jpg", "./h/a.jpg", str(tmp_path / "h" / "a.jpg"), "link.jpg"])
    finally:
        os.chdir(cwd)
    assert len(got) == 1
    assert list_inputs(["s3://b/x.jpg", "s3://b/x.jpg"]) == ["s3://b/x.jpg"]
