"""Who holds a lock file: a process writes ``PID HOST command`` into the lock file it holds
(:func:`note_holder`), and one refused or kept waiting names it (:func:`lock_holder`).

Every lock exprsim takes with ``flock`` (an index's writer lock, a training run's folder,
an output folder, a table being written) carries the note, so a refusal says which
process to wait for, and whether it is stopped (Ctrl-Z), where it said only "another
command".
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


def note_holder(fh: Any) -> None:
    """Write this process into the lock file it holds (``PID HOST command``), for a
    process that waits for it or is refused to name (:func:`lock_holder`); best effort,
    unbuffered (a full disk leaves nothing to flush when the file is closed)."""
    import socket
    import sys

    if not holds_a_note(fh):  # a file of the user's own under that name: left as it is
        return
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
    # one line: a line break in an argument (a folder named so) made the note read as a
    # file of somebody else's (never emptied again)
    command = "".join(ch if ch.isprintable() else "?" for ch in command[:300])
    note = f"{os.getpid()} {socket.gethostname() or '-'} {command}\n"
    with contextlib.suppress(OSError, ValueError):
        os.ftruncate(fh.fileno(), 0)
        os.write(fh.fileno(), note.encode("utf-8", "backslashreplace"))


def forget_holder(fh: Any) -> None:
    """Empty the lock file before its lock is let go (:func:`note_holder`), unless it
    holds something else than a note."""
    if not holds_a_note(fh):
        return
    with contextlib.suppress(OSError, ValueError):
        os.ftruncate(fh.fileno(), 0)


def holds_a_note(fh: Any) -> bool:
    """Whether the open lock file ``fh`` is empty or holds a holder's note
    (:func:`note_holder`): a file of that name holding anything else is somebody's own (a
    ``.lock`` in an output folder), never emptied or removed."""
    try:
        fh.seek(0)
        data = fh.read(4096)
    except (OSError, ValueError):
        return False
    if not data:
        return True
    lines = data.decode("utf-8", "replace").splitlines()
    parts = lines[0].split(" ", 2) if lines else []
    return len(lines) == 1 and len(parts) == 3 and parts[0].isdigit()


def lock_holder(fh: Any) -> str:
    """`` (pid N, `command`)`` of the process a lock file names (:func:`note_holder`),
    with ``, which is stopped (Ctrl-Z?) ...`` where Linux says so; `` (pid N on HOST,
    ...)`` for another machine's; ``""`` when none is named (an exprsim before it)."""
    import socket

    try:
        fh.seek(0)
        first = fh.read(400).decode("utf-8", "replace").splitlines()[0]
        pid_text, host, command = first.split(" ", 2)
        pid = int(pid_text)
    except (OSError, ValueError, IndexError):
        return ""
    from exprsim.errors import printable

    if host != (socket.gethostname() or "-"):
        return f" (pid {pid} on {printable(host)}, `{printable(command)}`)"
    note = f" (pid {pid}, `{printable(command)}`"
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            state = stat_file.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return note + ")"
    if state in (b"T", b"t"):
        note += ", which is stopped (Ctrl-Z?): resume it (fg, or kill -CONT) or end it"
    return note + ")"
