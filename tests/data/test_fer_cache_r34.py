"""Round 34: a relative ``EXPRSIM_CACHE`` is the folder under the working folder it names,
made absolute when it is read (a relative ``XDG_CACHE_HOME`` stays ignored, as the XDG
spec says), without a word logged."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from exprsim.data import fer


def test_a_relative_exprsim_cache_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")
    monkeypatch.setenv("EXPRSIM_CACHE", "cache")  # a user who means ./cache
    with caplog.at_level(logging.DEBUG, logger="exprsim.data.fer"):
        got = fer._cache_dir()
    # was Path("cache"): relative to whatever folder a later step ran in
    assert got.is_absolute() and got == Path(os.getcwd()) / "cache"
    assert caplog.records == []  # nothing noisy
    monkeypatch.setenv("EXPRSIM_CACHE", os.path.join("..", "shared-cache"))
    assert fer._cache_dir() == Path(os.getcwd()).parent / "shared-cache"
    monkeypatch.setenv("EXPRSIM_CACHE", str(tmp_path / "mine"))  # absolute: as given
    assert fer._cache_dir() == tmp_path / "mine"
