"""Ctrl-C while a partial result is being saved.

After a first Ctrl-C, long commands keep what is complete and write it out (a partial video
report, for example). A user who presses Ctrl-C again at once would otherwise lose that
report half-built. :func:`hold_interrupts` holds one such press: it is logged and ignored,
and a further press interrupts as usual (an escape hatch, should the saving hang).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)


@contextlib.contextmanager
def hold_interrupts(what: str) -> Iterator[None]:
    """While the block runs, the first Ctrl-C (SIGINT) is held: logged (``"finishing
    <what> first"``) and ignored; a second one raises :class:`KeyboardInterrupt` as usual.
    The previous handler is restored afterwards. Outside the main thread (where Python
    cannot set signal handlers, and which Ctrl-C never reaches) nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def hold(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:
            raise KeyboardInterrupt
        log.warning("Ctrl-C: finishing %s first (press Ctrl-C again to abandon it)", what)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        # None: a handler installed outside Python; Python's own is the best restore
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )
