"""Keep native (C++) log lines of MediaPipe / TFLite / absl off the user's terminal.

Those libraries write straight to file descriptor 2 when a graph is built and on its first
run ("Created TensorFlow Lite XNNPACK delegate", absl / glog warnings), which neither
Python's ``logging`` nor ``-q`` can silence. :func:`quiet_native_stderr` points fd 2 at
``/dev/null`` for the duration of such a call and restores it afterwards. Python-level
writes to ``sys.stderr`` are flushed first, and while fd 2 is silenced ``sys.stderr`` writes
to a copy of the original fd 2, so nothing of ours (an error line printed by another
thread meanwhile) is lost.
Set ``EXPRSIM_NATIVE_LOGS=1`` to see the native lines (debugging).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np


def warmup_face() -> np.ndarray:
    """A small real face photo (bundled sample), for first runs that log only when a face
    is found (the face mesh's projection calculator warns once, on its first face)."""
    from exprsim.io import load_image
    from exprsim.samples import sample_path

    image = load_image(sample_path("grace_hopper.jpg"))
    step = max(1, min(image.shape[:2]) // 256)
    return np.ascontiguousarray(image[::step, ::step])


_lock = threading.Lock()
_depth = 0
_saved: int | None = None
#: a text stream on a copy of the original fd 2, made once and never closed: while fd 2
#: points at /dev/null, Python-level writes to ``sys.stderr`` (our own error lines, printed
#: by another thread meanwhile) go there instead of being lost with the native ones
_passthrough: io.TextIOWrapper | None = None
_swapped: Any = None


def _passthrough_for(stream: Any) -> io.TextIOWrapper | None:
    global _passthrough
    if _passthrough is None:
        try:
            if stream.fileno() != 2:
                return None  # sys.stderr is not fd 2 (captured, redirected): nothing to lose
            _passthrough = io.TextIOWrapper(
                io.FileIO(os.dup(2), "w"),
                encoding=getattr(stream, "encoding", None) or "utf-8",
                errors=getattr(stream, "errors", None) or "backslashreplace",
                line_buffering=True,
            )
        except (OSError, ValueError, AttributeError):
            return None
    return _passthrough


def _enter() -> None:
    """Point fd 2 at /dev/null, once for all the threads inside a quiet block."""
    global _depth, _saved, _swapped
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                passthrough = _passthrough_for(sys.stderr)
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 2)
                finally:
                    os.close(devnull)
                _saved = saved
                if passthrough is not None:
                    _swapped, sys.stderr = sys.stderr, passthrough
            except (OSError, ValueError, AttributeError):
                _saved = None  # fd 2 unusable: nothing to silence
        _depth += 1


def _leave() -> None:
    """Restore fd 2 when the last thread leaves its quiet block."""
    global _depth, _saved, _swapped
    with _lock:
        _depth -= 1
        if _depth == 0 and _saved is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.flush()
            if _swapped is not None:
                sys.stderr, _swapped = _swapped, None
            os.dup2(_saved, 2)
            os.close(_saved)
            _saved = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence native writes to fd 2 inside the block (no-op if fd 2 is unusable).

    fd 2 belongs to the whole process, so overlapping blocks in several threads (front-end
    threads building their graphs together) share one redirection: the first to enter
    silences, the last to leave restores.
    """
    if os.environ.get("EXPRSIM_NATIVE_LOGS") == "1":
        yield
        return
    _enter()
    try:
        yield
    finally:
        _leave()
