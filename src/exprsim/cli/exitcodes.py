"""The exit-code rule every command that reads many inputs follows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from exprsim.errors import printable
from exprsim.wording import count


def failure_exit_code(failed: int, total: int, strict: bool = False) -> int:
    """1 when every input failed (or any did, with ``strict``), else 0.

    Unreadable inputs among readable ones are reported and skipped, so a partly bad folder
    still gives its results and exit code 0; a run that produced nothing is a failure.
    """
    if failed <= 0:
        return 0
    return 1 if strict or failed >= total else 0


def report_failures(
    command: str, failures: list[Any], n_inputs: int, outcome: str = "could not be read"
) -> int:
    """One line per failed input, a count line ("N of M files ``outcome``"), and
    :func:`failure_exit_code`."""
    for exc in failures:
        print(f"exprsim {command}: skipped {exc}", file=sys.stderr)
    if failures:
        print(
            f"exprsim {command}: {len(failures)} of {count(n_inputs, 'file')} {outcome}",
            file=sys.stderr,
        )
    return failure_exit_code(len(failures), n_inputs)


def saved_where(out: str | Path | None, saved: str | Path | None) -> str:
    """Where the table of an interrupted run went (``saved``; ``None``: nowhere), for the
    end of its message: ``" -> out"``, ``" -> out.partial.csv (out, from an earlier run,
    left as it was)"`` or ``"; out not written"``. (The earlier table may itself be an
    interrupted run's, so it is not called complete.)"""
    if not out:
        return ""
    shown = printable(str(out))  # a newline in the name must not forge a line
    if saved is None:
        kept = " (the earlier file there is left as it was)" if Path(out).exists() else ""
        return f"; {shown} not written{kept}"
    if Path(saved) != Path(out):
        return f" -> {printable(str(saved))} ({shown}, from an earlier run, left as it was)"
    return f" -> {printable(str(saved))}"
