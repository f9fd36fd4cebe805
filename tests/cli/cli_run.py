"""Shared helpers of the CLI tests: run a command in-process, check one-line errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from exprsim.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """``exprsim -q ARGV...``: exit code, stdout, stderr."""
    rc = main(["-q", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_line(err: str) -> str:
    """The one line of ``err`` (fails when there are more or none)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def digest(path: Path) -> str:
    """The SHA-256 of a file (to show a command left it as it was)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stub_cli_model(monkeypatch: pytest.MonkeyPatch, embedder: Any) -> Any:
    """Make the CLI's model ``embedder`` (the stub of tests/index: no detector, no
    download); returns it."""
    import exprsim.cli.apps_cmd as apps_cmd

    monkeypatch.setattr(apps_cmd, "_embedder", lambda args: embedder)
    return embedder
