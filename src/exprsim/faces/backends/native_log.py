"""Keep native (C++) log lines of MediaPipe / TFLite / absl off the user's terminal.

Those libraries write straight to file descriptor 2 when a graph is built and on its first
run ("Created TensorFlow Lite XNNPACK delegate", absl / glog warnings), which neither
Python's ``logging`` nor ``-q`` can silence. :func:`quiet_native_stderr` points fd 2 at a
pipe for the duration of such a call: a relay thread reads it and writes every line back
to the real fd 2 except the known native chatter (:data:`NATIVE_NOISE`), so what the host
process writes meanwhile (a ``logging.StreamHandler`` of another thread, a ``print`` to
``sys.stderr``, a child process's error) is kept, in order. The block restores fd 2 and
waits for the relay to pass on everything written before it ended.
Set ``EXPRSIM_NATIVE_LOGS=1`` to see the native lines (debugging).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

import numpy as np


def warmup_face() -> np.ndarray:
    """A small real face photo (bundled sample), for first runs that log only when a face
    is found (the face mesh's projection calculator warns once, on its first face)."""
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    image = load_image(sample_path("grace_hopper.jpg"))
    step = max(1, min(image.shape[:2]) // 256)
    return np.ascontiguousarray(image[::step, ::step])


#: The native chatter dropped inside a quiet block, matched at the start of a line; any
#: other line written to fd 2 meanwhile is passed on.
NATIVE_NOISE: tuple[re.Pattern[bytes], ...] = (
    # glog / absl: "W0000 00:00:1712345678.123456   18923 inference_feedback_manager.cc:114] "
    re.compile(rb"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.+-]+:\d+\] "),
    re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(rb"INFO: (Created|Initialized) TensorFlow Lite"),  # TFLite's own logger
)

#: longest line held back while its end is awaited (a writer without newlines)
_MAX_LINE = 1 << 16


def is_native_noise(line: bytes) -> bool:
    """Whether ``line`` (one line of fd 2, without or with its newline) is known native
    chatter (:data:`NATIVE_NOISE`)."""
    return any(p.match(line) for p in NATIVE_NOISE)


class _Relay:
    """fd 2 pointed at a pipe, and a thread that passes the pipe's lines on to the real
    stderr (a copy of the original fd 2), less the native noise.

    :meth:`stop` restores fd 2 and writes an end token into the pipe: every byte written
    to fd 2 before is ahead of it, so once the thread has read up to the token nothing
    is lost. The thread goes on reading after the token until every writer is gone (a
    child process started meanwhile inherited the pipe as its stderr: it is neither
    blocked nor killed by a closed pipe), then closes its descriptors.
    """

    def __init__(self) -> None:
        self.out = os.dup(2)  # the real stderr, restored by stop()
        fds = [self.out]
        try:
            self.sink = os.dup(self.out)  # the thread's own, closed by the thread
            fds.append(self.sink)
            self.read_fd, self.write_fd = os.pipe()
        except OSError:
            for fd in fds:
                os.close(fd)
            raise
        self.token = b"\x00exprsim-relay-" + os.urandom(8).hex().encode() + b"\x00"
        self.passed = threading.Event()  # the token is read: all before it is relayed
        self.thread = threading.Thread(target=self._run, name="exprsim-stderr", daemon=True)
        try:
            self.thread.start()
        except RuntimeError:  # no thread to be had: nothing silenced
            for fd in (*fds, self.read_fd, self.write_fd):
                os.close(fd)
            raise
        try:
            os.dup2(self.write_fd, 2)
        except OSError:
            os.close(self.write_fd)  # the thread reads the end of the pipe and closes the rest
            os.close(self.out)
            raise

    def _write(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.sink, data) :]
            except OSError:
                return  # the real stderr is gone: nothing to keep

    def _relay(self, pending: bytes, final: bool) -> bytes:
        """Pass on the complete lines of ``pending`` (all of it when ``final``, or when it
        is too long to wait for its end); return the rest."""
        lines = pending.splitlines(keepends=True)
        rest = b""
        if lines and not final and not lines[-1].endswith((b"\n", b"\r")):
            rest = lines.pop()
            if len(rest) > _MAX_LINE:
                lines.append(rest)
                rest = b""
        kept = b"".join(line for line in lines if not is_native_noise(line))
        if kept:
            self._write(kept)
        return rest

    def _run(self) -> None:
        pending, seen = b"", False
        try:
            while True:
                try:
                    data = os.read(self.read_fd, 1 << 16)
                except OSError:
                    data = b""
                if not data:
                    break
                pending += data
                if not seen and self.token in pending:
                    before, _, pending = pending.partition(self.token)
                    self._relay(before, final=True)
                    seen = True
                    self.passed.set()
                pending = self._relay(pending, final=False)
            self._relay(pending, final=True)
        finally:
            self.passed.set()
            for fd in (self.read_fd, self.sink):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def stop(self) -> None:
        """Restore fd 2, then wait until the thread has passed on all written before."""
        try:
            os.dup2(self.out, 2)
        finally:
            try:
                os.write(self.write_fd, self.token)
            finally:
                os.close(self.write_fd)
            os.close(self.out)
            self.passed.wait()
            self.thread.join(timeout=0.1)  # at once, unless a child process holds the pipe

    def forget_in_child(self) -> None:
        """In a forked child (no relay thread there): fd 2 back to the real stderr, the
        pipe's ends closed."""
        with contextlib.suppress(OSError):
            os.dup2(self.out, 2)
        for fd in (self.write_fd, self.read_fd, self.sink, self.out):
            with contextlib.suppress(OSError):
                os.close(fd)


_lock = threading.Lock()
_depth = 0
_relay: _Relay | None = None
_fork_hook = False


def _after_fork_in_child() -> None:
    """A child forked inside a quiet block writes to the real stderr (it has no relay)."""
    global _lock, _depth, _relay
    _lock = threading.Lock()
    _depth = 0
    relay, _relay = _relay, None
    if relay is not None:
        relay.forget_in_child()


def _enter() -> None:
    """Point fd 2 at the relay, once for all the threads inside a quiet block."""
    global _depth, _relay, _fork_hook
    with _lock:
        if _depth == 0:
            if not _fork_hook:
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_after_fork_in_child)
                atexit.register(_end_at_exit)
                _fork_hook = True
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            try:
                _relay = _Relay()
            except (OSError, RuntimeError):
                _relay = None  # fd 2 unusable, no descriptors or threads left: no silence
        _depth += 1


def _end_at_exit() -> None:
    """At interpreter exit, with a block still open in another thread: fd 2 back and every
    line written before passed on (the relay thread, a daemon, would die with the bytes
    still in the pipe: an uncaught traceback, the last log lines)."""
    global _depth, _relay
    with _lock:
        relay, _relay = _relay, None
        _depth = 0
        if relay is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            relay.stop()


def _leave() -> None:
    """Restore fd 2 when the last thread leaves its quiet block."""
    global _depth, _relay
    with _lock:
        if _depth == 0:  # a block entered before a fork, left in the child
            return
        _depth -= 1
        if _depth == 0 and _relay is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            relay, _relay = _relay, None
            relay.stop()


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence native chatter on fd 2 inside the block; pass every other line on.

    fd 2 belongs to the whole process, so overlapping blocks in several threads (front-end
    threads building their graphs together) share one redirection: the first to enter
    redirects, the last to leave restores (also when the block raises).
    """
    if os.environ.get("EXPRSIM_NATIVE_LOGS") == "1":
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()
