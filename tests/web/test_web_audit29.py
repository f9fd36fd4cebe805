"""Round 29: the web side's leftovers of round 28 (a kept-alive connection after an early
answer)."""

from __future__ import annotations

import socket
import time

from .test_web_audit17 import _answer_app, guarded_server  # noqa: F401 (fixture)

_early = _answer_app(401, b"no")
_ok = _answer_app(200, b"ok")


async def _early_or_read(scope, receive, send) -> None:
    """``POST /early`` is answered 401 before its body is read (as a request without a token
    is); any other request has its whole body read, then is answered 200."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":
        await _early(scope, receive, send)
        return
    while (await receive()).get("more_body", False):
        pass
    await _ok(scope, receive, send)


def _read_until(conn: socket.socket, end: bytes, seconds: float) -> bytes:
    """What ``conn`` sends until it ends with ``end``, within ``seconds`` in all (``b""``
    on a close)."""
    deadline = time.monotonic() + seconds
    answer = b""
    while not answer.endswith(end):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {end!r} within {seconds} s: {answer!r}")
        conn.settimeout(left)
        try:
            chunk = conn.recv(1000)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return answer + b"<closed>"
        answer += chunk
    return answer


def test_the_next_request_after_an_early_answer_keeps_its_own_time(guarded_server) -> None:  # noqa: F811
    """Round 28's review: the close time set by an early answer (a 401 before the body was
    read) stayed on the kept-alive connection, so the next request, whose body came at the
    usual pace, was cut once that time had passed."""
    port = guarded_server(5.0, 50, body_idle_s=3.0, app=_early_or_read, linger_s=1.0)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n1")
        assert _read_until(conn, b"no", 5).startswith(b"HTTP/1.1 401")
        # the rest of that body, then the next request with the first byte of its own
        conn.sendall(b"234POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n1")
        for byte in b"234":  # a byte every 0.6 s: past the linger time, within the idle one
            time.sleep(0.6)
            conn.sendall(bytes([byte]))
        assert _read_until(conn, b"ok", 5).startswith(b"HTTP/1.1 200")


def test_a_connection_idle_after_an_early_answer_has_the_header_time(guarded_server) -> None:  # noqa: F811
    """Once the early-answered body is in, the connection waits for the next request's
    headers as any kept-alive one does, not only until the linger time."""
    port = guarded_server(3.0, 50, body_idle_s=3.0, app=_early_or_read, linger_s=0.5)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n1")
        assert _read_until(conn, b"no", 5).startswith(b"HTTP/1.1 401")
        conn.sendall(b"2")
        time.sleep(1.5)  # past the linger time, within the header time
        conn.sendall(b"GET /read HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_until(conn, b"ok", 5).startswith(b"HTTP/1.1 200")
        assert _read_until(conn, b"never", 6).endswith(b"<closed>")  # the header time holds
