"""argparse ``type=`` callables that check ranges, so a bad option value gives argparse's
one-line usage error (exit code 2) before any work starts."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path


def int_at_least(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer ``>= lo`` (and ``<= hi`` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def float_in(lo: float, hi: float = math.inf, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        below = value <= lo if lo_open else value < lo
        if not math.isfinite(value) or below or value > hi:
            left = "(" if lo_open else "["
            right = "]" if math.isfinite(hi) else ")"
            raise argparse.ArgumentTypeError(f"must be in {left}{lo}, {hi}{right}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


def writable_dir_target(path: str | Path) -> str | None:
    """Why ``path`` cannot become an output folder, or ``None`` if it can.

    It can when it is a writable folder, or does not exist yet and its nearest existing
    parent is a writable folder. Nothing is created.
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            return f"{p} exists and is not a folder"
        return None if os.access(p, os.W_OK | os.X_OK) else f"{p}: folder is not writable"
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return _folder_problem(p, parent, "cannot create it", f"{parent} is not a folder")


def writable_file_target(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a file, or ``None`` if it can.

    It can when it is a writable file, or does not exist yet and its folder exists and is
    writable (parents are not created). Nothing is created or changed.
    """
    p = Path(path)
    if p.is_dir():
        return f"{p}: is a folder, expected a file to write"
    if p.exists():
        return None if os.access(p, os.W_OK) else f"{p}: cannot write it (permission denied)"
    return _folder_problem(
        p, p.parent, "cannot write it", f"cannot write it (folder {p.parent} does not exist)"
    )


def _folder_problem(p: Path, folder: Path, verb: str, missing: str) -> str | None:
    """Why nothing can be made in ``folder`` for ``p`` (``missing`` when it is no folder)."""
    if not folder.is_dir():
        return f"{p}: {missing}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{p}: {verb} (folder {folder} is not writable)"
    return None


def expand_image_paths(paths: list[str]) -> list[str]:
    """Image paths with folders replaced by the image files under them (recursively).

    Raises:
        ExprsimError: not one image file among ``paths`` (one line, exit code 2).
    """
    from exprsim.errors import ExprsimError
    from exprsim.io import iter_image_files

    out = [str(p) for p in iter_image_files(paths)]
    if not out:
        raise ExprsimError(f"no image files found in {' '.join(paths)}")
    return out


def require_writable(path: str | Path | None, flag: str, folder: bool = False) -> None:
    """Refuse, before any work, an output ``path`` given as ``flag`` that cannot be written:
    a file (:func:`writable_file_target`) or, with ``folder``, an output folder
    (:func:`writable_dir_target`). Nothing to check when ``path`` is ``None`` or empty.

    Raises:
        ExprsimError: ``"<flag> <why>"``, printed by the CLI as one line (exit code 2).
    """
    from exprsim.errors import ExprsimError

    if not path:
        return
    problem = writable_dir_target(path) if folder else writable_file_target(path)
    if problem:
        raise ExprsimError(f"{flag} {problem}")
