"""Round 34 (web security audit): a client without the token could hold a connection for
weeks by sending the body of ``POST /login`` (64 KB allowed) one byte a minute: each byte
reset the 60 s idle time, and nothing bounded the whole body. A body now has a deadline:
``body_min_s`` plus a second per ``body_min_rate`` bytes of its ``Content-Length``."""

from __future__ import annotations

import socket
import time

from .test_web_audit17 import _body_reading_app, _closed_within, guarded_server  # noqa: F401


def test_a_body_trickled_past_its_deadline_is_closed(guarded_server) -> None:  # noqa: F811
    port = guarded_server(
        5.0, 50, body_idle_s=1.0, app=_body_reading_app, body_min_s=1.5, body_min_rate=1e9
    )
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n1")
        started, closed = time.monotonic(), False
        while not closed and time.monotonic() - started < 6:
            try:
                slow.sendall(b"1")  # a byte every 0.3 s: never idle for 1 s
            except OSError:
                break
            closed = _closed_within(slow, 0.3)
        closed = closed or _closed_within(slow, 0.5)
        assert closed and time.monotonic() - started < 3.5  # was: open for good


def test_a_body_within_its_deadline_is_read(guarded_server) -> None:  # noqa: F811
    port = guarded_server(
        5.0, 50, body_idle_s=1.0, app=_body_reading_app, body_min_s=3.0, body_min_rate=1e9
    )
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        for _ in range(4):
            time.sleep(0.3)
            client.sendall(b"1")
        client.settimeout(5)
        assert client.recv(1000).startswith(b"HTTP/1.1 200")


def test_the_next_request_after_an_early_answer_has_its_own_deadline(guarded_server) -> None:  # noqa: F811
    """Review: the rest of an early-answered body arriving with the next request's headers
    left the next request the first one's deadline (closed mid-body, or 600 s after a
    chunked one)."""
    from .test_web_audit29 import _early_or_read, _read_until

    port = guarded_server(
        5.0, 50, body_idle_s=5.0, app=_early_or_read, linger_s=10.0, body_min_s=2.0,
        body_min_rate=1e9,
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n1")
        assert _read_until(conn, b"no", 5).startswith(b"HTTP/1.1 401")
        time.sleep(1.5)  # within the first request's 2 s
        conn.sendall(b"234POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n1")
        for byte in b"23":  # 1.2 s more: past the first deadline, within its own
            time.sleep(0.6)
            conn.sendall(bytes([byte]))
        assert _read_until(conn, b"ok", 5).startswith(b"HTTP/1.1 200")  # was: closed
