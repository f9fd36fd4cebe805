"""Seventeenth round (an audit of the process environment): where parsed FER tables are
cached, and that the cache does not grow without bound."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exprsim.data import fer


def test_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "mine"))
    assert fer._cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("EXPRSIM_CACHE", "")  # set but empty: not the working folder
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fer._cache_dir() == tmp_path / "xdg" / "exprsim"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # the spec: ignored unless absolute
    assert fer._cache_dir() == tmp_path / "home" / ".cache" / "exprsim"


def test_only_the_most_recently_used_tables_are_kept(tmp_path: Path) -> None:
    """Audit: every new path or mtime of the data added a 77 MB entry for good (13 of them,
    959 MB, on the audited machine)."""
    names = [f"fer-{i:016x}.npz" for i in range(7)]
    for age, name in enumerate(names):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1e9 + age, 1e9 + age))
    (tmp_path / "notes.txt").write_text("not ours")
    dead = tmp_path / f".{names[0]}.99999999.1.npz"  # a killed parse's (no such process)
    dead.write_bytes(b"x")
    fer._prune_cache(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names[-fer.CACHE_KEEP :], "notes.txt"])


def test_a_table_pruned_by_another_process_is_parsed_again(tmp_path: Path) -> None:
    """Review: pruning could remove a table between another process's check and its load
    (FileNotFoundError)."""
    assert fer._cached_table(tmp_path / "fer-0123456789abcdef.npz") is None
