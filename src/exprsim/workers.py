"""Worker processes of exprsim's process pools (FEC crops, face meshes of the perceptual
VAE): what a spawned worker does on start, how a pool is stopped, and the guard against a
script that spawns workers without ``if __name__ == "__main__":``.

A spawned worker imports its parent's main script again. Without the guard the script's
work runs again in every worker; :func:`refuse_in_starting_worker` makes that one clear
error instead (and the parent's broken pool one clear line, :func:`running_pool`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from exprsim.errors import ExprsimError

#: seconds between a worker process's looks at whether its parent is still there
PARENT_POLL_S = 0.5


def starting_worker() -> bool:
    """Whether this process is a spawned worker still importing its parent's main script
    (``multiprocessing`` sets ``_inheriting`` then; its own check reads the same flag): a
    script without an ``if __name__ == "__main__":`` guard runs again in every worker."""
    import multiprocessing as mp

    return bool(getattr(mp.current_process(), "_inheriting", False))


#: environment variable naming the file where a worker of :func:`running_pool` that met an
#: unguarded script says so (its parent then raises one line, not one traceback a worker)
GUARD_MARK_ENV = "EXPRSIM_WORKER_GUARD_MARK"
#: exit status of such a worker
GUARD_EXIT = 86


def _guard_message(what: str) -> str:
    return (
        f"{what} was called while a worker process of this script was starting: put the "
        'script\'s code under `if __name__ == "__main__":`'
    )


def refuse_in_starting_worker(what: str) -> None:
    """Refuse to run ``what`` in a worker that is still starting (:func:`starting_worker`):
    a worker of :func:`running_pool` writes ``what`` to its parent's mark file and ends at
    once (the parent says it in one line); elsewhere it is an error.

    Raises:
        ExprsimError: it is one; the line says how to guard the script.
    """
    if not starting_worker():
        return
    mark = os.environ.get(GUARD_MARK_ENV)
    if mark:
        with contextlib.suppress(OSError), open(mark, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")  # appended: another worker may be writing it too
        os._exit(GUARD_EXIT)  # no traceback: the parent explains
    raise ExprsimError(_guard_message(what))


def exit_with_parent(poll: float = PARENT_POLL_S) -> None:
    """In a worker process: end it (``os._exit``) once its parent process is gone.

    A worker ignoring SIGINT outlived a parent that left with ``os._exit`` (a third Ctrl-C)
    or was killed: it waited on the job queue for ever, holding the caller's stdout open.
    A daemon thread compares ``os.getppid()`` with the parent's at start."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="exprsim-parent-watch", daemon=True).start()


def init_worker() -> None:
    """What every pool worker does first: ignore Ctrl-C and a hang-up (they reach the
    whole process group; the parent stops the pool and keeps what was done, where a
    worker dying of one only printed a traceback) and, in a real worker, end with its
    parent."""
    import multiprocessing as mp

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if mp.parent_process() is not None:
        exit_with_parent()


def stop_worker_pool(ex: Any) -> None:
    """Stop a ``ProcessPoolExecutor`` at once, on Ctrl-C or any error: its processes are
    terminated and its queued jobs dropped. ``shutdown(wait=True)`` waited for the jobs
    running and already queued (workers ignore Ctrl-C), and a further Ctrl-C then left
    the command with its workers running."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    ex.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(timeout=2.0)


@contextlib.contextmanager
def running_pool(ex: Any, died: str) -> Iterator[Any]:
    """Use the ``ProcessPoolExecutor`` ``ex`` in a ``with`` block: shut down normally when
    the block ends, stopped at once (:func:`stop_worker_pool`) on Ctrl-C, an error or a
    consumer that stops early; a worker that died is one :class:`ExprsimError` line,
    ``died`` with ``{exc}`` replaced by the pool's reason.

    Raises:
        ExprsimError: a worker process died (BrokenProcessPool).
    """
    from concurrent.futures.process import BrokenProcessPool

    mark = _hold_mark()
    finished = False
    try:
        yield ex
        finished = True
    except BrokenProcessPool as exc:
        what = ""  # no mark file: no worker met the script's own call
        with contextlib.suppress(OSError), open(mark, encoding="utf-8") as fh:
            what = fh.readline().strip()
        if what:  # a worker ran the script's own call again: the script has no guard
            raise ExprsimError(_guard_message(what)) from None
        raise ExprsimError(died.format(exc=exc)) from None
    finally:
        if finished:
            ex.shutdown(wait=True)
        else:
            stop_worker_pool(ex)
        _release_mark()


#: the pools of this process running now (they share one mark file and its variable)
_marks = {"held": 0}
_marks_lock = threading.Lock()


def _hold_mark() -> str:
    """The mark file of this process's pools (one per process: the environment is the
    process's), named in :data:`GUARD_MARK_ENV` while any pool runs; returns its path."""
    import tempfile

    mark = os.path.join(tempfile.gettempdir(), f"exprsim-guard-{os.getpid()}")
    with _marks_lock:
        if _marks["held"] == 0:
            with contextlib.suppress(OSError):
                os.unlink(mark)  # a mark of an earlier pool of this pid
            os.environ[GUARD_MARK_ENV] = mark  # workers spawned from here on inherit it
        _marks["held"] += 1
    return mark


def _release_mark() -> None:
    """The last pool of the process takes the variable and the mark file away."""
    with _marks_lock:
        _marks["held"] -= 1
        if _marks["held"] == 0:
            mark = os.environ.pop(GUARD_MARK_ENV, None)
            if mark:
                with contextlib.suppress(OSError):
                    os.unlink(mark)


__all__ = [
    "GUARD_EXIT",
    "GUARD_MARK_ENV",
    "PARENT_POLL_S",
    "exit_with_parent",
    "init_worker",
    "refuse_in_starting_worker",
    "running_pool",
    "starting_worker",
    "stop_worker_pool",
]
