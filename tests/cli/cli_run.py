"""Shared helpers of the CLI tests: run a command in-process, check one-line errors."""

from __future__ import annotations

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
