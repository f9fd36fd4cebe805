"""What a child process made with ``fork`` does with its parent's locks.

A child made with ``fork`` (a ``multiprocessing`` pool with the ``fork`` start method,
gunicorn ``--preload``) has one thread: the one that forked. A lock another parent thread
held at that moment stays held in the child for ever, and the child's first call that
takes it hangs. The state that lock guarded may also be half-changed (a detector in the
middle of an inference, a database connection in the middle of a statement).

Objects shared by a process's threads (the shared detectors, a ``FaceIndex``) register
here on first use (:func:`track`, :func:`in_child`; never on import); in a forked child,
before any other code runs, each is told (``_after_fork_in_child``) and replaces a lock
that was held by a parent thread, and rebuilds what it guarded.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

_objects: weakref.WeakSet[Any] = weakref.WeakSet()
_callbacks: list[Callable[[], None]] = []
_hooked = False


def held_elsewhere(lock: Any) -> bool:
    """Whether ``lock`` (a ``threading.Lock`` or ``RLock``) is held by another thread: in
    a forked child, by a parent thread that is not there (an ``RLock`` this thread holds
    is not). Leaves it as it found it."""
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


def track(obj: Any) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked from now on (while
    ``obj`` lives)."""
    _hook()
    _objects.add(obj)


def in_child(callback: Callable[[], None]) -> None:
    """Call ``callback()`` in every child forked from now on (once, however often it is
    registered)."""
    _hook()
    if callback not in _callbacks:
        _callbacks.append(callback)


def _hook() -> None:
    global _hooked
    if not _hooked and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _hooked = True


def _after_fork_in_child() -> None:
    for callback in list(_callbacks):
        callback()
    for obj in list(_objects):
        obj._after_fork_in_child()


def fresh_lock(lock: Any) -> Any:
    """``lock`` when no other thread holds it, else a new lock of its kind (for
    ``_after_fork_in_child``)."""
    if not held_elsewhere(lock):
        return lock
    return threading.RLock() if "RLock" in type(lock).__name__ else threading.Lock()
