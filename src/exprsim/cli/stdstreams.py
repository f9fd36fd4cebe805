"""The standard streams a command may be given: closed, on a full disk, or unable to
encode a file name.

* A closed descriptor (``2>&-``, a daemon or job launcher) is taken by ``/dev/null``
  before anything opens a file, so no output file (an index, a table) becomes "stderr"
  for the native libraries that write to descriptor 2.
* stderr carries diagnostics only: when it is closed, or its writes fail (``2>/dev/full``,
  a log on a full disk), the command still does its work and writes its results
  (:class:`Diagnostics`).
* stdout carries results: when it is closed (``>&-``), the command still saves its files,
  then fails saying that what it printed was lost ("standard output is closed"), rather
  than exit 0 with results lost in silence; so when its writes fail with an I/O error
  (the terminal it was on closed, with SIGHUP ignored: ``disown``, ``setsid``), where a
  finished command failed as "error: Input/output error", naming nothing.
* A stdout that cannot encode a name (an ASCII or Latin-1 locale without Python's UTF-8
  mode, ``PYTHONIOENCODING=ascii``) writes it backslash-escaped, as Python's stderr does,
  instead of stopping the command before its ``-o`` / ``--html`` files are written.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import stat
import sys
from typing import Any

STDOUT_CLOSED = "standard output is closed"
#: errors of a write to a terminal that is gone (hung up)
_GONE = frozenset({errno.EIO, errno.ENXIO})


class Diagnostics:
    """stderr for diagnostics: a write or flush that fails (a full disk, a closed pipe's
    reader gone) is dropped; later ones are tried again."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        try:
            self.stream.write(text)
        except (OSError, ValueError):  # tried again next time: a disk may have room again
            self.failed = True
        return len(text)

    def flush(self) -> None:
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


class ResultsOutput:
    """stdout whose writes may fail because its terminal is gone (``EIO``, ``ENXIO``):
    what is written from then on goes nowhere (descriptor 1 is given ``/dev/null``, so
    Python's own flush at exit does not fail again) and is counted (:attr:`lost`), as
    for :class:`ClosedOutput`. Other errors (a full disk, a closed pipe) are raised."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lost = 0
        self.why = ""
        try:  # only a terminal (a character device) goes away: a file's is a failing disk
            self.terminal = stat.S_ISCHR(os.fstat(stream.fileno()).st_mode)
        except (AttributeError, OSError, ValueError):  # no descriptor (a test's capture)
            self.terminal = False

    def _gone(self, exc: OSError, size: int) -> None:
        if exc.errno not in _GONE or not self.terminal:
            raise exc
        self.lost += size or 1
        self.why = f"standard output failed ({exc.strerror or exc}: its terminal closed?)"
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def write(self, text: str) -> int:
        if self.lost:
            self.lost += len(text)
            return len(text)
        try:
            self.stream.write(text)
        except OSError as exc:
            self._gone(exc, len(text))
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self._gone(exc, 0)

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno, buffer, isatty...
        return getattr(self.stream, name)


class ClosedOutput:
    """stdout when descriptor 1 was closed: what is written goes nowhere, and is counted
    (:attr:`lost`), so that the command, once its files are saved, can fail saying so."""

    encoding = "utf-8"
    errors = "strict"
    why = STDOUT_CLOSED

    def __init__(self) -> None:
        self.lost = 0

    def write(self, text: str) -> int:
        self.lost += len(text)
        return len(text)

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


#: error handlers under which a character the encoding lacks stops the write
_FAILING = frozenset({"strict", "surrogateescape"})


def escape_unencodable(stream: Any) -> None:
    """Let ``stream`` write what its encoding cannot hold as backslash escapes (a stream
    that can encode every character, or cannot be reconfigured, is left alone)."""
    try:
        name = codecs.lookup(stream.encoding).name
    except (AttributeError, LookupError, TypeError):
        return
    # a C or POSIX locale opens stdout as ascii with "surrogateescape", which writes back
    # the bytes of undecodable names but fails on any other character, as "strict" does
    if name.startswith("utf") or getattr(stream, "errors", "strict") not in _FAILING:
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
        out = ResultsOutput(out)
    err: Any = sys.stderr
    if err is None or 2 in closed:
        err = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (the process's own)
    return out, Diagnostics(err)


def lost_output(command: str, code: int) -> int:
    """The exit code of ``command``, which ended with ``code``: 2 when it printed results
    to a closed or failing stdout (its files are saved by then), said on stderr."""
    out = sys.stdout
    if not isinstance(out, ClosedOutput | ResultsOutput):  # not from standard_streams
        return code
    with contextlib.suppress(ValueError):  # a closed stream; a full disk is raised
        out.flush()  # what is buffered: a terminal gone fails only here
    if not out.lost:
        return code
    print(
        f"exprsim {command}: error: {out.why}: what it printed was lost "
        "(its output files, if any, are saved)",
        file=sys.stderr,
    )
    return code or 2
