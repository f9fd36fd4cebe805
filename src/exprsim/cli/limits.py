"""The process's resource limits, as the CLI meets them: soft limits raised where the hard
ones allow (open files, stack), and one line for a command a limit stopped (too many open
files, a file-size limit, no memory left in the address space, no thread to be had)."""

from __future__ import annotations

import errno
import logging

log = logging.getLogger(__name__)

#: the stack the main thread is given at least, where the hard limit allows (matplotlib's
#: transforms crashed the process at 512 KB)
STACK_BYTES = 8 << 20


def raise_soft_limits() -> None:
    """Raise the soft limits of open files (to the hard one) and of the stack (to
    :data:`STACK_BYTES`), where the hard limits allow: 20 open files made the detector's
    model "null/empty", 512 KB of stack a segfault."""
    from exprsim.cli.serve_cmd import raise_file_limit

    raise_file_limit()
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        if soft != resource.RLIM_INFINITY and soft < STACK_BYTES:
            target = STACK_BYTES if hard == resource.RLIM_INFINITY else min(hard, STACK_BYTES)
            if target > soft:
                resource.setrlimit(resource.RLIMIT_STACK, (target, hard))
    except (ImportError, OSError, ValueError) as exc:  # not POSIX, or refused
        log.debug("cannot raise the stack limit (%s)", exc)


def _limit(name: str, unit: int = 1) -> str:
    """The soft limit ``RLIMIT_<name>`` in words, counted in ``unit`` (1024: the KB of
    ``ulimit -v``, whose limit getrlimit gives in bytes), or ``""``."""
    try:
        import resource

        soft = resource.getrlimit(getattr(resource, f"RLIMIT_{name}"))[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return ""
    return "" if soft == resource.RLIM_INFINITY else f"{soft // unit:,}"


def os_limit_message(exc: OSError) -> str | None:
    """One line for an ``OSError`` a resource limit caused, else ``None``."""
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        n = _limit("NOFILE")
        return (
            f"too many open files{f' (this process may open {n}: ulimit -n)' if n else ''}; "
            "raise the limit and run the command again"
        )
    if exc.errno == errno.EFBIG:
        n = _limit("FSIZE")
        return (
            f"file too large{f' for this process (ulimit -f: {n} bytes)' if n else ''}; "
            "raise the limit or free the disk, and run the command again"
        )
    return None


def resource_message(exc: BaseException) -> str | None:
    """One line for a command stopped by the memory or thread limits, else ``None``."""
    text = str(exc)
    if (
        isinstance(exc, MemoryError)
        or "failed to map segment" in text
        or ("Cannot allocate memory" in text)
    ):
        n = _limit("AS", 1024)  # bytes; ulimit -v says KB (it said 8,192,000,000 KB)
        where = f" (address-space limit, ulimit -v: {n} KB)" if n else ""
        return f"not enough memory{where}; raise the limit or free memory, and run it again"
    if isinstance(exc, RuntimeError) and "can't start new thread" in text:
        n = _limit("NPROC")
        where = f" (this user may run {n} processes and threads: ulimit -u)" if n else ""
        return f"cannot start a thread{where}; raise the limit and run the command again"
    return None
