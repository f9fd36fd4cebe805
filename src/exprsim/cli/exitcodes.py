"""The exit-code rule every command that reads many inputs follows."""

from __future__ import annotations

import sys
from typing import Any


def failure_exit_code(failed: int, total: int, strict: bool = False) -> int:
    """1 when every input failed (or any did, with ``strict``), else 0.

    Unreadable inputs among readable ones are reported and skipped, so a partly bad folder
    still gives its results and exit code 0; a run that produced nothing is a failure.
    """
    if failed <= 0:
        return 0
    return 1 if strict or failed >= total else 0


def report_failures(command: str, failures: list[Any], n_inputs: int) -> int:
    """One line per unreadable input, a count line, and :func:`failure_exit_code`."""
    for exc in failures:
        print(f"exprsim {command}: skipped {exc}", file=sys.stderr)
    if failures:
        print(
            f"exprsim {command}: {len(failures)} of {n_inputs} files could not be read",
            file=sys.stderr,
        )
    return failure_exit_code(len(failures), n_inputs)
