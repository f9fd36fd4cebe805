"""Ctrl-C and SIGTERM: what was interrupted, and a partial result that must be saved whole.

After a first Ctrl-C, long commands keep what is complete and write it out (a partial video
report, for example). A user who presses Ctrl-C again at once would otherwise lose that
report half-built. :func:`hold_interrupts` holds one such press: it is logged and ignored,
and a further press interrupts as usual (an escape hatch, should the saving hang).

The ``exprsim`` command makes SIGTERM (``kill``, ``timeout``, a batch scheduler) and
SIGHUP (its terminal closed, an ssh connection dropped; unless ignored, as under
``nohup``) raise :class:`Terminated`, a :class:`KeyboardInterrupt`, so that it saves as
for Ctrl-C (:func:`terminate_as_interrupt`). A library function that keeps its partial
result on Ctrl-C swallows the exception; :func:`interruption` still tells them apart (exit
code 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A signal ignored when the process
started (SIGINT in a script's background job, SIGHUP under ``nohup``) stays ignored.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

#: exit codes of an interrupted command: Ctrl-C (128 + SIGINT), SIGTERM (128 + SIGTERM),
#: SIGHUP (128 + SIGHUP)
INTERRUPTED_EXIT, TERMINATED_EXIT, HUNG_UP_EXIT = 130, 143, 129

#: the signals :func:`terminate_as_interrupt` turns into :class:`Terminated`
TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a batch scheduler, ``docker stop``), raised where
    Ctrl-C would be so that a command keeps and saves what it had done, as for Ctrl-C."""


class _State:
    """Whether a SIGTERM or SIGHUP reached this process's handler since
    :func:`reset_interruption`, and which (the last)."""

    terminated = False
    signum = 0


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _State.terminated, _State.signum = True, signum
    raise Terminated


def ignored(sig: int) -> bool:
    """Whether ``sig`` is ignored in this process (``SIG_IGN``: as the process started, a
    background job's SIGINT, SIGHUP under ``nohup``)."""
    with contextlib.suppress(ValueError, OSError, TypeError):
        return signal.getsignal(sig) is signal.SIG_IGN
    return False


def terminate_as_interrupt() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (the
    ``exprsim`` process's own command line: tests and library callers keep their
    handlers); an ignored SIGHUP (``nohup``) stays ignored, an ignored SIGTERM does not
    (``kill`` ends the command, saving what is done). Outside the main thread, or
    where there is no such signal, nothing changes."""
    for sig in TERMINATING:
        if sig == signal.SIGTERM or not ignored(sig):  # nohup's ignored SIGHUP stays
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, _raise_terminated)


def reset_interruption() -> None:
    """Forget an earlier SIGTERM or SIGHUP (a new command starts)."""
    _State.terminated, _State.signum = False, 0


def interruption(exc: BaseException | None = None) -> tuple[str, int]:
    """``("terminated", 143)`` when ``exc`` is a :class:`Terminated` or a SIGTERM reached
    :func:`terminate_as_interrupt`'s handler (the library may have swallowed its
    exception, keeping a partial result), ``("hung up", 129)`` for a SIGHUP, else
    ``("interrupted", 130)``."""
    if isinstance(exc, Terminated) or _State.terminated:
        if _State.signum == getattr(signal, "SIGHUP", None):
            return "hung up", HUNG_UP_EXIT
        return "terminated", TERMINATED_EXIT
    return "interrupted", INTERRUPTED_EXIT


@dataclass
class Held:
    """What :func:`hold_interrupts` held: the names (``"SIGINT"``, ``"SIGTERM"``,
    ``"SIGHUP"``) of the signals that arrived while the block ran."""

    signals: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.signals)


def _python_handler(sig: int) -> Callable[..., Any] | None:
    """The Python-level handler of ``sig``, or ``None`` (default, ignored, not Python's)."""
    with contextlib.suppress(ValueError, OSError, AttributeError):
        handler = signal.getsignal(sig)
        if callable(handler):
            return handler
    return None


@contextlib.contextmanager
def hold_interrupts(what: str) -> Iterator[Held]:
    """While the block runs, the first Ctrl-C (SIGINT, unless ignored), or SIGTERM where
    Python handles it, or SIGHUP where :func:`terminate_as_interrupt` does, is held: logged
    (``"finishing <what> first"``) and ignored; a second one raises
    :class:`KeyboardInterrupt` (:class:`Terminated` for SIGTERM and SIGHUP) as usual.
    Yields a :class:`Held` naming the signals held. The previous handlers are restored
    afterwards. A SIGTERM handler of the host's own (a service's graceful shutdown, Ray's
    ``sys.exit`` in its driver) is held too, and given the signal once they are restored (a
    second SIGTERM at once); held before, it never ran. Outside the main thread (where
    Python cannot set signal handlers, and which Ctrl-C never reaches) nothing is held."""
    held = Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    ours: list[str] = []  # the signals held that are not given to a host's handler

    def hold(signum: int, frame: FrameType | None) -> None:
        term = signum in TERMINATING
        name = signal.Signals(signum).name
        held.signals.append(name)
        host = foreign.get(signum)
        if host is not None and name in passed:  # the host's, again: given to it now
            passed.discard(name)
            host(signum, frame)
            return
        if host is not None:
            passed.add(name)
        else:  # the signals held for the host do not count: the user's first is held
            ours.append(name)
            if term:
                _State.terminated, _State.signum = True, signum
        if len(ours) > 1 and host is None:
            raise Terminated if term else KeyboardInterrupt
        again = "send it again" if term or ignored_int else "press Ctrl-C again"
        log.warning("%s: finishing %s first (%s to abandon it)", name if term else "Ctrl-C",
                    what, again)  # fmt: skip

    previous = {}
    ignored_int = ignored(signal.SIGINT)
    if not ignored_int:  # a background job's ignored Ctrl-C stays ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, hold)
    foreign: dict[int, Callable[..., Any]] = {}  # the host's SIGTERM handler, given it after
    passed: set[str] = set()  # the host's signals held, to give it when the block ends
    for sig in TERMINATING:  # a default SIGTERM or SIGHUP still kills at once
        handler = _python_handler(sig)
        # a SIGHUP handler of the caller's own (a daemon's "reload") is not taken over
        if handler is not None and handler is not _raise_terminated and sig == signal.SIGTERM:
            foreign[sig] = handler
        if handler is _raise_terminated or sig in foreign:
            previous[sig] = signal.signal(sig, hold)
    try:
        yield held
    finally:
        for sig, before in previous.items():
            # None: a handler installed outside Python; Python's own is the best restore
            if before is None:
                before = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, before)
        for sig in foreign:
            if signal.Signals(sig).name in passed:  # its handler, restored, runs now
                signal.raise_signal(sig)
