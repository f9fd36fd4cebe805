"""The standard streams a command may be given: closed, on a full disk, or unable to
encode a file name.

* A closed descriptor (``2>&-``, a daemon or job launcher) is taken by ``/dev/null``
  before anything opens a file, so no output file (an index, a table) becomes "stderr"
  for the native libraries that write to descriptor 2.
* stderr carries diagnostics only: when it is closed, or its writes fail (``2>/dev/full``,
  a log on a full disk), the command still does its work and writes its results
  (:class:`Diagnostics`).
* stdout carries results: when it is closed (``>&-``), writing a result is an error
  ("standard output is closed"), as ``cat`` has it, rather than results lost in silence.
* A stdout that cannot encode a name (an ASCII or Latin-1 locale without Python's UTF-8
  mode, ``PYTHONIOENCODING=ascii``) writes it backslash-escaped, as Python's stderr does,
  instead of stopping the command before its ``-o`` / ``--html`` files are written.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import sys
from typing import Any

STDOUT_CLOSED = "standard output is closed"


class Diagnostics:
    """stderr for diagnostics: a write or flush that fails (a full disk, a closed pipe's
    reader gone) is dropped, and later writes are not tried."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                self.stream.write(text)
            except (OSError, ValueError):
                self.failed = True
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.failed = True

    def isatty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno, ...
        return getattr(self.stream, name)


class ClosedOutput:
    """stdout when descriptor 1 was closed: any write of a result is an ``OSError``."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, STDOUT_CLOSED)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return 1


def occupy_closed_descriptors() -> frozenset[int]:
    """Open ``/dev/null`` on whichever of descriptors 0, 1 and 2 is closed; returns those."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:
            return frozenset(closed)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    return frozenset(closed)


def escape_unencodable(stream: Any) -> None:
    """Let ``stream`` write what its encoding cannot hold as backslash escapes (a stream
    that can encode every character, or cannot be reconfigured, is left alone)."""
    try:
        name = codecs.lookup(stream.encoding).name
    except (AttributeError, LookupError, TypeError):
        return
    if name.startswith("utf") or getattr(stream, "errors", "strict") != "strict":
        return
    with contextlib.suppress(AttributeError, ValueError, OSError):
        stream.reconfigure(errors="backslashreplace")


def standard_streams() -> tuple[Any, Any]:
    """The ``(stdout, stderr)`` a command runs with (see the module docstring); the caller
    puts the originals back afterwards."""
    closed = occupy_closed_descriptors()
    out: Any = sys.stdout
    if out is None or 1 in closed:
        out = ClosedOutput()
    else:
        escape_unencodable(out)
    err: Any = sys.stderr
    if err is None or 2 in closed:
        err = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (the process's own)
    return out, Diagnostics(err)
