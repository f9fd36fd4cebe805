"""How ``exprsim serve`` runs uvicorn: connections are bounded in number and in the time
they may take to send their request headers (slow-loris clients), and a process out of
file descriptors logs one line now and then, not a traceback per ``accept()`` retry.

Needs the ``[web]`` extra (uvicorn, h11); :mod:`exprsim.cli.serve_cmd` imports it only
when it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

#: seconds a connection may take to send a request's headers (its first request's, or the
#: next one's on a kept-alive connection) before it is closed
HEADER_TIMEOUT_S = 20.0
#: seconds a connection that owes the body of its request may go without sending a byte
#: (also after an early answer, e.g. a 401 before the body was read) before it is closed
BODY_IDLE_S = 60.0

#: a request's whole body must arrive within this many seconds, plus one second per
#: :data:`BODY_MIN_RATE` bytes of its ``Content-Length`` (a body of unknown length: at most
#: :data:`BODY_UNKNOWN_S`); a byte now and then reset the idle time only, and a client
#: without the token held a connection for weeks on a 64 KB login form
BODY_MIN_S = 30.0
#: bytes per second a body's deadline allows for on top of :data:`BODY_MIN_S` (a 25 MB
#: upload: 30 min; any link of 128 kbit/s or more sends it in time)
BODY_MIN_RATE = 16 * 1024
#: the deadline of a body sent without a ``Content-Length`` (chunked)
BODY_UNKNOWN_S = 600.0

#: after an answer given before the request's body was read (a 401, a 413 by its
#: ``Content-Length``), the rest of the body is read and dropped for this long at most,
#: however the client trickles it, then the connection is closed (closing at once could
#: reset the connection before the client read the answer; waiting on every byte let a
#: client without a token hold a connection for good)
LINGER_S = 10.0

#: seconds between two log lines on an ``accept()`` that failed for want of resources
ACCEPT_ERROR_EVERY_S = 60.0


#: most glibc malloc arenas in ``exprsim serve`` (:func:`cap_malloc_arenas`)
SERVE_MALLOC_ARENAS = 2


def cap_malloc_arenas(arenas: int = SERVE_MALLOC_ARENAS) -> bool:
    """Let glibc's ``malloc`` make at most ``arenas`` heaps from now on (``mallopt
    M_ARENA_MAX``), unless ``MALLOC_ARENA_MAX`` is set already: a server's requests run on
    a pool of threads that come and go, each given its own heap, and the freed pages of
    decoded photos stay stranded across them. 3,000 mixed requests took the server from
    285 MB to 671 MB and rising; with 2 heaps it levelled off (docs/robustness.md,
    thirty-second round). Returns whether the cap is set (never off Linux/glibc)."""
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_arena_max = -8  # glibc's malloc.h
    return bool(mallopt(ctypes.c_int(m_arena_max), ctypes.c_int(arenas)))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus two bounds against clients that hold connections open:

    * a connection that has not sent a whole request's headers within
      :attr:`header_timeout_s` (uvicorn's keep-alive timer starts only after a response,
      and any byte cancels it), or that owes its request's body and sends no byte of it
      for :attr:`body_idle_s`, or has not sent all of it by its deadline (:attr:`body_min_s`
      plus a second per :attr:`body_min_rate` bytes; unless the app is the one behind), is
      closed; one answered before its body was read is closed :attr:`linger_s` after the
      answer at the latest;
    * a connection past ``limit_concurrency`` open ones is closed at once (uvicorn would
      answer its request 503 anyway), so idle connections cannot use up the process's
      file descriptors.
    """

    header_timeout_s = HEADER_TIMEOUT_S
    body_idle_s = BODY_IDLE_S
    body_min_s = BODY_MIN_S
    body_min_rate = BODY_MIN_RATE
    linger_s = LINGER_S
    _header_timer: asyncio.TimerHandle | None = None
    #: loop time by which the request's body must be in (``None``: no body owed)
    _body_until: float | None = None
    #: loop time when a connection answered early is closed (``None``: not answered early)
    _linger_until: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            _too_many.note(limit)
            self.transport.close()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._linger_until is not None and not self._answered_early():
            # the body of the request answered early is in, and h11 began the next cycle:
            # the next request has its own times (and its body its own deadline), from now
            self._linger_until = self._body_until = None
            self._arm_header_timer()
        state = self.conn.their_state
        if state is h11.SEND_BODY:  # each byte of a body gives the next one its time
            if self._body_until is None:  # within the body's own deadline
                self._body_until = self.loop.time() + self._body_allowance()
            self._arm_header_timer(self._body_wait())
        else:
            self._body_until = None
            if state is not h11.IDLE:  # the whole request is in (or an error)
                self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self._linger_until = self._body_until = None
            self._arm_header_timer()  # the next request's headers have the same time
        elif self.conn.their_state is h11.SEND_BODY:  # answered early: the body still owed
            self._linger_until = self.loop.time() + self.linger_s
            self._arm_header_timer(self._body_wait())

    def _answered_early(self) -> bool:
        """Whether the request now in is one answered before its body was read (a kept-alive
        connection's next request is not, though :attr:`_linger_until` is still set when its
        bytes arrive with the end of the earlier body)."""
        done = self.conn.our_state in (h11.DONE, h11.MUST_CLOSE)
        return self._linger_until is not None and done

    def _body_allowance(self) -> float:
        """Seconds the request now in may take to send its whole body (:data:`BODY_MIN_S`,
        :data:`BODY_MIN_RATE`, :data:`BODY_UNKNOWN_S`)."""
        scope = getattr(self, "scope", None) or {}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return self.body_min_s + int(value) / self.body_min_rate
                except ValueError:
                    break
        return max(self.body_min_s, BODY_UNKNOWN_S)

    def _body_wait(self) -> float:
        """Seconds the connection may now go without a byte of its body: its idle time, no
        later than the body's deadline (:meth:`_body_allowance`), and once answered early,
        no later than :attr:`_linger_until` however it trickles."""
        wait = self.body_idle_s
        now = self.loop.time()
        if self._body_until is not None:
            wait = min(wait, self._body_until - now)
        until = self._linger_until
        if until is not None and self._answered_early():
            wait = min(wait, until - now)
        return max(0.0, wait)

    def _arm_header_timer(self, seconds: float | None = None) -> None:
        self._disarm_header_timer()
        wait = self.header_timeout_s if seconds is None else seconds
        self._header_timer = self.loop.call_later(wait, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            return
        early = self._answered_early()  # answered: the app is not behind
        if self.conn.their_state is h11.SEND_BODY and self.flow.read_paused and not early:
            if self._body_until is not None:  # the app is behind, not the client: its time
                self._body_until = max(self._body_until, self.loop.time() + self.body_idle_s)
            self._arm_header_timer(self.body_idle_s)
            return
        log.debug("closing a connection that kept the server waiting for its request")
        self.transport.close()


class _Throttled:
    """Logs a warning about connections closed for being too many, at most once a minute."""

    def __init__(self) -> None:
        self.last = -float("inf")
        self.dropped = 0

    def note(self, limit: int) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self.last >= ACCEPT_ERROR_EVERY_S:
            log.warning("%d connection(s) closed: more than %d open at once", self.dropped, limit)
            self.last, self.dropped = now, 0


_too_many = _Throttled()


class AcceptErrorFilter:
    """An event loop exception handler: asyncio's "socket.accept() out of system resource"
    (no file descriptor left; asyncio retries in a tight loop, each failure a traceback) is
    logged as one warning line at most every ``every_s`` seconds; anything else goes to the
    loop's default handler."""

    def __init__(self, every_s: float = ACCEPT_ERROR_EVERY_S) -> None:
        self.every_s = every_s
        self.last = -float("inf")
        self.skipped = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not str(context.get("message", "")).startswith("socket.accept() out of system"):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < self.every_s:
            self.skipped += 1
            return
        exc = context.get("exception")
        log.warning(
            "cannot accept connections: %s (%d more such failures not logged)",
            exc if exc is not None else "out of system resources",
            self.skipped,
        )
        self.last, self.skipped = now, 0


class GuardedServer(uvicorn.Server):
    """uvicorn's server with :class:`AcceptErrorFilter` on its event loop, shut down
    gracefully on SIGHUP too (its terminal closed), as on SIGINT and SIGTERM: uvicorn
    handles only those two, and a hang-up killed the server mid-request (unless SIGHUP
    is ignored, as under ``nohup``)."""

    async def serve(self, sockets: Any = None) -> None:
        asyncio.get_running_loop().set_exception_handler(AcceptErrorFilter())
        await super().serve(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        from exprsim.interrupts import ignored

        hup = getattr(signal, "SIGHUP", None)
        main = threading.current_thread() is threading.main_thread()
        if hup is None or not main or ignored(hup):
            with super().capture_signals():
                yield
            return
        previous = signal.signal(hup, self.handle_exit)
        try:
            with super().capture_signals():  # raises INT and TERM again once shut down
                yield
        finally:
            signal.signal(hup, previous)
        if hup in self._captured_signals:  # then the hang-up, to the handler before
            signal.raise_signal(hup)


def connection_limit(fd_limit: int | None) -> int:
    """Connections (and requests) served at once under a process limit of ``fd_limit``
    open files (``None``: unknown): a connection may hold up to three (its socket, a
    spooled upload, the stored upload), and the index, the model and the video jobs need
    some; at most 1000, at least 8."""
    if fd_limit is None or fd_limit <= 0:
        return 1000
    return max(8, min(1000, (fd_limit - 128) // 3))
