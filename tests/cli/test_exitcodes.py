"""The shared exit-code rule of commands that read many inputs."""

from __future__ import annotations

import pytest

from exprsim.cli.exitcodes import failure_exit_code


@pytest.mark.parametrize(
    ("failed", "total", "strict", "expected"),
    [
        (0, 0, False, 0),  # nothing given, nothing failed
        (0, 5, True, 0),
        (2, 5, False, 0),  # partly bad input: results for the rest
        (2, 5, True, 1),  # unless --strict
        (5, 5, False, 1),  # nothing produced
        (1, 1, False, 1),
    ],
)
def test_failure_exit_code(failed, total, strict, expected):
    assert failure_exit_code(failed, total, strict) == expected
