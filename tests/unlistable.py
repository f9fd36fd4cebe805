"""Shared by tests: a folder that cannot be listed (as ``chmod 000`` makes one for a user
other than root; the tests run as root, so ``os.scandir`` is made to refuse it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def deny_listing(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``os.scandir(folder)`` raise ``PermissionError`` for the rest of the test."""
    denied = os.path.abspath(folder)
    real = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if os.path.abspath(os.fspath(path)) == denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
