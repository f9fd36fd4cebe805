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
    if not parent.is_dir():
        return f"{p}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{p}: cannot create it ({parent} is not writable)"
    return None
