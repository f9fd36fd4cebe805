"""Progress bars in a log: stderr when it is not a terminal.

A progress bar redraws itself with carriage returns, up to ten times a second. On a
terminal that is one line that moves; in a log file (``2> run.log``, a CI job, cron) it is
one enormous line, and every error line printed above the bar carries a copy of it.
:class:`LogStream` stands in for ``sys.stderr`` there: a bar's redraws become one plain
line at most every :data:`LOG_INTERVAL_S` seconds (and its first and last state), and any
other text passes through unchanged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TextIO

#: seconds between two progress lines of one bar in a log
LOG_INTERVAL_S = 30.0


class LogStream:
    """A text stream for a log file that turns progress-bar redraws into plain lines.

    A write holding a carriage return is a bar's redraw (tqdm writes ``"\\r" + bar``, and
    ``"\\r" + spaces + "\\r"`` to clear it): its last non-blank part is the bar's state,
    written as a line of its own when ``interval`` seconds have passed since the last one
    (the first state at once). A bare newline right after a redraw (the bar closing) writes
    the state not yet shown instead. Everything else is written as it comes.

    Args:
        stream: the real stream (``sys.stderr``).
        interval: seconds between two progress lines.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        stream: TextIO,
        interval: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = float(interval)
        self._clock = clock
        self._last = -math.inf
        self._state = ""  # the bar's latest state, not yet written
        self._after_redraw = False

    def write(self, text: str) -> int:
        if not text:  # tqdm writes empty strings between its parts
            return 0
        n = len(text)
        text = text.replace("\r\n", "\n")  # a line ending, not a redraw
        if "\r" not in text:
            if self._after_redraw and text.strip("\n") == "":
                self._after_redraw = False
                if self._state:  # the bar closes: its last state
                    self._emit(self._clock())
                return n
            self._plain(text)
            return n
        head, *redraws = text.split("\r")
        if head:  # a line the redraw would overwrite on a terminal: kept, as a line
            self._plain(head if head.endswith("\n") else head + "\n")
        for part in redraws:
            self._redraw(part)
        return n

    def _redraw(self, part: str) -> None:
        """One redrawn line (the text after a carriage return); text after a newline in it
        is not the bar's and passes through."""
        state, newline, rest = part.partition("\n")
        if state.strip():
            self._state = state.strip()
        now = self._clock()
        if newline:  # the line was ended: its last state, then the rest as it comes
            if self._state:
                self._emit(now)
            self._after_redraw = False
            if rest:
                self._plain(rest)
            return
        if self._state and now - self._last >= self.interval:
            self._emit(now)
        self._after_redraw = True

    def _plain(self, text: str) -> None:
        self._after_redraw = False
        self.stream.write(text)

    def _emit(self, now: float) -> None:
        self.stream.write(self._state + "\n")
        self._state = ""
        self._last = now

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, errors, fileno, ...
        return getattr(self.stream, name)


def wants_log_stream(stream: Any) -> bool:
    """Whether ``stream`` is not a terminal (a file, a pipe), so bars need
    :class:`LogStream`; a stream without ``isatty`` is left alone."""
    try:
        return not stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
